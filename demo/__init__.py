"""Deterministic demo data for local runs, tests and benchmarks."""
