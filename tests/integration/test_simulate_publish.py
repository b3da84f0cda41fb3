"""The simulator's publisher on the real broker: paced, keyed, valid, counted."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer

from watchfloor.core.decoding import decode
from watchfloor.core.events import DOMAINS, ENTITY_FIELDS
from watchfloor.kafka.clients import topic_partitions
from watchfloor.simulation import Simulator, publish

pytestmark = pytest.mark.broker


async def _read_all(bootstrap: str, topics: dict[str, str]) -> list[tuple[str, bytes, bytes, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out = []
    try:
        tps = [tp for t in topics.values() for tp in await topic_partitions(bootstrap, t)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out += [(tp.topic, r.key, r.value, r.timestamp) for r in records]
    finally:
        await consumer.stop()
    return out


def _create(bootstrap: str, prefix: str) -> dict[str, str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    names = {d: f"{prefix}-{uuid.uuid4().hex[:6]}-{d}" for d in DOMAINS}

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics(
            [
                NewTopic(n, 2, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})
                for n in names.values()
            ]
        )
        await admin.close()

    asyncio.run(create())
    return names


async def test_publish_sends_paced_keyed_valid_events(broker: str) -> None:
    topics = broker
    names = await asyncio.to_thread(_create, broker, "sim-paced")

    counts = await publish(topics, rate=2_000, duration=1.5, seed=9, days=2, topics=names)
    records = await _read_all(topics, names)
    assert len(records) == sum(counts[d] for d in DOMAINS) == 3_000
    domain_of = {v: k for k, v in names.items()}
    per_domain: Counter[str] = Counter()
    for topic, key, value, _ts in records:
        domain = domain_of[topic]
        event = decode(domain, value)
        assert key == event[ENTITY_FIELDS[domain][1]].encode()
        per_domain[domain] += 1
    assert dict(per_domain) == {d: counts[d] for d in DOMAINS}
    expected: Counter[str] = Counter()
    for _, e in Simulator(seed=9, days=2).events(3_000):
        if e["sim"]["threat"]:
            expected[e["sim"]["threat"]] += 1
    assert {k: v for k, v in counts.items() if k not in DOMAINS} == dict(expected)
    # Paced, not dumped: the broker's arrival stamps spread over most of the duration.
    stamps = sorted(ts for *_, ts in records)
    assert (stamps[-1] - stamps[0]) / 1000 > 1.0


async def test_publish_cancelled_stops_cleanly_keeping_what_was_sent(broker: str) -> None:
    names = await asyncio.to_thread(_create, broker, "sim-cancel")
    task = asyncio.create_task(publish(broker, rate=500, duration=60, seed=1, topics=names))
    await asyncio.sleep(2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    records = await _read_all(broker, names)
    # What went out before the cancel was flushed and is valid; the rest never went.
    assert 0 < len(records) < 500 * 60
    for topic, _key, value, _ts in records:
        decode(topic.rsplit("-", 1)[1], value)
