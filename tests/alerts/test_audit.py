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


# -- anchors (issue 9 item 6: the audit trail must not trust its writer) ----------------
KEY = b"audit-anchor-key-for-tests-0123456789"
NOW = 1_790_100_000.0  # a day after the records of write()


def anchored(chain: AuditChain, n: int, start: int = 0) -> tuple[list[dict], list[dict]]:
    """``n`` records, anchored in batches of two as the worker does after each publish."""
    from watchfloor.alerts.anchors import Anchorer

    an = Anchorer(KEY)
    recs: list[dict] = []
    anchors: list[dict] = []
    for i in range(start, start + n, 2):
        recs += write(chain, min(2, start + n - i), start=i)
        anchors += an.heads([chain], 1_790_000_000.0 + i)
    return roundtrip(recs), roundtrip(anchors)


def report(recs: list[dict], anchors: list, now: float = NOW) -> tuple[list[str], bool]:
    from watchfloor.ops.audit_cli import Entry, verify_report

    lines, _problems, ok = verify_report(
        [Entry(0, i, r) for i, r in enumerate(recs)], anchors=anchors, key=KEY, now=now
    )
    return lines, ok


def forge_append(recs: list[dict], **content: object) -> dict:
    """What the worker principal could write: the chain's next record, hash and all."""
    last = recs[-1]
    rec = {**last, "seq": last["seq"] + 1, "prev_hash": last["hash"], **content}
    rec["hash"] = record_hash(rec)
    return rec


def test_anchored_chain_verifies() -> None:
    recs, anchors = anchored(AuditChain("w0"), 6)
    assert [a["seq"] for a in anchors] == [1, 3, 5]
    lines, ok = report(recs, anchors)
    assert ok, lines
    assert lines[-2:] == ["anchors: 3 anchors checked", "OK: 6 records in 1 chain, no problems"]


def test_appended_forged_record_fails_verification() -> None:
    """Before anchors, the worker principal could append a record (here: a delivery to
    the liaison desk that never happened) and `audit verify` passed."""
    recs, anchors = anchored(AuditChain("w0"), 4)
    recs.append(forge_append(recs, agency="liaison", alert_id="wf-made-up"))
    assert verify(recs) == []  # the hash chain alone cannot tell
    lines, ok = report(recs, anchors)
    assert not ok
    assert "  partition 0 offset 4: unanchored: seq 4..4 of chain 'w0' written after its " \
        "newest anchor (seq 3); 1 record(s) recording deliveries found in no anchored " \
        "chain (appended by someone other than the worker)" in lines
    assert lines[-1] == "FAILED: 1 problem in 1 of 1 chain"


def test_forged_whole_chain_fails_verification() -> None:
    recs, anchors = anchored(AuditChain("alerts-0-aaaa"), 4)
    fake = AuditChain("alerts-0-bbbb")
    forged = roundtrip([
        fake.append(alert_id=f"wf-fake-{i}", version=1, agency="liaison", agreement="X",
                    shared=("severity",), pseudonymised=(), redacted=(), time=1.79e9)
        for i in range(3)
    ])
    assert verify(recs + forged) == []
    lines, ok = report(recs + forged, anchors)
    assert not ok
    assert "chain alerts-0-bbbb: 3 records, seq 0..2: 1 problem" in lines
    assert any("foreign: chain 'alerts-0-bbbb': no anchor vouches for it" in x for x in lines)
    assert "chain alerts-0-aaaa: 4 records, seq 0..3: intact" in lines


def test_truncated_tail_fails_verification() -> None:
    recs, anchors = anchored(AuditChain("w0"), 6)
    lines, ok = report(recs[:3], anchors)
    assert not ok
    assert "  partition 0 offset 2: truncated: chain 'w0' ends at seq 2, but its newest " \
        "anchor, of 2026-09-21T14:13:24.000Z, vouches for seq 5" in lines, lines
    # A chain whose records are all gone (a deleted or re-created topic).
    lines, ok = report([], anchors)
    assert not ok and any("has no records in the topic" in x for x in lines)


def test_rewritten_chain_and_forged_anchors_fail() -> None:
    from watchfloor.alerts.anchors import sign

    recs, anchors = anchored(AuditChain("w0"), 4)
    # Rewrite from seq 2 on with consistent hashes: the anchor of seq 3 disagrees.
    rewritten = recs[:2]
    for _ in range(2):
        rewritten.append(forge_append(rewritten, agency="fiu"))
    lines, ok = report(rewritten, anchors)
    assert not ok and any("foreign: seq 3 of chain 'w0' is not the record anchored" in x
                          for x in lines)
    # An anchor not signed with the audit key (the worker principal without the key).
    fake = sign(b"not-the-audit-key-0123456789abcdef", "w0", 5, "ab" * 32, NOW)
    lines, ok = report(recs, [*anchors, fake, "garbage"])
    assert not ok
    assert sum("forged anchor" in x for x in lines) == 2


def test_young_tail_awaits_its_anchor_and_a_crash_replay_is_a_note() -> None:
    recs, anchors = anchored(AuditChain("w0"), 4)
    tail = forge_append(recs, time="2026-09-22T18:00:00.000Z")  # NOW - 20 s
    lines, ok = report([*recs, tail], anchors, now=NOW)
    assert ok, lines
    # Dated in the future by its forger, a record is not "young": it is checked.
    future = forge_append(recs, time="2099-01-01T00:00:00.000Z", alert_id="wf-new")
    assert not report([*recs, future], anchors, now=NOW)[1]
    # A worker died between publishing seq 4 and its anchor; the next owner replayed
    # the same delivery into its own, anchored chain.
    dead, dead_anchors = anchored(AuditChain("alerts-0-dead"), 4)
    orphan = {**forge_append(dead), "alert_id": "wf-9", "version": 1}
    orphan["hash"] = record_hash(orphan)
    nxt = AuditChain("alerts-0-next")
    replay = roundtrip(write(nxt, 1, start=9))
    from watchfloor.alerts.anchors import Anchorer

    next_anchor = roundtrip(Anchorer(KEY).heads([nxt], NOW - 3600))
    lines, ok = report([*dead, orphan, *replay], [*dead_anchors, *next_anchor])
    assert ok, lines
    assert any(x.startswith("  note: partition 0 offset 4: unanchored seq 4..4 (after seq 3) "
                            "repeat deliveries recorded in anchored chains") for x in lines)
    # Killed before its first anchor: the whole chain is a replayed copy, also a note.
    first = roundtrip(write(AuditChain("alerts-0-first"), 1, start=9))
    lines, ok = report([*first, *replay], next_anchor)
    assert ok, lines
    assert any("note: partition 0 offset 0: unanchored seq 0..0 (no anchor vouches for it)"
               in x for x in lines), lines


def test_anchorer_signs_only_moved_chains_and_forgets_dropped_ones() -> None:
    from watchfloor.alerts.anchors import Anchorer, valid

    a, b = AuditChain("a"), AuditChain("b")
    an = Anchorer(KEY)
    assert an.heads([a, b], 0.0) == []  # nothing written yet
    write(a, 2)
    first = an.heads([a, b], 1.0)
    assert [(x["chain"], x["seq"]) for x in first] == [("a", 1)]
    assert all(valid(KEY, x) for x in first) and not valid(KEY[::-1], first[0])
    assert an.heads([a, b], 2.0) == []
    write(b, 1)
    assert [(x["chain"], x["seq"]) for x in an.heads([a, b], 3.0)] == [("b", 0)]
    assert an.heads([b], 4.0) == [] and set(an._anchored) == {"b"}
    with pytest.raises(TypeError):
        pickle.dumps(an)


def test_audit_key_is_the_same_for_worker_and_verifier_and_never_invented(tmp_path) -> None:
    import secrets

    from watchfloor.alerts.anchors import audit_key
    from watchfloor.settings import Settings

    empty = Settings(state_dir=tmp_path / "nothing")
    assert audit_key(empty, env={}) is None  # a verifier never generates a secret
    assert not (tmp_path / "nothing").exists()
    master = secrets.token_hex(32)
    a = audit_key(Settings(pseudonym_key=master, state_dir=tmp_path), env={})
    assert a is not None and len(a) == 32 and master.encode() not in a
    assert audit_key(Settings(pseudonym_key=master, state_dir=tmp_path), env={}) == a
    assert audit_key(Settings(pseudonym_key=secrets.token_hex(32)), env={}) != a
    given = secrets.token_hex(32)
    assert audit_key(empty, env={"WATCHFLOOR_AUDIT_KEY": given}) == bytes.fromhex(given)
    for weak in ("abcd", "not hex at all, however long it may be, really quite long"):
        with pytest.raises(ValueError, match="WATCHFLOOR_AUDIT_KEY must be at least 32 bytes"):
            audit_key(empty, env={"WATCHFLOOR_AUDIT_KEY": weak})


def test_an_anchor_newer_than_the_read_is_not_a_truncation() -> None:
    """verify reads the records, then the anchors: on a live worker an anchor read last
    may vouch for records written after the records were read."""
    from watchfloor.alerts.anchors import sign

    recs, anchors = anchored(AuditChain("w0"), 4)
    more = write(AuditChain("w0", 4, recs[-1]["hash"]), 2, start=4)
    fresh = sign(KEY, "w0", 5, more[-1]["hash"], NOW - 1)
    lines, ok = report(recs, [*anchors, fresh], now=NOW)
    assert ok, lines
    stale = sign(KEY, "w0", 5, more[-1]["hash"], NOW - 3600)
    assert not report(recs, [*anchors, stale], now=NOW)[1]
