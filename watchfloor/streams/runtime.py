"""Everything a worker needs, built once at start from settings and ``topics.yaml``.

Building it validates the whole configuration: an unknown detector, a plugin that fails
to import or bad parameters raise here, before any message is consumed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from watchfloor.alerts.stage import AlertStage
from watchfloor.config import Config, load_config
from watchfloor.detectors.engine import DomainEngine, build_engines
from watchfloor.settings import Settings
from watchfloor.streams.metrics import Metrics
from watchfloor.streams.pipeline import EventProcessor


def pseudonym_key(settings: Settings) -> bytes:
    """The pseudonymisation key: ``WATCHFLOOR_PSEUDONYM_KEY``, or one generated once and
    kept (mode 0600) in the state dir so pseudonyms stay stable across restarts. Production
    deployments set it explicitly and share it between the workers of one group."""
    if settings.pseudonym_key:
        return settings.pseudonym_key.encode()
    path = settings.state_dir / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


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
        key = pseudonym_key(settings)
        return cls(
            settings=settings,
            config=config,
            metrics=metrics,
            engines=engines,
            processor=EventProcessor(engines, metrics),
            alerts=AlertStage(config, key),
        )
