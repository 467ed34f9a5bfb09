"""Versioned SQL schema migrations (Alembic). Run at start by datasources.sql.migrate()."""
