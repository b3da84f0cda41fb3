"""Fetched records handed to an agent in batches, past Faust's per-message layer.

Faust routes every fetched record through its conductor (topic lookup under a lock, value
decoding, an ``Event`` object, a queue put), then the agent's stream iterator (flow-control
and generation checks, tracking, sensors) and ``take_events`` (a buffer per batch, one ack
per event). Profiled on the worker draining a backlog this was about a third of its CPU
(issue 12). Our agents only ever read the raw bytes of a batch, so the consumer
(:mod:`~watchfloor.streams.drain`) appends the records of the agents' topics to a
:class:`Lane` per agent instead, and the agent takes batches from it.

What Faust guarantees is kept, the way its stream keeps it:

- a record is *tracked* (pending acknowledgement, so a rebalance or shutdown waits for
  it) when the agent takes it, and *acknowledged* with ``Consumer.ack`` only after the
  agent published everything the batch produced (:meth:`Lane.done`): commit after ack,
  at least once;
- records fetched before a rebalance are dropped, not processed: the lane is one of the
  queues Faust's flow control clears, and a batch taken while flow is suspended or of an
  older consumer generation is skipped. They are fetched again from the committed offsets
  (Faust's ``perform_seek``), and from its start a partition nobody committed yet
  (:func:`~watchfloor.streams.drain.rewind_to_committed`: aiokafka skipped those, and the
  records Faust dropped there were lost, the hole its own stream queues have);
- a batch waits while its lane's *gate* is clear: from a revocation until the new
  assignment's state is restored (Faust resumes the flow before that);
- an *urgent* lane's partitions (detections, feedback) are fetched ahead of the others
  at every turn of the consumer: Kafka's client hands out what it prefetched partition
  by partition, so a detection otherwise waited behind every input record already
  fetched (seconds, tens of thousands of events, in a backlog);
- back-pressure per lane: a full lane stops the fetching of its own partitions only
  (Faust's ``on_buffer_full``, as its stream buffers do) until its agent takes from it,
  so a backlog of events never holds up the fetching of the detections whose alerts are
  due (issue 12); records fetched meanwhile still go to the lane (bounded: one fetch).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["Lane", "lanes_of"]


class Lane:
    """Records of ``topics`` for one agent, taken ``size`` at most at a time."""

    def __init__(
        self,
        app: Any,
        topics: Iterable[str],
        size: int,
        limit: int = 0,
        urgent: bool = False,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.size = size
        self.urgent = urgent
        # Batches wait while it is clear (the state of a new assignment being restored).
        self.gate = gate
        # The consumer waits beyond this many buffered records (a few batches' worth).
        self.limit = limit or 4 * size
        self._buf: deque[Any] = deque()
        self._ready = asyncio.Event()
        # Partitions whose fetching this lane stopped while full.
        self._held: set[Any] = set()
        # Flow control clears the lane when a rebalance starts and when flow resumes.
        app.flow_control.manage_queue(self)
        lanes_of(app).update(dict.fromkeys(self.topics, self))

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def holding(self) -> bool:
        """Whether the lane, full, stopped the fetching of its partitions."""
        return bool(self._held)

    def put(self, messages: list[Any]) -> None:
        """Append fetched records (the consumer's side); once the lane is full, its
        partitions are not fetched until the agent took a batch."""
        self._buf.extend(messages)
        self._ready.set()
        if len(self._buf) >= self.limit:
            consumer = self.app.consumer
            # Only partitions being fetched: never one Faust itself paused.
            for tp in list(consumer._get_active_partitions()):
                if tp.topic in self.topics and tp not in self._held:
                    self._held.add(tp)
                    consumer.on_buffer_full(tp)

    def _release(self) -> None:
        consumer = self.app.consumer
        paused = consumer._paused_partitions  # by Faust meanwhile: stays paused
        for tp in self._held:
            if tp not in paused:
                consumer.on_buffer_drop(tp)
        self._held.clear()

    def clear(self) -> None:
        """Drop every buffered record (called by Faust's flow control)."""
        self._buf.clear()
        self._ready.clear()
        if self._held:
            self._release()

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Batches of at most ``size`` records, each tracked as pending acknowledgement;
        the agent calls :meth:`done` once the batch's outputs are acknowledged."""
        buf, ready, app, gate = self._buf, self._ready, self.app, self.gate
        flow = app.flow_control
        while True:
            if not buf:
                ready.clear()
                await ready.wait()
                continue
            n = min(self.size, len(buf))
            batch = [buf.popleft() for _ in range(n)]
            if self._held and len(buf) < self.limit:
                self._release()
            if gate is not None and not gate.is_set():
                await gate.wait()
            # As Faust's stream does: nothing fetched before a rebalance is processed.
            if not flow.is_active():
                continue
            generation = app.consumer_generation_id
            if any(m.generation_id != generation for m in batch):
                batch = [m for m in batch if m.generation_id == generation]
                if not batch:
                    continue
            track = app.consumer._unacked_messages.add  # Consumer.track_message, no sensors
            for m in batch:
                m.tracked = True
                track(m)
            # Faust's livelock check reads when each partition last reached a stream.
            inbound = getattr(getattr(app, "monitor", None), "stream_inbound_time", None)
            if inbound is not None:
                now = time.monotonic()
                for tp in {m.tp for m in batch}:
                    inbound[tp] = now
            yield batch

    def untrack(self, batch: list[Any]) -> None:
        """Forget a batch that will never be acknowledged (its agent failed): a rebalance
        or shutdown must not wait for it, and its offsets are not committed."""
        discard = self.app.consumer._unacked_messages.discard
        for m in batch:
            discard(m)

    def done(self, batch: list[Any]) -> None:
        """Acknowledge a processed batch: its offsets may be committed."""
        ack = self.app.consumer.ack
        for m in batch:
            ack(m)


def lanes_of(app: Any) -> dict[str, Lane]:
    """Topic name -> the lane its records go to, for ``app`` (empty: Faust's path)."""
    lanes = getattr(app, "_watchfloor_lanes", None)
    if lanes is None:
        lanes = {}
        app._watchfloor_lanes = lanes
    return lanes
