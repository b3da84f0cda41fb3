"""The engine: a detector that raises is counted and the event goes on to the others."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from prometheus_client import CollectorRegistry

from watchfloor.core.events import EXAMPLES
from watchfloor.detectors.base import Detector, Score
from watchfloor.detectors.engine import MAX_VERDICT_ENTITIES, DomainEngine, Slot
from watchfloor.streams.metrics import Metrics
from watchfloor.streams.pipeline import EventProcessor


class Faulty(Detector):
    """Raises on every event whose port is 22."""

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")

    def learn_one(self, event: Mapping[str, Any]) -> None:
        pass

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if event["dst_port"] == 22:
            raise ZeroDivisionError("bug in a plugin")
        return Score(0.0)


class Always(Detector):
    """Flags everything (a stand-in for a detector that works)."""

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")

    def __init__(self) -> None:
        self.seen = 0

    def learn_one(self, event: Mapping[str, Any]) -> None:
        self.seen += 1

    def score_one(self, event: Mapping[str, Any]) -> Score:
        return Score(1.0, "always", 1.0)


def test_a_raising_detector_is_counted_and_the_others_still_see_the_event() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, domains=["network"], detectors=["faulty", "always"])
    always = Always()

    def factory(domain: str) -> DomainEngine:
        return DomainEngine(
            domain,
            [
                Slot("faulty", Faulty(), 0.5, "ip", "src_ip", "faulty"),
                Slot("always", always, 0.5, "ip", "src_ip", "always"),
            ],
            on_error=lambda name, exc: metrics.detector_error_counter(name).inc(),
            on_detection=lambda name: metrics.detection_counter(name).inc(),
        )

    processor = EventProcessor(factory, metrics)
    events = [
        dict(EXAMPLES["network"], event_id=f"e{i}", dst_port=22 if i % 2 else 443)
        for i in range(10)
    ]
    records = [(orjson.dumps(e), None, "events.network", 0, i, 0.0) for i, e in enumerate(events)]
    detections, deadletters = processor.process("network", records)

    assert deadletters == []
    assert [d["event_id"] for d in detections] == [e["event_id"] for e in events]
    assert always.seen == 10
    sample = registry.get_sample_value
    assert sample("watchfloor_detector_errors_total", {"detector": "faulty"}) == 5
    assert sample("watchfloor_detections_total", {"detector": "always"}) == 10
    assert sample("watchfloor_events_total", {"domain": "network"}) == 10


class Naming(Detector):
    """Flags everything and names many other entities (a careless plugin)."""

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")

    def learn_one(self, event: Mapping[str, Any]) -> None:
        pass

    def score_one(self, event: Mapping[str, Any]) -> Score:
        others = (event["src_ip"], "", "10.9.9.9", "10.9.9.9", *(f"10.8.0.{i}" for i in range(99)))
        return Score(1.0, "names others", 1.0, others)


def test_entities_a_verdict_names_are_links_of_its_type_once_each_and_bounded() -> None:
    engine = DomainEngine("network", [Slot("naming", Naming(), 0.5, "ip", "src_ip", "naming")])
    (d,) = engine.process(dict(EXAMPLES["network"], _ts=1.8e9), 1.8e9)
    named = [lk for lk in d["links"] if lk["via"] == "naming"]
    ids = [lk["id"] for lk in named]
    # Not the entity itself, no empty id, no repeat, and at most the bound.
    assert ids[0] == "10.9.9.9" and len(ids) == len(set(ids)) == MAX_VERDICT_ENTITIES
    assert d["entity"]["id"] not in ids and all(lk["type"] == "ip" for lk in named)


def test_a_detector_from_an_older_release_without_a_new_parameter_starts_fresh() -> None:
    """A checkpoint written before ``AmountAnomaly`` had ``record_mid`` must not break the
    rebalance that restores it: the old detector is set aside, the configured one kept."""
    from watchfloor.detectors.financial_amount import AmountAnomaly

    old = AmountAnomaly()
    del old.record_mid, old.record_alarm  # what unpickling an older release gives
    current = AmountAnomaly()
    engine = DomainEngine(
        "financial", [Slot("amount_anomaly", current, 0.95, "account", "account_id", "x")]
    )
    assert engine.restore({"amount_anomaly": old}) == []
    assert engine.slots[0].detector is current


class Odd(Detector):
    """Flags everything; its verdict's ``entities`` is whatever the test sets."""

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    others: Any = ()

    def learn_one(self, event: Mapping[str, Any]) -> None:
        pass

    def score_one(self, event: Mapping[str, Any]) -> Score:
        return Score(1.0, "odd", 1.0, self.others)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_odd_verdict_entities_name_nothing_and_never_lose_the_detection() -> None:
    import itertools

    for others, expected in [
        (5, []),
        ("10.0.0.1", []),  # a string is not a list of characters
        ([Unprintable(), None, True, "10.7.7.7"], ["10.7.7.7"]),
        (itertools.repeat("10.7.7.7"), []),  # not a tuple or list: never iterated
        (("10.7.7.7",) * 10_000, ["10.7.7.7"]),
    ]:
        det = Odd()
        det.others = others
        engine = DomainEngine("network", [Slot("odd", det, 0.5, "ip", "src_ip", "odd")])
        (d,) = engine.process(dict(EXAMPLES["network"], _ts=1.8e9), 1.8e9)
        assert [lk["id"] for lk in d["links"] if lk["via"] == "odd"] == expected, others
