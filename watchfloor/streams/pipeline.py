"""The per-batch core of the scoring stage: decode → validate → score, or dead-letter.

Plain Python with no Faust or Kafka inside, so it is unit-tested without a broker and
can replay a file. The Faust agent hands in a batch of raw records and publishes what
comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from watchfloor.core.deadletter import MAX_EVENT_BYTES, RawRecord, deadletter
from watchfloor.core.decoding import InvalidEvent, decode
from watchfloor.detectors.engine import DomainEngine
from watchfloor.streams.metrics import Metrics


class EventProcessor:
    """Score batches of raw input records, with one engine (and so one set of learnt
    detector state) per input partition: state moves with its partition on rebalance."""

    def __init__(self, factory: Callable[[str], DomainEngine], metrics: Metrics) -> None:
        self.factory = factory
        self.metrics = metrics
        self.engines: dict[tuple[str, int], DomainEngine] = {}
        # Engines that learnt something since their last checkpoint.
        self.dirty: set[tuple[str, int]] = set()
        # Next input offset per partition: what a checkpoint of the engine covers.
        self.next_offset: dict[tuple[str, int], int] = {}
        # After a restore from a checkpoint newer than the committed offset, the records
        # below this offset were already processed and published: skip them.
        self.skip_until: dict[tuple[str, int], int] = {}

    def engine(self, domain: str, partition: int) -> DomainEngine:
        key = (domain, partition)
        engine = self.engines.get(key)
        if engine is None:
            engine = self.engines[key] = self.factory(domain)
        return engine

    def drop(self, key: tuple[str, int]) -> None:
        for table in (self.engines, self.next_offset, self.skip_until):
            table.pop(key, None)
        self.dirty.discard(key)

    def process(
        self, domain: str, records: Iterable[RawRecord]
    ) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Return (detections, dead-letter records) for a batch of one domain's records."""
        detections: list[dict[str, Any]] = []
        deadletters: list[bytes] = []
        next_offset = self.next_offset
        n = 0
        current: tuple[str, int] | None = None
        score = None
        skip = -1
        last = -1
        for value, key, topic, partition, offset, arrival in records:
            n += 1
            if current is None or partition != current[1]:
                # Batches hold runs of one partition; switch engines only at run edges.
                if current is not None:
                    next_offset[current] = last + 1
                current = (domain, partition)
                score = self.engine(domain, partition).process
                skip = self.skip_until.get(current, -1)
                self.dirty.add(current)
            last = offset
            if offset < skip:
                continue
            try:
                event = decode(domain, value, MAX_EVENT_BYTES)
            except InvalidEvent as exc:
                self.metrics.invalid_counter(domain, exc.code).inc()
                deadletters.append(
                    deadletter(value, topic, partition, offset, exc.code, exc.detail, key=key)
                )
                continue
            found = score(event, arrival)
            if found:
                detections.extend(found)
        if current is not None:
            next_offset[current] = last + 1
        # One increment per batch: the counter's lock is not taken per event.
        self.metrics.events[domain].inc(n)
        if deadletters:
            self.metrics.deadletter_counter(domain).inc(len(deadletters))
        return detections, deadletters

    def learn(self, domain: str, partition: int, values: Iterable[bytes | None]) -> int:
        """Learn events without scoring or output: rebuilds state for records that the
        previous owner processed after its last checkpoint. Returns how many it learnt."""
        engine = self.engine(domain, partition)
        learnt = 0
        for value in values:
            try:
                event = decode(domain, value, MAX_EVENT_BYTES)
            except InvalidEvent:
                continue  # dead-lettered by the previous owner
            engine.learn(event)
            learnt += 1
        return learnt
