"""The archive container: an encrypted, authenticated stream of records.

Layout of a `.cgbk` file:

    MAGIC (8 bytes) | header length (4) | header JSON | chunk*

The header (plaintext: format version, cipher, chunk size, a random salt and nonce
prefix, a key check value) is bound to every chunk as associated data. Each chunk is
`length (4) | AES-256-GCM ciphertext+tag` over up to CHUNK_SIZE plaintext bytes; its
nonce is `prefix (4) || counter (8)`, and its associated data is `sha256(header) ||
counter || last-flag`. So a chunk edited, moved (reordered), dropped or taken from
another archive fails authentication, and a truncated archive lacks its last-flagged
chunk: every such archive is refused with the reason.

Inside, the plaintext is a sequence of records `type (1) | length (4) | payload`.
Streaming both ways: memory stays at about one chunk whatever the archive's size.

A tar member needs its size before its bytes, which a streamed export does not know;
this container keeps the design's "length-prefixed members + manifest + authenticator,
encrypted in counter-nonced chunks" without temporary files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from collections.abc import Iterator
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CGBACKUP"
FORMAT_VERSION = 1
CHUNK_SIZE = 64 * 1024
_LENGTH = struct.Struct(">I")
_RECORD = struct.Struct(">cI")
MAX_HEADER = 64 * 1024
MAX_CHUNK = CHUNK_SIZE + 16


class ArchiveInvalid(Exception):
    """The archive is refused; the message names what failed."""


def derive_keys(master: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(encryption key, MAC key): independent keys from one master key, per archive."""

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)

    return derive(b"caregraph-backup-aes-256-gcm"), derive(b"caregraph-backup-hmac-sha256")


def _key_check(mac_key: bytes) -> str:
    return hmac.new(mac_key, b"caregraph-backup-key-check", hashlib.sha256).hexdigest()[:32]


def _aad(header_digest: bytes, counter: int, last: bool) -> bytes:
    return header_digest + struct.pack(">Q?", counter, last)


class ArchiveWriter:
    """Writes records into an encrypted archive; `close()` writes the last chunk."""

    def __init__(self, out: IO[bytes], master_key: bytes) -> None:
        self.out = out
        salt, self._prefix = os.urandom(16), os.urandom(4)
        enc_key, self.mac_key = derive_keys(master_key, salt)
        self._aead = AESGCM(enc_key)
        header = {
            "format": FORMAT_VERSION,
            "cipher": "AES-256-GCM",
            "kdf": "HKDF-SHA256",
            "chunkSize": CHUNK_SIZE,
            "salt": salt.hex(),
            "noncePrefix": self._prefix.hex(),
            "keyCheck": _key_check(self.mac_key),
        }
        header_bytes = json.dumps(header, sort_keys=True).encode()
        self._header_digest = hashlib.sha256(header_bytes).digest()
        out.write(MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes)
        self._buffer = bytearray()
        self._counter = 0
        self.bytes_written = len(MAGIC) + 4 + len(header_bytes)

    def record(self, kind: bytes, payload: bytes) -> None:
        self._buffer += _RECORD.pack(kind, len(payload))
        self._buffer += payload
        while len(self._buffer) > CHUNK_SIZE:
            self._emit(bytes(self._buffer[:CHUNK_SIZE]), last=False)
            del self._buffer[:CHUNK_SIZE]

    def _emit(self, plaintext: bytes, *, last: bool) -> None:
        nonce = self._prefix + struct.pack(">Q", self._counter)
        sealed = self._aead.encrypt(
            nonce, plaintext, _aad(self._header_digest, self._counter, last)
        )
        self.out.write(_LENGTH.pack(len(sealed)) + sealed)
        self.bytes_written += 4 + len(sealed)
        self._counter += 1

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()


def read_records(source: IO[bytes], master_key: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Decrypt and yield (type, payload) records, refusing any damaged archive."""
    if source.read(len(MAGIC)) != MAGIC:
        raise ArchiveInvalid("not a CareGraph backup archive (bad magic bytes)")
    header_bytes = _read_exact(source, _read_length(source, "header", MAX_HEADER), "header")
    try:
        header: dict[str, Any] = json.loads(header_bytes)
    except ValueError:
        raise ArchiveInvalid("the archive header is not valid JSON") from None
    if header.get("format") != FORMAT_VERSION:
        raise ArchiveInvalid(f"unsupported archive format {header.get('format')!r}")
    try:
        salt, prefix = bytes.fromhex(header["salt"]), bytes.fromhex(header["noncePrefix"])
    except (KeyError, ValueError):
        raise ArchiveInvalid("the archive header is incomplete") from None
    enc_key, mac_key = derive_keys(master_key, salt)
    if not hmac.compare_digest(_key_check(mac_key), str(header.get("keyCheck", ""))):
        raise ArchiveInvalid("wrong backup key: this archive was made with another key")
    aead = AESGCM(enc_key)
    header_digest = hashlib.sha256(header_bytes).digest()
    buffer = bytearray()
    counter, finished = 0, False
    while not finished:
        length = _read_length(source, f"chunk {counter}", MAX_CHUNK, eof_means_truncated=True)
        sealed = _read_exact(source, length, f"chunk {counter}")
        nonce = prefix + struct.pack(">Q", counter)
        plaintext = None
        for last in (False, True):
            try:
                plaintext = aead.decrypt(nonce, sealed, _aad(header_digest, counter, last))
            except InvalidTag:
                continue
            finished = last
            break
        if plaintext is None:
            raise ArchiveInvalid(
                f"chunk {counter} failed authentication: the archive was edited, "
                "reordered or corrupted"
            )
        buffer += plaintext
        counter += 1
        while len(buffer) >= _RECORD.size:
            kind, size = _RECORD.unpack_from(buffer)
            if len(buffer) < _RECORD.size + size:
                break
            yield kind, bytes(buffer[_RECORD.size : _RECORD.size + size])
            del buffer[: _RECORD.size + size]
    if buffer:
        raise ArchiveInvalid("the archive ends inside a record")
    if source.read(1):
        raise ArchiveInvalid("unexpected bytes after the last chunk")


def _read_length(
    source: IO[bytes], what: str, maximum: int, *, eof_means_truncated: bool = False
) -> int:
    raw = source.read(4)
    if len(raw) < 4:
        raise ArchiveInvalid(
            f"the archive is truncated: {what} is missing (no final chunk)"
            if eof_means_truncated
            else f"the archive is truncated in its {what}"
        )
    (length,) = _LENGTH.unpack(raw)
    if length > maximum:
        raise ArchiveInvalid(f"{what} has an impossible length ({length} bytes)")
    return length


def _read_exact(source: IO[bytes], length: int, what: str) -> bytes:
    data = source.read(length)
    if len(data) != length:
        raise ArchiveInvalid(f"the archive is truncated in {what}")
    return data


def mac(mac_key: bytes, data: bytes) -> str:
    return hmac.new(mac_key, data, hashlib.sha256).hexdigest()


def archive_mac_key(source: IO[bytes], master_key: bytes) -> bytes:
    """The MAC key of an archive (from its header), for checking its authenticator."""
    source.seek(len(MAGIC))
    header = json.loads(_read_exact(source, _read_length(source, "header", MAX_HEADER), "header"))
    source.seek(0)
    return derive_keys(master_key, bytes.fromhex(header["salt"]))[1]
