"""What every MongoDB-backed store shares: batched lookup by id, keyset pages, writes.

Stores take the database handle and expose keyword-only methods; loaders call
`get_many`, whose result has one entry per key, in key order, None for a miss.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from audit.records import Action
from datasources.pagination import Page, PageRequest, after_filter, build_page, sort_key
from errors import NotFound

if TYPE_CHECKING:
    from datasources.encryption import FieldEncryptor
    from datasources.scope import AccessScope

Document = dict[str, Any]
# Derived fields a write changes along with the real ones: not named in audit records.
UNAUDITED_FIELDS = frozenset({"searchTerms", "nameKey", "updatedAt", "createdAt"})
PHI_COLLECTIONS = frozenset({"patients", "appointments", "prescriptions"})
ChangeHook = Callable[[], Awaitable[None]]


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here keeps the value we return equal to
    # the value a later read returns.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class DocumentStore:
    collection_name: str
    entity: str
    default_sort: Sequence[tuple[str, int]] = (("_id", 1),)
    # The Python type of each sort key, so a cursor can be checked before it is used.
    sort_types: Sequence[type] = (ObjectId,)

    # Encrypts PHI fields on write (set by DataSources.build; reads decrypt by themselves).
    encryptor: FieldEncryptor | None = None

    def __init__(
        self, db: AsyncDatabase, scope: AccessScope, on_change: ChangeHook | None = None
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
        if not scope:
            return filter
        return {"$and": [filter, scope]} if filter else scope

    async def get_many(self, *, ids: Sequence[ObjectId]) -> list[Document | None]:
        unique = list(set(ids))
        # One batch larger than any possible answer, so the server closes the cursor in
        # its first reply: no getMore, whatever the number of keys.
        query = await self._scoped({"_id": {"$in": unique}})
        cursor = self.collection.find(query).batch_size(len(unique) + 1)
        documents = await cursor.to_list()
        by_id = {document["_id"]: document for document in documents}
        return [by_id.get(id_) for id_ in ids]

    async def get(self, *, id: ObjectId, session: AsyncClientSession | None = None) -> Document:
        document = await self.collection.find_one(await self._scoped({"_id": id}), session=session)
        if document is None:
            raise NotFound(self.entity, str(id))
        return document

    @staticmethod
    def search_filter(**criteria: Any) -> Document:
        """The MongoDB filter for a list's criteria; each store defines its own."""
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
        query = {"$and": [filter, self._after(request.after)]} if request.after else filter
        query = await self._scoped(query)
        cursor = self.collection.find(query).sort(sort).limit(request.first + 1)
        rows = await cursor.batch_size(request.first + 2).to_list()
        return self._page(rows, request)

    async def pages_by_parent(
        self,
        *,
        parent_field: str,
        parent_ids: Sequence[ObjectId],
        filter: Document,
        request: PageRequest,
    ) -> dict[Hashable, Page[Document]]:
        """One aggregation returns a page of children for each parent (nested lists)."""
        sort = list(self.default_sort)
        match: Document = {**filter, parent_field: {"$in": list(set(parent_ids))}}
        if request.after:
            match = {"$and": [match, self._after(request.after)]}
        match = await self._scoped(match)
        pipeline = [
            {"$match": match},
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

    async def count(self, *, filter: Document) -> int:
        return await self.collection.count_documents(await self._scoped(filter))

    async def _encrypted(self, fields: Document) -> Document:
        if self.encryptor is None:
            return fields
        return await self.encryptor.encrypt_fields(self.collection_name, fields)

    async def _audited(
        self,
        action: Action,
        fields: Sequence[str],
        run: Callable[[AsyncClientSession | None], Awaitable[Document | None]],
        session: AsyncClientSession | None,
    ) -> Document | None:
        """Run a write of PHI together with its audit record (datasources/phi_access.py):
        in the caller's transaction, or in a transaction of its own."""
        writer = self.scope.audit if self.collection_name in PHI_COLLECTIONS else None
        if writer is None:
            return await run(session)

        async def work(transaction: AsyncClientSession) -> Document | None:
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

    async def insert(self, *, fields: Document, session: AsyncClientSession | None = None):
        async def run(session: AsyncClientSession | None) -> Document:
            now = utcnow()
            document = {"_id": ObjectId(), **fields, "createdAt": now, "updatedAt": now}
            await self.collection.insert_one(await self._encrypted(document), session=session)
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

    async def delete(self, *, id: ObjectId, session: AsyncClientSession | None = None):
        async def run(session: AsyncClientSession | None) -> Document:
            document = await self.collection.find_one_and_delete(
                await self._scoped({"_id": id}), session=session
            )
            if document is None:
                raise NotFound(self.entity, str(id))
            await self._changed(session)
            return document

        return await self._audited(Action.DELETE, [], run, session)
