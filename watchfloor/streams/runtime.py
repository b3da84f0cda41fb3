"""Everything a worker needs, built once at start from settings and ``topics.yaml``.

Building it validates the whole configuration: an unknown detector, a plugin that fails
to import or bad parameters raise here, before any message is consumed.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from watchfloor.alerts.stage import AlertStage
from watchfloor.config import Config, load_config
from watchfloor.detectors.engine import DomainEngine, build_engines
from watchfloor.settings import Settings
from watchfloor.streams.metrics import Metrics
from watchfloor.streams.pipeline import EventProcessor


@dataclass
class Runtime:
    settings: Settings
    config: Config
    metrics: Metrics
    engines: dict[str, DomainEngine]
    processor: EventProcessor
    alerts: AlertStage

    @classmethod
    def build(
        cls,
        settings: Settings | None = None,
        config: Config | None = None,
        registry: CollectorRegistry | None = None,
    ) -> Runtime:
        settings = settings or Settings.from_env()
        config = config or load_config(settings.topics_file)
        detector_names = sorted({d.name for d in config.detectors})
        metrics = Metrics(
            registry,
            domains=config.input_topics,
            agencies=[a.name for a in config.agencies],
            detectors=detector_names,
        )
        engines = build_engines(
            config,
            on_error=lambda name, exc: metrics.detector_error_counter(name).inc(),
            on_detection=lambda name: metrics.detection_counter(name).inc(),
        )
        key = settings.pseudonym_key.encode()
        return cls(
            settings=settings,
            config=config,
            metrics=metrics,
            engines=engines,
            processor=EventProcessor(engines, metrics),
            alerts=AlertStage(config, key),
        )
