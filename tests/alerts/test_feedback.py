"""Feedback parsing, response latency and detector weights, and the forged-feedback
attacks of issue 9 item 2 replayed against the tracker (the broker half is in
tests/integration/test_feedback_trust.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from watchfloor.alerts.feedback import (
    MAX_STEP_PER_HOUR,
    WEIGHT_FLOOR,
    ResponseTracker,
    apply_feedback,
    parse_feedback,
)
from watchfloor.config import load_config
from watchfloor.core.decoding import InvalidEvent
from watchfloor.ops.acls import derive_grants

OK = {"alert_id": "wf-1", "agency": "cert", "action": "close", "verdict": "false_positive",
      "ts": "2026-09-21T14:13:20Z"}
T = 1_790_000_000.0
HOUR = 3600.0
TOPICS = Path(__file__).resolve().parents[2] / "topics.yaml"


def raw(**patch: object) -> bytes:
    msg = {**OK, **patch}
    return orjson.dumps({k: v for k, v in msg.items() if v is not ...})


def fb(alert_id: str, agency: str, verdict: str | None = "false_positive",
       action: str = "close", ts: float = T) -> dict:
    return {"alert_id": alert_id, "agency": agency, "action": action, "verdict": verdict,
            "ts": ts}


def test_valid_feedback() -> None:
    parsed = parse_feedback(raw(extra="ignored"))
    assert parsed == {"alert_id": "wf-1", "agency": "cert", "action": "close",
                      "verdict": "false_positive", "ts": 1790000000.0}
    ack = parse_feedback(raw(action="ack", verdict=..., ts=1790000000000))
    assert ack["verdict"] is None and ack["ts"] == 1790000000.0


def test_agency_comes_from_the_topic_not_the_payload() -> None:
    assert parse_feedback(raw(agency=...), "border")["agency"] == "border"
    assert parse_feedback(raw(agency="border"), "border")["agency"] == "border"
    with pytest.raises(InvalidEvent) as err:
        parse_feedback(raw(agency="border"), "cert")
    assert err.value.code == "agency_mismatch"
    assert str(err.value) == "agency_mismatch: cert's feedback names agency 'border'"
    with pytest.raises(InvalidEvent) as err:
        parse_feedback(raw(agency=3), "cert")
    assert err.value.code == "wrong_type"


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
    ack = fb("wf-1", "cert", None, "ack", 1090.0)
    assert rt.feedback(ack, now=1200.0) == (90.0, "critical", ("beaconing", "port_scan"))
    assert rt.feedback({**ack, "ts": 1150.0}, now=1200.0) is None  # not the first
    # Clock skew: a feedback "from the future" is clamped to now, never negative.
    assert rt.feedback({**ack, "agency": "ctpu", "ts": 5000.0}, now=1130.0) == (
        30.0, "critical", ("port_scan",))


def test_feedback_for_an_alert_not_delivered_to_that_agency_is_refused() -> None:
    """The probe's forged ack moved another agency's response latency: an agency can
    only answer for alerts it received."""
    rt = ResponseTracker()
    rt.published("wf-b", "border", "high", ["watchlist"], T)
    forged = orjson.dumps({"alert_id": "wf-b", "action": "ack", "ts": int(T * 1000) + 5})
    with pytest.raises(InvalidEvent) as err:
        apply_feedback(rt, "cert", forged, T + 10)
    assert err.value.code == "unknown_alert"
    assert "was not delivered to cert" in err.value.detail
    with pytest.raises(InvalidEvent):
        apply_feedback(rt, "cert", orjson.dumps({**orjson.loads(forged), "alert_id": "x"}), T)
    assert rt.unknown == 2
    # Border's own first ack is still its first response: latency 60 s.
    ack = orjson.dumps({"alert_id": "wf-b", "action": "ack", "ts": int((T + 60) * 1000)})
    assert apply_feedback(rt, "border", ack, T + 70)[1] == (60.0, "high", ("watchlist",))


def test_later_verdict_of_the_same_agency_replaces_its_earlier_one() -> None:
    """First-record-wins let a forger pre-empt the genuine verdict; now the agency's
    latest verdict counts and nobody else can write it."""
    rt = ResponseTracker()
    for i in range(3):
        for agency in ("cert", "ctpu"):
            rt.published(f"wf-{i}", agency, "high", ["port_scan"], T)
    for i in range(3):
        for agency in ("cert", "ctpu"):
            rt.feedback(fb(f"wf-{i}", agency, "false_positive"), now=T)
    assert rt.weight("port_scan", T + 100 * HOUR) == pytest.approx(4 / 7, abs=1e-6)
    # ctpu changes its mind on every alert: it now says they were real.
    for i in range(3):
        rt.feedback(fb(f"wf-{i}", "ctpu", "true_positive"), now=T + 100 * HOUR)
    assert rt.weight("port_scan", T + 200 * HOUR) == 1.0
    # Repeating a verdict changes nothing.
    for _ in range(5):
        rt.feedback(fb("wf-0", "cert", "false_positive"), now=T + 200 * HOUR)
    assert rt.weight("port_scan", T + 300 * HOUR) == 1.0


def test_one_agency_cannot_move_a_weight_alone() -> None:
    """Eight forged false positives drove port_scan to its floor in the probe."""
    rt = ResponseTracker()
    for i in range(50):
        rt.published(f"wf-{i}", "cert", "high", ["port_scan"], T)
        rt.published(f"wf-{i}", "ctpu", "high", ["port_scan"], T)
        rt.feedback(fb(f"wf-{i}", "cert", "false_positive"), now=T)
    assert rt.weight("port_scan", T + 1000 * HOUR) == 1.0
    # A single alert judged by a second agency is not enough either.
    rt.feedback(fb("wf-0", "ctpu", "false_positive"), now=T)
    assert rt.weight("port_scan", T + 1000 * HOUR) == 1.0
    rt.feedback(fb("wf-1", "ctpu", "false_positive"), now=T + 1000 * HOUR)
    assert rt.weight("port_scan", T + 2000 * HOUR) < 1.0


def test_weights_are_the_most_trusting_opinion_and_floored() -> None:
    rt = ResponseTracker()
    for i in range(40):
        for agency in ("cert", "ctpu", "liaison"):
            rt.published(f"wf-{i}", agency, "critical", ["beaconing"], T)
    for i in range(40):
        rt.feedback(fb(f"wf-{i}", "cert"), now=T)
        rt.feedback(fb(f"wf-{i}", "ctpu"), now=T)
    assert rt.weight("beaconing", T + 1000 * HOUR) == WEIGHT_FLOOR
    # A third agency that found half of them real lifts the weight to its opinion.
    for i in range(20):
        rt.feedback(fb(f"wf-{i}", "liaison", "true_positive"), now=T + 1000 * HOUR)
    for i in range(20, 40):
        rt.feedback(fb(f"wf-{i}", "liaison"), now=T + 1000 * HOUR)
    assert rt.weight("beaconing", T + 2000 * HOUR) == pytest.approx(24 / 44, abs=1e-6)
    assert rt.weight("port_scan", T) == 1.0


def test_weights_move_at_most_the_hourly_cap() -> None:
    rt = ResponseTracker()
    for i in range(100):
        for agency in ("cert", "ctpu"):
            rt.published(f"wf-{i}", agency, "high", ["port_scan"], T)
            rt.feedback(fb(f"wf-{i}", agency), now=T)
    assert rt.weight("port_scan", T) == 1.0
    assert rt.weight("port_scan", T + HOUR) == 1.0 - MAX_STEP_PER_HOUR
    assert rt.weight("port_scan", T + 2 * HOUR) == 1.0 - 2 * MAX_STEP_PER_HOUR
    assert rt.weight("port_scan", T + 100 * HOUR) == WEIGHT_FLOOR
    # Recovery is capped the same way once the verdicts turn.
    for i in range(100):
        for agency in ("cert", "ctpu"):
            rt.feedback(fb(f"wf-{i}", agency, "true_positive"), now=T + 100 * HOUR)
    assert rt.weight("port_scan", T + 101 * HOUR) == pytest.approx(WEIGHT_FLOOR + 0.1)
    assert rt.current_weights(T + 200 * HOUR) == {"port_scan": 1.0}


def test_tracker_is_bounded_and_weights_forget_evicted_verdicts() -> None:
    rt = ResponseTracker(max_pending=100)
    for i in range(5000):
        rt.published(f"wf-{i}", "cert", "low", ["x"], float(i))
    assert len(rt) <= 100
    rt = ResponseTracker(max_pending=8)
    for i in range(4):
        for agency in ("cert", "ctpu"):
            rt.published(f"wf-{i}", agency, "high", ["x"], T)
            rt.feedback(fb(f"wf-{i}", agency), now=T)
    assert rt.weight("x", T + 100 * HOUR) < 1.0
    for i in range(4, 12):  # fresh deliveries push every judged one out
        rt.published(f"wf-{i}", "cert", "low", ["x"], T + 100 * HOUR)
    rt.feedback(fb("wf-4", "cert", "true_positive"), now=T + 100 * HOUR)
    assert rt.weight("x", T + 200 * HOUR) == 1.0
    assert len(rt._judged) == 1


def test_tracker_survives_pickling_with_its_verdicts() -> None:
    import pickle

    rt = ResponseTracker()
    for i in range(3):
        for agency in ("cert", "ctpu"):
            rt.published(f"wf-{i}", agency, "high", ["x"], T)
            rt.feedback(fb(f"wf-{i}", agency), now=T)
    w = rt.weight("x", T + 2 * HOUR)
    back = pickle.loads(pickle.dumps(rt))
    assert back.weight("x", T + 2 * HOUR) == w < 1.0
    assert back.feedback(fb("wf-0", "cert", action="ack", verdict=None), now=T) is None


def test_shipped_topology_gives_each_agency_its_own_feedback_topic() -> None:
    cfg = load_config(TOPICS)
    grants = derive_grants(cfg, "watchfloor")
    writers: dict[str, set[str]] = {}
    for principal, gs in grants.items():
        for g in gs:
            if g.operation == "WRITE" and g.resource_name.startswith("feedback."):
                writers.setdefault(g.resource_name, set()).add(principal)
    assert writers == {
        f"feedback.{a.name}": {f"agency-{a.name}"} for a in cfg.agencies
    }
    assert {cfg.feedback_agency(f"feedback.{a.name}") for a in cfg.agencies} == {
        a.name for a in cfg.agencies
    }
    worker_reads = {g.resource_name for g in grants["watchfloor-worker"] if g.operation == "READ"}
    assert set(writers) <= worker_reads


def test_tracker_state_is_plain_data_and_restores_verdicts_and_weights() -> None:
    rt = ResponseTracker()
    for i in range(3):
        for agency in ("cert", "ctpu"):
            rt.published(f"wf-{i}", agency, "high", ["x"], T)
            rt.feedback(fb(f"wf-{i}", agency), now=T)
    state = rt.to_state()
    # Only JSON-able data: a data-only checkpoint can carry it.
    assert orjson.loads(orjson.dumps(state)) == state
    back = ResponseTracker.from_state(orjson.loads(orjson.dumps(state)))
    assert back.weight("x", T + 2 * HOUR) == rt.weight("x", T + 2 * HOUR) < 1.0
    # Verdicts came back too: a changed verdict of one agency moves the target back.
    for i in range(3):
        back.feedback(fb(f"wf-{i}", "ctpu", "true_positive"), now=T + 100 * HOUR)
    assert back.weight("x", T + 200 * HOUR) == 1.0


def test_the_probes_eight_forged_verdicts_no_longer_silence_a_port_scan(config, key, det):
    """Issue 9 item 2, as the probe ran it: eight false-positive verdicts on port scans,
    all from one agency. Before: port_scan's weight fell to its floor, a port scan was
    low and stopped reaching the counter-terrorism unit. Now it stays high and reaches it."""
    from watchfloor.alerts.stage import AlertStage

    t = [T]
    s = AlertStage(config, key, chain="w0", clock=lambda: t[0])
    ids = []
    for i in range(8):
        out = s.process(det(f"ip:10.7.0.{i}", score=0.95, t=T + i))
        ids.append(orjson.loads(next(o for o in out if o.kind == "alert").value)["alert_id"])
    for aid in ids:  # the CERT (or anyone holding its credentials) calls them all noise
        verdict = {"alert_id": aid, "action": "close", "verdict": "false_positive",
                   "ts": int(T * 1000) + 10_000}
        s.feedback(orjson.dumps(verdict), "cert", now=T + 10)
    t[0] = T + 48 * HOUR
    out = s.process(det("ip:10.7.1.1", score=0.95, t=T + 48 * HOUR))
    routed = {(o.agency, o.severity) for o in out if o.kind == "alert"}
    assert ("ctpu", "high") in routed and ("cert", "high") in routed
    # Had the counter-terrorism unit agreed on more than one, the weight would move.
    for aid in ids[:2]:
        verdict = {"alert_id": aid, "action": "close", "verdict": "false_positive",
                   "ts": int(t[0] * 1000)}
        s.feedback(orjson.dumps(verdict), "ctpu", now=t[0])
    t[0] += 10 * HOUR
    out = s.process(det("ip:10.7.1.2", score=0.95, t=T + 58 * HOUR))
    assert {o.agency for o in out if o.kind == "alert"} == {"cert"}


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d["topics"]["feedback.cert"].pop("agency"),
         "topics.feedback.cert.agency: a feedback topic names the agency whose principal "
         "alone writes it"),
        (lambda d: d["topics"].pop("feedback.liaison"),
         "agencies.liaison: no feedback topic; add `feedback.liaison: {role: feedback, "
         "agency: liaison}` under topics"),
        (lambda d: d["topics"]["feedback.fiu"].update(agency="cert"),
         "topics.feedback.fiu.agency: 'cert' already has feedback topic 'feedback.cert' "
         "(one per agency)"),
        (lambda d: d["topics"]["feedback.fiu"].update(agency="nsa"),
         "topics.feedback.fiu.agency: unknown agency 'nsa'; agencies: border, cert, ctpu, "
         "fiu, liaison"),
        (lambda d: d["topics"]["alerts.cert"].update(agency="cert"),
         "topics.alerts.cert.agency: only feedback topics belong to an agency"),
    ],
)
def test_feedback_topics_are_one_per_agency_in_topics_yaml(mutate, error: str) -> None:
    import yaml

    from watchfloor.config import ConfigError, parse_config

    with open(TOPICS) as f:
        data = yaml.safe_load(f)
    mutate(data)
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert str(err.value) == f"topics.yaml: {error}"
