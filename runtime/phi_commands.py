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
