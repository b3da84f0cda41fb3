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
  (Faust's ``perform_seek`` on assignment); a partition with no committed offset yet is
  not sought (aiokafka seeks only to offsets > 0), so records dropped there in a group's
  first seconds are not re-read: the hole Faust's own stream queues have;
- the consumer waits while a lane is full (back-pressure, interruptible by a rebalance).
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

    def __init__(self, app: Any, topics: Iterable[str], size: int, limit: int = 0) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.size = size
        # The consumer waits beyond this many buffered records (a few batches' worth).
        self.limit = limit or 4 * size
        self._buf: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        # Flow control clears the lane when a rebalance starts and when flow resumes.
        app.flow_control.manage_queue(self)
        lanes_of(app).update(dict.fromkeys(self.topics, self))

    def __len__(self) -> int:
        return len(self._buf)

    async def put(self, messages: list[Any]) -> None:
        """Append fetched records (the consumer's side); waits while the lane is full."""
        if len(self._buf) >= self.limit:
            self._space.clear()
            await self._space.wait()
        self._buf.extend(messages)
        self._ready.set()

    def clear(self) -> None:
        """Drop every buffered record (called by Faust's flow control)."""
        self._buf.clear()
        self._ready.clear()
        self._space.set()

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Batches of at most ``size`` records, each tracked as pending acknowledgement;
        the agent calls :meth:`done` once the batch's outputs are acknowledged."""
        buf, ready, space, app = self._buf, self._ready, self._space, self.app
        flow = app.flow_control
        while True:
            if not buf:
                ready.clear()
                await ready.wait()
                continue
            n = min(self.size, len(buf))
            batch = [buf.popleft() for _ in range(n)]
            if len(buf) < self.limit:
                space.set()
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
