"""An exercise's detections make incidents of their own: never joined with real ones,
labelled with the exercise id, deconflicted among themselves, out of the counters."""

from __future__ import annotations

import secrets
from pathlib import Path

from watchfloor.alerts.stage import EXERCISE, AlertStage
from watchfloor.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def detection(event_id: str, entity: str, exercise: str | None = None, **kw: object) -> dict:
    det = {"detector": "lost_stolen_document", "kind": "stolen_document", "domain": "border",
           "event_id": event_id, "score": 0.99, "raw": 1.0, "reason": "listed",
           "ts": 1_700_000_000_000, "event_time": 1_700_000_000.0, "arrival": 1_700_000_000.0,
           "entity": {"type": "document", "id": entity},
           "links": [{"type": "person", "id": "P-1", "via": "person_id"}], **kw}  # fmt: skip
    if exercise:
        det["exercise"] = exercise
    return det


def test_an_exercise_never_joins_a_real_incident_on_the_same_entity() -> None:
    stage = AlertStage(load_config(ROOT / "topics.yaml"), secrets.token_bytes(32))
    real = [o for o in stage.process(detection("r1", "P0000913")) if o.kind == "alert"]
    drill = [o for o in stage.process(detection("x1", "P0000913", "EX-1")) if o.kind == "alert"]
    assert real and drill
    assert all(o.exercise is None for o in real) and all(o.exercise == "EX-1" for o in drill)
    import orjson

    a, b = orjson.loads(real[0].value), orjson.loads(drill[0].value)
    assert a["alert_id"] != b["alert_id"]
    assert "exercise" not in a and b["exercise"] == "EX-1"  # every agency sees the label
    # Only the real incident counts; the exercise's publication is tracked apart.
    assert stage.correlator.incidents_opened == 1
    pubs = [orjson.loads(o.value) for o in stage.process(detection("x2", "P0000914", "EX-1"))
            if o.kind == "published"]  # fmt: skip
    assert pubs and all(p["severity"] == EXERCISE and p["detectors"] == [] for p in pubs)


def test_exercise_alerts_deconflict_only_with_the_same_exercise() -> None:
    import orjson

    stage = AlertStage(load_config(ROOT / "topics.yaml"), secrets.token_bytes(32))
    real = stage.process(detection("r1", "P0000913"))
    real_ids = {orjson.loads(o.value)["alert_id"] for o in real if o.kind == "alert"}
    out = stage.process(detection("x1", "P0000913", "EX-1"))
    drill_ids = {orjson.loads(o.value)["alert_id"] for o in out if o.kind == "alert"}
    notices = [orjson.loads(o.value) for o in out if o.kind == "notice"]
    # The exercise alert went to two agencies: they are told about each other's exercise
    # alert, labelled, and never about the real alert on the same document.
    assert notices, "expected the two recipients of the exercise alert to be told"
    for n in notices:
        assert n["exercise"] == "EX-1"
        assert {x["alert_id"] for x in n["others"]} <= drill_ids
        assert not {x["alert_id"] for x in n["others"]} & real_ids
