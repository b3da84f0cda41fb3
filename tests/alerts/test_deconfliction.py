"""Deconfliction notices name the other agencies and their references, nothing else."""

from __future__ import annotations

from typing import Any

import orjson

from watchfloor.alerts.deconfliction import Deconflictor


def alert(aid: str, *entities: str, **content: Any) -> dict[str, Any]:
    return {
        "alert_id": aid,
        "severity": content.get("severity", "high"),
        "score": 0.93,
        "entities": [dict(zip(("type", "id"), e.split(":", 1), strict=True)) for e in entities],
        "detections": [{"detector": "structuring", "reason": "SECRET-REASON"}],
    }


def test_two_agencies_on_one_entity_are_told_of_each_other() -> None:
    d = Deconflictor(3600)
    assert d.observe(alert("wf-fin", "account:A1"), ["fiu"], 100.0) == []
    notices = d.observe(alert("wf-net", "ip:10.0.0.1", "account:A1"), ["cert"], 400.0)
    by = {n["agency"]: n for n in notices}
    assert set(by) == {"fiu", "cert"}
    assert by["fiu"]["alert_id"] == "wf-fin"
    assert by["fiu"]["others"] == [{"agency": "cert", "alert_id": "wf-net"}]
    assert by["cert"]["alert_id"] == "wf-net"
    assert by["cert"]["others"] == [{"agency": "fiu", "alert_id": "wf-fin"}]
    assert all(n["kind"] == "deconfliction" for n in notices)


def test_notices_carry_no_alert_content() -> None:
    d = Deconflictor(3600)
    d.observe(alert("wf-fin", "account:A1"), ["fiu"], 100.0)
    notices = d.observe(alert("wf-brd", "account:A1", severity="critical"), ["border"], 200.0)
    for n in notices:
        assert set(n) == {"kind", "notice_id", "alert_id", "agency", "created_at", "others"}
        raw = orjson.dumps(n)
        for secret in (b"A1", b"account", b"SECRET-REASON", b"structuring", b"critical",
                       b"0.93", b"high"):
            assert secret not in raw
        for other in n["others"]:
            assert set(other) == {"agency", "alert_id"}


def test_three_agencies_and_each_pair_once() -> None:
    d = Deconflictor(3600)
    d.observe(alert("a1", "ip:X"), ["cert"], 0.0)
    n2 = d.observe(alert("a2", "ip:X"), ["fiu"], 10.0)
    assert sorted(n["agency"] for n in n2) == ["cert", "fiu"]
    n3 = d.observe(alert("a3", "ip:X"), ["border"], 20.0)
    by = {n["agency"]: n["others"] for n in n3}
    assert by["border"] == [
        {"agency": "cert", "alert_id": "a1"}, {"agency": "fiu", "alert_id": "a2"}]
    assert by["cert"] == [{"agency": "border", "alert_id": "a3"}]  # only what is new to cert
    assert d.observe(alert("a3", "ip:X"), ["border"], 30.0) == []  # a new version: no repeat


def test_same_alert_to_two_agencies_at_once() -> None:
    notices = Deconflictor(3600).observe(alert("wf-1", "ip:X"), ["cert", "ctpu"], 0.0)
    assert {(n["agency"], n["others"][0]["agency"]) for n in notices} == {
        ("cert", "ctpu"), ("ctpu", "cert")}


def test_outside_window_no_notice_and_other_entities_ignored() -> None:
    d = Deconflictor(3600)
    d.observe(alert("a1", "ip:X"), ["cert"], 0.0)
    assert d.observe(alert("a2", "ip:X"), ["fiu"], 4000.0) == []
    assert d.observe(alert("a3", "ip:Y"), ["border"], 4001.0) == []


def test_state_is_bounded() -> None:
    d = Deconflictor(3600, max_entities=100)
    for i in range(10_000):
        d.observe(alert(f"a{i}", f"ip:{i}"), ["cert"], float(i))
    assert len(d) <= 100
