"""Client-side field-level encryption of PHI at rest (MongoDB CSFLE, explicit).

Writes encrypt the fields below with PyMongo's ClientEncryption before they leave the
process; the application's client decrypts every reply automatically
(AutoEncryptionOpts with bypass_auto_encryption: libmongocrypt, bundled with
pymongocrypt, so no mongocryptd or crypt_shared). Resolvers never see ciphertext and
never know encryption exists. The database, its backups and anyone with a plain client
see only BinData subtype 6.

Which fields, and why each is randomized (no field needs an equality lookup today:
patients are found by name, and appointments by doctor, patient and time):
- contact details (patients.contact.phone, .email, .address): direct identifiers.
- free-text clinical notes (appointments.reason, .cancellationReason): whatever a
  patient or clinician typed, often symptoms.
Not encrypted, on purpose: names (found by a normalised-token index and sorted on; an
HMAC blind index would replace that, see README), birth dates, conditions, allergies,
diagnoses and drugs (coded values the reports group and filter on in MongoDB).
Deterministic encryption would leak equal values; use it only for a field that must be
found by equality, and name the reason here.

A data key per field group (keyAltNames "caregraph:<group>"), so replacing one key
re-encrypts only its fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import Binary
from bson.codec_options import CodecOptions
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.encryption import AsyncClientEncryption
from pymongo.encryption import Algorithm
from pymongo.encryption_options import AutoEncryptionOpts

from datasources.kms import KeyRing

RANDOM = Algorithm.AEAD_AES_256_CBC_HMAC_SHA_512_Random
ENCRYPTED_SUBTYPE = 6


@dataclass(frozen=True)
class EncryptedField:
    collection: str
    path: str  # dotted
    group: str
    algorithm: str = RANDOM


ENCRYPTED_FIELDS: tuple[EncryptedField, ...] = (
    EncryptedField("patients", "contact.phone", "contact"),
    EncryptedField("patients", "contact.email", "contact"),
    EncryptedField("patients", "contact.address", "contact"),
    EncryptedField("appointments", "reason", "clinical-notes"),
    EncryptedField("appointments", "cancellationReason", "clinical-notes"),
)
GROUPS = tuple(sorted({field.group for field in ENCRYPTED_FIELDS}))


def key_alt_name(group: str) -> str:
    return f"caregraph:{group}"


def fields_of(collection: str) -> tuple[EncryptedField, ...]:
    return tuple(field for field in ENCRYPTED_FIELDS if field.collection == collection)


def is_ciphertext(value: Any) -> bool:
    return isinstance(value, Binary) and value.subtype == ENCRYPTED_SUBTYPE


def key_id_of(value: Binary) -> bytes:
    """The data key a ciphertext was made with (bytes 1..16 of the BinData payload)."""
    return bytes(value)[1:17]


def auto_decryption_options(ring: KeyRing, key_vault_namespace: str) -> AutoEncryptionOpts:
    """For the application's client: decrypt every reply; encrypt nothing by itself."""
    return AutoEncryptionOpts(
        ring.kms_providers(),
        key_vault_namespace,
        bypass_auto_encryption=True,
        kms_tls_options=ring.tls_options(),
    )


def _get(document: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


class FieldEncryptor:
    """Encrypts the PHI fields of documents about to be written."""

    def __init__(
        self, client_encryption: AsyncClientEncryption[Any], ring: KeyRing, key_vault: Any
    ) -> None:
        self.client_encryption, self.ring, self.key_vault = client_encryption, ring, key_vault

    @classmethod
    def open(
        cls, plain_client: AsyncMongoClient[Any], ring: KeyRing, key_vault_namespace: str
    ) -> FieldEncryptor:
        database, collection = key_vault_namespace.split(".", 1)
        client_encryption: AsyncClientEncryption[Any] = AsyncClientEncryption(
            ring.kms_providers(),
            key_vault_namespace,
            plain_client,
            CodecOptions(tz_aware=True),
            kms_tls_options=ring.tls_options(),
        )
        return cls(client_encryption, ring, plain_client[database][collection])

    async def ensure_keys(self) -> None:
        """The key vault's unique keyAltNames index, and one data key per field group."""
        await self.key_vault.create_indexes(
            [
                IndexModel(
                    [("keyAltNames", ASCENDING)],
                    name="key_alt_names_unique",
                    unique=True,
                    partialFilterExpression={"keyAltNames": {"$exists": True}},
                )
            ]
        )
        for group in GROUPS:
            if await self.client_encryption.get_key_by_alt_name(key_alt_name(group)) is None:
                await self.create_group_key(group, alt_name=key_alt_name(group))

    async def create_group_key(self, group: str, *, alt_name: str | None) -> Binary:
        return await self.client_encryption.create_data_key(
            self.ring.current_provider(),
            master_key=self.ring.master_key(),
            key_alt_names=[alt_name] if alt_name else None,
        )

    async def encrypt_value(self, value: Any, field: EncryptedField) -> Any:
        if value is None or is_ciphertext(value):
            return value
        return await self.client_encryption.encrypt(
            value, field.algorithm, key_alt_name=key_alt_name(field.group)
        )

    async def encrypt_fields(self, collection: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`fields` (a new document or a $set) with its PHI values encrypted. Top-level
        keys may be a whole subdocument ("contact") or a dotted path ("contact.phone")."""
        encrypted = dict(fields)
        for field in fields_of(collection):
            head, _, rest = field.path.partition(".")
            if field.path in encrypted:
                encrypted[field.path] = await self.encrypt_value(encrypted[field.path], field)
            elif rest and isinstance(encrypted.get(head), Mapping):
                found, value = _get(encrypted[head], rest)
                if found:
                    encrypted[head] = _set(
                        encrypted[head], rest, await self.encrypt_value(value, field)
                    )
            elif not rest and head in encrypted:
                encrypted[head] = await self.encrypt_value(encrypted[head], field)
        return encrypted

    async def close(self) -> None:
        await self.client_encryption.close()


def _set(document: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    copy = dict(document)
    copy[head] = _set(copy.get(head) or {}, rest, value) if rest else value
    return copy
