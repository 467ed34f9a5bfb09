"""The HMAC chain on its own: sealing, verifying, and every kind of tampering."""

from __future__ import annotations

import copy

import pytest

from audit.chain import GENESIS_MAC, canonical, head_mac, seal, verify
from audit.records import Action, Actor, Channel, Entity, Outcome, build_record

KEY = b"k" * 32


def _records(n: int) -> tuple[list[dict], dict]:
    records = [
        build_record(
            actor=Actor(user_id=f"user{i}", role="DOCTOR"),
            channel=Channel("PatientChart", None, f"req{i}", "127.0.0.1"),
            action=Action.READ,
            outcome=Outcome.SUCCESS,
            entities=[Entity("Patient", f"p{i}", f"p{i}", fields={"name", "contact.phone"})],
        )
        for i in range(n)
    ]
    last = seal(KEY, records, first_seq=1, previous=GENESIS_MAC)
    return records, {"seq": n, "mac": last, "headMac": head_mac(KEY, n, last)}


def test_an_untouched_chain_verifies():
    records, head = _records(5)
    verdict = verify(KEY, records, head)
    assert verdict.ok and verdict.checked == 5 and verdict.first_bad_seq is None


def test_the_key_matters():
    records, head = _records(3)
    assert verify(b"another key" * 3, records, head).first_bad_seq == 1


def test_canonical_form_is_independent_of_key_order_and_timezone_spelling():
    records, _ = _records(1)
    reordered = dict(reversed(list(records[0].items())))
    assert canonical(reordered) == canonical(records[0])
    assert b"value" not in canonical(records[0])  # field names only, never values


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("edit", 3),
        ("delete", 3),
        ("insert", 3),
        ("reorder", 2),
        ("truncate", 5),
    ],
)
def test_every_kind_of_tampering_names_the_first_bad_record(tamper: str, first_bad: int):
    records, head = _records(5)
    records = copy.deepcopy(records)
    if tamper == "edit":
        records[2]["entities"][0]["fields"].append("contact.email")
    elif tamper == "delete":
        del records[2]
    elif tamper == "insert":
        forged = copy.deepcopy(records[2])
        forged["actor"]["userId"] = "intruder"
        records.insert(2, forged)
        for seq, record in enumerate(records, start=1):
            record["seq"] = seq  # renumbered to look gapless
    elif tamper == "reorder":
        records[1], records[3] = records[3], records[1]
        records[1]["seq"], records[3]["seq"] = 2, 4
    elif tamper == "truncate":
        del records[4]
    verdict = verify(KEY, records, head)
    assert not verdict.ok
    assert verdict.first_bad_seq == first_bad, verdict


def test_a_forged_tail_anchor_is_detected():
    records, head = _records(4)
    del records[3]
    head = {**head, "seq": 3}  # moved back without the key
    verdict = verify(KEY, records, head)
    assert not verdict.ok and verdict.problem == "the tail anchor was altered"
