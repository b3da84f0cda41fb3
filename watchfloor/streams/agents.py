"""Faust agents: thin adapters that feed batches into the plain-Python stages.

Each agent takes a batch of raw records from its :class:`~watchfloor.streams.lanes.Lane`
(fed by the consumer, past Faust's per-message layer), runs the core on it, publishes
everything the batch produced and waits for the broker's acknowledgements; only then does
it acknowledge the batch, and Faust commit its offsets. A crash before that point
replays the batch: delivery is at least once, and alert ids and versions are
deterministic so consumers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import faust
import orjson
from aiokafka import TopicPartition
from faust.types import TP

from watchfloor.alerts.anchors import Anchorer, anchor_key, audit_key
from watchfloor.config import TopicSpec
from watchfloor.detectors.engine import REKEYED, RekeyedEngine
from watchfloor.kafka.clients import assigned_consumer, committed_offsets
from watchfloor.kafka.partitioner import CachedPartitioner
from watchfloor.streams.checkpoint import Ticket, compress, pickle_state
from watchfloor.streams.increments import pickle_base, pickle_increment
from watchfloor.streams.lanes import Lane
from watchfloor.streams.pipeline import deadletter, failure
from watchfloor.streams.runtime import Runtime

log = logging.getLogger(__name__)
Agent = Callable[[faust.StreamT], Awaitable[None]]


#: (topic, key, value), or (topic, key, value, partition) when the sender chose it.
Message = tuple[str, bytes | None, bytes] | tuple[str, bytes | None, bytes, int]


async def publish(app: faust.App, messages: Sequence[Message]) -> list[Any]:
    """Send all messages, then wait until the broker acknowledged every one."""
    send = app.producer.send
    futures = [
        await send(m[0], m[1], m[2], m[3] if len(m) > 3 else None, None, None)  # type: ignore[misc]
        for m in messages
    ]
    return await asyncio.gather(*futures)


#: A pack of re-keyed records stays well under Kafka's default 1 MB record limit.
PACK_BYTES = 256 * 1024


def packed(
    topic: str, records: Sequence[tuple[bytes, bytes]], partitions: int, partitioner: Any
) -> list[Message]:
    """A batch's re-keyed (key, value) records as one Kafka record per partition (more if
    over ``PACK_BYTES``), each on the partition its records' keys give, in order: one
    record to produce, fetch and acknowledge per partition instead of one per event."""
    parts = list(range(partitions))
    keys: dict[int, bytes] = {}  # partition -> the first key of its open pack
    values: dict[int, list[bytes]] = {}
    sizes: dict[int, int] = {}
    out: list[Message] = []
    for key, value in records:
        p = partitioner(key, parts, parts)
        if p in values and sizes[p] + len(value) > PACK_BYTES:
            out.append((topic, keys[p], RekeyedEngine.pack(values.pop(p)), p))
        if p not in values:
            keys[p], values[p], sizes[p] = key, [], 0
        values[p].append(value)
        sizes[p] += len(value) + 1
    out += [(topic, keys[p], RekeyedEngine.pack(v), p) for p, v in values.items()]
    return out


def dead_letter(topic: str, m: Any, code: str, detail: str) -> tuple[str, None, bytes]:
    """The dead-letter message for Faust message ``m`` (keeps its bytes, key and place)."""
    return topic, None, deadletter(m.value, m.topic, m.partition, m.offset, code, detail, key=m.key)


# -- state checkpoints ------------------------------------------------------------
# Kind of checkpointed state -> the agents that change it (see StateKeeper.busy): a
# partition's engine its domain's scoring agent, an alert stage the alert agent, the
# response tracker both the alert agent (publications) and the feedback agent.
OWNERS: dict[str, Callable[[Any], tuple[str, ...]]] = {
    "score": lambda key: (f"score-{key[0]}",),
    "stage": lambda key: ("alerts",),
    "feedback": lambda key: ("alerts", "feedback"),
}


def score_name(domain: str, partition: int) -> str:
    return f"score.{domain}.{partition}"


def alerts_name(partition: int) -> str:
    return f"alerts.{partition}"


def feedback_name(partition: int) -> str:
    return f"feedback.{partition}"


class StateKeeper:
    """Checkpoints per-partition state and restores it when partitions are assigned."""

    def __init__(self, app: faust.App, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        self.topic = rt.config.topic("checkpoints").name
        # Topics scored by an engine per partition -> its domain (REKEYED: second stage).
        self.input_topics = {t.name: d for d, t in scored_topics(rt).items()}
        self.detections_topic = rt.config.topic("detections").name
        # Feedback topic -> the agency whose principal alone may write it.
        self.feedback_topics = {t.name: a for a, t in rt.config.feedback_topics.items()}
        self.published_topic = rt.config.topic("published").name
        self.feedback_parts: set[int] = set()
        self.interval = rt.settings.checkpoint_interval
        self.last = time.monotonic()
        # Agent -> its batches between being processed and their outputs acknowledged: a
        # checkpoint of the state that agent changes would then cover records whose
        # outputs may still be lost. Per agent, not one count: under steady load some
        # agent is always mid-batch, and a worker-wide count starved every checkpoint.
        self.busy: collections.Counter[str] = collections.Counter()
        # Alert stages (by partition) and the response tracker changed since their last
        # checkpoint: the timer writes only those.
        self.stages_dirty: set[int] = set()
        self.tracker_dirty = True
        self._lock = asyncio.Lock()
        # Names the last timer checkpoint stopped before: they go first in the next.
        self._deferred: set[str] = set()
        # Rebalances begun so far: a timer checkpoint that awaited across one drops its item.
        self.rebalances = 0
        # Set when an agent failed on a batch: its state is ahead of its published outputs,
        # so nothing is checkpointed any more and the worker stops (see fail()).
        self.failed: BaseException | None = None
        self._crashing: asyncio.Future[None] | None = None
        # From a revocation until the assigned partitions' state is restored.
        self.rebalancing = True
        # Set once it is: the agents' lanes wait for it. Faust resumes the flow as soon as
        # it sought the committed offsets, concurrently with the restore, so agents took
        # the new partitions' first records with an empty state (then replaced by the
        # restored one, which never learnt them) and alert stages started afresh.
        self.ready = asyncio.Event()
        metrics = rt.metrics
        self._restored = metrics.state_restored
        self._seconds = metrics.checkpoint_seconds
        self._bytes = metrics.checkpoint_bytes
        self._replayed = metrics.state_replayed

    async def save(self, names: Iterable[str] | None = None) -> None:
        """Checkpoint the named states (default: every state changed since the last).

        The timer's checkpoint (no names) encodes one state at a time and lets the event
        loop run in between, so a checkpoint of many partitions is many short pauses, not
        one long stall. It passes over a state whose agent has a batch in flight (a state
        ahead of its acknowledged outputs must not be written) and stops when a rebalance
        begins (nor one of a partition no longer owned); the states it did not write go
        first next time, which is right after the next batch.
        """
        if self.failed is not None:
            return
        rt = self.rt
        started = time.perf_counter()
        timer = names is None
        wanted = set() if names is None else set(names)
        # (checkpoint name, kind, key) of everything to write, deferred ones first.
        items: list[tuple[str, str, Any]] = []
        for key in list(rt.processor.engines):
            name = score_name(*key)
            if (key in rt.processor.dirty) if timer else (name in wanted):
                items.append((name, "score", key))
        for partition in sorted(rt.stages):
            name = alerts_name(partition)
            if (partition in self.stages_dirty) if timer else (name in wanted):
                items.append((name, "stage", partition))
        for partition in sorted(self.feedback_parts):
            name = feedback_name(partition)
            if self.tracker_dirty if timer else (name in wanted):
                items.append((name, "feedback", partition))
        if timer:
            items.sort(key=lambda item: item[0] not in self._deferred)
        out: list[tuple[str, bytes | None, bytes]] = []
        written: list[tuple[str, str, Any, Ticket | None]] = []
        for i, (name, kind, key) in enumerate(items):
            if timer:
                if i:
                    await asyncio.sleep(0)
                if self.rebalancing:
                    break  # the revocation's checkpoint (after this one) hands over
                if any(self.busy[agent] for agent in OWNERS[kind](key)):
                    continue  # its agent is mid-batch: deferred to the next call
            if kind == "score":
                engine = rt.processor.engines.get(key)
                if engine is None:  # dropped by a rebalance
                    continue
                nxt = rt.processor.next_offset.get(key)
                state, offsets = engine.snapshot(), {} if nxt is None else {"next": nxt}
            elif kind == "stage":
                stage = rt.stages.get(key)
                if stage is None:
                    continue
                nxt = rt.stage_next.get(key)
                state, offsets = stage.state(), {} if nxt is None else {"next": nxt}
            else:
                state = rt.tracker
                offsets = {t: nxt for (t, p), nxt in rt.feedback_next.items() if p == key}
            ticket = None
            if kind == "score":
                # What changed since this worker's last checkpoint of it, or all of it.
                increment = rt.checkpointer.increment_due(name)
                try:
                    raw = pickle_increment(state) if increment else pickle_base(state)
                except BaseException:
                    rt.checkpointer.forget(name)  # the tables' record may be reset
                    raise
                ticket = rt.checkpointer.reserve(name, increment)
            else:
                raw = pickle_state(state)
            if timer and kind == "score":
                # A partition's engine is the large state: compressing it in a thread
                # lets the agents run meanwhile (the pickle above is the consistent cut;
                # what they change now marks the engine dirty again).
                rt.processor.dirty.discard(key)
                epoch = self.rebalances
                try:
                    blob = await asyncio.to_thread(compress, raw)
                except BaseException:
                    rt.processor.dirty.add(key)
                    rt.checkpointer.abandon(ticket)
                    raise
                # The revocation's own checkpoint comes after this one (see _lock).
                if self.rebalancing or self.rebalances != epoch or self.failed is not None:
                    rt.processor.dirty.add(key)
                    rt.checkpointer.abandon(ticket)
                    break
            else:
                blob = compress(raw)
            sealed = rt.checkpointer.seal(name, blob, offsets, ticket)
            out.extend((self.topic, k, v) for k, v in sealed)
            written.append((name, kind, key, ticket))
            if kind == "score" and not timer:
                rt.processor.dirty.discard(key)
            elif kind == "stage":
                self.stages_dirty.discard(key)
        done = {w[0] for w in written}
        if timer:
            self._deferred = {item[0] for item in items} - done
        if all(feedback_name(p) in done for p in self.feedback_parts):
            self.tracker_dirty = False
        if out:  # a timer tick with nothing to write is not a checkpoint
            try:
                await publish(self.app, out)
            except BaseException:
                # Not written after all: dirty again, so the next checkpoint has them.
                for _name, kind, key, ticket in written:
                    if kind == "score":
                        rt.processor.dirty.add(key)
                        if ticket is not None:
                            rt.checkpointer.abandon(ticket)
                    elif kind == "stage":
                        self.stages_dirty.add(key)
                    else:
                        self.tracker_dirty = True
                raise
            self._bytes.set(sum(len(v) for *_, v in out))
            self._seconds.observe(time.perf_counter() - started)
        if not (timer and self._deferred):
            self.last = time.monotonic()

    async def maybe_save(self) -> None:
        """Checkpoint if the interval has passed: the states whose agents have no batch
        in flight (such a state is ahead of its acknowledged outputs: a checkpoint of it,
        then a crash, would have the next owner skip records whose detections were never
        published); the others right after their agents' batches."""
        if not self._lock.locked() and time.monotonic() - self.last >= self.interval:
            async with self._lock:  # one checkpoint at a time: it yields to the loop
                await self.save()

    async def idle_save(self) -> None:
        """The timer's checkpoint: agents checkpoint after their batches, so a worker
        whose input stopped kept its last state unsaved (a restart lost it)."""
        if not self.rebalancing:
            await self.maybe_save()

    def names(self, tps: Iterable[Any]) -> set[str]:
        names = set()
        for tp in tps:
            if tp.topic in self.input_topics:
                names.add(score_name(self.input_topics[tp.topic], tp.partition))
            elif tp.topic == self.detections_topic:
                names.add(alerts_name(tp.partition))
            elif tp.topic in self.feedback_topics:
                names.add(feedback_name(tp.partition))
        return names

    @contextlib.asynccontextmanager
    async def handling(self, agent: str, lane: Lane, batch: list[Any]) -> AsyncIterator[None]:
        """One batch of ``agent``: in flight (no checkpoint meanwhile) until its outputs are
        acknowledged, then acknowledged itself so its offsets may be committed; if the agent
        raises, :meth:`fail`. A timer checkpoint may follow."""
        self.busy[agent] += 1
        try:
            yield
            lane.done(batch)
        except Exception as exc:
            self.fail(agent, lane, batch, exc)
            await asyncio.Future()  # parked until the worker stops: no further batch
        finally:
            self.busy[agent] -= 1
        await self.maybe_save()

    def fail(self, agent: str, lane: Lane, batch: list[Any], exc: BaseException) -> None:
        """An agent raised on a batch after processing it (a publish the broker refused
        after its retries, or a bug): the batch's outputs may be lost while the state and
        offsets moved past it. Nothing is checkpointed any more, the batch is untracked
        (a rebalance or shutdown would wait for it forever) and never acknowledged, and the
        worker stops: restarted, it resumes from its last checkpoint and the committed
        offsets, so the batch is processed again instead of lost."""
        if self.failed is None:
            self.failed = exc
            log.error(
                "agent %s failed on a batch of %d records (%s: %s); stopping so that the "
                "worker restarts from its last checkpoint", agent, len(batch),
                type(exc).__name__, str(exc)[:200],
            )
            if self.app is not None:
                self._crashing = asyncio.ensure_future(self.app.crash(exc))
        lane.untrack(batch)

    async def on_revoked(self, revoked: set) -> None:
        # Agents are idle now (Faust waited for them): hand the state over.
        self.ready.clear()
        self.rebalances += 1
        self.rebalancing = True
        # After a timer checkpoint still writing (it stops at its next state): else this
        # one could extend a cut of it that is then not written, or be overtaken by it.
        async with self._lock:
            await self.save(self.names(revoked))

    async def on_assigned(self, assigned: set) -> None:
        started = time.monotonic()
        log.info("assigned %d partitions: restoring state", len(assigned))
        self.rebalances += 1
        self.rebalancing = True
        try:
            await self._on_assigned(assigned)
        except Exception:
            # Faust crashes the app on it: agents must not run on a half-restored state
            # meanwhile (fresh engines, no skip points: alerts again). The gate stays
            # clear; what waits there is not tracked, so the stop does not wait for it.
            raise
        except BaseException:
            self.ready.set()  # cancelled (a stop): let the agents unwind
            raise
        self.ready.set()
        self.rebalancing = False
        log.info(
            "state ready for %d partitions in %.2fs", len(assigned), time.monotonic() - started
        )

    async def _on_assigned(self, assigned: set) -> None:
        rt = self.rt
        wanted = self.names(assigned)
        # Forget state of partitions now owned elsewhere.
        for key in list(rt.processor.engines):
            if score_name(*key) not in wanted:
                rt.processor.drop(key)
        for partition in list(rt.stages):
            if alerts_name(partition) not in wanted:
                rt.drop_stage(partition)
        self.feedback_parts = {tp.partition for tp in assigned if tp.topic in self.feedback_topics}
        for key in list(rt.feedback_next):
            if key[1] not in self.feedback_parts:
                rt.feedback_next.pop(key, None)
                rt.feedback_skip.pop(key, None)
        restored = await self.load(wanted)
        if not restored and not rt.processor.next_offset and not rt.stage_next:
            return
        try:
            committed = await self.committed()
        except Exception as exc:
            if restored:
                raise
            # Only to skip what kept partitions processed twice: not worth a crash.
            log.warning("committed offsets unreadable (%s): kept partitions may score "
                        "again what they scored since their last commit", type(exc).__name__)
            return
        # What this worker kept, it processed and published the outputs of up to its next
        # offset (Faust waited for its batches at the revocation), while the group resumes
        # from the commits, which trail: skip to there, rather than learn those records
        # twice and alert on them again (a partition never committed is read again from
        # its start, drain.rewind_to_committed).
        # (Never below a skip point still set by an earlier restore.)
        skips = rt.processor.skip_until
        for key, nxt in rt.processor.next_offset.items():
            if score_name(*key) not in restored:
                topic = scored_topics(rt)[key[0]].name
                if committed.get((topic, key[1]), -1) < nxt:
                    skips[key] = max(skips.get(key, -1), nxt)
        for partition, nxt in rt.stage_next.items():
            if alerts_name(partition) not in restored:
                if committed.get((self.detections_topic, partition), -1) < nxt:
                    rt.stage_skip[partition] = max(rt.stage_skip.get(partition, -1), nxt)
        for name, r in restored.items():
            kind, *rest = name.split(".")
            nxt = r.offsets.get("next")
            if kind == "score":
                domain, partition = rest[0], int(rest[1])
                topic = scored_topics(rt)[domain].name
                engine = rt.processor.factory(domain)
                engine.restore(r.state)
                key = (domain, partition)
                rt.processor.drop(key)
                rt.processor.engines[key] = engine
                if nxt is not None:
                    rt.processor.next_offset[key] = nxt
                    done = committed.get((topic, partition), -1)
                    if done < nxt:
                        rt.processor.skip_until[key] = nxt
                    elif done > nxt:
                        arrivals: list[float] = []
                        values = await self.read(topic, partition, nxt, done, arrivals)
                        rt.processor.learn(domain, partition, values, arrivals)
                        rt.processor.next_offset[key] = done  # the state covers them now
                        self._replayed.inc(len(values))
            elif kind == "feedback":
                rt.adopt_tracker(r.state)
                # Publications first: feedback is only accepted for delivered alerts.
                for topic in (self.published_topic, *sorted(self.feedback_topics)):
                    await self._catch_up_feedback(topic, int(rest[0]), r, committed)
            else:
                partition = int(rest[0])
                stage = rt.stage(partition, state=r.state)
                if nxt is not None:
                    rt.stage_next[partition] = nxt
                    done = committed.get((self.detections_topic, partition), -1)
                    if done < nxt:
                        rt.stage_skip[partition] = nxt
                    elif done > nxt:
                        values = await self.read(self.detections_topic, partition, nxt, done)
                        for value in values:
                            try:
                                stage.process(orjson.loads(value))  # outputs were published
                            except Exception:  # dead-lettered by the previous owner
                                continue
                        rt.new_audit_chain(stage, partition)
                        rt.stage_next[partition] = done
                        self._replayed.inc(len(values))
            self._restored.labels(kind).inc()

    async def _catch_up_feedback(
        self, topic: str, partition: int, r: Any, committed: dict[tuple[str, int], int]
    ) -> None:
        rt = self.rt
        nxt = r.offsets.get(topic)
        if nxt is None:
            return
        key = (topic, partition)
        rt.feedback_next[key] = nxt
        done = committed.get(key, -1)
        if done < nxt:
            rt.feedback_skip[key] = nxt
        elif done > nxt:
            values = await self.read(topic, partition, nxt, done)
            agency = self.feedback_topics.get(topic)
            for value in values:
                try:
                    apply_feedback_record(rt, agency, value, time.time())
                except Exception:  # any failure: the previous owner dead-lettered it
                    continue
            rt.feedback_next[key] = done
            self._replayed.inc(len(values))

    async def committed(self) -> dict[tuple[str, int], int]:
        """The consumer group's committed offsets (what Faust will resume from)."""
        # With the worker's security settings: without them a restart on a secured
        # broker crash-looped ('Unable to bootstrap', issue 9.1).
        return await committed_offsets(self.rt.settings, self.rt.settings.app_id)

    async def read(
        self, topic: str, partition: int, start: int, end: int, arrivals: list[float] | None = None
    ) -> list[bytes | None]:
        """Values of ``topic[partition]`` from offset ``start`` up to ``end`` (exclusive);
        their broker timestamps (epoch s) are appended to ``arrivals`` when given."""
        consumer = await assigned_consumer(self.rt.settings, topic, from_beginning=True)
        values: list[bytes | None] = []
        if consumer is None:
            return values
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:
                for batch in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    values += [r.value for r in batch if r.offset < end]
                    if arrivals is not None:
                        arrivals += [r.timestamp / 1000.0 for r in batch if r.offset < end]
        finally:
            await consumer.stop()
        return values

    async def load(self, wanted: set[str]) -> dict[str, Any]:
        """Read the checkpoint topic to its end; newest verified state per wanted name."""
        consumer = await assigned_consumer(self.rt.settings, self.topic, from_beginning=True)
        if consumer is None:
            return {}
        records: list[tuple[bytes, bytes | None]] = []
        try:
            tps = list(consumer.assignment())
            ends = await consumer.end_offsets(tps)
            while True:
                positions = [await consumer.position(tp) for tp in tps]
                if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)):
                    break
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records += [(r.key, r.value) for r in batch]
        finally:
            await consumer.stop()
        mine = dict(self.rt.checkpointer.last)
        decoded = self.rt.checkpointer.decode(records, wanted)
        for name, reason in self.rt.checkpointer.refused:
            # Signed with our key yet not plain state: someone holds the checkpoint key.
            log.warning("checkpoint %s refused, its state starts fresh: %s", name, reason)
        self.rt.checkpointer.refused.clear()
        # A checkpoint this worker wrote itself of state it still holds needs no restore
        # (the common case of a rebalance that gives the same partitions back).
        return {
            name: r
            for name, r in decoded.items()
            if mine.get(name, (None, ""))[0] != r.generation or not self.holds(name)
        }

    def holds(self, name: str) -> bool:
        kind, *rest = name.split(".")
        if kind == "score":
            return (rest[0], int(rest[1])) in self.rt.processor.engines
        if kind == "feedback":
            return True  # the tracker is worker-wide and always held
        return int(rest[0]) in self.rt.stages


# -- agents -------------------------------------------------------------------------
def scored_topics(rt: Runtime) -> dict[str, TopicSpec]:
    """Domain -> the topic its scoring agent reads: the input topics, and the re-keyed
    topic (pseudo-domain ``REKEYED``) when some detector is keyed by another field."""
    topics = dict(rt.config.input_topics)
    if rt.processor.rekey:
        topics[REKEYED] = rt.config.topic("rekeyed")
    return topics


def scoring_agent(app: faust.App, rt: Runtime, keeper: StateKeeper, domain: str) -> Agent:
    detections_topic = rt.config.topic("detections").name
    deadletter_topic = rt.config.topic("deadletter").name
    process = rt.processor.process
    batch_seconds = rt.metrics.batch_seconds.labels(f"score.{domain}")
    spec = scored_topics(rt)[domain]
    topic, partitions = spec.name, spec.partitions
    # Valid events of a domain with re-keyed detectors go on to the second stage.
    rekeyed_topic = rt.config.topic("rekeyed").name if rt.processor.rekey.get(domain) else None
    lag = {p: rt.metrics.lag_child(topic, p) for p in range(partitions)}
    tps = {p: TP(topic, p) for p in range(partitions)}
    next_offset = rt.processor.next_offset
    # A re-keyed record packs a first-stage batch's events for one partition (hundreds):
    # take a few at a time, so one batch is no longer than an input batch.
    size = rt.settings.batch_size
    lane = Lane(
        app, [topic], max(1, size // 100) if domain == REKEYED else size, gate=keeper.ready
    )
    rekeyed_parts = rt.config.topic("rekeyed").partitions if rekeyed_topic else 1
    partitioner = CachedPartitioner()  # the partitions Kafka's default gives the keys

    async def score(stream: faust.StreamT) -> None:
        async for batch in lane.batches():
            async with keeper.handling(f"score-{domain}", lane, batch):
                started = time.perf_counter()
                records = [
                    (m.value, m.key, m.topic, m.partition, m.offset, m.timestamp) for m in batch
                ]
                second: list[tuple[bytes, bytes]] | None = [] if rekeyed_topic else None
                detections, deadletters = process(domain, records, second)
                out: list[Message] = [(deadletter_topic, None, d) for d in deadletters]
                if second:
                    out += packed(rekeyed_topic, second, rekeyed_parts, partitioner)
                for det in detections:
                    ent = det["entity"]
                    out.append(
                        (detections_topic, f"{ent['type']}:{ent['id']}".encode(), orjson.dumps(det))
                    )
                if out:
                    await publish(app, out)
                batch_seconds.observe(time.perf_counter() - started)
                # Lag per partition, once per batch: records behind the end of the topic.
                for p, gauge in lag.items():
                    nxt = next_offset.get((domain, p))
                    high = app.consumer.highwater(tps[p]) if nxt is not None else None
                    if high is not None and nxt is not None:
                        gauge.set(max(0, high - nxt))

    return score


def alert_agent(app: faust.App, rt: Runtime, keeper: StateKeeper) -> Agent:
    metrics = rt.metrics
    deadletter_topic = rt.config.topic("deadletter").name
    batch_seconds = metrics.batch_seconds.labels("alerts")
    # Urgent: detections are fetched ahead of the input backlog (their alerts are due).
    lane = Lane(
        app,
        [rt.config.topic("detections").name],
        rt.settings.batch_size,
        urgent=True,
        gate=keeper.ready,
    )
    # Signed heads of the audit chains, published once the records they vouch for are
    # acknowledged (so an anchor never points past what the topic holds).
    anchors_topic = next((t.name for t in rt.config.topics if t.role == "anchors"), None)
    # WATCHFLOOR_AUDIT_KEY if set (so oversight can verify without the worker's secret),
    # else derived from the worker's secret; `watchfloor audit verify` does the same.
    anchorer = Anchorer(audit_key(rt.settings) or anchor_key(rt.key))

    async def correlate(stream: faust.StreamT) -> None:
        async for batch in lane.batches():
            async with keeper.handling("alerts", lane, batch):
                started = time.perf_counter()
                outgoing = []
                bad = []
                # Correlator counters are cumulative and checkpointed with the stage: metrics
                # get what this batch added. (A running total kept here counted a restored
                # stage's whole history again after every agent restart or takeover.)
                before: dict[int, dict[str, int]] = {}
                for m in batch:
                    stage = rt.stage(m.partition)
                    if m.partition not in before:
                        before[m.partition] = stage.correlator.counters
                    skip = rt.stage_skip.get(m.partition, -1)
                    # The state covers what the previous owner processed too (see
                    # Processor.process): never below the skip point.
                    rt.stage_next[m.partition] = max(m.offset + 1, skip)
                    if m.offset < skip:
                        continue  # processed and published by the previous owner
                    try:
                        outgoing.extend(stage.process(orjson.loads(m.value)))
                    except Exception as exc:
                        # Only our workers write this topic, but one detection that fails must
                        # not lose the batch's others: it is dead-lettered, the batch goes on.
                        code, detail = failure(exc)
                        if isinstance(exc, orjson.JSONDecodeError):
                            code = "not_json"
                        bad.append(dead_letter(deadletter_topic, m, code, detail))
                if bad:
                    metrics.deadletter_counter("detections").inc(len(bad))
                if outgoing or bad:
                    await publish(app, [(o.topic, o.key, o.value) for o in outgoing] + bad)
                    acked = time.time()
                    for o in outgoing:
                        if o.kind == "alert" and o.exercise is None:  # exercises apart
                            metrics.alerts[(o.agency, o.severity)].inc()
                            metrics.alert_latency[o.agency].observe(max(0.0, acked - o.arrival))
                        elif o.kind == "audit":
                            metrics.audit_records.inc()
                    if anchors_topic is not None and any(o.kind == "audit" for o in outgoing):
                        heads = anchorer.heads((s.audit for s in rt.stages.values()), acked)
                        await publish(
                            app,
                            [(anchors_topic, h["chain"].encode(), orjson.dumps(h)) for h in heads],
                        )
                keeper.stages_dirty.update(before)
                if outgoing:  # the stages record publications in the tracker
                    keeper.tracker_dirty = True
                for partition, was in before.items():
                    counters = rt.stages[partition].correlator.counters
                    metrics.suppressed.inc(max(0, counters["suppressed"] - was["suppressed"]))
                    metrics.incidents.inc(
                        max(0, counters["incidents_opened"] - was["incidents_opened"])
                    )
                batch_seconds.observe(time.perf_counter() - started)

    return correlate


def apply_feedback_record(
    rt: Runtime, agency: str | None, value: bytes | None, now: float
) -> tuple[dict[str, Any], tuple[float, str, tuple[str, ...]] | None] | None:
    """Apply one record of a feedback topic or the publication topic to the tracker.

    ``agency``: the agency of the feedback topic the record was read from (the broker
    vouches that only its principal writes there), None for the publication topic.
    Publications come from our own workers; feedback from agencies (raises InvalidEvent
    when malformed, claiming another agency, or about an alert not delivered to
    ``agency``). Returns (feedback, result) for feedback records."""
    if agency is None:
        try:
            p = orjson.loads(value or b"")
            rt.tracker.published(p["alert_id"], p["agency"], p["severity"], p["detectors"], p["t"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass  # written by our own workers; nothing an agency can fix
        return None
    return rt.feedback(value, agency, now)


def feedback_agent(app: faust.App, rt: Runtime, keeper: StateKeeper) -> Agent:
    metrics = rt.metrics
    deadletter_topic = rt.config.topic("deadletter").name
    agency_of = keeper.feedback_topics
    lane = Lane(
        app,
        [*agency_of, keeper.published_topic],
        rt.settings.batch_size,
        urgent=True,
        gate=keeper.ready,
    )

    async def feedback(stream: faust.StreamT) -> None:
        async for batch in lane.batches():
            async with keeper.handling("feedback", lane, batch):
                keeper.tracker_dirty = True
                bad = []
                now = time.time()
                # Publications first: feedback is accepted only for delivered alerts, and
                # a batch may hold an alert's publication and its (quick) ack together.
                for m in sorted(batch, key=lambda m: m.topic in agency_of):
                    key = (m.topic, m.partition)
                    skip = rt.feedback_skip.get(key, -1)
                    rt.feedback_next[key] = max(m.offset + 1, skip)
                    if m.offset < skip:
                        continue  # applied by the previous owner before its checkpoint
                    try:
                        applied = apply_feedback_record(rt, agency_of.get(m.topic), m.value, now)
                    except Exception as exc:  # one bad record must not lose the batch
                        code, detail = failure(exc)
                        metrics.invalid_counter("feedback", code).inc()
                        bad.append(dead_letter(deadletter_topic, m, code, detail))
                        continue
                    if applied is None or applied[1] is None:
                        continue
                    fb, (latency, severity, detectors) = applied
                    child = metrics.response_latency.get((fb["agency"], severity))
                    if child is not None:
                        child.observe(latency)
                    verdict = fb.get("verdict") or "none"
                    for det in detectors:
                        metrics.feedback_counter(det, verdict).inc()
                if bad:
                    metrics.deadletter_counter("feedback").inc(len(bad))
                    await publish(app, bad)

    return feedback
