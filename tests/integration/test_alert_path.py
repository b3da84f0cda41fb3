"""The alert stage does not wait behind the input backlog (issue 12).

A worker is draining a large backlog of events when a detection, already made, reaches
``watchfloor.detections``. Its alert must be published while the backlog is still being
drained: the worker's consumer fetches the detections partition on its own path. Before,
the consumer blocked while the scoring lanes were full, and each fetch after a batch
handed out the input partitions' prefetched records first, so the detection waited behind
tens of thousands of events.

Measured in events the worker scored between the detection's append and its alert (not in
seconds: these machines are noisy); printed with ``-s``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import metric_value, namespace, start_worker, stop_worker
from tests.integration.test_overload import messages, produce_fast
from tests.kafka_helpers import end_offsets, produce, run
from watchfloor.kafka.clients import assigned_consumer
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker

BACKLOG = 120_000


def detection(ip: str) -> dict:
    now = time.time()
    return {
        "detector": "beaconing",
        "kind": "beaconing",
        "domain": "network",
        "event_id": f"probe-{ip}",
        "score": 0.9999,
        "raw": 40.0,
        "reason": f"{ip} contacted 203.0.113.9 40 times every 60 s (jitter 0.1%)",
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
        "event_time": now,
        "arrival": now,
        "entity": {"type": "ip", "id": ip},
        "links": [],
        "jurisdiction": "DE",
    }


def test_a_detection_is_alerted_while_the_input_backlog_drains(
    topics: str, tmp_path: Path
) -> None:
    prefix = f"path{uuid.uuid4().hex[:6]}"
    path, config = namespace(tmp_path, prefix)
    run(apply_topics(config, topics))
    backlog = messages(config, 21, BACKLOG)
    run(produce_fast(topics, backlog))
    agency = next(a for a in config.agencies if "network" in a.domains and a.min_severity in (
        "low", "medium"))  # fmt: skip
    alerts_start = run(end_offsets(topics, agency.topic))
    worker = start_worker(topics, config, tmp_path, WATCHFLOOR_TOPICS_FILE=str(path))
    samples: list[tuple[float, float]] = []  # (time, events scored so far)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append((time.time(), metric_value(worker.metrics(),
                                                          "watchfloor_events_total")))
            except OSError:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ip = "198.18.77.7"
    try:
        deadline = time.monotonic() + 120
        while not samples or samples[-1][1] < 10_000:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.05)
        run(produce(topics, config.topic("detections").name,
                    [(f"ip:{ip}".encode(), orjson.dumps(detection(ip)))]))  # fmt: skip
        appended = time.time()  # acknowledged by the broker (acks=all): appended by now
        alerted = run(first_alert(topics, agency.topic, alerts_start, ip))
    finally:
        stop.set()
        sampler.join()
        stop_worker(worker)
    assert alerted is not None, f"no alert for the detection\n{worker.log_tail()}"

    def scored_at(t: float) -> float:
        return max((n for s, n in samples if s <= t), default=0.0)

    meanwhile = scored_at(alerted) - scored_at(appended)
    print(f"\nevents scored between the detection and its alert: {meanwhile:.0f} "
          f"({alerted - appended:.2f} s; backlog {BACKLOG:,}, "
          f"scored before {scored_at(appended):.0f})")  # fmt: skip
    assert scored_at(alerted) < BACKLOG * 0.9, "the alert came once the backlog was drained"
    assert meanwhile < 10_000, "the detection waited behind the input backlog"


async def first_alert(bootstrap: str, topic: str, start: dict[int, int], ip: str) -> float | None:
    """Broker append time (epoch s) of the first alert on ``topic`` naming ``ip``."""
    consumer = await assigned_consumer(bootstrap, topic, from_beginning=True, start=start)
    assert consumer is not None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for rec in records:
                    alert = orjson.loads(rec.value)
                    if any(e.get("id") == ip for e in alert.get("entities", [])):
                        return rec.timestamp / 1000.0
    finally:
        await consumer.stop()
    return None
