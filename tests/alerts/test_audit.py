"""Audit chain: clean chains verify; altered, missing and reordered records are found."""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest

from watchfloor.alerts.audit import GENESIS, AuditChain, record_hash, verify


def write(chain: AuditChain, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        chain.append(alert_id=f"wf-{i}", version=1, agency="cert", agreement="CERT-NET-2026",
                     shared=("severity",), pseudonymised=("entities.id",), redacted=(),
                     time=1_790_000_000.0 + i)
        for i in range(start, start + n)
    ]


def roundtrip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As read back from the audit topic."""
    return [orjson.loads(orjson.dumps(r)) for r in records]


def test_clean_chain_verifies_after_serialization() -> None:
    recs = roundtrip(write(AuditChain("w0"), 5))
    assert verify(recs) == []
    assert recs[0]["prev_hash"] == GENESIS
    assert [r["seq"] for r in recs] == [0, 1, 2, 3, 4]
    assert set(recs[0]) == {"chain", "seq", "kind", "alert_id", "version", "agency",
                            "agreement", "shared", "pseudonymised", "redacted", "time",
                            "prev_hash", "hash"}


def test_altered_record_is_reported_with_position() -> None:
    recs = roundtrip(write(AuditChain("w0"), 5))
    recs[2]["shared"] = ["severity", "entities.id"]
    problems = verify(recs)
    assert problems == ["position 2: altered (seq 2: hash does not match content)"]


def test_forged_record_with_recomputed_hash_breaks_the_link() -> None:
    recs = roundtrip(write(AuditChain("w0"), 5))
    recs[2]["agency"] = "liaison"
    recs[2]["hash"] = record_hash(recs[2])
    problems = verify(recs)
    assert problems == ["position 3: altered (seq 3: prev_hash does not match seq 2)"]


def test_missing_record_is_reported() -> None:
    recs = roundtrip(write(AuditChain("w0"), 6))
    del recs[3]
    assert verify(recs) == ["position 3: missing seq 3..3 before seq 4 in chain 'w0'"]


def test_reordered_records_are_reported() -> None:
    recs = roundtrip(write(AuditChain("w0"), 5))
    recs[1], recs[2] = recs[2], recs[1]
    problems = verify(recs)
    assert problems == [
        "position 1: reordered (seq 2 before seq 1 in chain 'w0')",
        "position 2: reordered (seq 1 after seq 2 in chain 'w0')",
    ]


def test_first_record_must_start_from_genesis() -> None:
    recs = roundtrip(write(AuditChain("w0", 0, "f" * 64), 2))
    assert verify(recs) == ["position 0: altered (seq 0 does not start from genesis)"]


def test_interleaved_chains_are_checked_separately() -> None:
    a, b = write(AuditChain("a"), 3), write(AuditChain("b"), 3)
    mixed = [a[0], b[0], b[1], a[1], a[2], b[2]]
    assert verify(roundtrip(mixed)) == []


def test_restart_continues_the_chain_from_last_record() -> None:
    first = write(AuditChain("w0"), 3)
    last = roundtrip(first)[-1]
    resumed = AuditChain.from_last(last)
    more = write(resumed, 2, start=3)
    assert more[0]["seq"] == 3 and more[0]["prev_hash"] == last["hash"]
    assert verify(roundtrip(first + more)) == []


def test_from_last_refuses_a_tampered_record() -> None:
    last = roundtrip(write(AuditChain("w0"), 1))[-1]
    last["seq"] = 99
    with pytest.raises(ValueError):
        AuditChain.from_last(last)


def test_chain_state_pickles() -> None:
    c = AuditChain("w0")
    write(c, 2)
    c2: AuditChain = pickle.loads(pickle.dumps(c))
    assert write(c2, 1, start=2) == write(c, 1, start=2)
