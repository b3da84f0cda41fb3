"""Feedback parsing, response latency and detector weights."""

from __future__ import annotations

import orjson
import pytest

from watchfloor.alerts.feedback import ResponseTracker, parse_feedback
from watchfloor.core.decoding import InvalidEvent

OK = {"alert_id": "wf-1", "agency": "cert", "action": "close", "verdict": "false_positive",
      "ts": "2026-09-21T14:13:20Z"}


def raw(**patch: object) -> bytes:
    msg = {**OK, **patch}
    return orjson.dumps({k: v for k, v in msg.items() if v is not ...})


def test_valid_feedback() -> None:
    fb = parse_feedback(raw(extra="ignored"))
    assert fb == {"alert_id": "wf-1", "agency": "cert", "action": "close",
                  "verdict": "false_positive", "ts": 1790000000.0}
    ack = parse_feedback(raw(action="ack", verdict=..., ts=1790000000000))
    assert ack["verdict"] is None and ack["ts"] == 1790000000.0


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (None, "not_json"),
        (b"{not json", "not_json"),
        (b'"\xff\xfe"', "not_utf8"),
        (b"[1, 2]", "not_object"),
        (b"x" * 20_000, "too_large"),
        (raw(alert_id=...), "missing_field"),
        (raw(ts=...), "missing_field"),
        (raw(verdict=...), "missing_field"),  # close needs a verdict
        (raw(agency=3), "wrong_type"),
        (raw(verdict=True), "wrong_type"),
        (raw(action="delete"), "bad_value"),
        (raw(verdict="maybe"), "bad_value"),
        (raw(alert_id=""), "bad_value"),
        (raw(ts="last tuesday"), "bad_timestamp"),
        (raw(ts=12), "bad_timestamp"),
    ],
)
def test_malformed_feedback_codes(message: bytes | None, code: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_feedback(message)
    assert err.value.code == code


def test_latency_of_first_response_per_alert_and_agency() -> None:
    rt = ResponseTracker()
    rt.published("wf-1", "cert", "high", ["port_scan"], 1000.0)
    rt.published("wf-1", "cert", "critical", ["beaconing"], 1100.0)  # a later version
    rt.published("wf-1", "ctpu", "critical", ["port_scan"], 1100.0)
    ack = {"alert_id": "wf-1", "agency": "cert", "action": "ack", "verdict": None, "ts": 1090.0}
    assert rt.feedback(ack, now=1200.0) == (90.0, "critical", ("beaconing", "port_scan"))
    assert rt.feedback({**ack, "ts": 1150.0}, now=1200.0) is None  # not the first
    # Clock skew: a feedback "from the future" is clamped to now, never negative.
    assert rt.feedback({**ack, "agency": "ctpu", "ts": 5000.0}, now=1130.0) == (
        30.0, "critical", ("port_scan",))
    assert rt.feedback({**ack, "alert_id": "wf-unknown"}, now=1200.0) is None
    assert rt.unknown == 1


def test_weights_decay_with_false_positives_floor_and_recover() -> None:
    rt = ResponseTracker()
    for i in range(20):
        rt.published(f"wf-{i}", "cert", "high", ["beaconing"], 0.0)
        rt.feedback({"alert_id": f"wf-{i}", "agency": "cert", "action": "close",
                     "verdict": "false_positive", "ts": 1.0}, now=1.0)
    assert rt.weight("beaconing") == 0.2
    assert rt.weight("port_scan") == 1.0
    rt.published("wf-tp", "cert", "high", ["beaconing"], 0.0)
    close = {"alert_id": "wf-tp", "agency": "cert", "action": "close",
             "verdict": "true_positive", "ts": 1.0}
    rt.feedback(close, now=1.0)
    assert rt.weight("beaconing") == 0.25
    rt.feedback(close, now=2.0)  # one verdict per (alert, agency)
    assert rt.weight("beaconing") == 0.25


def test_one_false_positive_then_verdict_after_ack() -> None:
    rt = ResponseTracker()
    rt.published("wf-1", "cert", "high", ["port_scan"], 0.0)
    rt.feedback({"alert_id": "wf-1", "agency": "cert", "action": "ack", "verdict": None,
                 "ts": 1.0}, now=1.0)
    assert rt.weight("port_scan") == 1.0
    rt.feedback({"alert_id": "wf-1", "agency": "cert", "action": "close",
                 "verdict": "false_positive", "ts": 2.0}, now=2.0)
    assert rt.weight("port_scan") == 0.8


def test_tracker_is_bounded() -> None:
    rt = ResponseTracker(max_pending=100)
    for i in range(5000):
        rt.published(f"wf-{i}", "cert", "low", ["x"], float(i))
    assert len(rt) <= 100
