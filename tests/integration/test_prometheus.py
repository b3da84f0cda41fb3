"""A real Prometheus (Debian package) scrapes a real worker."""

from __future__ import annotations

import shutil
import subprocess
import time

import orjson
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Worker, prom_query
from tests.kafka_helpers import produce, run

pytestmark = [pytest.mark.broker, pytest.mark.prometheus]


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


def test_prometheus_scrapes_worker_metrics(worker: Worker, prometheus: int) -> None:
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
    deadline = time.monotonic() + 60
    result: list[dict] = []
    while time.monotonic() < deadline:
        result = prom_query(prometheus, 'watchfloor_events_total{domain="network"}')["data"][
            "result"
        ]
        if result and float(result[0]["value"][1]) > 0:
            break
        time.sleep(1)
    assert result, "Prometheus never scraped watchfloor_events_total"
    assert float(result[0]["value"][1]) >= 1
    # The shipped recording rules evaluate against real data.
    deadline = time.monotonic() + 30
    rate: list[dict] = []
    while time.monotonic() < deadline and not rate:
        rate = prom_query(prometheus, 'watchfloor:events:rate1m{domain="network"}')["data"][
            "result"
        ]
        time.sleep(1)
    assert rate, "the recording rule watchfloor:events:rate1m produced no series"
