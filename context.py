"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as redis
from starlette.requests import Request
from starlette.responses import Response

from datasources import DataSources
from datasources.loaders import Loaders
from settings import Settings


@dataclass
class Context:
    request: Request
    response: Response
    settings: Settings
    sources: DataSources
    redis: redis.Redis
    # Created per request: a loader's cache must never outlive the caller it served.
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.sources)
