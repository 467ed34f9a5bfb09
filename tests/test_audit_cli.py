"""`caregraph audit verify` and `caregraph audit export` against a real database."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from fhir.resources.R4B.auditevent import AuditEvent

from auth.roles import Role
from runtime.phi_commands import run_audit
from tests.conftest import http_client
from tests.support import audit_records, build_world

READ = "query Chart($id: ID!) { patient(id: $id) { name contact { email } } }"


async def test_verify_passes_untouched_and_names_the_record_after_a_one_row_tamper(
    app, client, services, settings, capsys
):
    world = await build_world(client, services)
    async with http_client(app, world.tokens[Role.DOCTOR]) as doctor:
        await doctor.data(READ, {"id": world.patient})
    assert await run_audit(argparse.Namespace(audit_command="verify"), settings) == 0
    assert "audit chain intact" in capsys.readouterr().out

    records = await audit_records(services)
    victim = records[len(records) // 2]
    await services.db["audit_log"].update_one({"_id": victim["_id"]}, {"$set": {"entities": []}})
    assert await run_audit(argparse.Namespace(audit_command="verify"), settings) == 2
    assert f"BROKEN at seq {victim['seq']}" in capsys.readouterr().err


async def test_export_writes_valid_fhir_audit_events_for_the_period(
    app, client, services, settings, tmp_path
):
    world = await build_world(client, services)
    async with http_client(app, world.tokens[Role.DOCTOR]) as doctor:
        await doctor.data(READ, {"id": world.patient})
    output = tmp_path / "audit.ndjson"
    now = datetime.now(UTC)
    args = argparse.Namespace(
        audit_command="export",
        start=(now - timedelta(hours=1)).isoformat(),
        end=(now + timedelta(hours=1)).isoformat(),
        output=str(output),
    )
    assert await run_audit(args, settings) == 0
    lines = output.read_text().splitlines()
    assert len(lines) == len(await audit_records(services))
    events = [AuditEvent.model_validate(json.loads(line)) for line in lines]
    read = [e for e in events if e.action == "R"]
    assert read
    entities = read[-1].entity
    assert entities and entities[0].what, read[-1]
    assert entities[0].what.reference == f"Patient/{world.patient}"
    assert "pat@example.org" not in output.read_text()
    # A period with nothing in it exports nothing.
    args.start, args.end = "2001-01-01T00:00:00Z", "2001-01-02T00:00:00Z"
    assert await run_audit(args, settings) == 0
    assert output.read_text() == ""
