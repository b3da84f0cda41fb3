"""Issue 9 item 4 on a real broker: event time cannot be weaponised.

The probe's two events: one dated 2099 expired every open incident and wiped a
partition's detector state; one dated 2000 took over a document's incident mapping, so the
document's next detection opened a new incident instead of joining the open one.

Here a lost/stolen document's crossing opens an incident; then come a crossing of the same
document dated 2099, one dated 2000 whose traveller is on the watchlist, and one now whose
traveller is on the watchlist. The 2099 event is dead-lettered (``future_timestamp``,
more than ``time.max_future_seconds`` after the broker's arrival time); the 2000 one is
scored (its own incident: nothing is lost) but does not take the document over; the last
one joins the open incident as its next version.
"""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest

from tests.integration.conftest import Worker
from tests.kafka_helpers import collect, end_offsets, produce, run

pytestmark = pytest.mark.broker

DOCUMENT = "P0009905"  # on the shipped lost/stolen list; used by no other broker test
Y2099 = 4_070_908_800.0
Y2000 = 946_771_200.0


def crossing(event_id: str, ts: float, name: str = "TEST TRAVELLER") -> tuple[bytes, bytes]:
    return DOCUMENT.encode(), orjson.dumps(
        {
            "event_id": event_id,
            "ts": int(ts * 1000),
            "document_id": DOCUMENT,
            "nationality": "RUS",
            "crossing_point": "CDG-T2",
            "direction": "entry",
            "person_name": name,
        }
    )


def _about_document(alert: dict) -> bool:
    return any(e.get("id") == DOCUMENT for e in alert.get("entities", []))


def test_future_and_ancient_event_times_cannot_expire_or_take_over_incidents(
    worker: Worker,
) -> None:
    b = worker.bootstrap
    run_id = uuid.uuid4().hex[:10]
    ids = {k: f"et-{run_id}-{k}" for k in ("open", "2099", "2000", "next")}
    dl_start = run(end_offsets(b, "events.deadletter"))
    start = run(end_offsets(b, "alerts.border"))
    now = time.time()

    run(produce(b, "events.border", [crossing(ids["open"], now - 120)]))
    first = run(
        collect(
            b, "alerts.border", bool, 90, start,
            lambda a: _about_document(a) and a["detections"][-1].get("event_id") == ids["open"],
        )
    )
    assert first, f"no alert for the stolen document\n{worker.log_tail()}"
    incident = first[0]["alert_id"]

    run(
        produce(
            b,
            "events.border",
            [
                crossing(ids["2099"], Y2099),
                crossing(ids["2000"], Y2000, "AHMAD KARIMI"),
                crossing(ids["next"], time.time(), "IVAN PETROVICH SOKOLOV"),
            ],
        )
    )

    def ours(rec: dict) -> bool:
        return run_id.encode() in base64.b64decode(rec["original"])

    letters = run(collect(b, "events.deadletter", bool, 60, dl_start, ours))
    assert [r["reason"] for r in letters] == ["future_timestamp"], letters
    assert ids["2099"].encode() in base64.b64decode(letters[0]["original"])

    def joined(alerts: list[dict]) -> bool:
        return any(a["detections"][-1].get("event_id") == ids["next"] for a in alerts)

    alerts = run(collect(b, "alerts.border", joined, 90, start, _about_document))
    latest = [a for a in alerts if a["detections"][-1].get("event_id") == ids["next"]]
    assert latest, f"the last crossing made no alert\n{worker.log_tail()}"
    # Joined the open incident: it was neither expired (2099) nor taken over (2000).
    assert latest[0]["alert_id"] == incident and latest[0]["version"] >= 2, latest[0]
    # The 2000 event was scored (nothing lost) into an incident of its own.
    # .get: a multi-domain incident's other-domain detections carry no event_id for the
    # border agency (its agreement shares event ids of border detections only).
    old = [a for a in alerts if any(d.get("event_id") == ids["2000"] for d in a["detections"])]
    assert old and all(a["alert_id"] != incident for a in old)
    assert worker.proc.poll() is None
