"""A detector from a separately pip-installed package runs in the real pipeline."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import start_worker, stop_worker, worker_env
from tests.kafka_helpers import collect, produce, run
from watchfloor.config import parse_config
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker

PLUGIN = ROOT / "examples" / "watchfloor-example-plugin"


def install_plugin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "-e", str(PLUGIN)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_plugin_is_listed_and_produces_alerts(broker: str, tmp_path: Path) -> None:
    install_plugin()
    listed = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "detectors", "list"],
        env=worker_env(broker), capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("rare_port "))
    assert "watchfloor-example-plugin" in row and "network" in row

    prefix = f"plugin{uuid.uuid4().hex[:6]}"
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["topics"] = {f"{prefix}.{k}": v for k, v in spec["topics"].items()}
    for name, agency in spec["agencies"].items():
        agency["topic"] = f"{prefix}.alerts.{name}"
    spec["detectors"]["network"].append({"name": "rare_port", "threshold": 0.9})
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    config = parse_config(spec, str(path))
    run(apply_topics(config, broker))

    listed = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "--topics-file", str(path),
         "detectors", "list"], env=worker_env(broker), capture_output=True, text=True,
    )
    row = next(line for line in listed.stdout.splitlines() if line.startswith("rare_port "))
    assert row.rstrip().endswith("network@0.9"), row

    worker = start_worker(broker, config, tmp_path, WATCHFLOOR_TOPICS_FILE=str(path))
    try:
        ip = "10.66.0.9"
        flow = {"event_id": f"rev-{uuid.uuid4().hex[:8]}", "ts": int(time.time() * 1000),
                "src_ip": ip, "dst_ip": "198.51.100.7", "dst_port": 4444, "protocol": "tcp",
                "bytes_out": 900, "bytes_in": 1200, "duration_ms": 800}
        run(produce(broker, f"{prefix}.events.network", [(ip.encode(), orjson.dumps(flow))]))
        alerts = run(collect(broker, f"{prefix}.alerts.cert", bool, 60, None,
                             lambda a: a.get("kind") == "alert"))
        assert alerts, f"no alert from the plugin\n{worker.log_tail()}"
        detection = alerts[0]["detections"][0]
        assert detection["detector"] == "rare_port"
        assert detection["event_id"] == flow["event_id"]
        assert "4444" in detection["reason"]
    finally:
        stop_worker(worker)
