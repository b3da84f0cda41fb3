"""A worker's output sent to a log file (not a terminal) at the default log level: plain
lines, the ready line on its own, no terminal escape codes (Faust's start-up spinner
wrote cursor codes there)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.kafka_helpers import run
from watchfloor.config import Config
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


def test_a_worker_logging_to_a_file_writes_no_escape_codes(
    broker: str, config: Config, tmp_path: Path
) -> None:
    run(apply_topics(config, broker))
    app_id = f"wf-log-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    env.update(
        WATCHFLOOR_BROKER=f"kafka://{broker}",
        WATCHFLOOR_TOPICS_FILE=str(ROOT / "topics.yaml"),
        WATCHFLOOR_MASTER_KEY="62f615edd82641213cbe9db62e5454e5be11aa4d38ba106ee7925166f1b8d6ec",
        WATCHFLOOR_APP_ID=app_id,
        WATCHFLOOR_STATE_DIR=str(tmp_path / "state"),
        WATCHFLOOR_METRICS_PORT=str(port),
        WATCHFLOOR_START_FROM="latest",  # replay nothing of what other tests published
    )
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:  # default --loglevel (warning), as an operator runs it
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchfloor.ops.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "ready: " not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text(errors="replace")
    assert "\x1b" not in text and "\x08" not in text, repr(text)
    ready = [line for line in text.splitlines() if "ready: " in line]
    assert ready == [f"ready: {ready[0].split()[1]} partitions assigned, metrics at "
                     f"http://127.0.0.1:{port}/metrics"], repr(text)  # fmt: skip
