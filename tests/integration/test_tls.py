"""Issue 9.9: TLS on the secured broker's client listener, mutual TLS on its controller.

Reproduced first: the controller listener of ``kafka start --secure`` was PLAINTEXT with
``User:ANONYMOUS`` a super user, so any local process could send it CreateAcls — the
probe below granted ``agency-cert`` READ on ``alerts.border`` that way (the broker
answered error code 0). Now the controller requires a certificate signed by the local
CA, and the client listener speaks SASL over TLS: credentials and alerts no longer cross
the wire in the clear.

The module starts its own broker: ``LocalKafka(secure=True, tls=True)``, what
``watchfloor kafka start --secure`` runs.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from tests.conftest import free_port
from tests.integration.conftest import start_worker, stop_worker
from tests.kafka_helpers import run
from watchfloor.config import Config
from watchfloor.kafka import clients
from watchfloor.kafka.clients import Connection
from watchfloor.ops.acls import apply_acls, derive_grants
from watchfloor.ops.kafka_local import KafkaLauncherError, LocalKafka, broker_answers
from watchfloor.settings import Settings
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


@dataclass
class Tls:
    kafka: LocalKafka
    app_id: str
    passwords: dict[str, str] = field(repr=False)

    @property
    def ca(self) -> Path:
        return self.kafka.tls_files.ca_cert

    def settings(self, principal: str, **kw: object) -> Settings:
        return Settings(
            broker=f"kafka://{self.kafka.bootstrap}",
            sasl_username=principal,
            sasl_password=self.passwords[principal],
            **{"ssl_cafile": str(self.ca), **kw},  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Iterator[Tls]:
    kafka = LocalKafka(
        port=free_port(pairs=2), data_dir=tmp_path_factory.mktemp("kafka-tls"),
        secure=True, tls=True,
    )
    try:
        kafka.start(timeout=120)
    except KafkaLauncherError as exc:
        pytest.fail(f"the TLS local Kafka broker could not start: {exc}")
    try:
        app_id = f"wf-tls-{uuid.uuid4().hex[:8]}"
        admin = kafka.client_kwargs()
        passwords = {p: secrets.token_urlsafe(18) for p in derive_grants(config, app_id)}
        run(apply_topics(config, kafka.bootstrap, security=admin))
        apply_acls(config, kafka.bootstrap, app_id, admin, passwords)
        yield Tls(kafka, app_id, passwords)
    finally:
        kafka.stop()


# -- the attack on the controller listener -------------------------------------------
def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def create_acls_request(principal: str, topic: str) -> bytes:
    """A raw CreateAcls v1 request: ALLOW ``principal`` READ on topic ``topic``."""
    header = struct.pack(">hhi", 30, 1, 7) + _string("probe")
    body = (
        struct.pack(">i", 1)  # one creation
        + struct.pack(">b", 2) + _string(topic)  # resource type TOPIC, name
        + struct.pack(">b", 3)  # pattern LITERAL
        + _string(principal) + _string("*")
        + struct.pack(">bb", 3, 3)  # operation READ, permission ALLOW
    )
    msg = header + body
    return struct.pack(">i", len(msg)) + msg


def send_create_acls(sock: socket.socket | ssl.SSLSocket, principal: str, topic: str) -> int:
    """Send the request; the response's first error code (0: the ACL was created)."""
    sock.sendall(create_acls_request(principal, topic))

    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    size = struct.unpack(">i", read(4))[0]
    if not 0 < size < 1 << 20:
        raise ConnectionError(f"not a Kafka response (size field {size})")  # e.g. a TLS alert
    data = read(size)
    # correlation id, throttle ms, results count, first error code
    return struct.unpack(">iiih", data[:14])[3]


def attack_outcome(tls: Tls, wrap: ssl.SSLContext | None) -> str:
    with socket.create_connection(("127.0.0.1", tls.kafka.cport), timeout=10) as raw:
        try:
            sock = raw if wrap is None else wrap.wrap_socket(raw, server_hostname="127.0.0.1")
            code = send_create_acls(sock, "User:agency-cert", "alerts.border")
        except (OSError, struct.error) as exc:  # TLS alert, reset, or closed mid-way
            return f"refused: {type(exc).__name__}"
    return f"answered: error code {code}"


async def _cert_reads_border(tls: Tls) -> bool:
    conn = Connection.of(tls.settings("agency-cert"))
    try:
        consumer = await clients.assigned_consumer(conn, "alerts.border", True)
    except TopicAuthorizationFailedError:
        return False
    assert consumer is not None
    try:
        await consumer.getmany(timeout_ms=2000)
        return True
    except TopicAuthorizationFailedError:
        return False
    finally:
        await consumer.stop()


def test_controller_refuses_create_acls_without_a_client_certificate(tls: Tls) -> None:
    # In the clear, as the probe did.
    assert attack_outcome(tls, None).startswith("refused")
    # Over TLS, trusting the CA, but without a client certificate.
    no_cert = ssl.create_default_context(cafile=tls.ca)
    assert attack_outcome(tls, no_cert).startswith("refused")
    # Nothing was granted: agency-cert still cannot read the border agency's alerts.
    assert not run(_cert_reads_border(tls))


# -- the client listener --------------------------------------------------------------
def test_client_listener_speaks_tls_and_is_verified(tls: Tls) -> None:
    admin = tls.kafka.client_kwargs()
    assert admin["security_protocol"] == "SASL_SSL"
    # SASL in the clear is refused: credentials never cross the wire unencrypted.
    clear = {k: v for k, v in admin.items() if k != "ssl_context"}
    clear["security_protocol"] = "SASL_PLAINTEXT"
    assert not broker_answers(tls.kafka.bootstrap, 5, **clear)
    # TLS trusting only the system store: the local CA is unknown, so refused.
    system = {**admin, "ssl_context": ssl.create_default_context()}
    assert not broker_answers(tls.kafka.bootstrap, 5, **system)
    # WATCHFLOOR_SSL_CAFILE: verified, and the username alone upgrades to SASL_SSL.
    conn = Connection.of(tls.settings("agency-cert"))
    assert conn.security["security_protocol"] == "SASL_SSL"
    assert broker_answers(tls.kafka.bootstrap, 10, **conn.security)


def test_keys_are_private_and_the_ca_signs_the_broker(tls: Tls) -> None:
    from cryptography import x509

    files = tls.kafka.tls_files
    assert files.dir.stat().st_mode & 0o077 == 0
    for private in (files.ca_key, files.keystore):
        assert private.stat().st_mode & 0o077 == 0, private
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    broker = x509.load_pem_x509_certificates(files.keystore.read_bytes())[0]
    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_pipeline_over_tls(tls: Tls, config: Config, tmp_path: Path) -> None:
    pw = tmp_path / "worker.password"
    pw.write_text(tls.passwords["watchfloor-worker"])
    pw.chmod(0o600)
    worker = start_worker(
        tls.kafka.bootstrap, config, tmp_path, app_id=tls.app_id,
        WATCHFLOOR_SASL_USERNAME="watchfloor-worker",
        WATCHFLOOR_SASL_PASSWORD_FILE=str(pw),
        WATCHFLOOR_SSL_CAFILE=str(tls.ca),
    )
    try:
        event_id = f"brd-tls-{uuid.uuid4().hex[:8]}"
        event = {
            "event_id": event_id, "ts": int(time.time() * 1000), "document_id": "P0007781",
            "nationality": "FRA", "crossing_point": "CDG-T2", "direction": "entry",
        }

        async def send_and_wait() -> bool:
            producer = clients.producer(tls.settings("sensor-border"), acks="all")
            await producer.start()
            try:
                await asyncio.wait_for(
                    producer.send_and_wait("events.border", orjson.dumps(event), key=b"P0007781"),
                    30,
                )
            finally:
                await producer.stop()
            consumer = await clients.assigned_consumer(
                tls.settings("agency-border"), "alerts.border", True
            )
            assert consumer is not None
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    for batch in (await consumer.getmany(timeout_ms=300)).values():
                        for r in batch:
                            dets = orjson.loads(r.value).get("detections", [])
                            if any(d.get("event_id") == event_id for d in dets):
                                return True
            finally:
                await consumer.stop()
            return False

        assert run(send_and_wait()), worker.log_tail()
    finally:
        stop_worker(worker)
