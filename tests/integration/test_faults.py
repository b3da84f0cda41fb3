"""Nothing lost through crashes, broker restarts and takeovers — with an accounting.

Each test replays seeded simulator traffic (with invalid messages and "sentinel"
structuring campaigns that must each end in an alert) into its own namespace of topics,
injects a fault, lets the pipeline drain, and then accounts for every message:

* processed — the consumer group committed every input offset (offsets are committed only
  after what an event produced was acknowledged by the broker);
* dead-lettered — every invalid message is in the dead-letter topic, with its reason;
* lost — sentinel campaigns without an alert, alert versions missing for an incident;
* duplicated — deliveries seen more than once; each carries the same alert_id and version.

The figures are printed (run with ``-s``) for the closing notes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from tests.conftest import free_port
from tests.integration.conftest import (
    Worker,
    group_lag,
    metric_value,
    namespace,
    start_worker,
    stop_worker,
)
from tests.kafka_helpers import collect, produce, run
from watchfloor.config import Config
from watchfloor.core.events import ENTITY_FIELDS
from watchfloor.ops.kafka_local import LocalKafka
from watchfloor.simulation import Simulator, encode
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker

Messages = dict[str, list[tuple[bytes, bytes]]]


@dataclass
class Scenario:
    messages: Messages
    invalid: int
    sentinels: list[str]
    marker: bytes
    total: int = 0
    figures: dict[str, float] = field(default_factory=dict)


def build_scenario(n: int, seed: int, sentinels: int = 20, invalid_every: int = 150) -> Scenario:
    rng = random.Random(seed)
    marker = f"hostile-{uuid.uuid4().hex[:8]}".encode()
    out: Messages = defaultdict(list)
    invalid = 0
    last_ts = 0.0
    for i, (domain, event) in enumerate(Simulator(seed=seed, days=2).events(n)):
        key = str(event[ENTITY_FIELDS[domain][1]]).encode()
        out[domain].append((key, encode(event)))
        last_ts = max(last_ts, float(event["_ts"]) if "_ts" in event else 0.0)
        if i % invalid_every == 0:
            out[domain].append((key, b'{"event_id": "' + marker + b'", truncated'))
            invalid += 1
    # Sentinels: four payments just under the reporting threshold, each campaign on its
    # own account, spread through the financial stream.
    accounts = [f"ACC-SENTINEL-{uuid.uuid4().hex[:8]}" for _ in range(sentinels)]
    fin = out["financial"]
    base_ms = 1_795_500_000_000
    for j, account in enumerate(accounts):
        at = len(fin) * (j + 1) // (sentinels + 1)
        for k in range(4):
            ev = {
                "event_id": f"{account}-{k}",
                "ts": base_ms + j * 3_600_000 + k * 600_000,
                "account_id": account,
                "counterparty_id": f"CP-{rng.randrange(10**6)}",
                "amount": 9_100.0 + rng.randrange(800),
                "currency": "EUR",
                "country": "BE",
            }
            fin.insert(at + k, (account.encode(), orjson.dumps(ev)))
    total = sum(len(v) for v in out.values())
    return Scenario(dict(out), invalid, accounts, marker, total)


async def produce_all(bootstrap: str, config: Config, messages: Messages) -> None:
    await asyncio.gather(
        *(produce(bootstrap, config.input_topics[d].name, msgs) for d, msgs in messages.items())
    )


def slice_messages(messages: Messages, start: float, stop: float) -> Messages:
    return {d: m[int(len(m) * start) : int(len(m) * stop)] for d, m in messages.items()}


def wait_drained(
    bootstrap: str, group: str, config: Config, timeout: float, workers: list[Worker]
) -> None:
    topics = [t.name for t in config.input_topics.values()] + [config.topic("detections").name]
    deadline = time.monotonic() + timeout
    lag = -1
    while time.monotonic() < deadline:
        lag = run(group_lag(bootstrap, group, topics))
        if lag == 0:
            return
        time.sleep(1)
    tails = "\n".join(w.log_tail(30) for w in workers)
    pytest.fail(f"the pipeline did not drain within {timeout}s (lag {lag})\n{tails}")


def account(bootstrap: str, config: Config, sc: Scenario) -> dict[str, float]:
    """Read every output of the namespace and check that nothing was lost."""
    dl_topic = config.topic("deadletter").name
    letters = run(collect(bootstrap, dl_topic, lambda r: False, 5))
    ours = [r for r in letters if sc.marker in base64.b64decode(r["original"])]
    distinct = {(r["topic"], r["partition"], r["offset"]) for r in ours}
    assert len(distinct) == sc.invalid, f"{len(distinct)} of {sc.invalid} invalid dead-lettered"
    assert {r["reason"] for r in ours} == {"not_json"}

    deliveries: Counter[tuple[str, int, str]] = Counter()
    versions: dict[tuple[str, str], set[int]] = defaultdict(set)
    content: dict[tuple[str, int, str], bytes] = {}
    alerted: set[str] = set()
    for agency in config.agencies:
        for alert in run(collect(bootstrap, agency.topic, lambda r: False, 3)):
            if alert.get("kind") != "alert":
                continue
            key = (alert["alert_id"], alert["version"], agency.name)
            deliveries[key] += 1
            body = orjson.dumps(
                {k: alert[k] for k in ("severity", "domains", "entities") if k in alert},
                option=orjson.OPT_SORT_KEYS,
            )
            if key in content:
                assert content[key] == body, f"duplicate {key} differs in content"
            content[key] = body
            versions[(alert["alert_id"], agency.name)].add(alert["version"])
            alerted |= {e["id"] for e in alert.get("entities", [])}
    lost_sentinels = [a for a in sc.sentinels if a not in alerted]
    assert not lost_sentinels, f"no alert for sentinel campaigns {lost_sentinels}"
    low = {a.name for a in config.agencies if a.min_severity == "low"}
    gaps = {
        k: sorted(v) for k, v in versions.items() if k[1] in low and v != set(range(1, max(v) + 1))
    }
    assert not gaps, f"alert versions missing (lost updates): {gaps}"
    return {
        "events_sent": sc.total,
        "invalid_sent": sc.invalid,
        "dead_lettered": len(distinct),
        "dead_letter_duplicates": len(ours) - len(distinct),
        "deliveries": sum(deliveries.values()),
        "duplicate_deliveries": sum(c - 1 for c in deliveries.values()),
        "lost_sentinels": len(lost_sentinels),
    }


def setup_namespace(bootstrap: str, tmp_path: Path, prefix: str) -> tuple[Path, Config]:
    path, config = namespace(tmp_path, prefix)
    run(apply_topics(config, bootstrap))
    return path, config


def test_sigkill_worker_mid_run_then_restart(topics: str, tmp_path: Path) -> None:
    prefix = f"kill{uuid.uuid4().hex[:6]}"
    path, config = setup_namespace(topics, tmp_path, prefix)
    sc = build_scenario(50_000, seed=11)
    env = {"WATCHFLOOR_TOPICS_FILE": str(path), "WATCHFLOOR_CHECKPOINT_INTERVAL": "2"}
    app_id = f"wf-{prefix}"
    first = start_worker(topics, config, tmp_path, app_id=app_id, **env)
    run(produce_all(topics, config, sc.messages))
    deadline = time.monotonic() + 120
    # Killed under load once checkpoints were written meanwhile: they starved while any
    # agent was mid-batch, so a restart had nothing to restore (CI, session 5).
    while True:
        text = first.metrics()
        checkpoints = metric_value(text, "watchfloor_checkpoint_seconds_count")
        if metric_value(text, "watchfloor_events_total") >= sc.total * 0.4 and checkpoints:
            break
        assert time.monotonic() < deadline, f"no checkpoint under load\n{first.log_tail()}"
        time.sleep(0.2)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    second = start_worker(topics, config, tmp_path, app_id=app_id, **env)
    try:
        wait_drained(topics, app_id, config, 240, [second])
        figures = account(topics, config, sc)
        restored = metric_value(second.metrics(), "watchfloor_state_restored_total")
        replayed = metric_value(second.metrics(), "watchfloor_state_replayed_total")
    finally:
        stop_worker(second)
    assert restored >= 1, "the restarted worker did not restore any checkpointed state"
    print(
        f"\nSIGKILL mid-run: {figures}, checkpoints before the kill {checkpoints:.0f}, "
        f"states restored {restored}, re-learnt {replayed}"
    )


def test_broker_restart_mid_run(tmp_path: Path) -> None:
    port = free_port(pairs=2)
    kafka = LocalKafka(port=port, data_dir=tmp_path / "kafka")
    try:
        kafka.start(timeout=120)
    except Exception as exc:
        pytest.fail(f"could not start a broker for the restart test: {exc}")
    bootstrap = kafka.bootstrap
    try:
        prefix = f"bounce{uuid.uuid4().hex[:6]}"
        path, config = setup_namespace(bootstrap, tmp_path, prefix)
        sc = build_scenario(20_000, seed=12, sentinels=10)
        app_id = f"wf-{prefix}"
        worker = start_worker(
            bootstrap, config, tmp_path, app_id=app_id, WATCHFLOOR_TOPICS_FILE=str(path)
        )
        try:
            run(produce_all(bootstrap, config, slice_messages(sc.messages, 0, 0.5)))
            time.sleep(2)
            kafka.stop()
            time.sleep(3)
            kafka.start(timeout=120)
            run(produce_all(bootstrap, config, slice_messages(sc.messages, 0.5, 1.0)))
            wait_drained(bootstrap, app_id, config, 240, [worker])
            assert worker.proc.poll() is None, f"the worker died\n{worker.log_tail()}"
            figures = account(bootstrap, config, sc)
        finally:
            stop_worker(worker)
        print(f"\nbroker restart mid-run: {figures}")
    finally:
        kafka.stop()


def test_two_workers_one_killed_the_other_takes_over(topics: str, tmp_path: Path) -> None:
    prefix = f"pair{uuid.uuid4().hex[:6]}"
    path, config = setup_namespace(topics, tmp_path, prefix)
    sc = build_scenario(30_000, seed=13)
    env = {
        "WATCHFLOOR_TOPICS_FILE": str(path),
        "WATCHFLOOR_CHECKPOINT_INTERVAL": "2",
        "WATCHFLOOR_SESSION_TIMEOUT": "6",
    }
    app_id = f"wf-{prefix}"
    a = start_worker(topics, config, tmp_path, app_id=app_id, **env)
    b = start_worker(topics, config, tmp_path, expect_partitions=1, app_id=app_id, **env)
    total_partitions = (
        sum(t.partitions for t in config.topics
            if t.role in ("input", "detections", "feedback", "rekeyed"))
        + 1
    )  # Faust's leader topic
    try:
        deadline = time.monotonic() + 60
        while True:
            shared = (
                metric_value(a.metrics(), "watchfloor_assigned_partitions"),
                metric_value(b.metrics(), "watchfloor_assigned_partitions"),
            )
            if all(s > 0 for s in shared) and sum(shared) >= total_partitions:
                break
            assert time.monotonic() < deadline, f"the two workers never shared work: {shared}"
            time.sleep(0.5)
        # Traffic keeps coming while one worker dies.
        feeder = threading.Thread(
            target=lambda: [
                run(produce_all(topics, config, slice_messages(sc.messages, i / 10, (i + 1) / 10)))
                or time.sleep(0.5)
                for i in range(10)
            ]
        )
        feeder.start()
        time.sleep(2)
        victim, survivor = (a, b) if shared[0] else (b, a)
        killed_at = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        deadline = time.monotonic() + 120
        while metric_value(survivor.metrics(), "watchfloor_assigned_partitions") < total_partitions:
            assert time.monotonic() < deadline, f"no takeover\n{survivor.log_tail()}"
            time.sleep(0.1)
        takeover = time.monotonic() - killed_at
        feeder.join()
        wait_drained(topics, app_id, config, 240, [survivor])
        figures = account(topics, config, sc)
        restored = metric_value(survivor.metrics(), "watchfloor_state_restored_total")
    finally:
        stop_worker(a)
        stop_worker(b)
    assert restored >= 1, "the survivor did not take over the victim's state"
    print(
        f"\ntakeover: {figures}, takeover time {takeover:.1f}s (session timeout 6s), "
        f"states restored {restored}"
    )


def test_takeover_of_partitions_their_dead_owner_never_committed(
    topics: str, tmp_path: Path
) -> None:
    """Records that reach a dead worker's partitions before any commit (a new group, a
    quiet partition) are all processed by the one that takes over.

    The survivor's fetch in flight when the group rebalanced returned the taken-over
    partitions' first records while its flow was stopped; Faust drops them and "seeks
    back to the committed offsets", which aiokafka skips for a partition with none: the
    survivor went on after them and committed past them (CI, session 6: 2 of 200 invalid
    records never dead-lettered, both on a partition its owner died before committing).
    This run does not force that interleaving (it passed 3 of 3 before the fix);
    ``tests/streams/test_drain.py`` reproduces the seek itself.
    """
    prefix = f"cold{uuid.uuid4().hex[:6]}"
    path, config = setup_namespace(topics, tmp_path, prefix)
    env = {"WATCHFLOOR_TOPICS_FILE": str(path), "WATCHFLOOR_SESSION_TIMEOUT": "6"}
    app_id = f"wf-{prefix}"
    marker = f"cold-{uuid.uuid4().hex[:8]}".encode()
    a = start_worker(topics, config, tmp_path, app_id=app_id, **env)
    b = start_worker(topics, config, tmp_path, expect_partitions=1, app_id=app_id, **env)
    try:
        deadline = time.monotonic() + 60
        while metric_value(a.metrics(), "watchfloor_assigned_partitions") == 0 or (
            metric_value(b.metrics(), "watchfloor_assigned_partitions") == 0
        ):
            assert time.monotonic() < deadline, "the two workers never shared work"
            time.sleep(0.5)
        # Killed before any input: its partitions have no committed offset.
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()

        invalid = [(None, b'{"event_id": "' + marker + b"-%d\", truncated" % i) for i in range(20)]
        sent = 0
        for spec in config.input_topics.values():
            for p in range(spec.partitions):
                run(produce(topics, spec.name, invalid, partition=p))
                sent += len(invalid)
        wait_drained(topics, app_id, config, 120, [b])
        letters = run(collect(topics, config.topic("deadletter").name, lambda r: False, 5))
        got = {
            (r["topic"], r["partition"], r["offset"])
            for r in letters
            if marker in base64.b64decode(r["original"])
        }
    finally:
        stop_worker(a)
        stop_worker(b)
    by_partition = Counter((t.rsplit(".", 1)[-1], p) for t, p, _ in got)
    assert len(got) == sent, f"{len(got)} of {sent} invalid dead-lettered: {dict(by_partition)}"
