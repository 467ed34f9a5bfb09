"""Browser-facing pages served next to the API (GraphiQL)."""
