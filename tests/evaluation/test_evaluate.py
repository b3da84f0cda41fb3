"""`watchfloor evaluate`: the scoring definitions, the detector-quality regression guard
(offline) and the broker mode end to end."""

from __future__ import annotations

import argparse

import orjson
import pytest

from tests.conftest import ROOT
from watchfloor.evaluation.evaluate import (
    TARGET_FALSE_PER_10K,
    TARGET_PRECISION,
    TARGET_RECALL,
    Label,
    detections_of_alerts,
    evaluate_offline,
    namespaced_topics,
    score_run,
)
from watchfloor.ops.evaluate_cli import add_parser
from watchfloor.simulation import THREAT_TYPES

T0 = 1_795_392_000.0


def ev(eid: str, t: float, threat=None, campaign=None, lookalike=None, domain="network"):
    return domain, {
        "event_id": eid,
        "ts": int((T0 + t) * 1000),
        "sim": {"threat": threat, "campaign": campaign, "lookalike": lookalike},
    }


STREAM = [
    ev("e1", 0),
    ev("e2", 10, "port_scan", "ps-1"),
    ev("e3", 20, "port_scan", "ps-1"),
    ev("e4", 30, "port_scan", "ps-1"),
    ev("e5", 40, lookalike="shared_proxy"),
    ev("e6", 50, "structuring", "st-1", domain="financial"),
    ev("e7", 60),
    ev("e8", 70, "port_scan", "ps-2"),
    ev("e9", 100, "port_scan", "ps-2"),
]


def det(detector: str, event_id: str) -> dict:
    return {"detector": detector, "event_id": event_id, "score": 0.95}


def test_score_run_exact_figures():
    detections = [
        det("port_scan", "e3"),
        det("port_scan", "e4"),
        det("port_scan", "e4"),  # a redelivery counts once
        det("port_scan", "e5"),  # on a look-alike: a false alert
        det("port_scan", "e9"),
        det("amount_anomaly", "e6"),  # on another threat: cross, not false
        det("port_scan", "nope"),  # unknown event: ignored
    ]
    r = score_run(STREAM, detections, detectors=["port_scan", "structuring", "amount_anomaly"])
    assert (r.events, r.benign_events, r.threat_events) == (9, 3, 6)
    assert r.detections == 5
    assert r.false_alerts == 1
    assert r.false_per_10k == pytest.approx(10_000 / 3)
    assert r.false_by_lookalike == {"shared_proxy/port_scan": 1}

    ps = r.by_threat["port_scan"]
    assert (ps.tp, ps.fp, ps.fn, ps.cross) == (3, 1, 0, 0)
    assert ps.fp_lookalike == 1 and ps.fp_benign == 0
    assert ps.precision == pytest.approx(0.75)
    assert ps.recall == 1.0
    assert ps.event_recall == pytest.approx(3 / 5)
    assert ps.f1 == pytest.approx(2 * 0.75 / 1.75)
    # ps-1 first detected at its 2nd event (index 1), 10 s in; ps-2 at index 1, 30 s in.
    assert ps.median_delay_events == 1.0
    assert ps.median_delay_seconds == pytest.approx(20.0)
    assert ps.false_per_10k == pytest.approx(10_000 / 3)

    st = r.by_threat["structuring"]
    assert (st.tp, st.fp, st.fn, st.campaigns) == (0, 0, 1, 1)
    assert st.recall == 0.0 and st.precision == 1.0 and st.f1 == 0.0
    assert st.missed_campaigns == ["st-1"]
    assert st.median_delay_events is None

    aa = r.by_detector["amount_anomaly"]
    assert (aa.tp, aa.fp, aa.cross) == (0, 0, 1)
    assert aa.recall is None  # no account_takeover campaign in this stream

    assert list(r.by_threat) == ["port_scan", "structuring"]
    fails = r.failures()
    assert any(f.startswith("structuring: recall 0.000") for f in fails)
    assert any(f.startswith("port_scan: precision 0.750") for f in fails)
    assert any(f.startswith("overall:") for f in fails)

    data = orjson.loads(r.to_json())
    assert data["by_threat"]["port_scan"]["precision"] == pytest.approx(0.75)
    assert data["targets"]["met"] is False
    text = r.table()
    assert "port_scan" in text and "targets MISSED" in text


def test_score_run_perfect_run_meets_targets():
    detections = [det("port_scan", "e2"), det("port_scan", "e8"), det("structuring", "e6")]
    r = score_run(STREAM, detections)
    assert r.failures() == []
    assert r.by_threat["port_scan"].median_delay_events == 0.0
    assert r.by_threat["port_scan"].median_delay_seconds == 0.0


def test_namespaced_topics(tmp_path):
    from watchfloor.config import load_config

    cfg = load_config(namespaced_topics(ROOT / "topics.yaml", "eval-1-ab.", tmp_path / "t.yaml"))
    assert all(t.name.startswith("eval-1-ab.") for t in cfg.topics)
    assert all(a.topic.startswith("eval-1-ab.alerts.") for a in cfg.agencies)
    assert cfg.topic("detections").name == "eval-1-ab.watchfloor.detections"


# Known gap (issue 10): one DNS tunnel of the scenario scores below the flow model's
# alarm since its features moved to per-timeout sizes. It is held at its current level
# here and the target is asserted by the strict xfail below, which starts failing (XPASS)
# the day it is met. (The many-source flood, missed while flood ran on input partitioned
# by source, is found since destination-keyed detectors run in the re-keyed stage.)
KNOWN_GAPS = {"dns_tunnel": 2 / 3}


@pytest.fixture(scope="module")
def seeded_run():
    return evaluate_offline(seed=3, events=60_000, topics_file=ROOT / "topics.yaml")


def test_detector_quality_targets_offline(seeded_run):
    """The regression guard for detector quality: on a seeded scenario containing every
    threat type, each is detected with recall >= 0.9 at precision >= 0.8, and there are
    at most 1 false alert per 10,000 benign events (the known gaps at their level)."""
    r = seeded_run
    assert set(r.by_threat) == set(THREAT_TYPES)
    for threat, row in r.by_threat.items():
        assert row.precision >= TARGET_PRECISION, r.table()
        floor = KNOWN_GAPS.get(threat, TARGET_RECALL)
        assert row.recall >= floor - 1e-9, (threat, r.table())
    assert r.false_per_10k <= TARGET_FALSE_PER_10K


@pytest.mark.xfail(strict=True, reason="known gap: one DNS tunnel")
def test_known_gaps_meet_the_targets(seeded_run):
    assert seeded_run.failures() == []


@pytest.mark.broker
def test_evaluate_broker_end_to_end(broker, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WATCHFLOOR_BROKER", f"kafka://{broker}")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "evaluation.json"
    args = parser.parse_args(["evaluate", "--seed", "5", "--events", "30000", "--output", str(out)])
    args.topics_file = str(ROOT / "topics.yaml")
    args.func(args)
    data = orjson.loads(out.read_bytes())
    assert data["meta"]["mode"] == "broker"
    assert data["events"] == 30_000
    assert data["by_threat"], "no threat in the scenario"
    # The broker measures what the in-process run measures: every threat type the
    # detectors find offline, the real worker finds too (however good the detectors are).
    offline = evaluate_offline(seed=5, events=30_000, topics_file=ROOT / "topics.yaml")
    found_offline = {t for t, row in offline.by_threat.items() if row.campaigns_detected}
    found_broker = {t for t, row in data["by_threat"].items() if row["campaigns_detected"]}
    assert len(found_offline) >= 8 and found_offline <= found_broker, (found_offline,
                                                                      found_broker)
    assert "threat type" in capsys.readouterr().out


def test_score_run_with_capture_labels_ignores_background():
    """A replayed capture's labels: unlabelled background is neither a hit nor a false
    alert, campaigns are per malicious source, and the rows follow ``threat_detectors``."""
    capture = [
        ("network", {"event_id": "b1", "ts": int(T0 * 1000), "label": "background"}),
        ("network", {"event_id": "n1", "ts": int(T0 * 1000) + 1, "label": "normal"}),
        ("network", {"event_id": "s1", "ts": int(T0 * 1000) + 2, "label": "scan", "src": "A"}),
        ("network", {"event_id": "s2", "ts": int(T0 * 1000) + 3, "label": "scan", "src": "B"}),
        ("network", {"event_id": "f1", "ts": int(T0 * 1000) + 4, "label": "flood", "src": "C"}),
    ]
    names = {"scan": "port_scan", "flood": "flood"}

    def label_of(e):
        if e["label"] == "background":
            return None
        if e["label"] == "normal":
            return Label(None, None, None)
        return Label(names[e["label"]], f"{names[e['label']]}:{e['src']}", None)

    alerts = [{"alert_id": "a", "version": v, "detections": [det("port_scan", "s1"),
               det("port_scan", "b1")]} for v in (1, 2)]  # fmt: skip
    r = score_run(
        capture,
        detections_of_alerts(alerts),
        threat_detectors={"flood": "flood", "port_scan": "port_scan"},
        label_of=label_of,
    )
    assert (r.events, r.benign_events, r.threat_events) == (4, 1, 3)
    assert r.detections == 1 and r.false_alerts == 0  # b1 is background
    assert list(r.by_threat) == ["flood", "port_scan"]
    ps = r.by_threat["port_scan"]
    assert (ps.campaigns, ps.campaigns_detected, ps.recall) == (2, 1, 0.5)
    assert ps.missed_campaigns == ["port_scan:B"]
    assert r.by_threat["flood"].recall == 0.0
