"""Where the master key that wraps the data keys comes from (the KMS provider).

Embedded default: the `local` provider with a 96-byte master key generated into the
data folder (mode 0600). Keys are kept by generation, `field-encryption/master-key-<n>`,
and named KMS providers `local:k<n>`, so `caregraph keys rotate` can rewrap every data
key from one generation to the next. Production: `aws`, `azure`, `gcp` or `kmip`, with
credentials and the master key descriptor from settings (README "Field encryption").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.keys import load_secret_file
from settings import Settings

LOCAL_KEY_BYTES = 96
_GENERATION = re.compile(r"^master-key-(\d+)$")
CLOUD_PROVIDERS = ("aws", "azure", "gcp", "kmip")


@dataclass(frozen=True)
class KeyRing:
    provider: str  # "local" or one of CLOUD_PROVIDERS
    key_dir: Path
    credentials: dict[str, Any]
    master_key_descriptor: dict[str, Any] | None
    tls: dict[str, Any]

    def generations(self) -> list[int]:
        if not self.key_dir.exists():
            return []
        found = (_GENERATION.match(path.name) for path in self.key_dir.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def ensure_local_key(self) -> None:
        if self.provider == "local" and not self.generations():
            load_secret_file(self.key_dir / "master-key-1", size=LOCAL_KEY_BYTES)

    def current_provider(self) -> str:
        if self.provider != "local":
            return self.provider
        return f"local:k{self.generations()[-1]}"

    def master_key(self) -> dict[str, Any] | None:
        return None if self.provider == "local" else self.master_key_descriptor

    def kms_providers(self) -> dict[str, Any]:
        if self.provider != "local":
            return {self.provider: self.credentials}
        return {
            f"local:k{n}": {"key": (self.key_dir / f"master-key-{n}").read_bytes()}
            for n in self.generations()
        }

    def tls_options(self) -> dict[str, Any] | None:
        return self.tls or None

    def next_local_generation(self) -> str:
        """Create the next local master key; its provider name."""
        n = (self.generations() or [0])[-1] + 1
        load_secret_file(self.key_dir / f"master-key-{n}", size=LOCAL_KEY_BYTES)
        return f"local:k{n}"

    def retire_local_generations(self, keep: str) -> list[Path]:
        """Rename every other generation's file (after a successful rewrap)."""
        retired = []
        for n in self.generations():
            if f"local:k{n}" != keep:
                path = self.key_dir / f"master-key-{n}"
                target = path.with_name(path.name + ".retired")
                path.rename(target)
                retired.append(target)
        return retired


def load_key_ring(settings: Settings) -> KeyRing:
    provider = settings.kms_provider
    if provider != "local" and provider not in CLOUD_PROVIDERS:
        raise ValueError(f"CAREGRAPH_KMS_PROVIDER must be local or one of {CLOUD_PROVIDERS}")
    ring = KeyRing(
        provider=provider,
        key_dir=Path(settings.data_dir) / "field-encryption",
        credentials=json.loads(settings.kms_credentials or "{}"),
        master_key_descriptor=json.loads(settings.kms_master_key)
        if settings.kms_master_key
        else None,
        tls=json.loads(settings.kms_tls_options or "{}"),
    )
    ring.ensure_local_key()
    return ring


def key_vault_namespace(settings: Settings) -> str:
    return settings.key_vault_namespace or f"{settings.mongodb_database}.__keyVault"
