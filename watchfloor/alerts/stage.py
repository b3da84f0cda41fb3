"""The alerts stage: detection in, messages out (alerts, deconfliction notices, audit).

Plain Python: the Faust agent reading the detections topic calls :meth:`AlertStage.process`
for each detection and publishes every returned :class:`Outgoing`. Delivery contract:
**publish all Outgoing of a detection (and wait for the broker's acks) before committing
that detection's input offset.** After a crash the detection is read again; alert ids are
deterministic and a replayed duplicate is suppressed by the correlator (or, if the
checkpoint predates it, produces the same alert id and version again), so agencies may see
a version twice but never miss one; they deduplicate on (alert_id, version).

State to checkpoint: :meth:`AlertStage.state` (picklable; holds no master key). Restore
with ``AlertStage(config, key, state=...)``; the audit chain can also be continued from
the last published audit record with ``AuditChain.from_last``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import orjson

from watchfloor.alerts.agreements import check_key
from watchfloor.alerts.audit import AuditChain
from watchfloor.alerts.correlation import Correlator
from watchfloor.alerts.deconfliction import Deconflictor
from watchfloor.alerts.feedback import ResponseTracker, apply_feedback
from watchfloor.alerts.routing import Router
from watchfloor.config import Config
from watchfloor.core.decoding import InvalidEvent

# What a deconfliction notice discloses, for its audit record.
NOTICE_FIELDS = ("others.agency", "others.alert_id")
# Largest alert payload published: half the broker's default 1 MiB message limit, leaving
# room for the record's envelope and for brokers configured tighter than the default.
MAX_ALERT_BYTES = 512 * 1024


#: The severity an exercise delivery is tracked under: no response metric has it.
EXERCISE = "exercise"


class Outgoing(NamedTuple):
    """One message to publish.

    ``kind`` is "alert", "notice" or "audit"; ``agency`` and ``severity`` are metric labels
    (the recipient and the alert's severity); ``arrival`` is the Kafka arrival time (epoch
    s) of the detection that produced this alert version, for the end-to-end latency
    metric (the earliest arrival of the evidence this version is news about);
    ``exercise`` the exercise id of an injected alert (kept out of the metrics).
    """

    topic: str
    key: bytes
    value: bytes
    kind: str
    agency: str
    severity: str
    arrival: float
    exercise: str | None = None


class AlertStage:
    """Correlate, route under agreements, deconflict and audit.

    ``key`` is the pseudonymisation master key (>= 16 bytes); only sub-keys derived from
    it are kept. ``clock`` gives the wall-clock time of audit records and publications.
    """

    def __init__(
        self,
        config: Config,
        key: bytes,
        *,
        chain: str = "alerts-0",
        state: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = check_key(key)
        self.config = config
        self.router = Router(config.agencies, key)
        self._agreement = {a.name: a.agreement.name for a in config.agencies}
        self._topic = {a.name: a.topic for a in config.agencies}
        self.audit_topic = config.topic("audit").name
        self.published_topic = config.topic("published").name
        self._clock = clock
        if state is None:
            corr = config.correlation
            id_key = hmac.digest(key, b"watchfloor/alert-id/v1", "sha256")
            self.correlator = Correlator(
                corr, id_key=id_key, max_future_seconds=config.time.max_future_seconds
            )
            self.audit = AuditChain(chain)
            self.deconflictor = Deconflictor(corr.window_seconds, corr.max_incidents)
            self.tracker = ResponseTracker()
        else:
            self.correlator = state["correlator"]
            self.audit = state["audit"]
            self.deconflictor = state["deconflictor"]
            self.tracker = state["tracker"]

    def __repr__(self) -> str:
        return f"AlertStage({self.correlator!r}, {self.audit!r})"

    def __reduce__(self) -> Any:
        raise TypeError("AlertStage holds key material; checkpoint AlertStage.state() instead")

    def state(self) -> dict[str, Any]:
        """Picklable checkpoint of everything the stage learned (no master key)."""
        return {
            "correlator": self.correlator,
            "audit": self.audit,
            "deconflictor": self.deconflictor,
            "tracker": self.tracker,
        }

    def process(self, detection: Mapping[str, Any]) -> list[Outgoing]:
        """All messages caused by one detection (empty when suppressed).

        Raises InvalidEvent for a malformed detection (dead-letter it and commit).
        """
        now = self._clock()
        # Weights drift towards their targets over time (rate-limited), not only when a
        # verdict arrives; the tracker caches them, so this costs a comparison.
        self.correlator.weights = self.tracker.current_weights(now)
        alert = self.correlator.add(detection)
        if alert is None:
            return []
        seq, head = self.audit.seq, self.audit.last_hash
        try:
            return self._messages(alert, detection, now)
        except BaseException:
            # Nothing of this detection is published (the caller dead-letters it): its
            # audit records must not count either, or `audit verify` would see a gap.
            self.audit.seq, self.audit.last_hash = seq, head
            raise

    def _route(self, alert: dict[str, Any]) -> list[tuple[Any, bytes]]:
        """Deliveries of ``alert`` with their payloads, each within MAX_ALERT_BYTES.

        Bounds upstream keep alerts far below it; should one still exceed it, the oldest
        detections are dropped (counted in ``detections_omitted``) until every payload
        fits, so a publish is never refused by the broker's message limit."""
        while True:
            routed = [(d, orjson.dumps(d.value)) for d in self.router.route(alert)]
            if all(len(v) <= MAX_ALERT_BYTES for _, v in routed):
                return routed
            dets = alert["detections"]
            if len(dets) <= 1:
                raise InvalidEvent("too_large", "alert exceeds the message limit")
            keep = len(dets) // 2
            alert = {
                **alert,
                "detections": dets[-keep:],
                "detections_omitted": alert.get("detections_omitted", 0) + len(dets) - keep,
            }

    def _messages(
        self, alert: dict[str, Any], detection: Mapping[str, Any], now: float
    ) -> list[Outgoing]:
        arrival = detection.get("arrival")
        arrival = float(arrival) if type(arrival) in (float, int) else float("nan")
        severity = alert["severity"]
        aid = alert["alert_id"]
        akey = aid.encode()
        ckey = self.audit.chain.encode()
        version = alert["version"]
        detectors = {d["detector"] for d in alert["detections"]}
        exercise = alert.get("exercise")
        # An exercise's deliveries are tracked so that its acks are accepted, but under a
        # severity no response metric has and with no detector: its verdicts move no
        # weights and its response times stay out of the real statistics.
        tracked = (severity, detectors) if exercise is None else (EXERCISE, set())
        out: list[Outgoing] = []
        delivered: list[str] = []
        for d, payload in self._route(alert):
            out.append(
                Outgoing(d.topic, akey, payload, "alert", d.agency, severity, arrival, exercise)
            )
            rec = self.audit.append(
                alert_id=aid, version=version, agency=d.agency, agreement=d.agreement,
                shared=d.shared, pseudonymised=d.pseudonymised, redacted=d.redacted, time=now,
            )
            out.append(
                Outgoing(
                    self.audit_topic, ckey, orjson.dumps(rec), "audit", d.agency, severity, arrival
                )
            )
            self.tracker.published(aid, d.agency, tracked[0], tracked[1], now)
            # The worker that receives the agency's ack may not be this one: the
            # publication goes to Kafka too, keyed like the feedback (by alert id).
            out.append(
                Outgoing(
                    self.published_topic, akey,
                    orjson.dumps({"alert_id": aid, "agency": d.agency, "severity": tracked[0],
                                  "detectors": sorted(tracked[1]), "t": now,
                                  "arrival": arrival}),
                    "published", d.agency, severity, arrival,
                )
            )
            delivered.append(d.agency)
        t = float(detection["event_time"])
        for n in self.deconflictor.observe(alert, delivered, t):
            agency = n["agency"]
            n["agreement"] = self._agreement[agency]
            out.append(
                Outgoing(
                    self._topic[agency], n["alert_id"].encode(), orjson.dumps(n), "notice",
                    agency, severity, arrival,
                )
            )
            rec = self.audit.append(
                alert_id=n["alert_id"], version=0, agency=agency, agreement=n["agreement"],
                shared=NOTICE_FIELDS, pseudonymised=(), redacted=(), time=now,
                kind="deconfliction",
            )
            out.append(
                Outgoing(self.audit_topic, ckey, orjson.dumps(rec), "audit", agency, severity,
                         arrival)
            )
        return out

    def feedback(
        self, raw: bytes | None, agency: str, now: float | None = None
    ) -> tuple[float, str, tuple[str, ...]] | None:
        """Apply one feedback message written by ``agency`` (the agency of the topic it
        was read from); return (latency s, severity, detectors) on the agency's first
        response to an alert, else None. Raises InvalidEvent if malformed, if it names
        another agency, or if the alert was not delivered to ``agency``.

        Verdicts move detector weights (see :mod:`watchfloor.alerts.feedback`), which the
        correlator uses from the next alert on.
        """
        if agency not in self._agreement:
            raise InvalidEvent("bad_value", f"unknown agency {agency[:64]!r}")
        now = self._clock() if now is None else now
        _fb, result = apply_feedback(self.tracker, agency, raw, now)
        self.correlator.weights = self.tracker.current_weights(now)
        return result


__all__ = ["MAX_ALERT_BYTES", "NOTICE_FIELDS", "AlertStage", "Outgoing"]
