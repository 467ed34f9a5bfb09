"""Alembic environment: always handed an open connection by datasources.sql.migrate()."""

from alembic import context

from datasources.billing_tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
