"""OpenTelemetry tracing, off by default (CAREGRAPH_TRACING=true turns it on).

Spans come from the Starlette instrumentation (one per HTTP request) and Strawberry's
OpenTelemetryExtension (parse, validate, execute, resolvers). The packages are an
optional extra (`pip install -e '.[tracing]'`); exporting is the operator's choice:
configure a TracerProvider (for instance with `opentelemetry-instrument` or an OTLP
exporter) before start; without one, an SDK provider is installed that records spans
for whatever span processors are added to it.

Spans carry operation names and document text, never variables (where patient data
travels): the resolver-argument filter drops every argument.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from schema import CareGraphSchema

MISSING = (
    "CAREGRAPH_TRACING=true needs the tracing extra: pip install -e '.[tracing]' "
    "(opentelemetry-sdk, opentelemetry-instrumentation-starlette)"
)


class TracingUnavailable(RuntimeError):
    pass


def _no_arguments(arguments: dict[str, Any], info: Any) -> dict[str, Any]:
    return {}


def enable_tracing(app: Starlette, schema: CareGraphSchema) -> None:
    """Trace this app's requests and its schema's executions (this app only)."""
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from strawberry.extensions.tracing import OpenTelemetryExtension
    except ImportError as error:
        raise TracingUnavailable(MISSING) from error

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())

    def extension(**kwargs: Any) -> Any:
        return OpenTelemetryExtension(arg_filter=_no_arguments, **kwargs)

    schema.extensions = (*schema.extensions, extension)
    StarletteInstrumentor.instrument_app(app)
