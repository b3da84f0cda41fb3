"""Small real-Kafka helpers for tests: produce, read a topic, wait for matching records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from watchfloor.kafka.clients import assigned_consumer


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None]],
    partition: int | None = None,
) -> None:
    """Send (key, value) messages and wait for every acknowledgement; ``partition``: all
    to that one (default: as the keys hash)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition)
            for key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = await assigned_consumer(bootstrap, topic, from_beginning=False)
    assert consumer is not None, f"no topic {topic}"
    try:
        return {tp.partition: await consumer.position(tp) for tp in consumer.assignment()}
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
    consumer = await assigned_consumer(bootstrap, topic, from_beginning=True, start=start)
    assert consumer is not None, f"no topic {topic}"
    found: list[dict[str, Any]] = []
    try:
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


def run(coro):
    return asyncio.run(coro)
