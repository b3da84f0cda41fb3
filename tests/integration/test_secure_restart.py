"""Issue 9.1: a worker restarts, and another takes over, on the secured broker.

Before the fix, once a checkpoint existed, every start-up on ``kafka start --secure``
crash-looped with ``KafkaConnectionError('Unable to bootstrap…')``: the admin client that
reads the group's committed offsets (and the consumer that replays records between the
checkpoint and those offsets) were built without the SASL settings. The security tests
never restarted a worker, so nothing saw it.

The module starts its own secured broker (SASL/SCRAM, deny-by-default ACLs from
topics.yaml) on free ports; the workers authenticate as ``watchfloor-worker``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import free_port
from tests.integration.conftest import Worker, metric_value, start_worker, stop_worker
from tests.kafka_helpers import run
from watchfloor.config import Config
from watchfloor.core.events import DOMAINS, EXAMPLES
from watchfloor.kafka import clients
from watchfloor.kafka.clients import Connection
from watchfloor.kafka.security import client_kwargs
from watchfloor.ops.acls import apply_acls, derive_grants
from watchfloor.ops.kafka_local import KafkaLauncherError, LocalKafka
from watchfloor.settings import Settings
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


@dataclass
class Secured:
    kafka: LocalKafka
    app_id: str
    passwords: dict[str, str] = field(repr=False)
    pw_file: Path

    def login(self, principal: str) -> Connection:
        s = Settings(sasl_username=principal, sasl_password=self.passwords[principal])
        return Connection(self.kafka.bootstrap, client_kwargs(s))

    def worker(self, tmp: Path, **kw: Any) -> Worker:
        return start_worker(
            self.kafka.bootstrap,
            kw.pop("config"),
            tmp,
            app_id=self.app_id,
            WATCHFLOOR_SASL_USERNAME="watchfloor-worker",
            WATCHFLOOR_SASL_PASSWORD_FILE=str(self.pw_file),
            WATCHFLOOR_CHECKPOINT_INTERVAL="0.5",
            WATCHFLOOR_SESSION_TIMEOUT="6",
            **kw,
        )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Iterator[Secured]:
    kafka = LocalKafka(
        port=free_port(pairs=2), data_dir=tmp_path_factory.mktemp("kafka-restart"), secure=True
    )
    try:
        kafka.start(timeout=120)
    except KafkaLauncherError as exc:
        pytest.fail(f"the secured local Kafka broker could not start: {exc}")
    try:
        app_id = f"wf-secrestart-{uuid.uuid4().hex[:8]}"
        admin = kafka.client_kwargs()
        passwords = {p: secrets.token_urlsafe(18) for p in derive_grants(config, app_id)}
        run(apply_topics(config, kafka.bootstrap, security=admin))
        apply_acls(config, kafka.bootstrap, app_id, admin, passwords)
        pw_file = tmp_path_factory.mktemp("restart-secrets") / "worker.password"
        pw_file.write_text(passwords["watchfloor-worker"] + "\n")
        pw_file.chmod(0o600)
        yield Secured(kafka, app_id, passwords, pw_file)
    finally:
        kafka.stop()


#: On the lost/stolen list: one crossing, one alert. Each check uses the next document,
#: so every alert is a new incident.
DOCUMENTS = iter(["P0000913", "P0001847", "P0002299", "P0003370", "P0005521", "P0006603"])


def border_event(tag: str) -> tuple[str, bytes]:
    event_id = f"brd-restart-{tag}-{uuid.uuid4().hex[:8]}"
    event = {
        "event_id": event_id,
        "ts": int(time.time() * 1000),
        "document_id": next(DOCUMENTS),
        "nationality": "FRA",
        "crossing_point": "CDG-T2",
        "direction": "entry",
    }
    return event_id, orjson.dumps(event)


async def _send(conn: Connection, topic: str, value: bytes) -> None:
    producer = clients.producer(conn, acks="all", request_timeout_ms=15000)
    await producer.start()
    try:
        key = orjson.loads(value)["document_id"].encode()
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 30)
    finally:
        await producer.stop()


async def _send_every_partition(secured: Secured) -> None:
    """One valid event on each partition of each input topic, each by its sensor."""
    for domain in DOMAINS:
        topic = f"events.{domain}"
        producer = clients.producer(
            secured.login(f"sensor-{domain}"), acks="all", request_timeout_ms=15000
        )
        await producer.start()
        try:
            for partition in sorted(await producer.partitions_for(topic)):
                event = dict(EXAMPLES[domain])
                event["event_id"] = f"{domain}-every-{partition}-{uuid.uuid4().hex[:8]}"
                event["ts"] = int(time.time() * 1000)
                await asyncio.wait_for(
                    producer.send_and_wait(topic, orjson.dumps(event), partition=partition), 30
                )
        finally:
            await producer.stop()


async def _alert_for(conn: Connection, event_id: str, timeout: float) -> bool:
    consumer = await clients.assigned_consumer(conn, "alerts.border", from_beginning=True)
    assert consumer is not None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    alert = orjson.loads(r.value)
                    if any(d.get("event_id") == event_id for d in alert.get("detections", [])):
                        return True
    finally:
        await consumer.stop()
    return False


def detected(secured: Secured, worker: Worker, tag: str, timeout: float = 60) -> None:
    """A new lost/stolen-document crossing reaches the border agency as an alert."""
    event_id, value = border_event(tag)
    run(_send(secured.login("sensor-border"), "events.border", value))
    found = run(_alert_for(secured.login("agency-border"), event_id, timeout))
    assert found, f"no alert for {event_id} ({tag})\n{worker.log_tail()}"


def wait_checkpoint(worker: Worker, count: float = 1, timeout: float = 30) -> None:
    """Until ``worker`` has written ``count`` checkpoints (the timer writes what changed,
    so one follows the batches of a detection; how many depends on their timing)."""
    deadline = time.monotonic() + timeout
    while metric_value(worker.metrics(), "watchfloor_checkpoint_seconds_count") < count:
        assert time.monotonic() < deadline, f"no checkpoint written\n{worker.log_tail()}"
        time.sleep(0.3)


def test_worker_restarts_from_a_checkpoint_on_the_secured_broker(
    secured: Secured, config: Config, tmp_path: Path
) -> None:
    first = secured.worker(tmp_path, config=config)
    try:
        detected(secured, first, "before")
        wait_checkpoint(first)
    finally:
        stop_worker(first)  # SIGTERM: hands its state over in a final checkpoint

    second = secured.worker(tmp_path, config=config)
    try:
        assert second.proc.poll() is None, second.log_tail()
        restored = metric_value(second.metrics(), "watchfloor_state_restored_total")
        assert restored >= 1, f"nothing restored\n{second.log_tail()}"
        detected(secured, second, "after-restart")
        assert "Unable to bootstrap" not in second.log.read_text(errors="replace")
    finally:
        stop_worker(second)


def test_second_worker_takes_over_on_the_secured_broker(
    secured: Secured, config: Config, tmp_path: Path
) -> None:
    total = (
        sum(
            t.partitions
            for t in config.topics
            if t.role in ("input", "detections", "feedback", "rekeyed")
        )
        + 1  # Faust's leader topic
    )
    a = secured.worker(tmp_path, config=config)
    b = None
    try:
        detected(secured, a, "first-owner")
        wait_checkpoint(a)
        # A second member joins: partitions move, and the newcomer restores their state.
        b = secured.worker(tmp_path, config=config, expect_partitions=1)
        deadline = time.monotonic() + 60
        while metric_value(b.metrics(), "watchfloor_state_restored_total") < 1:
            assert a.proc.poll() is None, a.log_tail()
            assert time.monotonic() < deadline, f"b restored nothing\n{b.log_tail()}"
            time.sleep(0.3)
        detected(secured, a, "shared")
        # Which partitions a kept is the assignor's choice: an event on every input
        # partition gives a state of its own to checkpoint, whatever it kept (Faust
        # assigns partition i of the 3-partition topics together, so a holds one).
        seen = metric_value(a.metrics(), "watchfloor_events_total")
        saved = metric_value(a.metrics(), "watchfloor_checkpoint_seconds_count")
        run(_send_every_partition(secured))
        deadline = time.monotonic() + 30
        while metric_value(a.metrics(), "watchfloor_events_total") <= seen:
            assert time.monotonic() < deadline, f"a scored none\n{a.log_tail()}"
            time.sleep(0.3)
        wait_checkpoint(a, count=saved + 1)
        time.sleep(2)  # the timer checkpoints what is still dirty within its 0.5 s interval
        before = metric_value(b.metrics(), "watchfloor_state_restored_total")
        # The first owner dies without a goodbye: b takes everything over.
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        deadline = time.monotonic() + 120
        while metric_value(b.metrics(), "watchfloor_assigned_partitions") < total:
            assert b.proc.poll() is None, b.log_tail()
            assert time.monotonic() < deadline, f"no takeover\n{b.log_tail()}"
            time.sleep(0.3)
        detected(secured, b, "after-takeover")
        restored = metric_value(b.metrics(), "watchfloor_state_restored_total")
        assert restored > before, f"b did not restore a's state\n{b.log_tail()}"
        assert b.proc.poll() is None, b.log_tail()
    finally:
        stop_worker(a)
        if b is not None:
            stop_worker(b)
