"""Everything a worker needs, built once at start from settings and ``topics.yaml``.

Building it validates the whole configuration: an unknown detector, a plugin that fails
to import or bad parameters raise here, before any message is consumed.

State is per partition: one detector engine per input partition and one alert stage per
partition of the detections topic, so that state moves with its partition when the
consumer group rebalances (see :mod:`watchfloor.streams.checkpoint`).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from watchfloor.alerts.audit import AuditChain
from watchfloor.alerts.feedback import ResponseTracker, apply_feedback
from watchfloor.alerts.stage import AlertStage
from watchfloor.config import Config, ConfigError, load_config
from watchfloor.core.sanitize import escape_line
from watchfloor.detectors.engine import (
    REKEYED,
    build_engine,
    build_engines,
    build_rekeyed_engine,
    rekeyed_stages,
)
from watchfloor.detectors.registry import discover
from watchfloor.keys import Keys, load_keys
from watchfloor.settings import Settings
from watchfloor.streams.checkpoint import Checkpointer
from watchfloor.streams.metrics import Metrics
from watchfloor.streams.pipeline import EventProcessor

log = logging.getLogger(__name__)


def pseudonym_key(settings: Settings) -> bytes:
    """The pseudonymisation key: derived from the master secret (``watchfloor.keys``),
    which raises WeakKeyError for a weak one."""
    return load_keys(settings).pseudonym


def plugin_packages(detectors: dict[str, Any]) -> set[str]:
    """Top-level packages of detector plugins not shipped with watchfloor."""
    modules = {d.cls.__module__ for d in detectors.values()}
    return {m.split(".")[0] for m in modules if not m.startswith("watchfloor.")}


@dataclass
class Runtime:
    settings: Settings
    config: Config
    metrics: Metrics
    processor: EventProcessor
    tracker: ResponseTracker
    checkpointer: Checkpointer
    key: bytes = field(repr=False)  # the pseudonym key (agreements, alert ids)
    # Every per-purpose key (pseudonym, checkpoint, audit) of the master secret.
    keys: Keys | None = field(default=None, repr=False)
    stages: dict[int, AlertStage] = field(default_factory=dict)
    # Per detections partition: next offset covered by the stage's state, and the offset
    # below which records were already processed by a previous owner (see StateKeeper).
    stage_next: dict[int, int] = field(default_factory=dict)
    stage_skip: dict[int, int] = field(default_factory=dict)
    # Feedback and publication records (topic, partition): next offset covered by the
    # tracker's state, and offsets below which a previous owner already applied them.
    feedback_next: dict[tuple[str, int], int] = field(default_factory=dict)
    feedback_skip: dict[tuple[str, int], int] = field(default_factory=dict)
    # Distinguishes this worker's audit chains from those of earlier owners.
    incarnation: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @classmethod
    def build(
        cls,
        settings: Settings | None = None,
        config: Config | None = None,
        registry: CollectorRegistry | None = None,
    ) -> Runtime:
        settings = settings or Settings.from_env()
        config = config or load_config(settings.topics_file)
        detectors = discover()
        metrics = Metrics(
            registry,
            domains=config.input_topics,
            agencies=[a.name for a in config.agencies],
            detectors=sorted({d.name for d in config.detectors}),
            response_targets={a.name: a.response_target_seconds for a in config.agencies},
        )

        last_logged: dict[str, float] = {}

        def on_error(name: str, exc: BaseException) -> None:
            metrics.detector_error_counter(name).inc()
            # Rate-limited: a detector failing on every event must not flood the log.
            now = time.monotonic()
            if now - last_logged.get(name, -1e9) >= 60.0:
                last_logged[name] = now
                log.warning(
                    "detector %s raised %s: %s (the event went on to the other "
                    "detectors; further errors counted in "
                    "watchfloor_detector_errors_total)",
                    name,
                    type(exc).__name__,
                    # The message may quote the event: escaped, cut, for whoever reads logs.
                    escape_line(exc, 200),
                )

        def on_detection(name: str) -> None:
            metrics.detection_counter(name).inc()

        # Validate every detector now: configuration errors stop the worker at start.
        build_engines(config, detectors, on_error, on_detection)
        stages = rekeyed_stages(config, detectors)
        if stages and not any(t.role == "rekeyed" for t in config.topics):
            raise ConfigError(
                f"topics: detectors keyed by another field than their input topic's key "
                f"({', '.join(stages)}) need a topic with role 'rekeyed' for the second "
                "scoring stage; add one as in the shipped topics.yaml"
            )
        rekey: dict[str, list[tuple[str, str]]] = {}
        for stage, (domain, by) in stages.items():
            rekey.setdefault(domain, []).append((stage, by))

        # A weak master secret stops the worker here (after the configuration checks).
        keys = load_keys(settings)
        key = keys.pseudonym
        AlertStage(config, key)  # validates key length and agreements the same way

        def factory(domain: str) -> Any:
            if domain == REKEYED:
                return build_rekeyed_engine(config, stages, detectors, on_error, on_detection)
            return build_engine(config, domain, detectors, on_error, on_detection)

        return cls(
            settings=settings,
            config=config,
            metrics=metrics,
            processor=EventProcessor(
                factory, metrics, max_future_seconds=config.time.max_future_seconds, rekey=rekey
            ),
            tracker=ResponseTracker(),
            # Classes of plugin packages may appear in restored state; nothing else new.
            checkpointer=Checkpointer(keys.checkpoint, allowed_modules=plugin_packages(detectors)),
            key=key,
            keys=keys,
        )

    # -- alert stages, one per detections partition -------------------------------
    def stage(self, partition: int, state: dict[str, Any] | None = None) -> AlertStage:
        stage = self.stages.get(partition)
        if stage is None or state is not None:
            stage = AlertStage(
                self.config,
                self.key,
                chain=f"alerts-{partition}-{self.incarnation}",
                state=state,
            )
            self.new_audit_chain(stage, partition)
            # Response tracking is worker-wide.
            stage.tracker = self.tracker
            self.stages[partition] = stage
        return stage

    @functools.cached_property
    def agencies(self) -> frozenset[str]:
        return frozenset(a.name for a in self.config.agencies)

    def adopt_tracker(self, tracker: ResponseTracker) -> None:
        """Use a restored response tracker everywhere (stages record publications in it)."""
        self.tracker = tracker
        for stage in self.stages.values():
            stage.tracker = tracker

    def new_audit_chain(self, stage: AlertStage, partition: int) -> None:
        # One audit chain per owner of a partition: a restored stage starts a new chain
        # rather than forking the previous owner's (whose tail may be newer than the
        # checkpoint it restored from).
        stage.audit = AuditChain(f"alerts-{partition}-{self.incarnation}")

    def drop_stage(self, partition: int) -> None:
        for table in (self.stages, self.stage_next, self.stage_skip):
            table.pop(partition, None)

    def feedback(
        self, raw: bytes | None, agency: str, now: float
    ) -> tuple[dict[str, Any], tuple[float, str, tuple[str, ...]] | None]:
        """Apply one feedback message read from ``agency``'s feedback topic (the broker
        vouches for the writer); raise InvalidEvent if it is malformed, names another
        agency or is about an alert not delivered to ``agency``. Stages pick up moved
        weights at their next detection."""
        return apply_feedback(self.tracker, agency, raw, now)
