"""The worker's consumer on a real broker: what a rebalance drops is fetched again."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_helpers import run
from watchfloor.streams.drain import rewind_to_committed

pytestmark = pytest.mark.broker


async def position_after_rewind(
    bootstrap: str, committed: int | None, reset: str = "earliest"
) -> tuple[int, int]:
    """Read a new partition's 10 records in a group, commit ``committed`` (None: nothing),
    rewind; return the position before and after."""
    topic = f"rewind-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, b"%d" % i, partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        enable_auto_commit=False,
        auto_offset_reset=reset,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        if reset == "latest":
            await consumer.seek_to_beginning(tp)
        seen = 0
        while seen < 10:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            seen += len(batch.get(tp, []))
        if committed is not None:
            await consumer.commit({tp: committed})
        before = await consumer.position(tp)
        await rewind_to_committed(consumer)
        return before, await consumer.position(tp)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("committed, expected", [(None, 0), (0, 0), (5, 5)])
def test_a_rebalance_rewinds_even_a_partition_nobody_committed(
    broker: str, committed: int | None, expected: int
) -> None:
    # aiokafka's seek_to_committed left a partition without a commit (or at 0) after the
    # records the rebalance dropped: they were never processed (CI, session 6).
    before, after = run(position_after_rewind(broker, committed))
    assert (before, after) == (10, expected)


def test_with_from_latest_a_partition_nobody_committed_is_not_sought(broker: str) -> None:
    assert run(position_after_rewind(broker, None, reset="latest")) == (10, 10)
