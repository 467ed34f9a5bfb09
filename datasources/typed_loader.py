"""The one way a dataloader is made: aiodataloader's DataLoader, typed by its keys and
values and built from a batch function that returns one value per key, in key order.

Every loader records its batch sizes (observability/metrics.py) and sends at most
MAX_BATCH_SIZE keys per batch, so a batch stays one bounded `$in` / `IN (...)` query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiodataloader import DataLoader

from observability.metrics import observed_batches

K = TypeVar("K")
V = TypeVar("V")

MAX_BATCH_SIZE = 1000

Batch = Callable[[list[K]], Awaitable[Sequence[V]]]


class TypedLoader(DataLoader[K, V]):
    """`load(key)` awaits a `V`, `load_many(keys)` a `list[V]`; keys asked for in the
    same tick of the event loop share one call of `batch`, and each key is fetched once
    per loader (its result is cached: loaders live for one request, see loaders.py).

    A subclass rather than a wrapper object, so code written against `DataLoader`
    keeps working; nothing here changes how aiodataloader batches or caches.
    """

    def __init__(self, batch: Batch[K, V]) -> None:
        observed = observed_batches(batch)

        async def batch_load(keys: list[K]) -> list[V]:
            # aiodataloader wants a coroutine returning a list; stores return sequences.
            return list(await observed(keys))

        super().__init__(batch_load_fn=batch_load, max_batch_size=MAX_BATCH_SIZE)
