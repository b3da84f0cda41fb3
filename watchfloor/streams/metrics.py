"""Prometheus metrics. Label children are bound once at start, never per event.

Pass a fresh ``CollectorRegistry`` in tests to assert on exact values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from watchfloor.core.alert_schema import SEVERITIES
from watchfloor.core.decoding import INVALID_CODES

# Alert latency spans sub-second (live) to minutes (catching up after an outage).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Human response: seconds to hours.
RESPONSE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
VERDICTS = ("true_positive", "false_positive", "none")


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        domains: Iterable[str] = (),
        agencies: Iterable[str] = (),
        detectors: Iterable[str] = (),
        response_targets: Mapping[str, float] | None = None,
    ) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        domains, agencies, detectors = list(domains), list(agencies), list(detectors)

        events = Counter("watchfloor_events", "Input messages received", ["domain"], registry=r)
        self.events = {d: events.labels(d) for d in domains}
        invalid = Counter(
            "watchfloor_events_invalid",
            "Input messages dead-lettered, by reason",
            ["domain", "reason"],
            registry=r,
        )
        self.invalid = {(d, c): invalid.labels(d, c) for d in domains for c in INVALID_CODES}
        self._invalid = invalid
        self._deadletter_children: dict[str, Counter] = {}
        self.deadletters = Counter(
            "watchfloor_deadletters",
            "Messages written to a dead-letter topic",
            ["source"],
            registry=r,
        )
        self._detections = Counter(
            "watchfloor_detections", "Detections at or above threshold", ["detector"], registry=r
        )
        self.detections = {d: self._detections.labels(d) for d in detectors}
        self._detector_errors = Counter(
            "watchfloor_detector_errors",
            "Exceptions raised by a detector on one event",
            ["detector"],
            registry=r,
        )
        self.detector_errors = {d: self._detector_errors.labels(d) for d in detectors}
        alerts = Counter(
            "watchfloor_alerts",
            "Alert deliveries published, per agency topic",
            ["agency", "severity"],
            registry=r,
        )
        self.alerts = {(a, s): alerts.labels(a, s) for a in agencies for s in SEVERITIES}
        latency = Histogram(
            "watchfloor_alert_latency_seconds",
            "From the event's arrival in Kafka to its alert being acknowledged by the broker",
            ["agency"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.alert_latency = {a: latency.labels(a) for a in agencies}
        response = Histogram(
            "watchfloor_response_latency_seconds",
            "From an alert's publication to the agency's first acknowledgement",
            ["agency", "severity"],
            buckets=RESPONSE_BUCKETS,
            registry=r,
        )
        self.response_latency = {
            (a, s): response.labels(a, s) for a in agencies for s in SEVERITIES
        }
        # The agencies' committed response times, so an alert rule can compare against
        # them (Prometheus cannot read topics.yaml).
        target = Gauge(
            "watchfloor_response_target_seconds",
            "The agency's target time from an alert's publication to its acknowledgement",
            ["agency"],
            registry=r,
        )
        for a, seconds in (response_targets or {}).items():
            target.labels(a).set(seconds)
        feedback = Counter(
            "watchfloor_feedback",
            "Verdicts from operations centres, per detector",
            ["detector", "verdict"],
            registry=r,
        )
        self.feedback = {(d, v): feedback.labels(d, v) for d in detectors for v in VERDICTS}
        self._feedback = feedback
        self.suppressed = Counter(
            "watchfloor_detections_suppressed",
            "Repeat detections within the cooldown that created no new alert version",
            registry=r,
        )
        self.incidents = Counter(
            "watchfloor_incidents", "Incidents opened by correlation", registry=r
        )
        self.audit_records = Counter(
            "watchfloor_audit_records", "Records written to the sharing audit trail", registry=r
        )
        self.batch_seconds = Histogram(
            "watchfloor_batch_seconds",
            "Time to process one batch of input (decode to send)",
            ["stage"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "watchfloor_assigned_partitions",
            "Topic partitions assigned to this worker",
            registry=r,
        )
        self.state_restored = Counter(
            "watchfloor_state_restored",
            "Partition states restored from a checkpoint",
            ["kind"],
            registry=r,
        )
        self.state_replayed = Counter(
            "watchfloor_state_replayed",
            "Records re-learnt after a restore (processed by the previous owner after its "
            "last checkpoint)",
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "watchfloor_checkpoint_seconds",
            "Time to checkpoint state to Kafka",
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            "watchfloor_checkpoint_bytes",
            "Size of the last checkpoint written",
            registry=r,
        )
        # How late the event loop wakes a 50 ms sleep: what every record waiting on the
        # worker waits for on top of its own work (a checkpoint, a long batch).
        self.loop_stall = Histogram(
            "watchfloor_event_loop_stall_seconds",
            "Delay of the event loop past a 50 ms timer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.loop_stall_max = Gauge(
            "watchfloor_event_loop_stall_max_seconds",
            "Longest event-loop stall since the worker started",
            registry=r,
        )
        self._lag_children: dict[tuple[str, int], Gauge] = {}
        self.lag = Gauge(
            "watchfloor_consumer_lag",
            "Records behind the end of the input topic",
            ["topic", "partition"],
            registry=r,
        )

    def deadletter_counter(self, source: str) -> Counter:
        """Dead letters from one source (a domain, "feedback", "detections"), bound once."""
        child = self._deadletter_children.get(source)
        if child is None:
            child = self._deadletter_children[source] = self.deadletters.labels(source)
        return child

    def lag_child(self, topic: str, partition: int) -> Gauge:
        """The lag gauge of one partition, bound once."""
        key = (topic, partition)
        child = self._lag_children.get(key)
        if child is None:
            child = self._lag_children[key] = self.lag.labels(topic, str(partition))
        return child

    def reset_lag(self) -> None:
        """On revocation: this worker no longer holds lag for partitions it gave away
        (their new owner reports it), so stale values must not linger."""
        for child in self._lag_children.values():
            child.set(0)

    def invalid_counter(self, domain: str, code: str) -> Counter:
        child = self.invalid.get((domain, code))
        if child is None:  # a domain not known at start (feedback): bind once, then cache
            child = self.invalid[(domain, code)] = self._invalid.labels(domain, code)
        return child

    def detection_counter(self, detector: str) -> Counter:
        child = self.detections.get(detector)
        if child is None:
            child = self.detections[detector] = self._detections.labels(detector)
        return child

    def detector_error_counter(self, detector: str) -> Counter:
        child = self.detector_errors.get(detector)
        if child is None:
            child = self.detector_errors[detector] = self._detector_errors.labels(detector)
        return child

    def feedback_counter(self, detector: str, verdict: str) -> Counter:
        child = self.feedback.get((detector, verdict))
        if child is None:
            child = self.feedback[(detector, verdict)] = self._feedback.labels(detector, verdict)
        return child
