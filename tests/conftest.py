"""Shared fixtures. Broker tests run against a real Kafka: the session fixture starts a
local KRaft broker (the project's own launcher) unless WATCHFLOOR_BROKER names one. A
broker that cannot start fails the tests; it never skips them."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchfloor.config import Config, load_config
from watchfloor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port(pairs: int = 1) -> int:
    """A free TCP port p such that p..p+pairs-1 are all free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + pairs >= 65535:
            continue
        ok = True
        for extra in range(1, pairs):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + extra))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free port")


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(ROOT / "topics.yaml")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers ("host:port") of a real Kafka broker."""
    from watchfloor.ops.kafka_local import KafkaLauncherError, LocalKafka, broker_answers

    existing = os.environ.get("WATCHFLOOR_BROKER")
    if existing:
        bootstrap = Settings(broker=existing).bootstrap_servers
        if not broker_answers(bootstrap, timeout=10):
            pytest.fail(f"WATCHFLOOR_BROKER={existing} does not answer")
        yield bootstrap
        return
    port = free_port(pairs=2)
    kafka = LocalKafka(port=port, data_dir=tmp_path_factory.mktemp("kafka"))
    try:
        kafka.start(timeout=120)
    except KafkaLauncherError as exc:
        pytest.fail(f"the local Kafka broker could not start: {exc}")
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()
