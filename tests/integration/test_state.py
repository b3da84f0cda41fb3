"""Learnt state survives a worker restart: it is checkpointed to Kafka and restored."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import Worker, metric_value, start_worker, stop_worker
from tests.kafka_helpers import collect, end_offsets, produce, run
from watchfloor.config import Config
from watchfloor.core.decoding import decode
from watchfloor.detectors.engine import build_engine
from watchfloor.detectors.registry import discover

pytestmark = pytest.mark.broker


def payments(account: str, seed: int) -> tuple[list[dict], dict]:
    """Twenty ordinary payments, then one ~45x the account's usual amount.

    Hourly, within the last day: events older than ``time.max_lateness_seconds`` behind a
    partition's watermark (which other tests' traffic keeps at "now") are scored but not
    learnt, and this test needs the history learnt."""
    rng = random.Random(seed)
    day0 = int(time.time() * 1000) - 22 * 3_600_000
    history = [
        {
            "event_id": f"{account}-h{i}",
            "ts": day0 + i * 3_600_000,
            "account_id": account,
            "counterparty_id": f"{account}-landlord",
            "amount": round(100 + rng.random() * 20, 2),
            "currency": "EUR",
            "country": "NL",
        }
        for i in range(20)
    ]
    spike = dict(
        history[-1], event_id=f"{account}-spike", ts=day0 + 21 * 3_600_000, amount=5_000.0
    )
    return history, spike


def offline_score(config: Config, events: list[dict], detector: str) -> float:
    """What the same detector scores on the last event, fed the same events in-process."""
    engine = build_engine(config, "financial", discover())
    score = 0.0
    for ev in events:
        for det in engine.process(decode("financial", orjson.dumps(ev)), 0.0):
            if det["event_id"] == events[-1]["event_id"] and det["detector"] == detector:
                score = det["score"]
    return score


def wait_metric(
    worker: Worker, name: str, at_least: float, timeout: float = 60, **labels: str
) -> float:
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        value = metric_value(worker.metrics(), name, **labels)
        if value >= at_least:
            return value
        time.sleep(0.3)
    pytest.fail(f"{name}{labels} stayed at {value} < {at_least}\n{worker.log_tail()}")


def test_detector_state_survives_a_worker_restart(
    topics: str, config: Config, tmp_path: Path
) -> None:
    account = f"ACC-RESTART-{uuid.uuid4().hex[:8]}"
    history, spike = payments(account, seed=5)
    with_history = offline_score(config, [*history, spike], "amount_anomaly")
    from_scratch = offline_score(config, [spike], "amount_anomaly")
    threshold = next(d.threshold for d in config.detectors if d.name == "amount_anomaly")
    # The check below only means something if the verdict depends on learnt history.
    assert with_history >= threshold > from_scratch

    app_id = f"wf-restart-{uuid.uuid4().hex[:8]}"
    first = start_worker(
        topics, config, tmp_path, app_id=app_id, WATCHFLOOR_CHECKPOINT_INTERVAL="0.5"
    )
    try:
        before = metric_value(first.metrics(), "watchfloor_events_total", domain="financial")
        run(
            produce(
                topics, "events.financial", [(account.encode(), orjson.dumps(e)) for e in history]
            )
        )
        wait_metric(first, "watchfloor_events_total", before + len(history), domain="financial")
        time.sleep(1.0)  # one more checkpoint interval after the last batch
        wait_metric(first, "watchfloor_checkpoint_seconds_count", 1)
    finally:
        stop_worker(first)

    start = run(end_offsets(topics, "watchfloor.detections"))
    second = start_worker(topics, config, tmp_path, app_id=app_id)
    try:
        assert metric_value(second.metrics(), "watchfloor_state_restored_total", kind="score") >= 1
        run(produce(topics, "events.financial", [(account.encode(), orjson.dumps(spike))]))
        found = run(
            collect(
                topics,
                "watchfloor.detections",
                bool,
                60,
                start,
                lambda d: d["event_id"] == spike["event_id"] and d["detector"] == "amount_anomaly",
            )
        )
        assert found, f"no detection for the spike after restart\n{second.log_tail()}"
        assert found[0]["score"] == pytest.approx(with_history, abs=0.01)
    finally:
        stop_worker(second)
