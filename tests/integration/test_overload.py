"""Overload: a burst at ten times the sustainable rate neither crashes the worker nor
exhausts its memory; the input lag grows and then drains, and
``watchfloor_consumer_lag{topic,partition}`` shows it.

The sustainable rate is measured in the same run (a backlog of simulator events drained
by a fresh worker), so the burst is ten times what *this* machine sustains. The figures
are printed (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from tests.integration.conftest import group_lag, metric_value, namespace, start_worker, stop_worker
from tests.integration.test_hostile import RSS_LIMIT_MB, RssSampler, rss_mb
from tests.kafka_helpers import run
from watchfloor.config import Config
from watchfloor.core.events import ENTITY_FIELDS
from watchfloor.simulation import Simulator, encode
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker

CALIBRATION_EVENTS = 15_000
BURST_SECONDS = 3.0
BURST_FACTOR = 10


def messages(config: Config, seed: int, n: int) -> list[tuple[str, bytes, bytes]]:
    out = []
    for domain, event in Simulator(seed=seed, days=1).events(n):
        key = str(event[ENTITY_FIELDS[domain][1]]).encode()
        out.append((config.input_topics[domain].name, key, encode(event)))
    return out


async def produce_fast(bootstrap: str, msgs: list[tuple[str, bytes, bytes]]) -> float:
    """Send ``msgs`` unpaced, as fast as the client goes; return the seconds it took until
    the broker acknowledged the last one.

    Records are appended to per-partition batches directly (keyed partitioning as the
    default partitioner does it): ``send()`` per record costs ~20 us of Python, which on
    a small machine caps a producer below ten times what the worker sustains."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        started = time.monotonic()
        partitions = {t: sorted(await producer.partitions_for(t)) for t in {m[0] for m in msgs}}
        batches: dict[tuple[str, int], Any] = {}
        futures = []
        for topic, key, value in msgs:
            parts = partitions[topic]
            tp = (topic, parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)])
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
                batch = batches[tp] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        return time.monotonic() - started
    finally:
        await producer.stop()


class LagWatcher(threading.Thread):
    """Polls the worker's /metrics: the summed ``watchfloor_consumer_lag`` of the input
    topics and ``watchfloor_events_total``, with their times."""

    def __init__(self, worker, topics: list[str], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.worker, self.topics, self.interval = worker, topics, interval
        self.samples: list[tuple[float, float, float]] = []  # (time, lag, events)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                text = self.worker.metrics()
            except OSError:
                text = None
            if text is not None:
                lag = sum(
                    metric_value(text, "watchfloor_consumer_lag", topic=t) for t in self.topics
                )
                events = metric_value(text, "watchfloor_events_total")
                self.samples.append((time.monotonic(), lag, events))
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join()


def test_burst_at_ten_times_the_sustainable_rate_drains(topics: str, tmp_path: Path) -> None:
    bootstrap = topics
    prefix = f"burst{uuid.uuid4().hex[:6]}"
    path, config = namespace(tmp_path, prefix)
    run(apply_topics(config, bootstrap))
    inputs = [t.name for t in config.input_topics.values()]

    # 1. Sustainable rate: a fresh worker drains a backlog as fast as it can.
    run(produce_fast(bootstrap, messages(config, 51, CALIBRATION_EVENTS)))
    app_id = f"wf-{prefix}"
    worker = start_worker(
        bootstrap, config, tmp_path, app_id=app_id, WATCHFLOOR_TOPICS_FILE=str(path)
    )
    sampler = RssSampler(worker.proc.pid)
    sampler.start()
    watcher = LagWatcher(worker, inputs)
    watcher.start()
    try:
        deadline = time.monotonic() + 60
        while not watcher.samples or watcher.samples[-1][2] < CALIBRATION_EVENTS:
            assert time.monotonic() < deadline, f"calibration did not drain\n{worker.log_tail()}"
            assert worker.proc.poll() is None, worker.log_tail()
            time.sleep(0.1)
        # Steady state: from a fifth of the backlog (start-up and warm-up behind) to its end.
        steady = [s for s in watcher.samples if s[2] >= CALIBRATION_EVENTS / 5]
        t0, _, e0 = steady[0]
        t1, _, e1 = watcher.samples[-1]
        rate = (e1 - e0) / max(t1 - t0, 0.2)
        calibration_peak = max(s[1] for s in watcher.samples)

        # 2. The burst: BURST_FACTOR x the sustainable rate for BURST_SECONDS, unpaced.
        burst_n = int(rate * BURST_FACTOR * BURST_SECONDS)
        burst = messages(config, 52, burst_n)
        before = len(watcher.samples)
        burst_start = time.monotonic()
        send_s = run(produce_fast(bootstrap, burst))
        sent_rate = burst_n / send_s

        # 3. Drain: the lag metric falls back to 0 and the group has committed everything.
        deadline = time.monotonic() + 90
        while True:
            assert worker.proc.poll() is None, f"the worker died\n{worker.log_tail()}"
            last = watcher.samples[-1]
            if last[2] >= CALIBRATION_EVENTS + burst_n and last[1] == 0:
                break
            assert time.monotonic() < deadline, f"the burst did not drain (lag {last[1]})"
            time.sleep(0.1)
        drained_s = time.monotonic() - burst_start
        # Offsets are committed every few seconds (Faust's commit interval).
        while (committed_lag := run(group_lag(bootstrap, app_id, inputs))) > 0:
            assert time.monotonic() < deadline, f"{committed_lag} records never committed"
            time.sleep(0.5)
        during = watcher.samples[before:]
        peak_lag = max(s[1] for s in during)
        alive = worker.proc.poll() is None
        rss_end = rss_mb(worker.proc.pid)
    finally:
        watcher.stop()
        peak_rss = sampler.stop()
        stop_worker(worker)

    print(
        f"\noverload: sustainable {rate:.0f} ev/s; burst {burst_n} events sent in "
        f"{send_s:.1f}s ({sent_rate:.0f} ev/s, {sent_rate / rate:.1f}x); peak lag metric "
        f"{peak_lag:.0f} (calibration {calibration_peak:.0f}); drained {drained_s:.1f}s after "
        f"the burst began; RSS peak {peak_rss:.0f} MB, end {rss_end:.0f} MB"
    )
    assert alive
    # The producer outran the worker: at least half of what ten times would give.
    assert sent_rate >= rate * BURST_FACTOR / 2, "the burst was not an overload"
    # The backlog showed in the metric: a quarter of the burst, and far more than the
    # few batches in flight at the sustainable rate (the calibration peak).
    assert peak_lag >= max(0.25 * burst_n, 2 * rate), f"the lag metric peaked at {peak_lag:.0f}"
    assert watcher.samples[-1][1] == 0
    assert peak_rss < RSS_LIMIT_MB, f"worker RSS peaked at {peak_rss:.0f} MB"
