"""The shipped alert rules fire end to end: a live worker, a real Prometheus evaluating
``deploy/prometheus/rules.yml`` and a real Alertmanager (Debian's package) delivering to a
webhook receiver in this test.

The rules are the shipped ones with their ``for:`` durations set to zero and their range
windows shortened to 20 s, so they fire in seconds instead of minutes; the expressions,
labels and annotations are unchanged (their thresholds and durations are checked by the
promtool unit tests in ``tests/deploy/test_rules.py``). Consumer lag growing is covered
there only: provoking a worker that falls further behind for minutes on a shared 2-core
machine would make this test slow and flaky.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.conftest import ROOT, free_port
from tests.integration.conftest import prom_query, start_worker, stop_worker
from tests.integration.test_pipeline import port_scan
from tests.kafka_helpers import collect, produce, run
from watchfloor.config import parse_config
from watchfloor.streams.topics import apply_topics

pytestmark = [pytest.mark.broker, pytest.mark.prometheus]
WANTED = {"WatchfloorDomainSilent", "WatchfloorDeadLettersRising", "WatchfloorResponseSlow"}


def fast_rules(text: str) -> str:
    text = re.sub(r"for: \d+[smh]", "for: 0s", text)
    return re.sub(r"\[(\d+[smh])\]", "[20s]", text)


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Alertmanager is missing: make test installs Debian's prometheus-alertmanager")


@pytest.fixture
def receiver() -> Iterator[int]:
    Hook.received = []
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield port
    server.shutdown()


def spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "HOME": str(log.parent)})


def test_rules_fire_through_alertmanager(broker: str, tmp_path: Path, receiver: int) -> None:
    prefix = f"am{uuid.uuid4().hex[:6]}"
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["topics"] = {f"{prefix}.{k}": v for k, v in spec["topics"].items()}
    for name, agency in spec["agencies"].items():
        agency["topic"] = f"{prefix}.alerts.{name}"
    spec["agencies"]["cert"]["response_target_seconds"] = 1  # any real answer is too slow
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(yaml.safe_dump(spec))
    config = parse_config(spec, str(topics_file))
    run(apply_topics(config, broker))
    worker = start_worker(broker, config, tmp_path, WATCHFLOOR_TOPICS_FILE=str(topics_file))

    am_port, prom_port = free_port(), free_port()
    (tmp_path / "am.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "test", "group_by": ["alertname", "domain", "agency"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": f"http://127.0.0.1:{receiver}/hook", "send_resolved": False}]}],
    }))
    (tmp_path / "rules.yml").write_text(fast_rules((ROOT / "deploy/prometheus/rules.yml")
                                                   .read_text()))
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        "alerting: {alertmanagers: [{static_configs: [{targets: "
        f"['127.0.0.1:{am_port}']}}]}}]}}\n"
        "scrape_configs:\n"
        "  - job_name: watchfloor\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker.metrics_port}']}}]\n"
    )
    am = spawn([alertmanager_binary(), f"--config.file={tmp_path / 'am.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
               tmp_path / "am.log")
    prom = spawn([shutil.which("prometheus") or "prometheus",
                  f"--config.file={tmp_path / 'prometheus.yml'}",
                  f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                  f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path / "prom.log")
    stop = threading.Event()

    def traffic() -> None:
        # Network events keep flowing (so only the other domains are silent); one in
        # eight is not JSON, well above the 5 % dead-letter threshold.
        i = 0
        while not stop.is_set():
            batch = []
            for _ in range(8):
                i += 1
                batch.append((b"k", b"{not json" if i % 8 == 0 else orjson.dumps({
                    "event_id": f"am-{i}", "ts": int(time.time() * 1000),
                    "src_ip": "10.1.1.1", "dst_ip": "10.1.1.2", "dst_port": 443,
                    "protocol": "tcp", "bytes_out": 1200, "bytes_in": 5400,
                    "duration_ms": 40})))
            run(produce(broker, f"{prefix}.events.network", batch))
            stop.wait(0.5)

    feeder = threading.Thread(target=traffic, daemon=True)
    try:
        feeder.start()  # before the first scrape: the network domain is never silent
        # Rates need samples from before what they measure: act only once Prometheus
        # scrapes the worker.
        deadline = time.monotonic() + 90
        while True:
            try:
                up = prom_query(prom_port, 'up{job="watchfloor"}')["data"]["result"]
            except OSError:
                up = []
            if up and up[0]["value"][1] == "1":
                break
            if prom.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Prometheus never scraped the worker:\n"
                            + (tmp_path / "prom.log").read_text()[-2000:])
            time.sleep(0.5)
        time.sleep(3)
        # A CERT alert, acknowledged after two seconds: slower than the 1 s target.
        ip = "10.66.6.6"
        run(produce(broker, f"{prefix}.events.network", port_scan(ip, int(time.time() * 1000))))
        alerts = run(collect(broker, f"{prefix}.alerts.cert",
                             lambda r: any(a.get("kind") == "alert" for a in r), timeout=90))
        alert_id = next(a["alert_id"] for a in alerts if a.get("kind") == "alert")
        time.sleep(2.5)
        ack = {"alert_id": alert_id, "agency": "cert", "action": "ack",
               "ts": int(time.time() * 1000)}
        run(produce(broker, config.feedback_topics["cert"].name,
                    [(alert_id.encode(), orjson.dumps(ack))]))

        deadline = time.monotonic() + 120
        fired: set[str] = set()
        while time.monotonic() < deadline and not WANTED <= fired:
            fired = {a["labels"]["alertname"] for msg in Hook.received for a in msg["alerts"]}
            for proc, name in ((am, "alertmanager"), (prom, "prometheus")):
                if proc.poll() is not None:
                    log = (tmp_path / ("am.log" if name == "alertmanager" else "prom.log"))
                    pytest.fail(f"{name} exited:\n{log.read_text()[-2000:]}")
            time.sleep(1)
        pending = prom_query(prom_port, "ALERTS")["data"]["result"]
        assert WANTED <= fired, (fired, [p["metric"] for p in pending])
        by_name = {a["labels"]["alertname"]: a for msg in Hook.received for a in msg["alerts"]}
        assert by_name["WatchfloorDeadLettersRising"]["labels"]["domain"] == "network"
        silent = {a["labels"]["domain"] for msg in Hook.received for a in msg["alerts"]
                  if a["labels"]["alertname"] == "WatchfloorDomainSilent"}
        assert "network" not in silent and silent <= {"financial", "border"} and silent
        slow = by_name["WatchfloorResponseSlow"]
        assert slow["labels"]["agency"] == "cert"
        assert slow["annotations"]["summary"].startswith("cert acknowledges alerts slower")
    finally:
        stop.set()
        feeder.join(5)
        for proc in (prom, am):
            proc.terminate()
            proc.wait(20)
        stop_worker(worker)
