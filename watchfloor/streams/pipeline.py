"""The per-batch core of the scoring stage: decode → validate → score, or dead-letter.

Plain Python with no Faust or Kafka inside, so it is unit-tested without a broker and
can replay a file. The Faust agent hands in a batch of raw records and publishes what
comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from watchfloor.core.deadletter import MAX_EVENT_BYTES, RawRecord, deadletter
from watchfloor.core.decoding import InvalidEvent, decode
from watchfloor.detectors.engine import REKEYED, WHOLE_DOMAIN, DomainEngine, RekeyedEngine
from watchfloor.streams.metrics import Metrics

# A detection is published as one Kafka message; the broker refuses messages over 1 MiB
# by default and a refused publish would fail the whole batch. Detections are small by
# construction (bounded ids, reasons cut by the engine): one over this is dead-lettered.
MAX_DETECTION_BYTES = 64 * 1024


def failure(exc: BaseException) -> tuple[str, str]:
    """(reason, detail) for a record whose processing raised: the exception's class only.

    Its message may quote the event (or, from a library, a secret), so it is not kept.

    >>> failure(RecursionError("maximum recursion depth exceeded"))
    ('processing_error', 'RecursionError')
    >>> failure(InvalidEvent("too_deep", "'x' is nested deeper than 16 levels"))
    ('too_deep', "'x' is nested deeper than 16 levels")
    """
    if isinstance(exc, InvalidEvent):
        return exc.code, exc.detail
    return "processing_error", type(exc).__name__


class EventProcessor:
    """Score batches of raw input records, with one engine (and so one set of learnt
    detector state) per input partition: state moves with its partition on rebalance.

    Every record ends scored or dead-lettered, each on its own: a record whose decoding,
    scoring or detection raises is dead-lettered (reason and exception class) and the
    rest of the batch goes on. An event dated more than ``max_future_seconds`` after its
    broker arrival time is dead-lettered as ``future_timestamp`` (arrival ``<= 0`` means
    unknown: no check).

    ``rekey`` maps a domain to its re-keyed stages, ``(stage, field)``: each valid event
    of the domain is also handed out (``process(..., rekeyed=out)``) as a record keyed by
    ``field`` for the second stage, the pseudo-domain ``REKEYED`` whose engines
    (:class:`~watchfloor.detectors.engine.RekeyedEngine`) run the detectors keyed by
    other fields than the input key.
    """

    def __init__(
        self,
        factory: Callable[[str], Any],
        metrics: Metrics,
        *,
        max_future_seconds: float = 300.0,
        rekey: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self.factory = factory
        self.metrics = metrics
        self.max_future = float(max_future_seconds)
        self.rekey = {d: tuple(stages) for d, stages in (rekey or {}).items() if stages}
        # Per domain, per stage: (field, record head, key or key prefix), built once rather
        # than per event. The whole-domain stage has one key: one partition holds it all.
        self._rekey_plan = {
            d: tuple(
                (field, RekeyedEngine.head(stage),
                 stage.encode() if field == WHOLE_DOMAIN else stage.encode() + b"|")
                for stage, field in stages
            )
            for d, stages in self.rekey.items()
        }  # fmt: skip
        self.engines: dict[tuple[str, int], DomainEngine | RekeyedEngine] = {}
        # Engines that learnt something since their last checkpoint.
        self.dirty: set[tuple[str, int]] = set()
        # Next input offset per partition: what a checkpoint of the engine covers.
        self.next_offset: dict[tuple[str, int], int] = {}
        # After a restore from a checkpoint newer than the committed offset, the records
        # below this offset were already processed and published: skip them.
        self.skip_until: dict[tuple[str, int], int] = {}

    def engine(self, domain: str, partition: int) -> Any:
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
        self,
        domain: str,
        records: Iterable[RawRecord],
        rekeyed: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Return (detections, dead-letter records) for a batch of one domain's records
        (``REKEYED``: of re-keyed records). With ``rekeyed``, the (key, value) records for
        the second stage are appended to it; without, the re-keyed detectors do not see
        this batch."""
        second = domain == REKEYED
        plan = None if rekeyed is None else self._rekey_plan.get(domain)
        out: list[tuple[bytes, bytes]] = [] if rekeyed is None else rekeyed
        detections: list[dict[str, Any]] = []
        deadletters: list[bytes] = []
        next_offset = self.next_offset
        n = 0
        current: tuple[str, int] | None = None
        score = None
        skip = -1
        last = -1
        max_future = self.max_future
        for value, key, topic, partition, offset, arrival in records:
            n += 1
            if current is None or partition != current[1]:
                # Batches hold runs of one partition; switch engines only at run edges.
                if current is not None:
                    # The state covers what was skipped too (learnt by the previous
                    # owner): a checkpoint or a kept partition must not go back there.
                    next_offset[current] = max(last + 1, skip)
                current = (domain, partition)
                engine = self.engine(domain, partition)
                score = None if second else engine.process  # type: ignore[union-attr]
                skip = self.skip_until.get(current, -1)
                self.dirty.add(current)
            last = offset
            if offset < skip:
                continue
            if second:
                self._second(
                    engine, value, topic, partition, offset, key, detections, deadletters  # type: ignore[arg-type]
                )
                continue
            try:
                event = decode(domain, value, MAX_EVENT_BYTES)
                # The broker stamps arrival (LogAppendTime); a sensor cannot fake it.
                if arrival > 0 and event["_ts"] > arrival + max_future:
                    raise InvalidEvent(
                        "future_timestamp",
                        f"'ts' is {event['_ts'] - arrival:.0f} s after the broker's "
                        f"arrival time (limit {max_future:.0f} s)",
                    )
                found = score(event, arrival)  # type: ignore[misc]
                if found:
                    for det in found:
                        if len(orjson.dumps(det)) > MAX_DETECTION_BYTES:
                            raise InvalidEvent("too_large", "its detection would be too large")
                    detections.extend(found)
                if plan:
                    tail = orjson.dumps(arrival) + b',"e":' + orjson.dumps(event) + b"}"
                    for field, head, prefix in plan:
                        if field == WHOLE_DOMAIN:
                            out.append((prefix, head + tail))
                            continue
                        v = event.get(field)
                        if v is not None and v != "":
                            out.append((prefix + str(v).encode(), head + tail))
            except Exception as exc:  # one record's failure must not lose its batch
                self._dead(domain, value, topic, partition, offset, key, exc, deadletters)
        if current is not None:
            next_offset[current] = max(last + 1, skip)
        # One increment per batch: the counter's lock is not taken per event. (Re-keyed
        # records are events counted once already, by their domain.)
        if not second:
            self.metrics.events[domain].inc(n)
        if deadletters:
            self.metrics.deadletter_counter(domain).inc(len(deadletters))
        return detections, deadletters

    def _second(
        self,
        engine: RekeyedEngine,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        detections: list[dict[str, Any]],
        deadletters: list[bytes],
    ) -> None:
        """Score one record of the re-keyed topic: a pack of events (or one), each
        validated by the first stage; one that fails is dead-lettered alone."""
        try:
            items = engine.items(value)
        except Exception as exc:
            items = []
            self._dead(REKEYED, value, topic, partition, offset, key, exc, deadletters)
        for item in items:
            try:
                found = engine.process_item(item)
                for det in found:
                    if len(orjson.dumps(det)) > MAX_DETECTION_BYTES:
                        raise InvalidEvent("too_large", "its detection would be too large")
                detections.extend(found)
            except Exception as exc:  # one event's failure must not lose its pack
                raw = value if len(items) == 1 else orjson.dumps(item)
                self._dead(REKEYED, raw, topic, partition, offset, key, exc, deadletters)

    def _dead(
        self,
        domain: str,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        exc: BaseException,
        deadletters: list[bytes],
    ) -> None:
        code, detail = failure(exc)
        self.metrics.invalid_counter(domain, code).inc()
        deadletters.append(deadletter(value, topic, partition, offset, code, detail, key=key))

    def learn(
        self,
        domain: str,
        partition: int,
        values: Iterable[bytes | None],
        arrivals: Iterable[float] | None = None,
    ) -> int:
        """Learn events without scoring or output: rebuilds state for records that the
        previous owner processed after its last checkpoint. Returns how many it learnt.

        ``arrivals`` are the records' broker timestamps (epoch s): with them, records the
        previous owner refused as ``future_timestamp`` are refused again, not learnt."""
        engine = self.engine(domain, partition)
        learnt = 0
        max_future = self.max_future
        times = iter(arrivals) if arrivals is not None else None
        for value in values:
            arrival = next(times, 0.0) if times is not None else 0.0
            try:
                if domain == REKEYED:
                    assert isinstance(engine, RekeyedEngine)
                    for item in engine.items(value):
                        try:
                            engine.learn_item(item)
                        except Exception:
                            continue  # dead-lettered by the previous owner
                        learnt += 1
                    continue
                event = decode(domain, value, MAX_EVENT_BYTES)
                if arrival > 0 and event["_ts"] > arrival + max_future:
                    continue
                engine.learn(event, arrival)
            except Exception:
                continue  # dead-lettered by the previous owner
            learnt += 1
        return learnt
