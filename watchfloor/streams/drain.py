"""Faust's consumer with one flow-control wait per fetched batch instead of per message.

Faust's ``Consumer._drain_messages`` hands each fetched record to the conductor through
``wait_first(callback(message), suspend_flow.wait())``: two tasks, an ``asyncio.wait``
and a cancellation per message, so that a rebalance (``suspend_flow``) can interrupt a
delivery blocked on a full stream queue. Profiled on the worker it was the largest single
cost of the whole drain (issue 12). Here the same wait guards the delivery of a whole
fetched batch: a rebalance still interrupts it (the undelivered rest is fetched again
from the committed offsets, as Faust does for messages it dropped while suspended), and
everything else (read offsets, gap acks for compacted topics, periodic commits, yielding
to the loop) is Faust's logic unchanged. Acks and commits stay Faust's: at least once,
commit after the agents acknowledged.

Records of a topic that has a :class:`~watchfloor.streams.lanes.Lane` skip the conductor
altogether: they are appended to the lane, once per fetched batch (lanes.py says why and
what is kept). Each turn first takes what was prefetched for the urgent lanes'
partitions, then the rest as Faust does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.consumer.fetcher import OffsetResetStrategy
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

from watchfloor.streams.lanes import lanes_of

YIELD_EVERY = 100  # messages delivered between yields to the event loop (as Faust's)
# While a full lane holds its partitions, fetch with this timeout (instead of Faust's 1 s)
# so that they are fetched again soon after its agent took a batch.
HELD_POLL = 0.02


# How long the broker may hold a fetch for partitions with nothing new (Faust: 1.5 s).
# The client has one fetch in flight per broker, and it leaves out the partitions whose
# previous records are still buffered: an input partition's next events then waited
# behind a fetch of quiet partitions (detections, feedback) held by the broker, which put
# 1.5 s tails on the alert latency at 1,000 events/s (issue 12). Idle, this costs a fetch
# request per broker every FETCH_MAX_WAIT_MS.
FETCH_MAX_WAIT_MS = 50


async def rewind_to_committed(consumer: Any) -> dict[Any, int | None]:
    """Seek every assigned partition of aiokafka ``consumer`` to its committed offset,
    and one without a committed offset (or with 0) back to where the group starts
    reading it; return the committed offsets (None: none).

    Faust calls this (``perform_seek``) to fetch again what it dropped when a rebalance
    stopped the flow: records fetched in flight, and those of the lanes. aiokafka's
    ``seek_to_committed`` seeks only to an offset > 0, so a partition nobody committed
    yet (a dead worker's partition it took over before its first commit, a quiet one)
    stayed *after* the dropped records, and they were never processed: the next commit
    went past them (CI, session 6: two invalid records never dead-lettered)."""
    committed: dict[Any, int | None] = await consumer.seek_to_committed()
    unset = [tp for tp, offset in committed.items() if offset is None or offset <= 0]
    # With "latest" (``--from latest``, skip the history) where the group started is not
    # known (the end, when it first read the partition): not sought, as aiokafka does.
    if unset and consumer._fetcher._default_reset_strategy == OffsetResetStrategy.EARLIEST:
        if not set(unset) <= consumer._subscription.assigned_partitions():
            return committed  # reassigned meanwhile: the new assignment starts afresh
        # Requested, not awaited (as seek_to_beginning would, up to the request timeout):
        # the fetcher fetches none of them until it is done, and a partition whose leader
        # is away must not hold up the rebalance until Faust's recovery times out and
        # crashes the worker.
        done = consumer._fetcher.request_offset_reset(unset, OffsetResetStrategy.EARLIEST)
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
    return committed


class _ConsumerThread(AIOKafkaConsumerThread):
    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> Any:
        consumer = super()._create_consumer(loop)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the fetcher starts
        return consumer

    async def seek_to_committed(self) -> Any:
        return await self.call_thread(rewind_to_committed, self._ensure_consumer())


class BatchedConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer, delivering each fetched batch under one wait."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - on a broker
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        acks_enabled_for = self.app.topics.acks_enabled_for
        sleep = asyncio.sleep
        lanes = lanes_of(self.app)
        lane_of = lanes.get
        active = self._get_active_partitions
        urgent_topics = frozenset(t for t, lane in lanes.items() if lane.urgent)

        def held() -> bool:
            return any(lane.holding for lane in lanes.values())

        async def deliver(batch: list[tuple[Any, Any]]) -> None:
            since_yield = 0
            pending: dict[Any, list[Any]] = {}
            for tp, message in batch:
                lane = lane_of(message.topic)
                if lane is None:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await sleep(0)
                        since_yield = 0
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is None or offset >= r_offset:
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    commit_every = self._commit_every
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if lane is None:
                        await callback(message)
                    elif lane in pending:
                        pending[lane].append(message)
                    else:
                        pending[lane] = [message]
                    set_read_offset(tp, offset)
            for lane, messages in pending.items():
                lane.put(messages)

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                timeout = 1.0
                if held():
                    timeout = HELD_POLL
                    # Faust sleeps a second when no partition may be fetched: wait for a
                    # lane to take instead.
                    while not active() and held():
                        await sleep(HELD_POLL)
                set_flag(CONSUMER_FETCHING)
                if urgent_topics:
                    batch = await self._prefetched({
                        tp for tp in active() if tp.topic in urgent_topics
                    })  # fmt: skip
                    if batch:
                        await self.wait_first(deliver(batch), self.suspend_flow.wait())
                ait = getmany(timeout=timeout)
                # As Faust: getmany may return at once in a loop; let others run.
                await self.sleep(0)
                if not self.should_stop:
                    batch = [item async for item in ait]
                    if batch:
                        await self.wait_first(deliver(batch), self.suspend_flow.wait())
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _prefetched(self, tps: set[Any]) -> list[tuple[Any, Any]]:  # pragma: no cover
        """What the client already fetched for ``tps``, without waiting: Faust's
        ``getmany`` for those partitions only, with its checks after the fetch.

        The client waits out a reassignment before it returns records, so what comes
        back belongs to the current assignment (stamped with the current generation by
        ``_to_message``). Comparing with the generation from *before* the fetch dropped
        the first detections fetched after a takeover, and the client had already moved
        past them: their alerts were lost (CI, session 6)."""
        if not tps or not self.flow_active:
            return []
        records = await self._getmany(active_partitions=tps, timeout=0)
        if not records or self.should_stop:
            return []
        if not self.flow_active:
            # As Faust's getmany: a rebalance began; back to the committed offsets, so
            # the records not delivered now are fetched again.
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return []
        to_message, track_end = self._to_message, self.app.monitor.track_tp_end_offset
        out = []
        for tp, recs in records.items():
            track_end(tp, self.highwater(tp))
            out += [(tp, to_message(tp, r)) for r in recs]
        return out
