"""One typed settings object, read from the environment once and passed into create_app().

Every setting has an embedded default so the app runs on one machine with nothing
installed by hand; production sets MONGODB_URI, DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.ops_settings import OpsSettings


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_roles(name: str, default: frozenset[str]) -> frozenset[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return frozenset(role.strip().upper() for role in raw.split(",") if role.strip())


def _env_budgets(name: str, default: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """`DOCTOR=200,ADMIN=2000`: per-role budgets; roles left out are not limited."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    pairs = []
    for item in raw.split(","):
        if item.strip():
            role, _, amount = item.partition("=")
            pairs.append((role.strip().upper(), int(amount)))
    return tuple(pairs)


# Which operations a deployment executes (see persisted/policy.py):
OPEN = "open"  # any query text
ALLOW_LIST_AUDIT = "allow-list-audit"  # any query text; ones outside queries/ are logged
PERSISTED_ONLY = "persisted-only"  # only the trusted documents in queries/, by id
DOCUMENT_MODES = (OPEN, ALLOW_LIST_AUDIT, PERSISTED_ONLY)


@dataclass(frozen=True)
class Settings:
    # Where the embedded defaults keep their files (MongoDB data, SQLite billing file).
    data_dir: Path = field(default_factory=lambda: Path("data"))
    # None: start the embedded MongoDB server (secantusd-py) as a child process.
    mongodb_uri: str | None = None
    mongodb_database: str = "caregraph"
    # Client-side operation timeout for every MongoDB call (PyMongo CSOT), milliseconds.
    mongodb_timeout_ms: int = 10_000
    mongodb_server_selection_timeout_ms: int = 5_000
    # None: a SQLite file under data_dir.
    database_url: str | None = None
    # None: an in-process stand-in for Redis.
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Production mode: no introspection, no "Did you mean" suggestions, GraphiQL off
    # and persisted-only documents unless each is turned back on explicitly.
    production: bool = False
    graphiql: bool = True
    introspection: bool = True
    document_mode: str = OPEN
    # Roles that may still send free-form queries (say, analysts in GraphiQL) when the
    # document mode is persisted-only for everyone else.
    freeform_roles: frozenset[str] = frozenset()
    # Automatic persisted queries (Apollo protocol), kept in Redis this long.
    apq_enabled: bool = True
    apq_ttl_s: int = 7 * 24 * 3600
    # Where the trusted documents live, one operation per .graphql file.
    queries_dir: Path = field(default_factory=lambda: Path(__file__).parent / "queries")
    # Anonymous GET requests for persisted queries may be cached by a CDN this long.
    public_cache_max_age_s: int = 60
    # Operation limits, checked before any resolver runs.
    max_depth: int = 12
    max_aliases: int = 50
    max_tokens: int = 3_000
    # Estimated number of fields resolved (lists count as their page size).
    max_cost: int = 25_000
    # Load the deterministic demo data set when the MongoDB database is empty.
    demo_data: bool = True
    demo_seed: int = 42
    demo_size: str = "default"  # small | default | large
    page_size_default: int = 100
    page_size_max: int = 500
    # Requests larger than this are refused before they are parsed.
    max_body_bytes: int = 256 * 1024
    # None: generate a signing key on first start and keep it in data_dir.
    jwt_secret: str | None = None
    jwt_issuer: str = "caregraph"
    jwt_audience: str = "caregraph-api"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # Failed logins allowed per account per minute, and per client address per 15 min.
    login_failures_per_account: int = 5
    login_failures_per_ip: int = 50
    # Sign-ups (`register` calls, each alias counting) allowed per client address per
    # window; a hospital's shared network still gets room for a waiting room of people.
    registrations_per_ip: int = 10
    registration_window_s: int = 3600
    # How long a sign-up's emailed verification code works.
    email_verification_ttl_s: int = 24 * 3600
    # Finished report results live this long in Redis (writes invalidate them sooner).
    report_cache_ttl_s: int = 300
    # Analysts see no group of fewer distinct patients than this (k-anonymity).
    report_min_group_size: int = 5
    # Medication knowledge files (None: the shipped knowledge/data/); a hospital points
    # this at its reviewed copy.
    knowledge_dir: Path | None = None
    # CDS Hooks clients allowed to sign their own JWTs: issuer -> {"key": secret or PEM
    # public key, "algorithm": "RS384" | "ES384" | "HS256", "role": the CareGraph role
    # its requests act as}. JSON in CAREGRAPH_CDS_CLIENTS.
    cds_clients_json: str = "{}"

    @property
    def cds_clients(self) -> dict[str, dict[str, str]]:
        clients = json.loads(self.cds_clients_json)
        return clients if isinstance(clients, dict) else {}

    # bcrypt cost; tests lower it to keep the suite fast.
    bcrypt_rounds: int = 12
    # Resilience, metrics and backups (runtime/ops_settings.py).
    ops: OpsSettings = field(default_factory=OpsSettings)
    # PHI safeguards (README "PHI safeguards"; HIPAA 45 CFR §164.312).
    # None: generate the audit chain's HMAC key into data_dir/audit-key (mode 0600).
    audit_key: str | None = None
    # Off only to measure the audit's cost (benchmarks); production never turns it off.
    audit_enabled: bool = True
    # Break-glass grants last this long unless revoked.
    emergency_access_minutes: int = 60
    # Automatic logoff: a refresh token unused this long is refused, and no session
    # (login and its refreshes) lives longer than the absolute lifetime.
    session_idle_timeout_s: int = 30 * 60
    session_max_lifetime_s: int = 12 * 3600
    # Bulk-export guard: distinct patients whose PHI one account may read per window.
    phi_read_budgets: tuple[tuple[str, int], ...] = (
        ("PATIENT", 20),
        ("PHARMACIST", 500),
        ("DOCTOR", 200),
        ("ADMIN", 2000),
    )
    phi_read_window_s: int = 3600
    # Field-level encryption of PHI at rest (datasources/encryption.py).
    field_encryption: bool = True
    kms_provider: str = "local"  # local | aws | azure | gcp | kmip
    kms_credentials: str | None = None  # JSON: the provider's credentials
    kms_master_key: str | None = None  # JSON: the master key descriptor (not for local)
    kms_tls_options: str | None = None  # JSON: {"kmip": {"tlsCAFile": ...}}
    key_vault_namespace: str | None = None  # default "<database>.__keyVault"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'billing.sqlite3').resolve()}"

    @classmethod
    def from_env(cls) -> Settings:
        defaults = cls()
        production = os.environ.get("CAREGRAPH_ENV", "").strip().lower() == "production"
        document_mode = os.environ.get(
            "CAREGRAPH_DOCUMENT_MODE", PERSISTED_ONLY if production else OPEN
        )
        if document_mode not in DOCUMENT_MODES:
            raise ValueError(f"CAREGRAPH_DOCUMENT_MODE must be one of {', '.join(DOCUMENT_MODES)}")
        return cls(
            data_dir=Path(os.environ.get("CAREGRAPH_DATA_DIR", str(defaults.data_dir))),
            mongodb_uri=os.environ.get("MONGODB_URI") or None,
            mongodb_database=os.environ.get("MONGODB_DATABASE", defaults.mongodb_database),
            mongodb_timeout_ms=_env_int("MONGODB_TIMEOUT_MS", defaults.mongodb_timeout_ms),
            mongodb_server_selection_timeout_ms=_env_int(
                "MONGODB_SERVER_SELECTION_TIMEOUT_MS", defaults.mongodb_server_selection_timeout_ms
            ),
            database_url=os.environ.get("DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            host=os.environ.get("CAREGRAPH_HOST", defaults.host),
            port=_env_int("CAREGRAPH_PORT", defaults.port),
            production=production,
            graphiql=_env_bool("CAREGRAPH_GRAPHIQL", not production),
            introspection=_env_bool("CAREGRAPH_INTROSPECTION", not production),
            document_mode=document_mode,
            freeform_roles=_env_roles("CAREGRAPH_FREEFORM_ROLES", defaults.freeform_roles),
            apq_enabled=_env_bool("CAREGRAPH_APQ", defaults.apq_enabled),
            apq_ttl_s=_env_int("CAREGRAPH_APQ_TTL_S", defaults.apq_ttl_s),
            queries_dir=Path(os.environ.get("CAREGRAPH_QUERIES_DIR", str(defaults.queries_dir))),
            public_cache_max_age_s=_env_int(
                "CAREGRAPH_PUBLIC_CACHE_MAX_AGE_S", defaults.public_cache_max_age_s
            ),
            max_depth=_env_int("CAREGRAPH_MAX_DEPTH", defaults.max_depth),
            max_aliases=_env_int("CAREGRAPH_MAX_ALIASES", defaults.max_aliases),
            max_tokens=_env_int("CAREGRAPH_MAX_TOKENS", defaults.max_tokens),
            max_cost=_env_int("CAREGRAPH_MAX_COST", defaults.max_cost),
            demo_data=_env_bool("CAREGRAPH_DEMO_DATA", defaults.demo_data and not production),
            demo_seed=_env_int("CAREGRAPH_DEMO_SEED", defaults.demo_seed),
            demo_size=os.environ.get("CAREGRAPH_DEMO_SIZE", defaults.demo_size),
            page_size_default=_env_int("CAREGRAPH_PAGE_SIZE_DEFAULT", defaults.page_size_default),
            page_size_max=_env_int("CAREGRAPH_PAGE_SIZE_MAX", defaults.page_size_max),
            max_body_bytes=_env_int("CAREGRAPH_MAX_BODY_BYTES", defaults.max_body_bytes),
            jwt_secret=os.environ.get("CAREGRAPH_JWT_SECRET") or None,
            jwt_issuer=os.environ.get("CAREGRAPH_JWT_ISSUER", defaults.jwt_issuer),
            jwt_audience=os.environ.get("CAREGRAPH_JWT_AUDIENCE", defaults.jwt_audience),
            access_token_ttl_s=_env_int(
                "CAREGRAPH_ACCESS_TOKEN_TTL_S", defaults.access_token_ttl_s
            ),
            refresh_token_ttl_s=_env_int(
                "CAREGRAPH_REFRESH_TOKEN_TTL_S", defaults.refresh_token_ttl_s
            ),
            login_failures_per_account=_env_int(
                "CAREGRAPH_LOGIN_FAILURES_PER_ACCOUNT", defaults.login_failures_per_account
            ),
            login_failures_per_ip=_env_int(
                "CAREGRAPH_LOGIN_FAILURES_PER_IP", defaults.login_failures_per_ip
            ),
            registrations_per_ip=_env_int(
                "CAREGRAPH_REGISTRATIONS_PER_IP", defaults.registrations_per_ip
            ),
            registration_window_s=_env_int(
                "CAREGRAPH_REGISTRATION_WINDOW_S", defaults.registration_window_s
            ),
            email_verification_ttl_s=_env_int(
                "CAREGRAPH_EMAIL_VERIFICATION_TTL_S", defaults.email_verification_ttl_s
            ),
            bcrypt_rounds=_env_int("CAREGRAPH_BCRYPT_ROUNDS", defaults.bcrypt_rounds),
            report_cache_ttl_s=_env_int(
                "CAREGRAPH_REPORT_CACHE_TTL_S", defaults.report_cache_ttl_s
            ),
            report_min_group_size=_env_int(
                "CAREGRAPH_REPORT_MIN_GROUP_SIZE", defaults.report_min_group_size
            ),
            ops=OpsSettings.from_env(),
            knowledge_dir=Path(os.environ["CAREGRAPH_KNOWLEDGE_DIR"])
            if os.environ.get("CAREGRAPH_KNOWLEDGE_DIR")
            else None,
            cds_clients_json=os.environ.get("CAREGRAPH_CDS_CLIENTS") or "{}",
            audit_key=os.environ.get("CAREGRAPH_AUDIT_KEY") or None,
            emergency_access_minutes=_env_int(
                "CAREGRAPH_EMERGENCY_ACCESS_MINUTES", defaults.emergency_access_minutes
            ),
            session_idle_timeout_s=_env_int(
                "CAREGRAPH_SESSION_IDLE_TIMEOUT_S", defaults.session_idle_timeout_s
            ),
            session_max_lifetime_s=_env_int(
                "CAREGRAPH_SESSION_MAX_LIFETIME_S", defaults.session_max_lifetime_s
            ),
            phi_read_budgets=_env_budgets("CAREGRAPH_PHI_READ_BUDGETS", defaults.phi_read_budgets),
            phi_read_window_s=_env_int("CAREGRAPH_PHI_READ_WINDOW_S", defaults.phi_read_window_s),
            field_encryption=_env_bool("CAREGRAPH_FIELD_ENCRYPTION", defaults.field_encryption),
            kms_provider=os.environ.get("CAREGRAPH_KMS_PROVIDER", defaults.kms_provider),
            kms_credentials=os.environ.get("CAREGRAPH_KMS_CREDENTIALS") or None,
            kms_master_key=os.environ.get("CAREGRAPH_KMS_MASTER_KEY") or None,
            kms_tls_options=os.environ.get("CAREGRAPH_KMS_TLS_OPTIONS") or None,
            key_vault_namespace=os.environ.get("CAREGRAPH_KEY_VAULT_NAMESPACE") or None,
        )

    # Any: the fields' types differ, and no annotation of a forwarding **changes can say
    # which goes with which (mypy checks that only on direct dataclasses.replace calls).
    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def normalise_database_url(url: str) -> str:
    """Accept the URLs operators usually have and pick the async driver for them."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    return url
