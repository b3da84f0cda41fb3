"""The one place Kafka clients are built: one constructor per kind of client.

Every constructor takes a *target*: the worker's or operator's :class:`Settings` (their
security settings are applied through :func:`watchfloor.kafka.security.client_kwargs`), or
a :class:`Connection` that names the bootstrap servers together with the security
arguments (there is no default: building a client means saying how it authenticates).
Overrides may tune a client (``acks``, timeouts, ``client_id``) but never its security:
passing ``security_protocol``, ``sasl_*`` or ``ssl_*`` as an override is refused, so a
client cannot be built that silently drops the credentials (issue 9.1: the admin clients
that read committed offsets on restart were built without SASL and a worker on a
secured broker crash-looped).

``tests/kafka/test_one_constructor.py`` scans ``watchfloor/`` and fails if a Kafka client
class is instantiated anywhere else.

>>> from watchfloor.settings import Settings
>>> connection(Settings(broker="kafka://h1:9092;kafka://h2:9092")).bootstrap
'h1:9092,h2:9092'
>>> c = connection(Settings(sasl_username="agency-cert", sasl_password="pw"))
>>> c.security["security_protocol"], "pw" in repr(c)
('SASL_PLAINTEXT', False)
>>> producer(c, security_protocol="PLAINTEXT")
Traceback (most recent call last):
...
ValueError: security settings cannot be overridden per client: security_protocol
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from watchfloor.kafka.security import broker_credentials, client_kwargs
from watchfloor.settings import Settings

UNKNOWN_TOPIC = 3
TOPIC_AUTHORIZATION_FAILED = 29

_SECURITY_KEYS = ("security_protocol", "sasl_", "ssl_")


@dataclass(frozen=True)
class Connection:
    """Bootstrap servers (``host:port[,host:port]``) and the client security kwargs that
    go with them (``{}`` or ``{"security_protocol": "PLAINTEXT"}`` for an unsecured
    broker; it must be said). ``repr`` never shows the security kwargs (passwords)."""

    bootstrap: str
    security: Mapping[str, Any] = field(repr=False)

    @classmethod
    def of(cls, settings: Settings) -> Connection:
        return cls(settings.bootstrap_servers, client_kwargs(settings))


Target = Settings | Connection


def connection(target: Target) -> Connection:
    """The :class:`Connection` of ``target`` (Settings get their security applied)."""
    if isinstance(target, Connection):
        return target
    if isinstance(target, Settings):
        return Connection.of(target)
    raise TypeError(
        f"a Kafka client needs Settings or a Connection (bootstrap + security), "
        f"not {type(target).__name__}"
    )


def _kwargs(target: Target, overrides: Mapping[str, Any]) -> dict[str, Any]:
    bad = sorted(k for k in overrides if k.startswith(_SECURITY_KEYS))
    if bad:
        raise ValueError(
            "security settings cannot be overridden per client: " + ", ".join(bad)
        )
    conn = connection(target)
    return {"bootstrap_servers": conn.bootstrap, **overrides, **conn.security}


def producer(target: Target, **overrides: Any) -> AIOKafkaProducer:
    """An (unstarted) ``AIOKafkaProducer`` with ``target``'s security applied."""
    return AIOKafkaProducer(**_kwargs(target, overrides))


def consumer(target: Target, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """An (unstarted) ``AIOKafkaConsumer`` with ``target``'s security applied."""
    return AIOKafkaConsumer(*topics, **_kwargs(target, overrides))


def admin(target: Target, **overrides: Any) -> AIOKafkaAdminClient:
    """An (unstarted) aiokafka admin client with ``target``'s security applied."""
    return AIOKafkaAdminClient(**_kwargs(target, overrides))


def kafka_python_admin(target: Target, **overrides: Any) -> Any:
    """A connected kafka-python ``KafkaAdminClient`` (ACLs and SCRAM users, which
    aiokafka's admin lacks) with ``target``'s security applied."""
    from kafka.admin import KafkaAdminClient

    kw = _kwargs(target, overrides)
    kw["bootstrap_servers"] = kw["bootstrap_servers"].split(",")
    return KafkaAdminClient(**kw)


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the worker (None for PLAINTEXT)."""
    return broker_credentials(settings)


def resolve(target: Target | str, security: Mapping[str, Any] | None = None) -> Target:
    """``target``, or a Connection of a bootstrap string and its ``security`` kwargs."""
    # A bare bootstrap string is kept for tests against the unsecured session broker and
    # for callers that hold (bootstrap, security kwargs); watchfloor's own code passes
    # Settings (see tests/kafka/test_one_constructor.py).
    if isinstance(target, str):
        return Connection(target, dict(security or {}))
    if security is not None:
        raise TypeError("security= goes with a bootstrap string, not with Settings")
    return target


async def topic_partitions(
    target: Target | str, topic: str, security: Mapping[str, Any] | None = None
) -> list[TopicPartition]:
    """The partitions of ``topic`` (empty if it does not exist).

    A consumer only knows the metadata of topics it subscribed to, so ``assign`` users ask
    the cluster directly. A topic the principal may not describe raises
    ``TopicAuthorizationFailedError``.
    """
    client = admin(resolve(target, security))
    await client.start()
    try:
        (meta,) = await client.describe_topics([topic])
    finally:
        await client.close()
    if meta["error_code"] == UNKNOWN_TOPIC:
        return []
    if meta["error_code"] == TOPIC_AUTHORIZATION_FAILED:
        raise TopicAuthorizationFailedError(topic)
    return [
        TopicPartition(topic, p["partition"])
        for p in sorted(meta["partitions"], key=lambda p: p["partition"])
    ]


async def assigned_consumer(
    target: Target | str,
    topic: str,
    from_beginning: bool,
    start: dict[int, int] | None = None,
    security: Mapping[str, Any] | None = None,
) -> AIOKafkaConsumer | None:
    """A started consumer assigned to every partition of ``topic`` (no group, no commits),
    positioned at the beginning, the end, or the given offsets; None if no such topic."""
    where = resolve(target, security)
    tps = await topic_partitions(where, topic)
    if not tps:
        return None
    client = consumer(where, enable_auto_commit=False)
    await client.start()
    client.assign(tps)
    for tp in tps:
        if start and tp.partition in start:
            client.seek(tp, start[tp.partition])
        elif from_beginning:
            await client.seek_to_beginning(tp)
        else:
            await client.seek_to_end(tp)
    return client


async def committed_offsets(target: Target, group: str) -> dict[tuple[str, int], int]:
    """The committed offsets of consumer group ``group``, by (topic, partition)."""
    client = admin(target)
    await client.start()
    try:
        offsets = await client.list_consumer_group_offsets(group)
    finally:
        await client.close()
    return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}


async def wait_for_broker(
    target: Target, on_wait: Callable[[float], None], every: float = 2.0
) -> None:
    """Return once the broker answers; until then call ``on_wait(seconds waited)`` after
    each failed attempt and retry every ``every`` seconds (a worker started before its
    broker waits, as Kafka clients do, instead of dying with a traceback). Refusals
    (authentication, authorization) are not waited out: they raise."""
    started = time.monotonic()
    while True:
        client = admin(target, request_timeout_ms=5000)
        try:
            await client.start()
            return
        except KafkaConnectionError:
            on_wait(time.monotonic() - started)
        finally:
            await client.close()
        await asyncio.sleep(every)


async def retained_records(target: Target, topics: list[str]) -> int:
    """How many records ``topics`` hold now (end minus beginning, over partitions)."""
    tps = [tp for t in topics for tp in await topic_partitions(target, t)]
    if not tps:
        return 0
    client = consumer(target, enable_auto_commit=False)
    await client.start()
    try:
        begin = await client.beginning_offsets(tps)
        end = await client.end_offsets(tps)
    finally:
        await client.stop()
    return sum(max(0, end[tp] - begin[tp]) for tp in tps)
