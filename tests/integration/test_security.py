"""Agency isolation enforced by the broker: a secured local Kafka (SASL/SCRAM-SHA-512,
StandardAuthorizer, deny by default), principals and ACLs from topics.yaml
(`watchfloor acl apply`), and the whole pipeline running under them.

The module starts its own secured broker on free ports (the session broker stays
PLAINTEXT for the other tests). A broker that cannot start fails these tests."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from tests.conftest import free_port
from tests.integration.conftest import Worker, start_worker, stop_worker
from tests.kafka_helpers import run
from watchfloor.config import Config
from watchfloor.kafka.clients import assigned_consumer
from watchfloor.kafka.security import client_kwargs
from watchfloor.ops.acls import apply_acls, derive_grants, read_credentials
from watchfloor.ops.kafka_local import KafkaLauncherError, LocalKafka, broker_answers
from watchfloor.settings import Settings
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


@dataclass
class Secured:
    kafka: LocalKafka
    app_id: str
    # repr=False: a failing test's traceback must not print them.
    passwords: dict[str, str] = field(repr=False)
    admin: dict[str, Any] = field(repr=False)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    def login(self, principal: str, password: str | None = None) -> dict[str, Any]:
        pw = self.passwords[principal] if password is None else password
        return client_kwargs(Settings(sasl_username=principal, sasl_password=pw))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Iterator[Secured]:
    kafka = LocalKafka(
        port=free_port(pairs=2), data_dir=tmp_path_factory.mktemp("kafka-secure"), secure=True
    )
    try:
        kafka.start(timeout=120)
    except KafkaLauncherError as exc:
        pytest.fail(f"the secured local Kafka broker could not start: {exc}")
    try:
        app_id = f"wf-sec-{uuid.uuid4().hex[:8]}"
        admin = kafka.client_kwargs()
        principals = set(derive_grants(config, app_id))
        # Half the passwords from a credentials file, half from the environment.
        names = sorted(principals)
        passwords = {name: secrets.token_urlsafe(18) for name in names}
        creds = kafka.dir / "users.credentials"
        creds.write_text(
            "# principal:password\n"
            + "".join(f"{n}:{passwords[n]}\n" for n in names[: len(names) // 2])
        )
        env = {
            f"WATCHFLOOR_SCRAM_PASSWORD_{n.upper().replace('-', '_')}": passwords[n]
            for n in names[len(names) // 2 :]
        }
        assert read_credentials(creds, principals, env) == passwords
        run(apply_topics(config, kafka.bootstrap, security=admin))
        report = apply_acls(config, kafka.bootstrap, app_id, admin, passwords)
        assert report.added and sorted(report.users_created) == names, report.lines()
        yield Secured(kafka, app_id, passwords, admin)
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
def secure_worker(
    secured: Secured, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    pw_file = tmp_path_factory.mktemp("secrets") / "worker.password"
    pw_file.write_text(secured.passwords["watchfloor-worker"] + "\n")
    pw_file.chmod(0o600)
    w = start_worker(
        secured.bootstrap,
        config,
        tmp_path_factory.mktemp("secure-worker"),
        app_id=secured.app_id,
        WATCHFLOOR_SASL_USERNAME="watchfloor-worker",
        WATCHFLOOR_SASL_PASSWORD_FILE=str(pw_file),
    )
    yield w
    stop_worker(w)


async def _read(
    bootstrap: str, topic: str, security: dict[str, Any], until, timeout: float = 60.0
) -> list[dict]:
    consumer = await assigned_consumer(bootstrap, topic, from_beginning=True, security=security)
    assert consumer is not None, f"no topic {topic}"
    found: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(found):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found += [orjson.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return found


async def _refused_read(bootstrap: str, topic: str, security: dict[str, Any]) -> None:
    """Reading ``topic`` fails with an authorization error: at metadata time when the
    principal may not even describe it, at fetch time when it may describe but not read."""
    with pytest.raises(TopicAuthorizationFailedError):
        consumer = await assigned_consumer(bootstrap, topic, True, security=security)
        assert consumer is not None
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                assert not await consumer.getmany(timeout_ms=300), f"read {topic}"
        finally:
            await consumer.stop()


async def _produce(bootstrap: str, topic: str, value: bytes, security: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15000, **security
    )
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=b"k"), 30)
    finally:
        await producer.stop()


def test_acl_apply_is_idempotent(secured: Secured, config: Config) -> None:
    report = apply_acls(config, secured.bootstrap, secured.app_id, secured.admin, secured.passwords)
    assert not report.changed, report.lines()
    assert report.lines()[-1].startswith("nothing changed")
    # A changed password is detected (by logging in) and updated, then stable again.
    changed = {**secured.passwords, "oversight": secrets.token_urlsafe(18)}
    report = apply_acls(config, secured.bootstrap, secured.app_id, secured.admin, changed)
    assert report.users_updated == ["oversight"]
    secured.passwords["oversight"] = changed["oversight"]
    assert not apply_acls(
        config, secured.bootstrap, secured.app_id, secured.admin, secured.passwords
    ).changed


async def test_agency_cannot_read_another_agencys_topic(secured: Secured) -> None:
    cert = secured.login("agency-cert")
    await _refused_read(secured.bootstrap, "alerts.border", cert)
    await _refused_read(secured.bootstrap, "alerts.fiu", cert)
    # Its own topic is fine.
    consumer = await assigned_consumer(secured.bootstrap, "alerts.cert", True, security=cert)
    assert consumer is not None
    await consumer.stop()


async def test_unauthenticated_client_is_refused(secured: Secured) -> None:
    assert not await asyncio.to_thread(broker_answers, secured.bootstrap, 5)
    producer = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()


async def test_wrong_password_is_refused(secured: Secured) -> None:
    wrong = secured.login("agency-border", password="not-the-password")
    assert not await asyncio.to_thread(lambda: broker_answers(secured.bootstrap, 5, **wrong))
    producer = AIOKafkaProducer(
        bootstrap_servers=secured.bootstrap, request_timeout_ms=5000, **wrong
    )
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()
    ok = secured.login("agency-border")
    assert await asyncio.to_thread(lambda: broker_answers(secured.bootstrap, 5, **ok))


async def test_sensor_cannot_read_alerts_nor_write_other_domains(secured: Secured) -> None:
    sensor = secured.login("sensor-border")
    for topic in ("alerts.border", "events.border", "audit.sharing"):
        await _refused_read(secured.bootstrap, topic, sensor)
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(secured.bootstrap, "events.network", b"{}", sensor)
    # Agencies cannot inject sensor events either.
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(secured.bootstrap, "events.border", b"{}", secured.login("agency-border"))


async def test_pipeline_end_to_end_under_acls(secured: Secured, secure_worker: Worker) -> None:
    event_id = f"brd-sec-{uuid.uuid4().hex[:8]}"
    event = {
        "event_id": event_id,
        "ts": int(time.time() * 1000),
        "document_id": "P0004418",  # on the lost/stolen list
        "nationality": "FRA",
        "crossing_point": "CDG-T2",
        "direction": "entry",
    }
    await _produce(
        secured.bootstrap, "events.border", orjson.dumps(event), secured.login("sensor-border")
    )

    def mine(found: list[dict]) -> list[dict]:
        return [
            a for a in found if any(d.get("event_id") == event_id for d in a.get("detections", []))
        ]

    alerts = await _read(
        secured.bootstrap,
        "alerts.border",
        secured.login("agency-border"),
        lambda found: bool(mine(found)),
        timeout=60,
    )
    assert mine(alerts), f"no alert for {event_id}:\n{secure_worker.log_tail()}"
    assert mine(alerts)[0]["detections"][0]["detector"] == "lost_stolen_document"

    # The agency answers on its own feedback topic; oversight reads the audit trail.
    await _produce(
        secured.bootstrap,
        "feedback.border",
        orjson.dumps({"alert_id": mine(alerts)[0]["alert_id"], "agency": "border", "ts": 1}),
        secured.login("agency-border"),
    )
    audit = await _read(
        secured.bootstrap, "audit.sharing", secured.login("oversight"), bool, timeout=30
    )
    assert audit
    await _refused_read(secured.bootstrap, "alerts.border", secured.login("oversight"))


def test_passwords_never_in_worker_log_or_metrics(secured: Secured, secure_worker: Worker) -> None:
    secrets_ = [*secured.passwords.values(), secured.kafka.admin_password()]
    log = Path(secure_worker.log).read_text(errors="replace")
    metrics = secure_worker.metrics()
    assert "watchfloor_assigned_partitions" in metrics
    for pw in secrets_:
        assert pw not in log
        assert pw not in metrics
    settings = Settings(sasl_username="u", sasl_password=secured.passwords["watchfloor-worker"])
    assert secured.passwords["watchfloor-worker"] not in repr(settings)
    # The broker's own logs do not hold them either (server.properties does, mode 0600).
    for f in (secured.kafka.dir / "logs").iterdir():
        text = f.read_text(errors="replace")
        for pw in secrets_:
            assert pw not in text, f.name
    assert (secured.kafka.dir / "server.properties").stat().st_mode & 0o077 == 0
    assert secured.kafka.admin_password_file.stat().st_mode & 0o077 == 0


def test_tail_of_another_agencys_topic_is_refused_with_a_clear_error(secured: Secured) -> None:
    import os
    import subprocess
    import sys

    env = dict(
        os.environ,
        WATCHFLOOR_BROKER=f"kafka://{secured.bootstrap}",
        WATCHFLOOR_SASL_USERNAME="agency-cert",
        WATCHFLOOR_SASL_PASSWORD=secured.passwords["agency-cert"],
    )
    proc = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "tail", "border", "--timeout", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "TopicAuthorizationFailedError" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert secured.passwords["agency-cert"] not in proc.stderr + proc.stdout
