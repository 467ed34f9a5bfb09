"""`caregraph serve --workers N`: N worker processes sharing one set of databases.

The parent process owns what must exist once: on embedded defaults it starts (and
supervises) the embedded MongoDB and, since the in-process Redis stand-in cannot be
shared, a `redis-server` child (or refuses to start without one); it migrates SQL and
loads the demo data once; then uvicorn forks the workers, which find everything through MONGODB_URI
and REDIS_URL like any production instance.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette

from runtime.embedded_mongo import EmbeddedMongo
from runtime.mongo_supervisor import MongoSupervisor
from runtime.redis_child import RedisChild, RedisUnavailable
from settings import Settings

NEEDS_REDIS = (
    "caregraph serve --workers N (N > 1) needs a Redis shared by the workers (APQ, login "
    "throttling, caches): install redis-server (apt-get install redis-server) so it can "
    "be started for you, or set REDIS_URL"
)


def app_from_env() -> Starlette:
    """The worker's app (uvicorn imports this by name in each worker process)."""
    from app import create_app

    return create_app(Settings.from_env())


async def _prepare_once(settings: Settings) -> None:
    """What N workers starting at once would race on: SQL migrations (SQLite has no
    advisory lock), MongoDB indexes, and the demo data."""
    from demo.accounts import describe_demo_logins
    from demo.generator import load_demo_data_if_empty
    from runtime.services import Services

    services = await Services.open(settings)  # migrates and ensures indexes
    try:
        if settings.demo_data:
            await load_demo_data_if_empty(
                services, seed=settings.demo_seed, size=settings.demo_size
            )
    finally:
        await services.close()
    logins = describe_demo_logins(settings.data_dir) if settings.demo_data else None
    if logins:
        print(logins, flush=True)


def serve_workers(settings: Settings, workers: int) -> int:
    import uvicorn

    supervisor: MongoSupervisor | None = None
    redis_child: RedisChild | None = None
    data_dir = Path(settings.data_dir)
    try:
        if settings.redis_url is None:
            if RedisChild.executable() is None:
                print(NEEDS_REDIS, file=sys.stderr)
                return 2
            redis_child = RedisChild(data_dir / "redis")
            try:
                settings = replace(settings, redis_url=redis_child.start())
            except RedisUnavailable as error:
                print(f"{NEEDS_REDIS} ({error})", file=sys.stderr)
                return 2
        if settings.mongodb_uri is None:
            embedded = EmbeddedMongo(data_dir / "mongodb")
            supervisor = MongoSupervisor(embedded)
            supervisor.start()
            assert embedded.uri is not None
            settings = replace(settings, mongodb_uri=embedded.uri)
            (data_dir / "mongodb.uri").write_text(embedded.uri)
        asyncio.run(_prepare_once(settings))
        os.environ.update(
            {
                "MONGODB_URI": settings.mongodb_uri or "",
                "REDIS_URL": settings.redis_url or "",
                "CAREGRAPH_DATA_DIR": str(data_dir),
                "CAREGRAPH_DEMO_DATA": "false",
                "CAREGRAPH_WORKERS": str(workers),
            }
        )
        uvicorn.run(
            "runtime.workers:app_from_env",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level="info",
            lifespan="on",
            log_config=None,
            access_log=False,
        )
        return 0
    finally:
        if supervisor is not None:
            (data_dir / "mongodb.uri").unlink(missing_ok=True)
            supervisor.stop()
        if redis_child is not None:
            redis_child.stop()
