"""AlertStage end to end with the real topics.yaml: alerts, notices, audit, feedback."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from watchfloor.alerts.audit import verify
from watchfloor.alerts.stage import AlertStage, Outgoing
from watchfloor.config import Config
from watchfloor.core.decoding import InvalidEvent

Det = Callable[..., dict[str, Any]]
T0 = 1_790_000_000.0


def stage(config: Config, key: bytes) -> AlertStage:
    return AlertStage(config, key, chain="w0", clock=lambda: T0 + 5.0)


def kinds(out: list[Outgoing]) -> list[tuple[str, str, str]]:
    """What agencies and the auditors see (publication records are checked apart)."""
    return [(o.kind, o.agency, o.topic) for o in out if o.kind != "published"]


def test_every_delivery_is_recorded_as_a_publication(config: Config, key: bytes, det: Det) -> None:
    s = AlertStage(config, key, clock=lambda: T0 + 10)
    out = s.process(det(entity="ip:10.0.0.9", score=0.92))
    alerts = [(o.agency, o.key) for o in out if o.kind == "alert"]
    pubs = [o for o in out if o.kind == "published"]
    assert [(o.agency, o.key) for o in pubs] == alerts
    rec = orjson.loads(pubs[0].value)
    assert rec["alert_id"].encode() == pubs[0].key and rec["t"] == T0 + 10
    assert rec["detectors"] == ["port_scan"] and pubs[0].topic == "watchfloor.published"


def test_high_network_alert_goes_to_cert_and_ctpu_with_audit(
    config: Config, key: bytes, det: Det
) -> None:
    out = stage(config, key).process(det(score=0.92, arrival=T0 + 0.25))
    assert kinds(out)[:4] == [
        ("alert", "cert", "alerts.cert"),
        ("audit", "cert", "audit.sharing"),
        ("alert", "ctpu", "alerts.ctpu"),
        ("audit", "ctpu", "audit.sharing"),
    ]
    # Both received the incident about the same entity: each is told of the other.
    assert sorted(k for k in kinds(out)[4:]) == [
        ("audit", "cert", "audit.sharing"),
        ("audit", "ctpu", "audit.sharing"),
        ("notice", "cert", "alerts.cert"),
        ("notice", "ctpu", "alerts.ctpu"),
    ]
    alert = orjson.loads(out[0].value)
    assert out[0].key == alert["alert_id"].encode()
    assert (alert["agency"], alert["agreement"], alert["version"]) == ("cert", "CERT-NET-2026", 1)
    assert all(o.severity == "high" and o.arrival == T0 + 0.25 for o in out)
    ctpu = next(orjson.loads(o.value) for o in out if o.kind == "alert" and o.agency == "ctpu")
    assert ctpu["entities"][0]["id"].startswith("ps_")
    audit = [orjson.loads(o.value) for o in out if o.kind == "audit"]
    assert verify(audit) == []
    assert audit[1]["agency"] == "ctpu"
    assert audit[1]["pseudonymised"] == ["detections.entity.id", "entities.id"]  # no links
    assert audit[1]["redacted"] == ["detections.reason"]
    notice = next(orjson.loads(o.value) for o in out if o.kind == "notice")
    assert notice["kind"] == "deconfliction" and "entities" not in notice


def test_suppressed_detection_publishes_nothing(config: Config, key: bytes, det: Det) -> None:
    s = stage(config, key)
    assert s.process(det(t=T0)) != []
    assert s.process(det(t=T0 + 10)) == []


def test_low_severity_reaches_only_domain_agency(config: Config, key: bytes, det: Det) -> None:
    out = stage(config, key).process(det("account:A1", "fan_out", "financial", score=0.5))
    assert kinds(out) == [("alert", "fiu", "alerts.fiu"), ("audit", "fiu", "audit.sharing")]


def test_key_never_in_any_outgoing(config: Config, key: bytes, det: Det) -> None:
    s = stage(config, key)
    blob = b""
    for i in range(30):
        for o in s.process(
            det(
                f"ip:10.0.0.{i % 7}",
                ["port_scan", "beaconing"][i % 2],
                t=T0 + 400 * i,
                links=(f"account:A{i % 3}",),
            )
        ):
            blob += o.value + o.key
    assert blob and key not in blob and key.hex().encode() not in blob
    assert key not in pickle.dumps(s.state())
    assert key.decode() not in repr(s)
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_checkpoint_restore_gives_same_messages(config: Config, key: bytes, det: Det) -> None:
    s = stage(config, key)
    s.process(det(t=T0, links=("account:A1",)))
    restored = AlertStage(
        config, key, state=pickle.loads(pickle.dumps(s.state())), clock=lambda: T0 + 5.0
    )
    nxt = det("account:A1", "structuring", "financial", t=T0 + 60)
    assert restored.process(nxt) == s.process(nxt)


def test_audit_chain_spans_detections(config: Config, key: bytes, det: Det) -> None:
    s = stage(config, key)
    records = []
    for i in range(20):
        out = s.process(det(f"ip:10.0.0.{i % 4}", t=T0 + 301 * i, score=0.9 + i / 500))
        records += [orjson.loads(o.value) for o in out if o.kind == "audit"]
    assert len(records) > 20 and verify(records) == []


def test_feedback_lowers_weight_and_severity(config: Config, key: bytes, det: Det) -> None:
    s = stage(config, key)
    first = s.process(det(score=0.92))
    aid = orjson.loads(first[0].value)["alert_id"]
    fb = orjson.dumps(
        {
            "alert_id": aid,
            "agency": "cert",
            "action": "close",
            "verdict": "false_positive",
            "ts": int((T0 + 65) * 1000),
        }
    )
    assert s.feedback(fb, "cert", now=T0 + 70) == (60.0, "high", ("port_scan",))
    # One agency's verdicts never move a weight alone (issue 9 item 2; the weight rules
    # are tested in tests/alerts/test_feedback.py).
    assert s.correlator.weights.get("port_scan", 1.0) == 1.0
    out = s.process(det("ip:10.9.9.9", score=0.92, t=T0 + 100))
    assert {o.severity for o in out} == {"high"}
    with pytest.raises(InvalidEvent):  # the agency comes from the topic, not the payload
        s.feedback(
            orjson.dumps({"alert_id": aid, "agency": "nsa", "action": "ack", "ts": int(T0 * 1000)}),
            "cert",
        )


def test_malformed_detection_raises(config: Config, key: bytes) -> None:
    with pytest.raises(InvalidEvent):
        stage(config, key).process({"detector": "x"})


# -- poison pills (issue 9 item 3) -----------------------------------------------------------


def test_a_detection_that_fails_midway_leaves_no_gap_in_the_audit_chain(
    config: Config, key: bytes, det: Det
) -> None:
    s = stage(config, key)
    records = [orjson.loads(o.value) for o in s.process(det(score=0.95)) if o.kind == "audit"]
    observe = s.deconflictor.observe

    def poisoned(*args: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    # Fails after the deliveries' audit records were appended: nothing of it is published
    # (the agent dead-letters the detection), so its records must not count.
    s.deconflictor.observe = poisoned  # type: ignore[method-assign]
    with pytest.raises(RecursionError):
        s.process(det("ip:10.7.7.7", score=0.95, t=T0 + 10))
    s.deconflictor.observe = observe  # type: ignore[method-assign]
    out = s.process(det("ip:10.8.8.8", score=0.95, t=T0 + 20))
    records += [orjson.loads(o.value) for o in out if o.kind == "audit"]
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert verify(records) == []


def test_an_alert_over_the_message_limit_is_cut_not_refused(
    config: Config, key: bytes, det: Det, monkeypatch: pytest.MonkeyPatch
) -> None:
    import watchfloor.alerts.stage as stage_module

    s = stage(config, key)
    for i in range(40):
        s.process({**det(detector=f"d{i}", t=T0 + i, score=0.95), "reason": "r" * 900})
    monkeypatch.setattr(stage_module, "MAX_ALERT_BYTES", 8_000)
    out = s.process({**det(detector="last", t=T0 + 50, score=0.95), "reason": "newest"})
    alerts = [orjson.loads(o.value) for o in out if o.kind == "alert"]
    assert alerts and all(len(o.value) <= 8_000 for o in out if o.kind == "alert")
    cert = next(a for a in alerts if a["agency"] == "cert")
    assert cert["detections"][-1]["reason"] == "newest"  # the most recent evidence stays
    assert len(cert["detections"]) < 41
