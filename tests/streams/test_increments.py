"""Checkpoints of what changed (issue 12): a base plus increments restores exactly the state
a full checkpoint would, the increments hold only the changed entities, and a chain with a
piece missing is never extended or half-applied."""

from __future__ import annotations

import io
import pickle
import random
import secrets
import time
import zlib
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import ROOT
from watchfloor.config import load_config
from watchfloor.core.entity_table import EntityTable
from watchfloor.core.keys import derive_keys
from watchfloor.detectors.engine import REKEYED
from watchfloor.settings import Settings
from watchfloor.simulation import Simulator, encode
from watchfloor.streams.checkpoint import MAX_INCREMENTS, Checkpointer, compress
from watchfloor.streams.increments import load_chain, pickle_base, pickle_increment
from watchfloor.streams.runtime import Runtime

MASTER = secrets.token_hex(32)
KEYS = derive_keys(MASTER.encode())


def table_view(t: EntityTable[Any]) -> tuple[Any, ...]:
    return (
        [(k, v) for k, v in t.items()],
        [(k, t.last_seen(k)) for k in t.keys()],
        t.evicted,
        t.expired,
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_base_and_its_increments_restore_the_table_exactly(seed: int) -> None:
    """Random use of a small table: sets, refreshes, values changed in place after a
    read, pops, evictions and expiries, cut at random points. Order matters: it decides
    what is evicted and expired next."""
    rng = random.Random(seed)
    t: EntityTable[list[int]] = EntityTable(max_entities=20, ttl_seconds=50.0)
    state = {"t": t, "other": [0]}
    blobs = [pickle_base(state)]
    now = 0.0
    for step in range(3000):
        now += rng.random() * 0.5 + (30.0 if rng.random() < 0.01 else 0.0)
        key = f"k{rng.randrange(40)}"
        op = rng.random()
        if op < 0.45:
            t.setdefault(key, now - rng.random(), list).append(step)
        elif op < 0.7:
            value = t.get(key)
            if value is not None:
                value.append(-step)  # changed in place, as a learner may
        elif op < 0.8:
            t.put(key, now, [step])
        elif op < 0.85:
            t.pop(key)
        else:
            state["other"][0] = step
        if rng.random() < 0.02:
            blobs.append(pickle_increment(state))
            got = load_chain(blobs)
            assert table_view(got["t"]) == table_view(t)
            assert got["other"] == state["other"]
    blobs.append(pickle_increment(state))
    got = load_chain(blobs)
    assert table_view(got["t"]) == table_view(t)
    assert t.evicted and t.expired  # the case covered eviction and expiry
    # The restored table evicts and expires exactly as the live one from here on.
    for i in range(200):
        now += 0.7
        for table in (t, got["t"]):
            table.setdefault(f"n{i % 30}", now, list).append(i)
    assert table_view(got["t"]) == table_view(t)


def test_an_increment_holds_the_changed_entities_only() -> None:
    t: EntityTable[list[int]] = EntityTable(max_entities=200_000)
    for i in range(100_000):
        t.setdefault(f"entity-{i}", i / 1000, list).append(i)
    base = pickle_base({"t": t})
    for i in range(100):
        t.setdefault(f"entity-{i * 7}", 1000.0, list).append(i)
    step = pickle_increment({"t": t})
    assert len(step) < len(base) / 200
    assert len(pickle_increment({"t": t})) < 200  # nothing changed: next to nothing


def test_a_table_stops_recording_when_its_churn_outgrows_it() -> None:
    """Bounded: a table that turned over more keys than it holds since its last checkpoint
    drops its record of changes (the next checkpoint has it in full)."""
    t: EntityTable[int] = EntityTable(max_entities=100)
    state = {"t": t}
    blobs = [pickle_base(state)]
    for i in range(10_000):
        t.put(f"k{i}", float(i), i)
    assert t.uid == 0 and t._removed is None
    blobs.append(pickle_increment(state))
    assert table_view(load_chain(blobs)["t"]) == table_view(t)
    assert t.uid != 0  # recording again from this checkpoint on


def test_tables_are_recorded_apart_outside_a_checkpoint() -> None:
    """A plain pickle (a benchmark, a copy) neither starts nor resets the record."""
    t: EntityTable[int] = EntityTable()
    t.put("a", 0.0, 1)
    pickle.loads(pickle.dumps(t))
    assert t.uid == 0
    base = pickle_base({"t": t})
    t.put("b", 1.0, 2)
    copy = pickle.loads(pickle.dumps(t))
    assert copy.uid == 0 and len(copy) == 2
    step = pickle_increment({"t": t})
    assert sorted(load_chain([base, step])["t"].items()) == [("a", 1), ("b", 2)]


def worker_state(events: int) -> tuple[Runtime, list[list[tuple]]]:
    rt = Runtime.build(
        Settings(master_key=MASTER), load_config(ROOT / "topics.yaml"), CollectorRegistry()
    )
    now = time.time()
    stream = list(Simulator(seed=5, days=2).events(events))
    chunks = []
    for start in range(0, len(stream), 1000):
        chunks.append([
            (domain, (encode(ev), None, f"events.{domain}", i % 2, start + i, now))
            for i, (domain, ev) in enumerate(stream[start : start + 1000])
        ])  # fmt: skip
    return rt, chunks


def feed(rt: Runtime, chunk: list[tuple]) -> list[dict[str, Any]]:
    by_domain: dict[str, list] = {}
    for domain, rec in chunk:
        by_domain.setdefault(domain, []).append(rec)
    detections: list[dict[str, Any]] = []
    second: list[tuple[bytes, bytes]] = []
    for domain, recs in by_domain.items():
        detections += rt.processor.process(domain, recs, second)[0]
    rekeyed = [(v, k, "watchfloor.rekeyed", 0, i, time.time()) for i, (k, v) in enumerate(second)]
    detections += rt.processor.process(REKEYED, rekeyed)[0]
    return detections


def test_the_workers_detectors_restored_from_increments_score_as_the_live_ones() -> None:
    """Every default detector of the three domains: checkpointed as a base and then an
    increment after every 1,000 events, restored into a fresh engine, it then detects
    exactly what the live one does."""
    rt, chunks = worker_state(12_000)
    cp = Checkpointer(KEYS.checkpoint)
    msgs: list[tuple[bytes, bytes]] = []
    written: set[str] = set()
    for chunk in chunks[:10]:
        feed(rt, chunk)
        for (domain, p), engine in rt.processor.engines.items():
            name = f"score.{domain}.{p}"
            increment = cp.increment_due(name)
            raw = (pickle_increment if increment else pickle_base)(engine.snapshot())
            ticket = cp.reserve(name, increment)
            msgs += cp.seal(name, compress(raw), {"next": 1}, ticket)
            if increment:
                written.add(name)
    assert written, "no increment written"
    got = Checkpointer(KEYS.checkpoint).decode(msgs)
    twin = Runtime.build(
        Settings(master_key=MASTER), load_config(ROOT / "topics.yaml"), CollectorRegistry()
    )
    for (domain, p), engine in rt.processor.engines.items():
        fresh = twin.processor.factory(domain)
        restored = fresh.restore(got[f"score.{domain}.{p}"].state)
        snap = engine.snapshot()
        assert len(restored) == sum(len(v) if isinstance(v, dict) else 1 for v in snap.values())
        twin.processor.engines[domain, p] = fresh
    live, again = [], []
    for chunk in chunks[10:]:
        live += feed(rt, chunk)
        again += feed(twin, chunk)
    assert live, "no detection to compare"
    strip = [{k: v for k, v in d.items() if k != "detection_id"} for d in live]
    assert strip == [{k: v for k, v in d.items() if k != "detection_id"} for d in again]
    # Once the state has grown, the increment of a few events is a small part of it
    # (the detectors' models and calibrations are in every increment in full).
    engines = rt.processor.engines.values()
    for e in engines:
        pickle_increment(e.snapshot())
    feed(rt, chunks[-1][:100])
    full = sum(len(pickle.dumps(e.snapshot())) for e in engines)
    assert sum(len(pickle_increment(e.snapshot())) for e in engines) < full / 3


def test_each_partitions_engine_has_tables_of_its_own() -> None:
    """One table in two partitions' states would have one partition's checkpoint reset
    the record of changes that the other's next increment relies on."""
    rt, chunks = worker_state(3000)
    for chunk in chunks:
        feed(rt, chunk)
    owner: dict[int, tuple[str, int]] = {}

    class Finder(pickle.Pickler):
        def __init__(self, key: tuple[str, int]) -> None:
            super().__init__(io.BytesIO())
            self.key = key

        def persistent_id(self, obj: Any) -> Any:
            if type(obj) is EntityTable:
                assert owner.setdefault(id(obj), self.key) == self.key, "a shared table"
            return None

    assert len(rt.processor.engines) > 3
    for key, engine in rt.processor.engines.items():
        Finder(key).dump(engine.snapshot())
    assert owner


# -- the chain on the topic -----------------------------------------------------------
def chain(cp: Checkpointer, t: EntityTable[int], steps: int) -> list[tuple[bytes, bytes]]:
    msgs = []
    for i in range(steps):
        t.put(f"k{i}", float(i), i)
        increment = cp.increment_due("score.network.0")
        raw = (pickle_increment if increment else pickle_base)({"t": t})
        ticket = cp.reserve("score.network.0", increment)
        msgs += cp.seal("score.network.0", compress(raw), {"next": i}, ticket)
    return msgs


def restored_next(msgs: list[tuple[bytes, bytes]]) -> int | None:
    got = Checkpointer(KEYS.checkpoint).decode(msgs).get("score.network.0")
    return None if got is None else got.offsets["next"]


def test_a_torn_increment_restores_the_state_of_the_one_before() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    t: EntityTable[int] = EntityTable()
    t.put("padding", 0.0, "x" * 10_000)  # a base large enough for a few increments
    msgs = chain(cp, t, 5)
    last = orjson.loads(msgs[-1][1])
    assert msgs[-1][0].startswith(b"n|") and last["seq"] >= 2, "no run of increments"
    assert restored_next(msgs) == 4
    data = f"d|score.network.0|{last['slot']}|{last['seq']}|0".encode()
    torn = [m for m in msgs if m[0] != data]  # the last increment's data never arrived
    assert restored_next(torn) == 3
    got = Checkpointer(KEYS.checkpoint).decode(torn)["score.network.0"].state
    assert sorted(got["t"].keys()) == ["k0", "k1", "k2", "k3", "padding"]


def test_an_abandoned_checkpoint_is_followed_by_a_base() -> None:
    """A cut whose write failed holds changes no increment has: extending the chain
    after it would restore a state missing them."""
    cp = Checkpointer(KEYS.checkpoint)
    t: EntityTable[int] = EntityTable()
    msgs = chain(cp, t, 3)
    before = dict(cp.last)
    t.put("lost", 9.0, 9)
    pickle_increment({"t": t})  # cut, then the write fails
    ticket = cp.reserve("score.network.0", True)
    cp.abandon(ticket)
    assert not cp.increment_due("score.network.0")
    assert cp.last == before  # the last checkpoint of it is the one before, as written
    msgs += chain(cp, t, 1)
    got = Checkpointer(KEYS.checkpoint).decode(msgs)["score.network.0"].state
    assert "lost" in got["t"]


def test_bases_alternate_slots_and_chains_are_bounded() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    t: EntityTable[int] = EntityTable()
    msgs = chain(cp, t, 3 * MAX_INCREMENTS)
    bases = [orjson.loads(v) for k, v in msgs if k.startswith(b"m|")]
    assert len(bases) >= 3 and {b["slot"] for b in bases} == {"a", "b"}
    assert restored_next(msgs) == 3 * MAX_INCREMENTS - 1


def test_an_increment_moved_to_another_place_or_base_is_refused() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    t: EntityTable[int] = EntityTable()
    msgs = chain(cp, t, 3)
    key, value = next((k, v) for k, v in reversed(msgs) if k.startswith(b"n|"))
    m = orjson.loads(value)
    for change in ({"seq": m["seq"] + 1}, {"base": m["base"] + 1}):
        forged = dict(m, **change)
        assert Checkpointer(KEYS.checkpoint).verified(key, orjson.dumps(forged)) is None
    moved_key = key.replace(b"|2", b"|5")
    assert Checkpointer(KEYS.checkpoint).verified(moved_key, value) is None


def test_an_increment_of_a_table_the_base_lacks_is_refused() -> None:
    t: EntityTable[int] = EntityTable()
    pickle_base({"t": t})
    t.put("a", 0.0, 1)
    step = pickle_increment({"t": t})
    other = pickle_base({"t": EntityTable()})
    with pytest.raises(pickle.UnpicklingError, match="table"):
        load_chain([other, step])
    assert zlib.decompress(compress(step)) == step


def test_an_increment_left_over_from_another_workers_chain_is_not_grafted() -> None:
    """After a takeover, a new owner's base can get the generation and slot of an
    increment the previous owner left on the topic (its base never written): that
    increment was made on another base and must not be applied to this one."""
    name = "score.network.0"
    a = Checkpointer(KEYS.checkpoint)
    ta: EntityTable[str] = EntityTable()
    ta.put("x", 0.0, "A")
    old_base = a.reserve(name, False)
    raw_base = pickle_base({"t": ta})
    a.seal(name, compress(raw_base), {"next": 10}, old_base)  # never published
    ta.put("stale", 1.0, "A-stale")
    stale = a.seal(name, compress(pickle_increment({"t": ta})), {"next": 40},
                   a.reserve(name, True))  # fmt: skip
    b = Checkpointer(KEYS.checkpoint)  # the new owner, with nothing restored
    tb: EntityTable[str] = EntityTable()
    tb.put("w", 0.0, "W")
    tb._uid = ta._uid  # as if restored from the previous owner's earlier checkpoint
    fresh = b.seal(name, compress(pickle_base({"t": tb})), {"next": 50})
    assert orjson.loads(fresh[-1][1])["gen"] == old_base.generation  # the same place
    got = Checkpointer(KEYS.checkpoint).decode([*stale, *fresh])[name]
    assert sorted(got.state["t"].keys()) == ["w"] and got.offsets == {"next": 50}


def test_a_refused_increment_restores_the_state_before_it() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    t: EntityTable[int] = EntityTable()
    t.put("padding", 0.0, 0)
    msgs = chain(cp, t, 4)
    # A validly signed increment whose table reference does not resolve (stands for
    # any increment the unpickler refuses).
    orphan: EntityTable[int] = EntityTable()
    pickle_base({"t": orphan})
    orphan.put("z", 0.0, 1)
    bad = pickle_increment({"t": orphan})
    msgs += cp.seal("score.network.0", compress(bad), {"next": 99},
                    cp.reserve("score.network.0", True))  # fmt: skip
    reader = Checkpointer(KEYS.checkpoint)
    got = reader.decode(msgs)["score.network.0"]
    assert got.offsets == {"next": 3} and "k3" in got.state["t"]
    assert reader.refused  # and said so
