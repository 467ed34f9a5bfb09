"""`caregraph audit verify|export` and `caregraph keys ...`: the PHI safeguards' commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from settings import Settings


def add_parsers(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify or export the PHI audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    actions.add_parser("verify", help="walk the HMAC chain; name the first broken record")
    export = actions.add_parser(
        "export", help="write FHIR R4 AuditEvent resources as NDJSON (for a SIEM)"
    )
    export.add_argument("--from", dest="start", help="ISO date-time, inclusive")
    export.add_argument("--to", dest="end", help="ISO date-time, exclusive")
    export.add_argument("--output", help="file to write (default: standard output)")

    keys = commands.add_parser("keys", help="field-encryption keys: migrate, rotate, replace")
    key_actions = keys.add_subparsers(dest="keys_command", required=True)
    key_actions.add_parser("migrate", help="encrypt PHI still stored in plaintext (resumable)")
    rotate = key_actions.add_parser(
        "rotate", help="rewrap every data key under a new master key (rewrap_many_data_key)"
    )
    rotate.add_argument(
        "--master-key", help="JSON descriptor of the new cloud master key (not for local)"
    )
    replace = key_actions.add_parser(
        "replace", help="a new data key for one field group, re-encrypting its fields"
    )
    replace.add_argument("--group", required=True, help="contact | clinical-notes")
    replace.add_argument(
        "--delete-old",
        action="store_true",
        help="delete old data keys no value uses (after every server restarted)",
    )


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def run_audit(args: argparse.Namespace, settings: Settings) -> int:
    from runtime.services import Services

    services = await Services.open(settings.with_overrides(demo_data=False))
    try:
        log = services.audit_log
        assert log is not None
        if args.audit_command == "verify":
            verdict = await log.verify()
            if verdict.ok:
                print(f"audit chain intact: {verdict.checked} records verified")
                return 0
            print(
                f"audit chain BROKEN at seq {verdict.first_bad_seq}: {verdict.problem} "
                f"({verdict.checked} records verified before it)",
                file=sys.stderr,
            )
            return 2
        return await _export(log, _moment(args.start), _moment(args.end), args.output)
    finally:
        await services.close()


async def _export(log: Any, start: datetime | None, end: datetime | None, path: str | None) -> int:
    from audit.fhir import to_audit_event

    output: TextIO = (
        await asyncio.to_thread(open, path, "w", encoding="utf-8") if path else sys.stdout
    )
    count = 0
    try:
        async for record in log.between(start=start, end=end):
            output.write(orjson.dumps(to_audit_event(record)).decode() + "\n")
            count += 1
    finally:
        if path:
            output.close()
    print(f"{count} AuditEvent resources exported", file=sys.stderr)
    return 0


async def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from datasources import key_management
    from runtime.services import Services

    if not settings.field_encryption:
        print("field encryption is off (CAREGRAPH_FIELD_ENCRYPTION=false)", file=sys.stderr)
        return 1
    services = await Services.open(settings.with_overrides(demo_data=False))
    try:
        if args.keys_command == "migrate":
            count = await key_management.encrypt_existing(services, progress=True)
            print(f"{count} documents encrypted; migration field-encryption v1 complete")
        elif args.keys_command == "rotate":
            master_key = json.loads(args.master_key) if args.master_key else None
            rotation = await key_management.rotate_master_key(services, master_key=master_key)
            print(
                f"{rotation.rewrapped} data keys rewrapped under {rotation.provider}; "
                f"retired: {', '.join(rotation.retired) or 'none'}. Restart the servers."
            )
        else:
            changed = await key_management.replace_data_key(
                services, args.group, progress=True, delete_old=args.delete_old
            )
            print(f"{changed} values re-encrypted under the new {args.group} key")
        return 0
    finally:
        await services.close()
