"""A real Prometheus (Debian package) scrapes a real worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT, free_port
from tests.integration.conftest import Worker
from tests.kafka_helpers import produce, run

pytestmark = [pytest.mark.broker, pytest.mark.prometheus]


def _prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is not installed: `make test` installs it (deploy/prometheus/install.sh)"
        )
    return binary


def test_shipped_prometheus_config_and_rules_are_valid() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package"
    out = subprocess.run(
        [promtool, "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_worker_metrics(worker: Worker, tmp_path: Path) -> None:
    binary = _prometheus()
    run(
        produce(
            worker.bootstrap,
            "events.network",
            [
                (
                    None,
                    orjson.dumps(
                        {
                            "event_id": "prom-1",
                            "ts": int(time.time() * 1000),
                            "src_ip": "10.1.1.1",
                            "dst_ip": "10.1.1.2",
                            "dst_port": 443,
                            "protocol": "tcp",
                            "bytes_out": 100,
                            "bytes_in": 100,
                            "duration_ms": 5,
                        }
                    ),
                )
            ],
        )
    )
    shutil.copy(ROOT / "deploy/prometheus/rules.yml", tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n"
        "  - job_name: watchfloor\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker.metrics_port}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 60
        result: list[dict] = []
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    "prometheus exited:\n" + (tmp_path / "prometheus.log").read_text()[-3000:]
                )
            try:
                result = _query(port, 'watchfloor_events_total{domain="network"}')
            except OSError:
                result = []
            if result and float(result[0]["value"][1]) > 0:
                break
            time.sleep(1)
        assert result, "Prometheus never scraped watchfloor_events_total"
        assert float(result[0]["value"][1]) >= 1
        up = _query(port, 'up{job="watchfloor"}')
        assert up and up[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(20)
