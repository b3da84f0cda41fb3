"""Small helpers around aiokafka clients shared by the CLI and tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError

UNKNOWN_TOPIC = 3
TOPIC_AUTHORIZATION_FAILED = 29


async def topic_partitions(
    bootstrap: str, topic: str, security: Mapping[str, Any] | None = None
) -> list[TopicPartition]:
    """The partitions of ``topic`` (empty if it does not exist).

    A consumer only knows the metadata of topics it subscribed to, so ``assign`` users ask
    the cluster directly. ``security``: authentication kwargs
    (``watchfloor.kafka.security.client_kwargs``); a topic the principal may not
    describe raises ``TopicAuthorizationFailedError``.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(security or {}))
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if meta["error_code"] == UNKNOWN_TOPIC:
        return []
    if meta["error_code"] == TOPIC_AUTHORIZATION_FAILED:
        raise TopicAuthorizationFailedError(topic)
    return [
        TopicPartition(topic, p["partition"])
        for p in sorted(meta["partitions"], key=lambda p: p["partition"])
    ]


async def assigned_consumer(
    bootstrap: str,
    topic: str,
    from_beginning: bool,
    start: dict[int, int] | None = None,
    security: Mapping[str, Any] | None = None,
) -> AIOKafkaConsumer | None:
    """A started consumer assigned to every partition of ``topic`` (no group, no commits),
    positioned at the beginning, the end, or the given offsets; None if no such topic."""
    tps = await topic_partitions(bootstrap, topic, security)
    if not tps:
        return None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(security or {})
    )
    await consumer.start()
    consumer.assign(tps)
    for tp in tps:
        if start and tp.partition in start:
            consumer.seek(tp, start[tp.partition])
        elif from_beginning:
            await consumer.seek_to_beginning(tp)
        else:
            await consumer.seek_to_end(tp)
    return consumer
