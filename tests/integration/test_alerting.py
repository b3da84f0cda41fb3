"""The shipped alert rules fire end to end: a live worker, a real Prometheus evaluating
``deploy/prometheus/rules.yml`` and a real Alertmanager (Debian's package) delivering to a
webhook receiver in this test.

The rules are the shipped ones with their ``for:`` durations set to zero and their range
windows shortened to 20 s, so they fire in seconds instead of minutes; the expressions,
labels and annotations are unchanged (their thresholds and durations are checked by the
promtool unit tests in ``tests/deploy/test_rules.py``).

Consumer lag growing is made deterministic rather than hoped for: the worker also runs a
border detector (a plugin this test writes, found through its entry point like any other)
that costs 10 ms an event, so with batches of 50 the worker scores at most ~100 border
events a second whatever the machine, and the test then sends ~1,000 a second. The lag the
worker exports (``watchfloor_consumer_lag``) passes 1,000 and keeps growing, and the rule
fires on the border topic, not on the network one the worker keeps up with.
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
LAG = "WatchfloorConsumerLagGrowing"

SLOW_DETECTOR = '''
import time
from typing import ClassVar
from watchfloor.detectors import NORMAL, Detector


class SlowBorder(Detector):
    """Finds nothing and costs 10 ms an event: a worker that cannot keep up."""
    domains: ClassVar[tuple[str, ...]] = ("border",)
    entity: ClassVar[tuple[str, str]] = ("document", "document_id")
    kind: ClassVar[str] = "slow"

    def learn_one(self, event):
        pass

    def score_one(self, event):
        time.sleep(0.01)
        return NORMAL
'''


def slow_plugin(where: Path) -> Path:
    """A detector plugin on ``where`` (for PYTHONPATH): a module and the metadata that
    registers it in the ``watchfloor.detectors`` group, as a pip-installed one would."""
    where.mkdir()
    (where / "wf_slow_border.py").write_text(SLOW_DETECTOR)
    meta = where / "wf_slow_border-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: wf-slow-border\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text(
        "[watchfloor.detectors]\nslow_border = wf_slow_border:SlowBorder\n")
    return where


def crossings(n: int, start: int) -> list[tuple[bytes, bytes]]:
    """``n`` valid border crossings, spread over documents (so over partitions)."""
    now = int(time.time() * 1000)
    out = []
    for i in range(start, start + n):
        doc = f"D{i % 97:05d}"
        out.append((doc.encode(), orjson.dumps({
            "event_id": f"lag-{i}", "ts": now, "document_id": doc, "nationality": "FRA",
            "crossing_point": f"CP-{i % 7}", "direction": "entry",
            "person_name": "TEST TRAVELLER", "person_id": f"person-{i % 97}"})))
    return out


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
    spec["detectors"]["border"].append({"name": "slow_border", "threshold": 0.9})
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(yaml.safe_dump(spec))
    config = parse_config(spec, str(topics_file))
    run(apply_topics(config, broker))
    worker = start_worker(broker, config, tmp_path, WATCHFLOOR_TOPICS_FILE=str(topics_file),
                          WATCHFLOOR_BATCH_SIZE="50",  # a slow border batch blocks <= 0.5 s
                          PYTHONPATH=str(slow_plugin(tmp_path / "plugin")))

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
    stop, flood = threading.Event(), threading.Event()

    def border_flood() -> None:
        # ~1,000 crossings a second, ten times what the slow detector lets through.
        sent = 0
        while not stop.is_set():
            flood.wait(1)
            if flood.is_set():
                run(produce(broker, f"{prefix}.events.border", crossings(250, sent)))
                sent += 250
                stop.wait(0.25)

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
    flooder = threading.Thread(target=border_flood, daemon=True)
    try:
        flooder.start()
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

        def received(wanted: set[str], seconds: float) -> set[str]:
            deadline = time.monotonic() + seconds
            fired: set[str] = set()
            while time.monotonic() < deadline and not wanted <= fired:
                fired = {a["labels"]["alertname"] for msg in Hook.received
                         for a in msg["alerts"]}  # fmt: skip
                for proc, name in ((am, "alertmanager"), (prom, "prometheus")):
                    if proc.poll() is not None:
                        log = (tmp_path / ("am.log" if name == "alertmanager" else "prom.log"))
                        pytest.fail(f"{name} exited:\n{log.read_text()[-2000:]}")
                time.sleep(1)
            return fired

        fired = received(WANTED, 120)
        pending = prom_query(prom_port, "ALERTS")["data"]["result"]
        assert WANTED <= fired, (fired, [p["metric"] for p in pending])
        # Then the border domain outruns the worker (the other alerts came first: the slow
        # detector blocks the worker's loop, and would have delayed the CERT alert).
        assert LAG not in fired, "lag alert before the worker fell behind"
        flood.set()
        fired = received({LAG}, 90)
        lag = prom_query(prom_port, "watchfloor:consumer_lag:sum")["data"]["result"]
        assert LAG in fired, ([p["metric"] for p in prom_query(prom_port, "ALERTS")["data"]
                               ["result"]], lag, worker.log_tail())  # fmt: skip
        by_name = {a["labels"]["alertname"]: a for msg in Hook.received for a in msg["alerts"]}
        assert by_name["WatchfloorDeadLettersRising"]["labels"]["domain"] == "network"
        silent = {a["labels"]["domain"] for msg in Hook.received for a in msg["alerts"]
                  if a["labels"]["alertname"] == "WatchfloorDomainSilent"}
        assert "network" not in silent and silent <= {"financial", "border"} and silent
        slow = by_name["WatchfloorResponseSlow"]
        assert slow["labels"]["agency"] == "cert"
        assert slow["annotations"]["summary"].startswith("cert acknowledges alerts slower")
        behind = {a["labels"]["topic"] for msg in Hook.received for a in msg["alerts"]
                  if a["labels"]["alertname"] == LAG}
        assert behind == {f"{prefix}.events.border"}, behind
        assert float(next(r["value"][1] for r in lag
                          if r["metric"]["topic"] == f"{prefix}.events.border")) > 1000
    finally:
        stop.set()
        feeder.join(5)
        flooder.join(10)
        for proc in (prom, am):
            proc.terminate()
            proc.wait(20)
        stop_worker(worker)
