"""Issue 9 item 3 on a real broker: poison pills no longer lose whole batches.

The probe sent valid events with an extra field nested hundreds of levels deep and a
giant string next to real detections: the scoring (or alert) agent raised, Faust restarted
it and committed, and the batch's other events, real detections included, were gone with
no dead letter, and `watchfloor audit verify` then reported missing sequence numbers.

Here one produce call (one batch for the worker) mixes a lost/stolen-document crossing
(a real detection), a 1,000-level nested event, events with a 400 KB and a 900 KB string
(the broker's default limit is 1 MiB, so a 2 MB message cannot even be produced), and a
malformed detection written straight to the internal detections topic. The poison ones
are dead-lettered with their reasons, the detection becomes an alert, the worker stays
up, and the audit trail verifies.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import (
    Worker,
    metric_value,
    namespace,
    start_worker,
    stop_worker,
    worker_env,
)
from tests.kafka_helpers import collect, end_offsets, produce, run
from watchfloor.config import Config
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker

DOCUMENT = "P0008842"  # on the shipped lost/stolen list; used by no other broker test


def crossing(run_id: str, n: int, document: str, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"poison-{run_id}-{n}",
            "ts": int(time.time() * 1000),
            "document_id": document,
            "nationality": "FRA",
            "crossing_point": "CDG-T2",
            "direction": "entry",
            **extra,
        }
    )


def test_poison_records_are_dead_lettered_and_the_batch_detection_still_alerts(
    worker: Worker,
) -> None:
    b = worker.bootstrap
    run_id = uuid.uuid4().hex[:10]
    depth = 1000
    nested = crossing(run_id, 1, "X0000001")[:-1] + b',"blob":' + b"[" * depth + b"]" * depth + b"}"
    messages = [
        (b"k1", nested),
        (b"k2", crossing(run_id, 2, "X0000002", note="n" * 400_000)),
        (b"k3", crossing(run_id, 3, "X0000003", note="g" * 900_000)),
        (b"k4", crossing(run_id, 4, "X0000004", person_id=[[["p"] * 10]] * 10)),
        (DOCUMENT.encode(), crossing(run_id, 0, DOCUMENT, person_id=f"person-{run_id}")),
    ]
    expected = {"1": "too_deep", "2": "too_long", "3": "too_large", "4": "wrong_type"}
    bad_detection = orjson.dumps(
        {"detector": "port_scan", "domain": "network", "event_id": f"poison-{run_id}-d",
         "score": "high", "event_time": time.time(), "entity": {"type": "ip", "id": "10.6.6.6"}}
    )
    dl_start = run(end_offsets(b, "events.deadletter"))
    alerts_start = run(end_offsets(b, "alerts.border"))
    run(produce(b, "watchfloor.detections", [(b"ip:10.6.6.6", bad_detection)]))
    run(produce(b, "events.border", messages))

    tag = f"poison-{run_id}-".encode()

    def ours(rec: dict) -> bool:
        return tag in base64.b64decode(rec["original"])

    letters = run(
        collect(b, "events.deadletter", lambda r: len(r) >= 5, 90, dl_start, ours)
    )
    got = {}
    for rec in letters:
        original = base64.b64decode(rec["original"])
        n = original.split(tag, 1)[1].split(b'"', 1)[0].decode()
        got[n] = (rec["topic"], rec["reason"])
    assert got == {
        **{n: ("events.border", reason) for n, reason in expected.items()},
        "d": ("watchfloor.detections", "bad_value"),
    }, f"{got}\n{worker.log_tail()}"
    huge = next(r for r in letters if r["reason"] == "too_large")
    assert huge["truncated"] and huge["original_size"] > 900_000  # cut, with its digest

    alerts = run(
        collect(
            b, "alerts.border", bool, 90, alerts_start,
            lambda a: any(e.get("id") == DOCUMENT for e in a.get("entities", [])),
        )
    )
    assert alerts, f"the poisoned batch's real detection made no alert\n{worker.log_tail()}"
    assert alerts[0]["detections"][-1]["event_id"] == f"poison-{run_id}-0"
    assert worker.proc.poll() is None, "the worker died on a poison pill"
    assert "Traceback" not in worker.log_tail(400)

    verify = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "audit", "verify"],
        env=worker_env(b),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]
    assert verify.stdout.splitlines()[-1].startswith("OK: ")


def _wait(worker: Worker, name: str, at_least: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        value = metric_value(worker.metrics(), name)
        if value >= at_least:
            return value
        time.sleep(0.3)
    pytest.fail(f"{name} stayed at {value} < {at_least}\n{worker.log_tail()}")


def test_incidents_are_counted_once_across_a_restart(
    topics: str, config: Config, tmp_path: Path
) -> None:
    """Issue 9 item 8: ``incidents_total`` over-counted after an agent restart (the
    restored correlator's whole history was counted again)."""
    run_id = uuid.uuid4().hex[:10]
    app_id = f"wf-incidents-{run_id}"
    # Topics of its own: a new group on the shared ones first replays the whole session's
    # traffic, and the 60 s wait below raced that replay.
    prefix = f"inc{run_id[:6]}"
    path, config = namespace(tmp_path, prefix)
    run(apply_topics(config, topics))
    env = {"WATCHFLOOR_TOPICS_FILE": str(path)}
    border, alerts_border = f"{prefix}.events.border", f"{prefix}.alerts.border"
    first = start_worker(
        topics, config, tmp_path, app_id=app_id, WATCHFLOOR_CHECKPOINT_INTERVAL="0.5", **env
    )
    try:
        before = metric_value(first.metrics(), "watchfloor_incidents_total")
        run(produce(topics, border, [(b"L1000902", crossing(run_id, 10, "L1000902"))]))
        opened = _wait(first, "watchfloor_incidents_total", before + 1)
        time.sleep(1.5)  # a checkpoint of the alert stage after the incident opened
    finally:
        stop_worker(first)
    assert opened >= 1

    start = run(end_offsets(topics, alerts_border))
    second = start_worker(topics, config, tmp_path, app_id=app_id, **env)
    try:
        restored = metric_value(second.metrics(), "watchfloor_state_restored_total", kind="alerts")
        assert restored >= 1
        run(produce(topics, border, [(b"L1000777", crossing(run_id, 11, "L1000777"))]))
        alerts = run(
            collect(
                topics, alerts_border, bool, 90, start,
                lambda a: any(e.get("id") == "L1000777" for e in a.get("entities", [])),
            )
        )
        assert alerts, second.log_tail()
        time.sleep(1.0)
        # One new incident since the restart, not the restored history on top of it.
        assert metric_value(second.metrics(), "watchfloor_incidents_total") == 1
    finally:
        stop_worker(second)
