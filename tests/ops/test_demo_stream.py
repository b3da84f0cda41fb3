"""The demo's stream keeps the shown agency busy: offline, through the worker's pipeline.

The first two minutes of exactly what ``watchfloor demo`` publishes
(``Simulator(seed=SEED, **STREAM)`` at the default rate, paced evenly, so event *i* goes
out ``i / rate`` seconds in) run through the in-process detector engines
(:func:`watchfloor.evaluation.runner.run_offline`) and the alert stage; an alert's demo
time is that of the event whose detection produced it.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

import orjson
import pytest

from tests.conftest import ROOT
from watchfloor.alerts.stage import AlertStage
from watchfloor.config import load_config
from watchfloor.evaluation.runner import run_offline
from watchfloor.ops import demo
from watchfloor.simulation import Simulator

RATE = 300.0  # `watchfloor demo`'s default --rate
WINDOW = 120.0  # seconds of demo time


@pytest.fixture(scope="module")
def cert_alerts() -> list[tuple[float, dict[str, Any]]]:
    """(demo seconds, alert) of every alert version delivered to the demo's agency."""
    n = round(RATE * demo.DURATION)
    stream = Simulator(seed=demo.SEED, **demo.STREAM).events(n)
    events = list(itertools.islice(stream, round(RATE * WINDOW)))
    at = {e["event_id"]: i / RATE for i, (_, e) in enumerate(events)}
    config = load_config(ROOT / "topics.yaml")
    stage = AlertStage(config, secrets.token_bytes(32))
    out = []
    for det in run_offline(events, ROOT / "topics.yaml"):
        for o in stage.process(det):
            if o.kind == "alert" and o.agency == "cert":
                out.append((at[det["event_id"]], orjson.loads(o.value)))
    return sorted(out, key=lambda x: x[0])


def test_a_multidomain_incident_reaches_the_shown_agency_within_two_minutes(
    cert_alerts: list[tuple[float, dict[str, Any]]],
) -> None:
    multi = [(t, a) for t, a in cert_alerts if len(a["domains"]) >= 2]
    assert multi, f"no multi-domain alert to cert in {WINDOW:.0f} s of the demo"
    t, alert = multi[0]
    assert t <= WINDOW
    assert {"network", "financial"} <= set(alert["domains"])
    # The linked case becomes one incident across all three domains.
    assert any(a["domains"] == ["border", "financial", "network"] for _, a in multi)


def test_the_shown_agency_gets_an_alert_at_least_every_30_seconds(
    cert_alerts: list[tuple[float, dict[str, Any]]],
) -> None:
    times = [0.0, *(t for t, _ in cert_alerts), WINDOW]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 30.0, (max(gaps), times)


def test_the_linked_cases_recur_with_fresh_entities() -> None:
    sim = Simulator(seed=demo.SEED, days=10, campaigns=3, linked=demo.STREAM["linked"])
    attacks: dict[str, list[dict[str, Any]]] = {}
    for _, e in sim.events(60_000):
        campaign = e["sim"]["campaign"] or ""
        if campaign.startswith("linked-"):
            attacks.setdefault(campaign, []).append(e)
    # Every three days from the start, the first attack 26 h in (the last one left out:
    # it would not end within the span).
    assert sorted(attacks) == ["linked-0", "linked-1", "linked-2"]
    threats = {c: {e["sim"]["threat"] for e in evs} for c, evs in attacks.items()}
    assert all(t == {"beaconing", "structuring", "stolen_document"} for t in threats.values())
    entities = [
        {e.get(f) for e in evs for f in ("src_ip", "account_id", "person_id")} - {None}
        for evs in attacks.values()
    ]
    assert all(not (a & b) for a, b in itertools.combinations(entities, 2)), entities
    assert len(threats) == 3 and Simulator(seed=demo.SEED, days=10, campaigns=3).linked == 0
