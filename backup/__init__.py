"""Verified backup and restore: encrypted, authenticated, streamed archives."""
