"""What every MongoDB-backed store shares: batched lookup by id, keyset pages, writes.

Stores take the database handle and expose keyword-only methods; loaders call
`get_many`, whose result has one entry per key, in key order, None for a miss.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import bson
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from audit.records import Action
from datasources.filters import NOTHING, is_empty_match, matcher, merge, split_for_planner
from datasources.pagination import (
    Page,
    PageRequest,
    after_bound,
    after_filter,
    build_page,
    sort_key,
)
from datasources.windows import KeyStatistics, key_statistics, windowable, windowed_rows
from errors import NotFound

if TYPE_CHECKING:
    from datasources.encryption import FieldEncryptor
    from datasources.scope import AccessScope

Document = dict[str, Any]
# Rows tied with a cursor on the first sort key that one page query tolerates.
_TIE_ALLOWANCE = 4
# Derived fields a write changes along with the real ones: not named in audit records.
UNAUDITED_FIELDS = frozenset({"searchTerms", "nameKey", "updatedAt", "createdAt"})
PHI_COLLECTIONS = frozenset({"patients", "appointments", "prescriptions"})
ChangeHook = Callable[[], Awaitable[None]]
# What a write hands back: the document written, or None where it may find nothing.
Written = TypeVar("Written", Document, Document | None)


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here keeps the value we return equal to
    # the value a later read returns.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _set_field(query: Document) -> str:
    """The field of the query's `$in` condition (a row scope's id set), which narrows
    more than a range; else the first operator condition's field."""
    operators = [f for f, c in query.items() if isinstance(c, dict) and not f.startswith("$")]
    sets = [field for field in operators if "$in" in query[field]]
    return (sets or operators or [""])[0]


def _anything(document: Document) -> bool:
    return True


class DocumentStore:
    collection_name: str
    entity: str
    default_sort: Sequence[tuple[str, int]] = (("_id", 1),)
    # The Python type of each sort key, so a cursor can be checked before it is used.
    sort_types: Sequence[type] = (ObjectId,)
    # Pages are read in windows of the first sort key (a datetime): datasources/windows.py.
    windowed: bool = False

    # Encrypts PHI fields on write (set by DataSources.build; reads decrypt by themselves).
    encryptor: FieldEncryptor | None = None

    def __init__(
        self, db: AsyncDatabase[Document], scope: AccessScope, on_change: ChangeHook | None = None
    ) -> None:
        self.db = db
        self.collection = db[self.collection_name]
        self.scope = scope
        self.on_change = on_change

    async def _changed(self, session: AsyncClientSession | None = None) -> None:
        """Tell listeners (the report cache) a write committed. Inside a transaction the
        caller announces it after the commit: announcing earlier would let a reader cache
        a result computed before the write under the new generation."""
        if session is None and self.on_change is not None:
            await self.on_change()

    async def _scoped(self, filter: Document) -> Document:
        """`filter` narrowed to the records the caller may see (auth/policy.py ROW_SCOPES)."""
        scope = await self.scope.mongo_filter(self.collection_name)
        # Flat, not {"$and": [filter, scope]}: the planner sees every condition.
        merged = merge(filter, scope) if scope else filter
        return NOTHING if is_empty_match(merged) else merged

    async def _by_id_query(
        self, ids: Document | ObjectId
    ) -> tuple[Document, Callable[[Document], bool]]:
        """(query, scope test): a lookup by _id is sent as `_id` alone, the one shape
        every planner serves from the _id index, and the row scope (equality or $in,
        see datasources/filters.matcher) is checked on the documents returned. A scope
        of any other shape goes to the server instead."""
        scope = await self.scope.mongo_filter(self.collection_name)
        in_scope = matcher(scope) if scope and not is_empty_match(scope) else None
        if in_scope is None:
            return await self._scoped({"_id": ids}), _anything
        return {"_id": ids}, in_scope

    async def get_many(self, *, ids: Sequence[ObjectId]) -> list[Document | None]:
        unique = list(set(ids))
        query, in_scope = await self._by_id_query({"$in": unique})
        # One batch larger than any possible answer, so the server closes the cursor in
        # its first reply: no getMore, whatever the number of keys.
        cursor = self.collection.find(query).batch_size(len(unique) + 1)
        documents = await cursor.to_list()
        by_id = {document["_id"]: document for document in documents if in_scope(document)}
        return [by_id.get(id_) for id_ in ids]

    async def get(self, *, id: ObjectId, session: AsyncClientSession | None = None) -> Document:
        query, in_scope = await self._by_id_query(id)
        document = await self.collection.find_one(query, session=session)
        if document is None or not in_scope(document):
            raise NotFound(self.entity, str(id))
        return document

    @staticmethod
    def search_filter(*args: Any, **criteria: Any) -> Document:
        """The MongoDB filter for a list's criteria; each store defines its own, with
        its own keyword arguments (mypy accepts any override of `*args, **kwargs: Any`)."""
        raise NotImplementedError

    async def search(self, *, request: PageRequest, **criteria: Any) -> Page[Document]:
        return await self.page(filter=self.search_filter(**criteria), request=request)

    def _after(self, cursor: str) -> Document:
        return after_filter(
            cursor, self.default_sort, list_name=self.collection_name, types=self.sort_types
        )

    def _page(self, rows: list[Document], request: PageRequest) -> Page[Document]:
        return build_page(
            rows,
            request,
            lambda row: sort_key(row, self.default_sort),
            list_name=self.collection_name,
        )

    async def page(self, *, filter: Document, request: PageRequest) -> Page[Document]:
        sort = list(self.default_sort)
        is_after: Callable[[Document], bool] = _anything
        if request.after:
            bound, is_after = after_bound(
                request.after, sort, list_name=self.collection_name, types=self.sort_types
            )
            filter = merge(filter, bound)
        query = await self._scoped(filter)
        # Where the page starts on the first sort key: the cursor, or the filter's own
        # bound in that direction (startsFrom), whichever is tighter (merged above).
        first_key, direction = sort[0]
        bounds = query.get(first_key)
        start = None
        if isinstance(bounds, dict):
            start = bounds.get("$gte", bounds.get("$gt")) if direction == 1 else None
            start = start if direction == 1 else bounds.get("$lte", bounds.get("$lt"))
        wanted = request.first + 1
        # The bound includes rows tied with the cursor on the first sort key; ask for a
        # few more and drop those.
        limit = wanted + (_TIE_ALLOWANCE if request.after else 0)
        statistics = await self._key_statistics(query)
        if statistics is not None:
            rows = await windowed_rows(
                self._find_sorted,
                query,
                key=first_key,
                ascending=direction == 1,
                start=start,
                statistics=statistics,
                wanted=wanted,
                limit=limit,
                keep=is_after,
            )
            return self._page(rows, request)
        while True:
            fetched = await self._find_sorted(query, limit)
            rows = [row for row in fetched if is_after(row)]
            if len(rows) >= wanted or len(fetched) < limit:
                return self._page(rows[:wanted], request)
            limit *= 4  # rarely, more ties than allowed for: ask again for more

    async def _key_statistics(self, query: Document) -> KeyStatistics | None:
        """The statistics that size windows (datasources/windows.py), for stores whose
        first sort key is a datetime, when a cache keeps them between writes."""
        key = self.default_sort[0][0]
        cache = self.scope.cache
        if not self.windowed or cache is None or not windowable(query, key):
            return None
        unbounded = {field: c for field, c in query.items() if field != key}
        cache_key = ("key statistics", self.collection_name, bson.encode(unbounded))
        return await cache.get_or_compute(
            cache_key, lambda: key_statistics(self.collection, unbounded, key)
        )

    async def _find_sorted(self, query: Document, limit: int) -> list[Document]:
        sort = list(self.default_sort)
        if "_id" in query and len(query) > 1:
            # Ids bound the answer most: look them up, filter the few found.
            served = {"_id": query["_id"]}
            rest = {field: c for field, c in query.items() if field != "_id"}
        else:
            served, rest = split_for_planner(query, keep=_set_field(query))
        if rest:
            # Two conditions that are not equalities (a scope's id set and a cursor's
            # bound): the embedded planner serves only one, so the other filters the
            # index-served stage's output (mongod merges the two stages back).
            pipeline = [{"$match": served}, {"$match": rest}, {"$sort": dict(sort)}]
            aggregated = await self.collection.aggregate(
                [*pipeline, {"$limit": limit}], batchSize=limit + 1
            )
            return await aggregated.to_list()
        cursor = self.collection.find(query).sort(sort).limit(limit)
        return await cursor.batch_size(limit + 1).to_list()

    async def pages_by_parent(
        self,
        *,
        parent_field: str,
        parent_ids: Sequence[ObjectId],
        filter: Document,
        request: PageRequest,
    ) -> dict[ObjectId, Page[Document]]:
        """One aggregation returns a page of children for each parent (nested lists)."""
        sort = list(self.default_sort)
        match = await self._scoped(merge(filter, {parent_field: {"$in": list(set(parent_ids))}}))
        # The first $match is the index-served shape (parents, equalities); ranges and
        # the cursor follow in a second stage, which mongod merges back anyway.
        served, rest = split_for_planner(match, keep=parent_field)
        if request.after:
            rest = merge(rest, self._after(request.after))
        pipeline: list[Document] = [{"$match": served}]
        if rest:
            pipeline.append({"$match": rest})
        pipeline += [
            {"$sort": {parent_field: 1, **dict(sort)}},
            {
                "$group": {
                    "_id": f"${parent_field}",
                    "rows": {"$firstN": {"input": "$$ROOT", "n": request.first + 1}},
                }
            },
        ]
        cursor = await self.collection.aggregate(pipeline, batchSize=len(parent_ids) + 1)
        grouped = await cursor.to_list()
        rows_by_parent = {group["_id"]: group["rows"] for group in grouped}
        return {
            parent_id: self._page(rows_by_parent.get(parent_id, []), request)
            for parent_id in parent_ids
        }

    async def counts_by_parent(
        self, *, parent_field: str, parent_ids: Sequence[ObjectId], filter: Document
    ) -> dict[ObjectId, int]:
        """How many children match `filter` for each parent, in one grouped count (a
        nested list's totalCount): the same one round trip for 1 or 500 parents."""
        match = await self._scoped(merge(filter, {parent_field: {"$in": list(set(parent_ids))}}))
        served, rest = split_for_planner(match, keep=parent_field)
        pipeline: list[Document] = [{"$match": served}]
        if rest:
            pipeline.append({"$match": rest})
        pipeline.append({"$group": {"_id": f"${parent_field}", "n": {"$sum": 1}}})
        cursor = await self.collection.aggregate(pipeline, batchSize=len(parent_ids) + 1)
        counted = {group["_id"]: group["n"] for group in await cursor.to_list()}
        return {parent_id: int(counted.get(parent_id, 0)) for parent_id in parent_ids}

    async def count(self, *, filter: Document) -> int:
        query = await self._scoped(filter)
        cache = self.scope.cache
        if cache is None:
            return await self.collection.count_documents(query)
        # Keyed by the exact filter sent, scope included (BSON keeps types and order).
        key = ("count", self.collection_name, bson.encode(query))
        return await cache.get_or_compute(key, lambda: self.collection.count_documents(query))

    async def _encrypted(self, fields: Document) -> Document:
        if self.encryptor is None:
            return fields
        return await self.encryptor.encrypt_fields(self.collection_name, fields)

    async def _audited(
        self,
        action: Action,
        fields: Sequence[str],
        run: Callable[[AsyncClientSession | None], Awaitable[Written]],
        session: AsyncClientSession | None,
    ) -> Written:
        """Run a write of PHI together with its audit record (datasources/phi_access.py):
        in the caller's transaction, or in a transaction of its own."""
        writer = self.scope.audit if self.collection_name in PHI_COLLECTIONS else None
        if writer is None:
            return await run(session)

        async def work(transaction: AsyncClientSession) -> Written:
            document = await run(transaction)
            if document is not None:
                await writer.record_write(
                    action=action,
                    collection=self.collection_name,
                    document=document,
                    fields=[f for f in fields if f not in UNAUDITED_FIELDS],
                    session=transaction,
                )
            return document

        if session is not None:
            return await work(session)
        document = await writer.committed_with(work)
        if document is not None:
            await self._changed()
        return document

    async def insert(
        self, *, fields: Document, session: AsyncClientSession | None = None
    ) -> Document:
        async def run(session: AsyncClientSession | None) -> Document:
            now = utcnow()
            document = {"_id": ObjectId(), **fields, "createdAt": now, "updatedAt": now}
            try:
                await self.collection.insert_one(await self._encrypted(document), session=session)
            except DuplicateKeyError as error:
                # The _id is fresh, so a clash on it means PyMongo's automatic retry found
                # its own first attempt, saved before the server died (the embedded
                # server forgets retryable-write records on restart): it did succeed.
                if session is not None or (error.details or {}).get("keyValue") != {
                    "_id": document["_id"]
                }:
                    raise
            await self._changed(session)
            return document

        return await self._audited(Action.CREATE, list(fields), run, session)

    async def update(
        self,
        *,
        id: ObjectId,
        changes: Document,
        expect: Document | None = None,
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        """Apply `changes` atomically; None when `expect` (extra filter) no longer holds."""

        async def run(session: AsyncClientSession | None) -> Document | None:
            document = await self.collection.find_one_and_update(
                await self._scoped({"_id": id, **(expect or {})}),
                {"$set": {**await self._encrypted(changes), "updatedAt": utcnow()}},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is None and expect is None:
                raise NotFound(self.entity, str(id))
            if document is not None:
                await self._changed(session)
            return document

        return await self._audited(Action.UPDATE, list(changes), run, session)

    async def delete(self, *, id: ObjectId, session: AsyncClientSession | None = None) -> Document:
        async def run(session: AsyncClientSession | None) -> Document:
            document = await self.collection.find_one_and_delete(
                await self._scoped({"_id": id}), session=session
            )
            if document is None:
                raise NotFound(self.entity, str(id))
            await self._changed(session)
            return document

        return await self._audited(Action.DELETE, [], run, session)
