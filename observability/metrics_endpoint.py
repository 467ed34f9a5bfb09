"""GET /metrics: the Prometheus text format, behind a bearer token.

Metrics reveal traffic patterns (operation names, error rates), so they are not public:
scrapers send `Authorization: Bearer <token>`. The token is CAREGRAPH_METRICS_TOKEN,
or on embedded defaults one generated into the data folder (`metrics-token`, 0600).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from observability.metrics import render
from settings import Settings

TOKEN_FILE = "metrics-token"


def metrics_token(settings: Settings) -> str:
    if settings.ops.metrics_token:
        return settings.ops.metrics_token
    path = Path(settings.data_dir) / TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first
            return path.read_text().strip()
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def metrics_route(settings: Settings) -> Route:
    expected = f"Bearer {metrics_token(settings)}".encode()

    async def metrics(request: Request) -> Response:
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, expected):
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Send the metrics token",
                            "extensions": {"code": "UNAUTHENTICATED"},
                        }
                    ]
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        body, content_type = render()
        return Response(body, media_type=content_type)

    return Route("/metrics", metrics, methods=["GET"])
