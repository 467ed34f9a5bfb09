"""Helpers every resolver module uses."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import strawberry
from bson import ObjectId
from strawberry.utils.str_converters import to_camel_case

from context import Context
from datasources.documents import Document, DocumentStore
from datasources.pagination import Page, PageRequest
from datasources.typed_loader import TypedLoader
from errors import BadUserInput, NotFound
from schema.pagination import Connection, connection

if TYPE_CHECKING:
    from knowledge.protocol import KnowledgeBase

Info: TypeAlias = strawberry.Info[Context, None]
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

MAX_SEARCH_LENGTH = 200


def page_request(info: Info, first: int | None, after: str | None) -> PageRequest:
    settings = info.context.settings
    request: PageRequest = PageRequest.build(
        first, after, default=settings.page_size_default, maximum=settings.page_size_max
    )
    return request


def provided(service: T | None, what: str) -> T:
    """A service the app puts on every request's context (optional on Context only for
    contexts built without the app, in tests and scripts)."""
    if service is None:
        raise RuntimeError(f"the request context has no {what}")
    return service


def knowledge_base(info: Info) -> KnowledgeBase:
    return provided(info.context.knowledge, "knowledge base")


def search_text(value: str | None, field: str = "name") -> str | None:
    if value is not None and len(value) > MAX_SEARCH_LENGTH:
        raise BadUserInput(f"{field} must be at most {MAX_SEARCH_LENGTH} characters", field=field)
    return value


def criteria(**values: Any) -> tuple[tuple[str, Any], ...]:
    """A hashable dataloader key part from list filters (None means 'not filtered')."""
    return tuple(sorted((name, value) for name, value in values.items() if value is not None))


async def load_existing(
    loader: TypedLoader[K, Document | None], key: K, entity: str, public_id: str
) -> Document:
    document = await loader.load(key)
    if document is None:
        raise NotFound(entity, public_id)
    return document


async def update_or_read(store: DocumentStore, id: ObjectId, changes: Document) -> Document:
    """A partial update: apply `changes`, or with none read the record as it stands."""
    if not changes:
        return await store.get(id=id)
    document = await store.update(id=id, changes=changes)
    if document is None:  # only with `expect`, which this does not pass
        raise NotFound(store.entity, str(id))
    return document


async def list_connection(
    info: Info,
    store: DocumentStore,
    to_node: Callable[[Any], Any],
    first: int | None,
    after: str | None,
    **found: Any,
) -> Connection[Any]:
    """A top-level list: one page query, and a count only if totalCount is asked for;
    the same list asked for again in the request (aliases) reuses both."""
    request = page_request(info, first, after)
    loaders = info.context.loaders
    key = (store.collection_name, criteria(**found))
    page = await loaders.once(
        ("page", *key, request), lambda: store.search(request=request, **found)
    )
    return connection(
        page,
        to_node,
        counter=lambda: loaders.once(
            ("count", *key), lambda: store.count(filter=store.search_filter(**found))
        ),
    )


async def children_connection(
    info: Info,
    loader: TypedLoader[tuple[Any, PageRequest, tuple[tuple[str, Any], ...]], Page[Any]],
    store: DocumentStore,
    to_node: Callable[[Any], Any],
    parent: tuple[str, Any],
    first: int | None,
    after: str | None,
    **found: Any,
) -> Connection[Any]:
    """A nested list (e.g. a patient's appointments), batched across parents by `loader`.

    `parent` is the (criterion, id) pair naming the parent, e.g. ("patient_id", id).
    """
    key = criteria(**found)
    page = await loader.load((parent[1], page_request(info, first, after), key))
    # One grouped count per relation and criteria for all parents (not one per parent).
    counts = info.context.loaders.child_counts(store, to_camel_case(parent[0]))
    return connection(page, to_node, counter=lambda: counts.load((parent[1], key)))
