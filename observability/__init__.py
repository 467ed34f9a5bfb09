"""Health endpoints, Prometheus metrics, structured logs and optional tracing."""
