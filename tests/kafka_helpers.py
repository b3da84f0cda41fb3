"""Small real-Kafka helpers for tests: produce, read a topic, wait for matching records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def collect(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 60.0,
    start: dict[int, int] | None = None,
    match: Callable[[dict[str, Any]], bool] = lambda r: True,
) -> list[dict[str, Any]]:
    """Read JSON records of ``topic`` from ``start`` offsets (default beginning) that
    ``match``, until ``until(records)`` is true or ``timeout`` passes; return them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        for tp in tps:
            if start and tp.partition in start:
                consumer.seek(tp, start[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(found):
            batch = await consumer.getmany(timeout_ms=300, max_records=1000)
            for records in batch.values():
                for rec in records:
                    value = orjson.loads(rec.value)
                    if match(value):
                        found.append(value)
    finally:
        await consumer.stop()
    return found


def run(coro):  # noqa: ANN001, ANN201 - tiny sync wrapper for tests
    return asyncio.run(coro)
