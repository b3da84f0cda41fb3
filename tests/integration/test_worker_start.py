"""What an operator sees when a worker starts: where its topology comes from, its metrics
URL, how much history a new consumer group is about to replay (or skip), and a ready line
once its partitions are assigned and their state restored."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import start_worker, stop_worker
from tests.kafka_helpers import produce, run
from watchfloor.config import Config
from watchfloor.core.events import EXAMPLES

pytestmark = pytest.mark.broker


def _lines(path: Path, until: str, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text(errors="replace").splitlines()
        if any(line.startswith(until) for line in lines):
            return lines
        time.sleep(0.3)
    raise AssertionError(f"no {until!r} line:\n" + path.read_text(errors="replace")[-3000:])


def test_a_new_group_started_from_latest_says_what_it_skips(
    topics: str, config: Config, tmp_path: Path
) -> None:
    # History on the input topics, for the new group to skip.
    now = int(time.time() * 1000)
    flows = [dict(EXAMPLES["network"], event_id=f"hist-{uuid.uuid4().hex[:8]}", ts=now)
             for _ in range(5)]  # fmt: skip
    run(produce(topics, "events.network", [(b"10.9.9.9", orjson.dumps(f)) for f in flows]))
    w = start_worker(topics, config, tmp_path, WATCHFLOOR_START_FROM="latest")
    try:
        lines = _lines(w.log, "ready:")
    finally:
        stop_worker(w)
    ours = [line for line in lines if re.match(r"(topology|metrics|consumer group|ready)", line)]
    assert ours[0].startswith("topology from ") and ours[0].endswith("topics.yaml")
    assert ours[1] == f"metrics at http://127.0.0.1:{w.metrics_port}/metrics"
    m = re.fullmatch(
        rf"consumer group '{w.app_id}' is new: skipping the ([\d,]+) retained input events "
        r"\(--from latest\); it scores events from now on",
        ours[2],
    )
    assert m, ours
    assert int(m.group(1).replace(",", "")) >= 5
    wanted = 1 + sum(  # + Faust's leader topic
        t.partitions
        for t in config.topics
        if t.role in ("input", "detections", "feedback", "published", "rekeyed")
    )
    url = f"http://127.0.0.1:{w.metrics_port}/metrics"
    assert f"ready: {wanted} partitions assigned, metrics at {url}" in ours


def test_acl_apply_on_a_broker_without_an_authorizer_is_one_line(broker: str) -> None:
    import subprocess
    import sys

    from tests.integration.conftest import worker_env

    cmd = [sys.executable, "-m", "watchfloor.ops.cli", "acl", "apply"]
    r = subprocess.run(cmd, env=worker_env(broker), capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stderr.splitlines() == [
        f"error: Kafka: the broker at {broker} has no authorizer, so it enforces no ACLs; "
        "nothing changed. Start it with `watchfloor kafka start --secure` or set "
        "authorizer.class.name (docs/security.md)"
    ]
