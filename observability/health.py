"""/livez (the process answers) and /readyz (every dependency, each with a short timeout).

/readyz runs the circuit probes in parallel, each bounded (runtime/probes.py), so it
answers within about a second even when a dependency hangs, and says per dependency
what is wrong; a load balancer takes the instance out while it says 503.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from runtime.services import Services


async def livez(request: Request) -> JSONResponse:
    # The pid tells an operator (and the multi-worker test) which worker answered.
    return JSONResponse({"status": "ok", "pid": os.getpid()})


async def readiness(services: Services) -> JSONResponse:
    assert services.dependencies is not None
    checks = await services.dependencies.check_all()
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
        headers={} if healthy else {"Retry-After": "2"},
    )


async def readyz(request: Request) -> JSONResponse:
    return await readiness(request.app.state.services)
