"""Run a domain's configured detectors over events and emit detections.

Plain Python, no Faust: the Faust agent hands in decoded events, the engine returns
detection dicts ready to publish on the internal detections topic, keyed by entity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchfloor.config import Config
from watchfloor.core.events import JURISDICTION_FIELDS, LINK_FIELDS
from watchfloor.detectors.base import Detector
from watchfloor.detectors.registry import Registered, build, discover

_NONE: tuple[dict[str, Any], ...] = ()


@dataclass
class Slot:
    name: str
    detector: Detector
    threshold: float
    entity_type: str
    entity_field: str
    kind: str


class DomainEngine:
    """Score each event with every detector of one domain, then let each learn it.

    A detector that raises is reported through ``on_error(name)`` and skipped for that
    event; the other detectors still see it.
    """

    def __init__(
        self,
        domain: str,
        slots: Sequence[Slot],
        on_error: Callable[[str, BaseException], None] | None = None,
        on_detection: Callable[[str], None] | None = None,
    ) -> None:
        self.domain = domain
        self.slots = tuple(slots)
        self._on_error = on_error or (lambda name, exc: None)
        self._on_detection = on_detection or (lambda name: None)
        self._links = tuple(LINK_FIELDS.get(domain, {}).items())
        self._jurisdiction = JURISDICTION_FIELDS.get(domain, "")

    def snapshot(self) -> dict[str, Detector]:
        """The detectors' learnt state, by configured name (picklable)."""
        return {slot.name: slot.detector for slot in self.slots}

    def restore(self, detectors: Mapping[str, Detector]) -> list[str]:
        """Adopt restored detectors whose class and parameters still match the
        configuration; return the names restored (the others start fresh)."""
        restored = []
        for slot in self.slots:
            old = detectors.get(slot.name)
            if (
                old is not None
                and type(old) is type(slot.detector)
                and old._get_params() == slot.detector._get_params()
            ):
                slot.detector = old
                restored.append(slot.name)
        return restored

    def learn(self, event: Mapping[str, Any]) -> None:
        """Learn one event without scoring it (state replay after a restore)."""
        for slot in self.slots:
            try:
                slot.detector.learn_one(event)
            except Exception as exc:
                self._on_error(slot.name, exc)

    def process(self, event: Mapping[str, Any], arrival: float) -> Sequence[dict[str, Any]]:
        """Score then learn one event; return its detections (usually none)."""
        # Most events detect nothing: they share one empty tuple instead of a new list.
        found: list[dict[str, Any]] | None = None
        for slot in self.slots:
            det = slot.detector
            try:
                verdict = det.score_one(event)
                det.learn_one(event)
            except Exception as exc:  # a faulty detector must not stop the others
                self._on_error(slot.name, exc)
                continue
            if verdict.score >= slot.threshold:
                entity_id = event.get(slot.entity_field)
                if entity_id is None:
                    continue
                if found is None:
                    found = []
                found.append(self._detection(slot, event, verdict, str(entity_id), arrival))
                self._on_detection(slot.name)
        return _NONE if found is None else found

    def _detection(
        self, slot: Slot, event: Mapping[str, Any], verdict: Any, entity_id: str, arrival: float
    ) -> dict[str, Any]:
        links = [
            {"type": etype, "id": str(event[f]), "via": f}
            for f, etype in self._links
            if event.get(f) not in (None, "")
        ]
        return {
            "detector": slot.name,
            "kind": slot.kind,
            "domain": self.domain,
            "event_id": event["event_id"],
            "score": round(float(verdict.score), 6),
            "raw": float(verdict.raw),
            "reason": verdict.reason,
            "ts": event["ts"],
            "event_time": event["_ts"],
            "arrival": arrival,
            "entity": {"type": slot.entity_type, "id": entity_id},
            "links": links,
            "jurisdiction": event.get(self._jurisdiction),
        }


def build_engine(
    config: Config,
    domain: str,
    registry: Mapping[str, Registered],
    on_error: Callable[[str, BaseException], None] | None = None,
    on_detection: Callable[[str], None] | None = None,
) -> DomainEngine:
    """A fresh engine for one domain as ``topics.yaml`` configures it."""
    slots = []
    for spec in config.detectors_for(domain):
        det = build(spec.name, domain, dict(spec.params), dict(registry))
        etype, efield = det.entity
        slots.append(Slot(spec.name, det, spec.threshold, etype, efield, det.kind or spec.name))
    return DomainEngine(domain, slots, on_error, on_detection)


def build_engines(
    config: Config,
    registry: Mapping[str, Registered] | None = None,
    on_error: Callable[[str, BaseException], None] | None = None,
    on_detection: Callable[[str], None] | None = None,
) -> dict[str, DomainEngine]:
    """One engine per domain from ``topics.yaml``; raises DetectorConfigError at start."""
    registry = dict(discover() if registry is None else registry)
    return {
        domain: build_engine(config, domain, registry, on_error, on_detection)
        for domain in config.input_topics
    }
