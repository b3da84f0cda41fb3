"""Run a domain's configured detectors over events and emit detections.

Plain Python, no Faust: the Faust agent hands in decoded events, the engine returns
detection dicts ready to publish on the internal detections topic, keyed by entity.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from watchfloor.config import Config
from watchfloor.core.decoding import MAX_STR, InvalidEvent
from watchfloor.core.events import ENTITY_FIELDS, JURISDICTION_FIELDS, LINK_FIELDS
from watchfloor.detectors.base import _MISSING, Detector
from watchfloor.detectors.registry import Registered, build, discover

_NONE: tuple[dict[str, Any], ...] = ()
# The pseudo-domain of the second, re-keyed scoring stage (see RekeyedEngine).
REKEYED = "rekeyed"
# ``Detector.keyed_by`` for state over the whole domain.
WHOLE_DOMAIN = "*"
# A detector's reason goes into every alert version of its incident; a reason quoting a
# hostile field must not grow alerts past the broker's message limit.
MAX_REASON = 1000
# Entities a verdict may name besides its own (``Score.entities``): the alert lists them.
# Below the correlator's neighbours per entity (16), so the event's own links (device,
# person, the payment's other end) are never pushed out by them.
MAX_VERDICT_ENTITIES = 8


def cap_text(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was cut.

    >>> cap_text("x" * 1005)[-11:]
    'x…(+5 more)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} more)"


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

    Event time is trusted only as far as the broker's clock allows: the engine's
    ``watermark`` is the latest event time seen, each clamped to its arrival time plus
    ``max_future_seconds``, so one outlier cannot push it far. An event older than the
    watermark by more than ``max_lateness_seconds`` is scored but not learnt: a sensor
    replaying a date from 2000 cannot move the detectors' clocks or windows.
    """

    def __init__(
        self,
        domain: str,
        slots: Sequence[Slot],
        on_error: Callable[[str, BaseException], None] | None = None,
        on_detection: Callable[[str], None] | None = None,
        *,
        max_future_seconds: float = 300.0,
        max_lateness_seconds: float = float("inf"),
    ) -> None:
        self.domain = domain
        self.slots = tuple(slots)
        self.max_future = float(max_future_seconds)
        self.max_lateness = float(max_lateness_seconds)
        self.watermark = float("-inf")
        self.late = 0  # events scored but not learnt because they were too late
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
            if old is None or type(old) is not type(slot.detector):
                continue
            params = old._get_params()
            # A parameter the old release did not have is a mismatch (not equal to the
            # same missing parameter of a plugin that stores it elsewhere).
            if (
                all(v is not _MISSING for v in params.values())
                and params == slot.detector._get_params()
            ):
                slot.detector = old
                restored.append(slot.name)
        return restored

    def _is_late(self, event: Mapping[str, Any], arrival: float) -> bool:
        """Advance the watermark with ``event``; True if the event is too late to learn."""
        t = event["_ts"]
        clock = t if arrival <= 0 else min(t, arrival + self.max_future)
        if clock > self.watermark:
            self.watermark = clock
            return False
        if t < self.watermark - self.max_lateness:
            self.late += 1
            return True
        return False

    def learn(self, event: Mapping[str, Any], arrival: float = 0.0) -> None:
        """Learn one event without scoring it (state replay after a restore)."""
        if self._is_late(event, arrival):
            return
        for slot in self.slots:
            try:
                slot.detector.learn_one(event)
            except Exception as exc:
                self._on_error(slot.name, exc)

    def process(self, event: Mapping[str, Any], arrival: float) -> Sequence[dict[str, Any]]:
        """Score then learn one event; return its detections (usually none)."""
        # Most events detect nothing: they share one empty tuple instead of a new list.
        found: list[dict[str, Any]] | None = None
        learn = not self._is_late(event, arrival)
        for slot in self.slots:
            det = slot.detector
            try:
                verdict = det.score_one(event)
                if learn:
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
            # The field the detection is keyed by is its entity, not a link of it.
            if f != slot.entity_field and event.get(f) not in (None, "")
        ]
        # Entities the verdict names (a plugin's verdict may be any object with a score):
        # a tuple or list of ids, a few of them read; anything else names none.
        others = getattr(verdict, "entities", ())
        if others and isinstance(others, (tuple, list)):
            seen = {entity_id, *(lk["id"] for lk in links if lk["type"] == slot.entity_type)}
            room = MAX_VERDICT_ENTITIES
            for other in others[: 4 * MAX_VERDICT_ENTITIES]:
                if not isinstance(other, (str, int)) or isinstance(other, bool):
                    continue
                other = str(other)[:MAX_STR]
                if other and other not in seen:
                    seen.add(other)
                    links.append({"type": slot.entity_type, "id": other, "via": slot.name})
                    room -= 1
                    if not room:
                        break
        return {
            "detector": slot.name,
            "kind": slot.kind,
            "domain": self.domain,
            "event_id": event["event_id"],
            "score": round(float(verdict.score), 6),
            "raw": float(verdict.raw),
            "reason": cap_text(str(verdict.reason)),
            "ts": event["ts"],
            "event_time": event["_ts"],
            "arrival": arrival,
            "entity": {"type": slot.entity_type, "id": entity_id},
            "links": links,
            "jurisdiction": event.get(self._jurisdiction),
            # An injected exercise event: its alerts are labelled and kept apart.
            **({"exercise": event["exercise"]} if "exercise" in event else {}),
        }


def state_field(detector: Detector) -> str:
    """The event field ``detector``'s state is keyed by (``"*"``: the whole domain)."""
    return detector.keyed_by or detector.entity[1]


def stage_name(domain: str, field: str) -> str:
    """The re-keyed stage of ``domain``'s detectors keyed by ``field``: "network/dst_ip"."""
    return f"{domain}/{field}"


class RekeyedEngine:
    """The second scoring stage: the detectors whose state is keyed by another field than
    the one input is partitioned by (``Detector.keyed_by``), one :class:`DomainEngine` per
    (domain, field) stage.

    Input partitions by the entity field (``src_ip``, ``account_id``, ``document_id``), so
    with three partitions a detector keyed by ``dst_ip`` would see a third of the flows to
    a destination: a DDoS from 36 sources was missed. The first stage republishes every
    valid event to the re-keyed topic, keyed by the field, with the stage's name and the
    event's broker arrival time (:meth:`envelope`); this engine, one per partition of that
    topic, scores it with the stage's detectors. The whole-domain stage (``"*"``) has one
    key, so one partition holds the domain's whole payment graph.
    """

    def __init__(self, engines: Mapping[str, DomainEngine]) -> None:
        self.engines = dict(engines)

    @staticmethod
    def head(stage: str) -> bytes:
        """The constant start of ``stage``'s re-keyed records; a record is
        ``head + orjson.dumps(arrival) + b',"e":' + event JSON + b"}"``.

        >>> import orjson
        >>> RekeyedEngine.head("network/dst_ip") + b"1.5" + b',"e":' + b'{"x":1}' + b"}"
        b'{"s":"network/dst_ip","a":1.5,"e":{"x":1}}'
        """
        return orjson.dumps({"s": stage})[:-1] + b',"a":'

    @staticmethod
    def pack(records: Sequence[bytes]) -> bytes:
        """One Kafka record holding several re-keyed records (a JSON array), so the first
        stage produces one record per partition per batch instead of one per event.

        >>> RekeyedEngine.pack([b'{"s":"x","a":1,"e":{}}', b'{"s":"x","a":2,"e":{}}'])
        b'[{"s":"x","a":1,"e":{}},{"s":"x","a":2,"e":{}}]'
        """
        return b"[" + b",".join(records) + b"]"

    @staticmethod
    def items(value: bytes | None) -> list[Any]:
        """The re-keyed records (parsed) in one Kafka record: a pack's, or the record
        itself (as a worker before packs wrote it)."""
        try:
            rec = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            raise InvalidEvent("not_json", "re-keyed record is not JSON") from None
        return rec if isinstance(rec, list) else [rec]

    def check(self, rec: Any) -> tuple[DomainEngine, dict[str, Any], float]:
        """(stage engine, event, arrival) of a re-keyed record (an item of :meth:`items`);
        InvalidEvent if it is not one (only workers write the topic, but a record must
        not stop the stage)."""
        if not isinstance(rec, dict):
            raise InvalidEvent("not_object", "re-keyed record is not an object")
        engine = self.engines.get(rec.get("s"))  # type: ignore[arg-type]
        event, arrival = rec.get("e"), rec.get("a")
        if engine is None:
            raise InvalidEvent("bad_value", "re-keyed record names no stage of this worker")
        if not isinstance(event, dict) or not isinstance(event.get("_ts"), float):
            raise InvalidEvent("bad_value", "re-keyed record holds no decoded event")
        if not isinstance(arrival, (int, float)):
            raise InvalidEvent("bad_value", "re-keyed record has no arrival time")
        return engine, event, float(arrival)

    def process_item(self, rec: Any) -> Sequence[dict[str, Any]]:
        engine, event, arrival = self.check(rec)
        return engine.process(event, arrival)

    def learn_item(self, rec: Any) -> None:
        engine, event, arrival = self.check(rec)
        engine.learn(event, arrival)

    def snapshot(self) -> dict[str, dict[str, Detector]]:
        return {stage: engine.snapshot() for stage, engine in self.engines.items()}

    def restore(self, state: Mapping[str, Mapping[str, Detector]]) -> list[str]:
        restored = []
        for stage, engine in self.engines.items():
            restored += [f"{stage}:{n}" for n in engine.restore(state.get(stage, {}))]
        return restored


def _with_site(
    params: dict[str, Any], entry: Registered | None, config: Config
) -> dict[str, Any]:
    """``params`` plus the site's internal ranges (``site.internal`` in topics.yaml) for a
    detector taking ``internal_networks``, unless its own params set them."""
    site = config.site.internal
    if site is None or entry is None or "internal_networks" in params:
        return params
    if "internal_networks" in inspect.signature(entry.cls.__init__).parameters:
        params["internal_networks"] = tuple(site)
    return params


def build_engine(
    config: Config,
    domain: str,
    registry: Mapping[str, Registered],
    on_error: Callable[[str, BaseException], None] | None = None,
    on_detection: Callable[[str], None] | None = None,
    keyed_by: str | None = None,
) -> DomainEngine:
    """A fresh engine for one domain as ``topics.yaml`` configures it: its detectors whose
    state is keyed by ``keyed_by`` (default: the field input is partitioned by)."""
    wanted = keyed_by or ENTITY_FIELDS[domain][1]
    slots = []
    for spec in config.detectors_for(domain):
        params = _with_site(dict(spec.params), registry.get(spec.name), config)
        det = build(spec.name, domain, params, dict(registry))
        if state_field(det) != wanted:
            continue
        etype, efield = det.entity
        slots.append(Slot(spec.name, det, spec.threshold, etype, efield, det.kind or spec.name))
    return DomainEngine(
        domain,
        slots,
        on_error,
        on_detection,
        max_future_seconds=config.time.max_future_seconds,
        max_lateness_seconds=config.time.max_lateness_seconds,
    )


def rekeyed_stages(
    config: Config, registry: Mapping[str, Registered]
) -> dict[str, tuple[str, str]]:
    """Stage name -> (domain, field) for every configured detector keyed by another field
    than its domain's input key, in configuration order."""
    stages: dict[str, tuple[str, str]] = {}
    for domain in config.input_topics:
        for spec in config.detectors_for(domain):
            params = _with_site(dict(spec.params), registry.get(spec.name), config)
            field = state_field(build(spec.name, domain, params, dict(registry)))
            if field != ENTITY_FIELDS[domain][1]:
                stages.setdefault(stage_name(domain, field), (domain, field))
    return stages


def build_rekeyed_engine(
    config: Config,
    stages: Mapping[str, tuple[str, str]],
    registry: Mapping[str, Registered],
    on_error: Callable[[str, BaseException], None] | None = None,
    on_detection: Callable[[str], None] | None = None,
) -> RekeyedEngine:
    """A fresh second-stage engine (one per partition of the re-keyed topic)."""
    return RekeyedEngine(
        {
            name: build_engine(config, domain, registry, on_error, on_detection, keyed_by=field)
            for name, (domain, field) in stages.items()
        }
    )


def check_detectors(config: Config, registry: Mapping[str, Registered]) -> None:
    """Every configured detector is installed: else DetectorConfigError naming its place
    in topics.yaml and the nearest installed name."""
    import difflib

    from watchfloor.detectors.registry import DetectorConfigError

    for domain in config.input_topics:
        for k, spec in enumerate(config.detectors_for(domain)):
            if spec.name in registry:
                continue
            close = difflib.get_close_matches(spec.name, list(registry), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DetectorConfigError(
                f"detectors.{domain}[{k}].name: {spec.name!r} is not installed; {hint}"
                f"installed: {', '.join(sorted(registry)) or '(none)'}"
            )


def build_engines(
    config: Config,
    registry: Mapping[str, Registered] | None = None,
    on_error: Callable[[str, BaseException], None] | None = None,
    on_detection: Callable[[str], None] | None = None,
) -> dict[str, DomainEngine]:
    """One engine per domain from ``topics.yaml``; raises DetectorConfigError at start."""
    registry = dict(discover() if registry is None else registry)
    check_detectors(config, registry)
    return {
        domain: build_engine(config, domain, registry, on_error, on_detection)
        for domain in config.input_topics
    }
