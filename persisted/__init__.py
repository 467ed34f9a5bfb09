"""Persisted queries: trusted documents from queries/ and Apollo's automatic persisted queries."""
