"""Key management for field encryption: the migration that encrypts existing plaintext,
master-key rotation (rewrap every data key) and data-key replacement (re-encrypt the
fields of one group under a new data key). Each is idempotent and resumable: it selects
only what is not done yet, so a second run after an interruption finishes the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bson import Binary
from pymongo import UpdateOne
from tqdm import tqdm

from datasources.documents import utcnow
from datasources.encryption import (
    ENCRYPTED_FIELDS,
    GROUPS,
    FieldEncryptor,
    fields_of,
    is_ciphertext,
    key_alt_name,
    key_id_of,
)

if TYPE_CHECKING:
    from runtime.services import Services

MIGRATIONS = "caregraph_migrations"
MIGRATION_ID, MIGRATION_VERSION = "field-encryption", 1
BATCH = 200


def _value(document: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _raw(services: Services, collection: str) -> Any:
    """The collection through the plain client: ciphertext stays ciphertext."""
    assert services.plain_mongo_client is not None, "field encryption is off"
    return services.plain_mongo_client[services.settings.mongodb_database][collection]


def _encryptor(services: Services) -> FieldEncryptor:
    assert services.encryptor is not None, "field encryption is off"
    return services.encryptor


def _plaintext_filter(collection: str) -> dict[str, Any]:
    """Documents with any PHI field still stored in the clear."""
    return {
        "$or": [
            {field.path: {"$exists": True, "$ne": None, "$not": {"$type": "binData"}}}
            for field in fields_of(collection)
        ]
    }


async def encrypt_existing(
    services: Services, *, progress: bool = False, limit: int | None = None
) -> int:
    """Migration field-encryption v1: encrypt every PHI value still in plaintext. Each
    update is conditional on the plaintext it replaces, so a concurrent edit is never
    overwritten, and a rerun only sees what is left. Returns documents encrypted."""
    encryptor, done = _encryptor(services), 0
    for collection in sorted({field.collection for field in ENCRYPTED_FIELDS}):
        raw = _raw(services, collection)
        query = _plaintext_filter(collection)
        total = await raw.count_documents(query)
        bar = tqdm(total=total, desc=f"encrypting {collection}", disable=not progress)
        batch: list[UpdateOne] = []
        async for document in raw.find(query).batch_size(BATCH):
            if limit is not None and done + len(batch) >= limit:
                break
            condition: dict[str, Any] = {"_id": document["_id"]}
            changes: dict[str, Any] = {}
            for field in fields_of(collection):
                found, value = _value(document, field.path)
                if found and value is not None and not is_ciphertext(value):
                    condition[field.path] = value
                    changes[field.path] = await encryptor.encrypt_value(value, field)
            if changes:
                batch.append(UpdateOne(condition, {"$set": changes}))
            if len(batch) >= BATCH:
                bar.update(len(batch))
                done += await _flush(raw, batch)
        bar.update(len(batch))
        done += await _flush(raw, batch)
        bar.close()
        if limit is not None and done >= limit:
            return done
    if limit is None or done < limit:
        await _raw(services, MIGRATIONS).update_one(
            {"_id": MIGRATION_ID},
            {"$set": {"version": MIGRATION_VERSION, "completedAt": utcnow()}},
            upsert=True,
        )
    return done


async def _flush(raw: Any, batch: list[UpdateOne]) -> int:
    """One round trip per batch; each update still conditional on its plaintext."""
    if not batch:
        return 0
    result = await raw.bulk_write(batch, ordered=False)
    batch.clear()
    return int(result.modified_count)


@dataclass(frozen=True)
class Rotation:
    provider: str
    rewrapped: int
    retired: list[str]


async def rotate_master_key(
    services: Services, *, master_key: dict[str, Any] | None = None
) -> Rotation:
    """Rewrap every data key under a new master key (rewrap_many_data_key). Local: the
    next key generation, after which older generations are retired. Cloud providers:
    `master_key` is the new key's descriptor (a new key ARN, Key Vault key, ...).
    Restart servers afterwards: they hold the master keys they started with."""
    encryptor = _encryptor(services)
    ring = encryptor.ring
    if ring.provider == "local":
        target = ring.next_local_generation()
        plain_client = services.plain_mongo_client
        assert plain_client is not None, "encryption is on: runtime/phi.py opened it"
        rewrapping = FieldEncryptor.open(
            plain_client,
            ring,
            f"{encryptor.key_vault.database.name}.{encryptor.key_vault.name}",
        )
        try:
            result = await rewrapping.client_encryption.rewrap_many_data_key(
                {"masterKey.provider": {"$ne": target}}, provider=target
            )
        finally:
            await rewrapping.close()
        retired = [str(path) for path in ring.retire_local_generations(keep=target)]
    else:
        target = ring.provider
        result = await encryptor.client_encryption.rewrap_many_data_key(
            {}, provider=target, master_key=master_key
        )
        retired = []
    bulk = result.bulk_write_result
    return Rotation(target, bulk.modified_count if bulk else 0, retired)


async def replace_data_key(
    services: Services, group: str, *, progress: bool = False, delete_old: bool = False
) -> int:
    """Give `group` a new data key and re-encrypt its fields with it. Resumable: the new
    key takes the group's name first, then values still under any other key are
    re-encrypted. With `delete_old`, old keys no value uses any more are deleted: do
    that in a second run once every server has restarted (a server may still encrypt
    with the key it cached). Returns values changed."""
    if group not in GROUPS:
        raise ValueError(f"unknown field group {group!r}; one of {', '.join(GROUPS)}")
    encryptor = _encryptor(services)
    client_encryption = encryptor.client_encryption
    name = key_alt_name(group)
    current = await client_encryption.get_key_by_alt_name(name)
    pending = key_alt_name(group) + ":next"
    new = await client_encryption.get_key_by_alt_name(pending)
    new_id: Binary = (
        new["_id"] if new else await encryptor.create_group_key(group, alt_name=pending)
    )
    if current is not None and current["_id"] != new_id:
        await client_encryption.remove_key_alt_name(current["_id"], name)
    await client_encryption.add_key_alt_name(new_id, name)
    await client_encryption.remove_key_alt_name(new_id, pending)
    new_key = bytes(new_id)
    changed, old_keys = 0, set()
    for collection in sorted({f.collection for f in ENCRYPTED_FIELDS if f.group == group}):
        raw = _raw(services, collection)
        fields = [f for f in fields_of(collection) if f.group == group]
        query = {"$or": [{f.path: {"$type": "binData"}} for f in fields]}
        bar = tqdm(
            total=await raw.count_documents(query),
            desc=f"re-encrypting {collection} ({group})",
            disable=not progress,
        )
        async for document in raw.find(query).batch_size(BATCH):
            condition: dict[str, Any] = {"_id": document["_id"]}
            changes: dict[str, Any] = {}
            for field in fields:
                found, value = _value(document, field.path)
                if found and is_ciphertext(value) and key_id_of(value) != new_key:
                    old_keys.add(key_id_of(value))
                    plaintext = await client_encryption.decrypt(value)
                    condition[field.path] = value
                    changes[field.path] = await encryptor.encrypt_value(plaintext, field)
            if changes:
                result = await raw.update_one(condition, {"$set": changes})
                changed += len(changes) if result.modified_count else 0
            bar.update(1)
        bar.close()
    if current is not None and current["_id"] != new_id:
        old_keys.add(bytes(current["_id"]))
    if delete_old:  # keys left behind by an earlier replacement
        async for key in encryptor.key_vault.find({"keyAltNames": {"$exists": False}}):
            old_keys.add(bytes(key["_id"]))
    for key in old_keys - {new_key} if delete_old else ():
        if not await _still_used(services, key):
            await client_encryption.delete_key(Binary(key, 4))
    return changed


async def _still_used(services: Services, key: bytes) -> bool:
    for collection in sorted({f.collection for f in ENCRYPTED_FIELDS}):
        raw = _raw(services, collection)
        query = {"$or": [{f.path: {"$type": "binData"}} for f in fields_of(collection)]}
        async for document in raw.find(query).batch_size(BATCH):
            for field in fields_of(collection):
                found, value = _value(document, field.path)
                if found and is_ciphertext(value) and key_id_of(value) == key:
                    return True
    return False
