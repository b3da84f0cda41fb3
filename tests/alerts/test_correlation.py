"""Correlator: windows, stable ids, versions, suppression, escalation, links, bounds."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from watchfloor.alerts.correlation import MAX_DETECTIONS, Correlator, severity_for
from watchfloor.config import CorrelationSpec
from watchfloor.core.decoding import InvalidEvent

Det = Callable[..., dict[str, Any]]
T0 = 1_790_000_000.0  # as in conftest
SPEC = CorrelationSpec(window_seconds=3600, cooldown_seconds=300, multi_domain_boost=0.15)


def test_same_entity_within_window_joins_one_incident(det: Det) -> None:
    c = Correlator(SPEC)
    a1 = c.add(det(t=T0))
    a2 = c.add(det(detector="beaconing", t=T0 + 1800))
    assert a1 is not None and a2 is not None
    assert a2["alert_id"] == a1["alert_id"]
    assert [d["detector"] for d in a2["detections"]] == ["port_scan", "beaconing"]
    assert c.counters["incidents_opened"] == 1


def test_window_is_a_session_gap(det: Det) -> None:
    c = Correlator(SPEC)
    first = c.add(det(t=T0))
    # Each detection is within the window of the previous one: still the same incident.
    later = c.add(det(detector="beaconing", t=T0 + 3000))
    later2 = c.add(det(detector="exfiltration", t=T0 + 6000))
    assert first and later and later2
    assert later2["alert_id"] == first["alert_id"]
    # A gap longer than the window opens a new incident.
    fresh = c.add(det(t=T0 + 6000 + 3601))
    assert fresh is not None and fresh["alert_id"] != first["alert_id"]
    assert fresh["version"] == 1


def test_alert_id_is_stable_across_instances_and_keys_matter(det: Det) -> None:
    stream = [det(t=T0), det(detector="beaconing", t=T0 + 10), det("ip:10.9.9.9", t=T0 + 20)]
    ids_a = [c["alert_id"] for c in map(Correlator(SPEC, id_key=b"k1").add, stream) if c]
    ids_b = [c["alert_id"] for c in map(Correlator(SPEC, id_key=b"k1").add, stream) if c]
    ids_c = [c["alert_id"] for c in map(Correlator(SPEC, id_key=b"k2").add, stream) if c]
    assert ids_a == ids_b
    assert ids_a != ids_c
    assert ids_a[0] == ids_a[1] != ids_a[2]
    assert all(i.startswith("wf-") and len(i) == 27 for i in ids_a)


def test_versions_and_timestamps(det: Det) -> None:
    c = Correlator(SPEC)
    a1 = c.add(det(t=T0))
    a2 = c.add(det(detector="beaconing", t=T0 + 61.25))
    assert a1 and a2
    assert (a1["version"], a2["version"]) == (1, 2)
    assert a1["created_at"] == a1["updated_at"] == "2026-09-21T14:13:20.000Z"
    assert a2["created_at"] == a1["created_at"]
    assert a2["updated_at"] == "2026-09-21T14:14:21.250Z"
    assert a2["kind"] == "alert"


def test_repeat_of_detector_within_cooldown_is_suppressed(det: Det) -> None:
    c = Correlator(SPEC)
    assert c.add(det(t=T0)) is not None
    assert c.add(det(t=T0 + 299)) is None
    assert c.add(det(t=T0 + 120)) is None
    # Another detector on the same entity is news; the same detector on another entity too.
    assert c.add(det(detector="beaconing", t=T0 + 10)) is not None
    assert c.add(det("ip:10.0.0.2", t=T0 + 10)) is not None
    again = c.add(det(t=T0 + 300))
    assert again is not None and again["version"] == 3
    assert c.counters["suppressed"] == 2


def test_replayed_duplicate_is_suppressed_even_without_cooldown(det: Det) -> None:
    c = Correlator(replace(SPEC, cooldown_seconds=0))
    d = det(t=T0)
    assert c.add(d) is not None
    assert c.add(d) is None
    assert c.add(det(t=T0 + 1)) is not None


def test_suppressed_detections_keep_incident_open(det: Det) -> None:
    c = Correlator(replace(SPEC, window_seconds=600, cooldown_seconds=500))
    a = c.add(det(t=T0))
    for k in range(1, 6):  # every 400 s: within cooldown of the last *alerted* one or not
        c.add(det(t=T0 + 400 * k))
    b = c.add(det(detector="beaconing", t=T0 + 2100))
    assert a and b and b["alert_id"] == a["alert_id"]


def test_multi_domain_escalation(det: Det) -> None:
    c = Correlator(SPEC)
    a = c.add(det("account:A1", "structuring", "financial", score=0.9, links=("ip:10.0.0.1",)))
    assert a and (a["severity"], a["score"], a["domains"]) == ("high", 0.9, ["financial"])
    b = c.add(det("ip:10.0.0.1", "port_scan", "network", t=T0 + 5, score=0.5))
    assert b and b["alert_id"] == a["alert_id"]
    # noisy-OR 1 - 0.1 * 0.5 = 0.95, + 0.15 for the second domain, capped at 1
    assert b["score"] == 1.0 and b["severity"] == "critical"
    assert b["domains"] == ["financial", "network"]


def test_three_domains_are_critical_whatever_the_scores() -> None:
    assert severity_for(0.3, 3) == "critical"
    assert severity_for(0.3, 2) == "high"
    assert severity_for(0.96, 1) == "high"
    assert severity_for(0.97, 1) == "critical"


def test_repeats_of_one_detector_do_not_escalate(det: Det) -> None:
    c = Correlator(replace(SPEC, cooldown_seconds=0))
    alerts = [c.add(det(t=T0 + i, score=0.9)) for i in range(10)]
    assert all(a and a["severity"] == "high" and a["score"] == 0.9 for a in alerts)


def test_detector_weights_lower_the_score(det: Det) -> None:
    c = Correlator(SPEC)
    c.weights["port_scan"] = 0.5
    a = c.add(det(score=0.9))
    assert a and a["score"] == 0.45 and a["severity"] == "low"


def test_linked_entity_joins_incident_in_both_directions(det: Det) -> None:
    c = Correlator(SPEC)
    net = c.add(det("ip:10.0.0.1", links=("account:A1",)))
    fin = c.add(det("account:A1", "fan_out", "financial", t=T0 + 60))
    assert net and fin and fin["alert_id"] == net["alert_id"]
    assert {e["id"] for e in fin["entities"]} == {"10.0.0.1", "A1"}
    assert fin["links"] == [
        {
            "a": {"type": "ip", "id": "10.0.0.1"},
            "b": {"type": "account", "id": "A1"},
            "via": "account_id",
        }
    ]
    # Reverse: the later detection carries the link to the earlier entity.
    c2 = Correlator(SPEC)
    doc = c2.add(det("document:P1", "watchlist", "border"))
    per = c2.add(det("ip:10.1.1.1", t=T0 + 30, links=("document:P1",)))
    assert doc and per and per["alert_id"] == doc["alert_id"]
    assert c2.counters["joined_via_link"] == 1


def test_unlinked_entities_stay_apart_and_type_matters(det: Det) -> None:
    c = Correlator(SPEC)
    a = c.add(det("ip:X"))
    b = c.add(det("account:X", "fan_out", "financial"))
    assert a and b and a["alert_id"] != b["alert_id"]


def test_link_outside_window_does_not_join(det: Det) -> None:
    c = Correlator(SPEC)
    a = c.add(det("ip:10.0.0.1", links=("account:A1",)))
    b = c.add(det("account:A1", "fan_out", "financial", t=T0 + 7200))
    assert a and b and a["alert_id"] != b["alert_id"]


def test_incident_detections_are_bounded(det: Det) -> None:
    c = Correlator(replace(SPEC, cooldown_seconds=0))
    n = MAX_DETECTIONS + 10
    last = None
    for i in range(n):
        last = c.add(det(t=T0 + i, event_id=f"e{i}"))
    assert last is not None
    assert len(last["detections"]) == MAX_DETECTIONS
    assert last["detections_omitted"] == 10
    assert last["detections"][-1]["event_id"] == f"e{n - 1}"  # the most recent are kept
    assert last["version"] == n


def test_state_is_bounded_with_200k_distinct_entities(det: Det) -> None:
    spec = CorrelationSpec(max_incidents=1000, max_links=2000)
    c = Correlator(spec)
    for i in range(200_000):
        c.add(
            det(
                f"ip:10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                t=T0 + i * 0.01,
                links=(f"account:A{i}", f"person:P{i}"),
            )
        )
    sizes = c.sizes()
    assert sizes["incidents"] <= 1000
    assert sizes["entities"] <= 1000
    assert sizes["cooldowns"] <= 1000
    assert sizes["links"] <= 2000
    assert c.counters["incidents_opened"] == 200_000
    assert c.counters["incidents_evicted"] > 0 and c.counters["links_evicted"] > 0


def test_hub_entity_neighbours_are_bounded(det: Det) -> None:
    c = Correlator(SPEC)
    for i in range(1000):
        c.add(det(f"account:A{i}", "fan_out", "financial", t=T0 + i, links=("ip:10.0.0.254",)))
    assert len(c._links.get("ip:10.0.0.254") or []) <= 16


def test_pickle_round_trip_mid_stream_gives_same_next_alert(det: Det) -> None:
    stream = [
        det("ip:10.0.0.1", t=T0, links=("account:A1",)),
        det("account:A1", "fan_out", "financial", t=T0 + 10),
        det("ip:10.0.0.1", "beaconing", t=T0 + 20),
        det("ip:10.0.0.1", t=T0 + 30),  # suppressed
        det("document:P9", "watchlist", "border", t=T0 + 40, links=("account:A1",)),
    ]
    c = Correlator(SPEC, id_key=b"k")
    for d in stream[:3]:
        c.add(d)
    restored: Correlator = pickle.loads(pickle.dumps(c))
    for d in stream[3:]:
        assert restored.add(d) == c.add(d)
    assert restored.counters == c.counters


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ({"entity": None}, "missing_field"),
        ({"event_time": "yesterday"}, "wrong_type"),
        ({"score": 1.5}, "bad_value"),
        ({"entity": {"type": "ip", "id": 7}}, "wrong_type"),
    ],
)
def test_malformed_detection_raises_invalid_event(det: Det, patch: dict, code: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        Correlator(SPEC).add({**det(), **patch})
    assert err.value.code == code


def test_malformed_links_are_skipped(det: Det) -> None:
    d = det()
    d["links"] = [None, {"type": "account"}, {"type": "account", "id": "A1", "via": "x"}]
    a = Correlator(SPEC).add(d)
    assert a and [link["b"]["id"] for link in a["links"]] == ["A1"]


def test_detections_join_through_a_link_only_entity() -> None:
    c = Correlator(CorrelationSpec())
    person = [{"type": "person", "id": "P1", "via": "person_id"}]
    a = c.add(
        {
            "detector": "structuring",
            "domain": "financial",
            "event_id": "f1",
            "score": 0.95,
            "event_time": 1700000000.0,
            "entity": {"type": "account", "id": "A1"},
            "links": person,
        }
    )
    b = c.add(
        {
            "detector": "lost_stolen_document",
            "domain": "border",
            "event_id": "b1",
            "score": 1.0,
            "event_time": 1700000600.0,
            "entity": {"type": "document", "id": "D1"},
            "links": person,
        }
    )
    assert a is not None and b is not None
    assert b["alert_id"] == a["alert_id"]
    assert b["version"] == 2 and b["domains"] == ["border", "financial"]


def test_updated_at_never_goes_back_when_an_older_detection_joins() -> None:
    c = Correlator(CorrelationSpec())
    first = c.add(
        {
            "detector": "port_scan",
            "domain": "network",
            "event_id": "n1",
            "score": 0.95,
            "event_time": 1700000600.0,
            "entity": {"type": "ip", "id": "10.0.0.1"},
            "links": [],
        }
    )
    late = c.add(
        {
            "detector": "beaconing",
            "domain": "network",
            "event_id": "n0",
            "score": 0.95,
            "event_time": 1700000000.0,
            "entity": {"type": "ip", "id": "10.0.0.1"},
            "links": [],
        }
    )
    assert first is not None and late is not None
    assert late["version"] == 2 and late["alert_id"] == first["alert_id"]
    assert late["updated_at"] == first["updated_at"]
    assert late["created_at"] < first["created_at"]


# -- event-time attacks (issue 9 item 4) ---------------------------------------------------

Y2099 = 4_070_908_800.0  # 2099-01-01
Y2000 = 946_771_200.0  # 2000-01-02


def test_a_detection_dated_2099_does_not_expire_open_incidents(det: Det) -> None:
    c = Correlator(SPEC)
    opened = [c.add(det(f"ip:10.0.1.{i}", t=T0)) for i in range(20)]
    assert all(opened) and c.open_incidents == 20
    # The probe's event: accepted somewhere upstream, arriving now but dated 2099.
    c.add(det("ip:10.66.6.6", detector="beaconing", t=Y2099, arrival=T0 + 1))
    assert c.open_incidents == 21, "every open incident was expired"
    assert c.watermark <= T0 + 1 + c.max_future
    later = c.add(det("ip:10.0.1.3", detector="beaconing", t=T0 + 60))
    assert later is not None and later["alert_id"] == opened[3]["alert_id"]


def test_a_detection_dated_2000_does_not_take_over_an_entity_incident(det: Det) -> None:
    c = Correlator(SPEC)
    doc = "document:P0008842"
    first = c.add(det(doc, detector="lost_stolen_document", domain="border", t=T0))
    old = c.add(det(doc, detector="watchlist", domain="border", t=Y2000, arrival=T0 + 5))
    assert first and old
    # Nothing is lost: the old detection is its own incident ...
    assert old["alert_id"] != first["alert_id"]
    # ... but the document's current incident is still the one that gets new evidence.
    nxt = c.add(det(doc, detector="impossible_travel", domain="border", t=T0 + 120))
    assert nxt is not None and nxt["alert_id"] == first["alert_id"]
    assert [d["detector"] for d in nxt["detections"]] == [
        "lost_stolen_document",
        "impossible_travel",
    ]


def test_an_old_detection_does_not_reset_a_cooldown(det: Det) -> None:
    c = Correlator(SPEC)
    assert c.add(det(t=T0)) is not None
    assert c.add(det(t=Y2000, arrival=T0 + 1)) is not None  # far outside the cooldown
    # A repeat within the cooldown of the real one is still suppressed.
    assert c.add(det(t=T0 + 30)) is None


def test_correlators_checkpointed_before_the_watermark_restore(det: Det) -> None:
    c = Correlator(SPEC)
    c.add(det(t=T0))
    state = c.__dict__.copy()
    for name in ("watermark", "max_future"):
        state.pop(name)
    old = Correlator.__new__(Correlator)
    old.__dict__.update(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.add(det(detector="beaconing", t=T0 + 10)) is not None


def test_reasons_are_cut_with_a_marker(det: Det) -> None:
    c = Correlator(SPEC)
    alert = c.add({**det(t=T0), "reason": "r" * 5000})
    assert alert is not None
    reason = alert["detections"][0]["reason"]
    assert reason.endswith("…(+4000 more)") and len(reason) < 1100


def test_a_nested_value_in_a_detection_cannot_poison_its_incident(det: Det) -> None:
    import orjson

    c = Correlator(SPEC)
    deep: Any = []
    for _ in range(600):
        deep = [deep]
    alert = c.add({**det(t=T0), "reason": deep, "ts": {"a": deep}, "jurisdiction": [deep]})
    assert alert is not None
    orjson.dumps(alert)  # every later version of the incident stays publishable
    with pytest.raises(InvalidEvent):
        c.add({**det(detector="beaconing", t=T0 + 5), "event_id": deep})
