"""Exercise scenarios: strict files, real-shaped injects that the pipeline finds and
labels, and a scorecard computed from what Kafka recorded."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from watchfloor.evaluation.runner import run_offline
from watchfloor.ops.exercise import score, table
from watchfloor.ops.report import Records, real_only
from watchfloor.simulation.exercise import (
    ScenarioError,
    exercise_events,
    load_scenario,
    parse_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
AGENCIES = {"cert", "fiu", "border", "ctpu", "liaison"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "injects": [{"pattern": "port_scna"}]},
         "injects[0].pattern: 'port_scna' is not a pattern; did you mean 'port_scan'?"),
        ({"name": "x", "injects": [{"pattern": "port_scan", "sorce": "10.0.0.1"}]},
         "injects[0].sorce: not a parameter of port_scan; did you mean 'source'?"),
        ({"name": "x", "injects": [{"pattern": "watchlist", "expect": ["fui"]}]},
         "injects[0].expect: 'fui' is not an agency; did you mean 'fiu'?"),
        ({"name": "x", "injcts": []}, "injcts: unknown key; did you mean 'injects'?"),
        ({"name": "no spaces", "injects": [{"pattern": "watchlist"}]}, "name: 1..64"),
        ({"name": "x", "injects": [{"pattern": "watchlist", "at": -5}]}, "injects[0].at"),
    ],
)  # fmt: skip
def test_a_scenario_mistake_names_its_place(data: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match="^f.yaml: " + message.replace("?", r"\?")
                       .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):  # fmt: skip
        parse_scenario(data, "f.yaml", AGENCIES)


def test_an_unknown_scenario_name_suggests_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="did you mean 'cyber-intrusion'"):
        load_scenario("cyber-intrusoin")


@pytest.mark.parametrize("name", ["cyber-intrusion", "cross-border-financing"])
def test_shipped_scenarios_are_found_by_the_pipeline_and_labelled(name: str) -> None:
    sc = load_scenario(name, AGENCIES)
    events = [(d, e) for _, d, e in exercise_events(sc, "EX-7", time.time() - 3_600)]
    assert all(e["exercise"] == "EX-7" for _, e in events)
    detections = run_offline(events, ROOT / "topics.yaml")
    found = defaultdict(set)
    for det in detections:
        assert det["exercise"] == "EX-7"
        found[det["event_id"].split(":")[1]].add(det["detector"])
    expected = {
        # Exfiltration is judged against the source's usual uploads: a source with no
        # history is not flagged, and the exercise shows it (cold detectors here).
        "cyber-intrusion": {"1-port_scan": "port_scan", "2-brute_force": "brute_force"},
        "cross-border-financing": {
            "1-stolen_document": "lost_stolen_document", "2-structuring": "structuring",
            "3-high_risk_transfer": "high_risk_jurisdiction", "4-watchlist": "watchlist",
        },
    }[name]  # fmt: skip
    for inject, detector in expected.items():
        assert detector in found[inject], (inject, dict(found))


def _alert(aid: str, agency: str, event_ids: list[str], exercise: str | None = "EX-1") -> dict:
    return {"alert_id": aid, "agency": agency, "kind": "alert", "version": 1,
            **({"exercise": exercise} if exercise else {}),
            "detections": [{"detector": "watchlist", "event_id": e, "ts": 1_000_000}
                           for e in event_ids]}  # fmt: skip


def test_the_scorecard_comes_from_alerts_and_feedback() -> None:
    sc = parse_scenario({"name": "drill", "injects": [
        {"pattern": "watchlist", "expect": ["border", "ctpu"]},
        {"pattern": "port_scan", "at": 10, "expect": ["cert"]}]}, "f", AGENCIES)  # fmt: skip
    records = Records(
        alerts={
            "border": [(1_005.0, _alert("a1", "border", ["EX-1:1-watchlist:00001"]))],
            "ctpu": [(1_006.0, _alert("a1", "ctpu", ["EX-1:1-watchlist:00001"]))],
            "cert": [(1_007.0, _alert("real", "cert", ["net-1"], exercise=None))],
        },
        feedback={"border": [(1_065.0, {"alert_id": "a1", "verdict": "true_positive"})],
                  "ctpu": [(1_100.0, {"alert_id": "a1", "verdict": "false_positive"})]},
    )  # fmt: skip
    card = score(records, "EX-1", sc)
    w, p = card["injects"]["1-watchlist"], card["injects"]["2-port_scan"]
    assert w["detected"] and w["delivered_to"] == ["border", "ctpu"] and not w["missing_recipients"]
    assert w["seconds_to_alert"] == 5.0
    assert w["acknowledged_by"] == {"border": 60.0, "ctpu": 94.0}
    assert w["verdicts"] == {"border": "true_positive", "ctpu": "false_positive"}
    assert not p["detected"] and p["missing_recipients"] == ["cert"]
    s = card["summary"]
    assert (s["detected"], s["injects"], s["expected_delivered"], s["expected_deliveries"],
            s["verdicts_right"], s["verdicts"]) == (1, 2, 2, 3, 1, 2)  # fmt: skip
    assert "2-port_scan" in table(card) and "NOT DETECTED" in table(card)
    # The real figures never see the exercise.
    real = real_only(records)
    assert real.alerts["border"] == [] and real.feedback["border"] == []
    assert len(real.alerts["cert"]) == 1
