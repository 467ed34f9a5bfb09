"""Helpers every resolver module uses."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeAlias

import strawberry
from aiodataloader import DataLoader

from context import Context
from datasources.pagination import PageRequest
from errors import BadUserInput, NotFound

Info: TypeAlias = strawberry.Info[Context, None]

MAX_SEARCH_LENGTH = 200


def page_request(info: Info, first: int | None, after: str | None) -> PageRequest:
    settings = info.context.settings
    return PageRequest.build(
        first, after, default=settings.page_size_default, maximum=settings.page_size_max
    )


def search_text(value: str | None, field: str = "name") -> str | None:
    if value is not None and len(value) > MAX_SEARCH_LENGTH:
        raise BadUserInput(f"{field} must be at most {MAX_SEARCH_LENGTH} characters", field=field)
    return value


def criteria(**values: Any) -> tuple[tuple[str, Any], ...]:
    """A hashable dataloader key part from list filters (None means 'not filtered')."""
    return tuple(sorted((name, value) for name, value in values.items() if value is not None))


async def load_existing(loader: DataLoader, key: Hashable, entity: str, public_id: str):
    document = await loader.load(key)
    if document is None:
        raise NotFound(entity, public_id)
    return document
