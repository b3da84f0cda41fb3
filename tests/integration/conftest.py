"""A real worker process against the real broker, shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.kafka_helpers import run
from watchfloor.config import Config
from watchfloor.streams.topics import apply_topics

_STARTED: list[Worker] = []


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_workers() -> Iterator[None]:
    """A test that fails between starting and stopping a worker must not leave it
    running (it would keep consuming and skew every later test)."""
    yield
    for w in _STARTED:
        stop_worker(w)


@dataclass
class Worker:
    bootstrap: str
    metrics_url: str
    metrics_port: int
    app_id: str
    log: Path
    proc: subprocess.Popen

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


#: The workers' master secret in these tests (a weak one would be refused at start).
TEST_MASTER_KEY = "62f615edd82641213cbe9db62e5454e5be11aa4d38ba106ee7925166f1b8d6ec"


def worker_env(bootstrap: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WATCHFLOOR_MASTER_KEY", None)
    env.update(
        WATCHFLOOR_BROKER=f"kafka://{bootstrap}",
        WATCHFLOOR_TOPICS_FILE=str(ROOT / "topics.yaml"),
        # WATCHFLOOR_MASTER_KEY's former name, still read (tests of it depend on that).
        WATCHFLOOR_PSEUDONYM_KEY=TEST_MASTER_KEY,
    )
    env.update(extra)
    return env


def start_worker(
    bootstrap: str, config: Config, tmp: Path, expect_partitions: int | None = None, **extra: str
) -> Worker:
    """Start a worker subprocess; return once it owns ``expect_partitions`` partitions
    (default: all of them, as the only member of its group)."""
    port = free_port()
    app_id = extra.pop("app_id", f"wf-test-{uuid.uuid4().hex[:8]}")
    log = tmp / f"worker-{app_id}-{uuid.uuid4().hex[:6]}.log"
    env = worker_env(
        bootstrap,
        WATCHFLOOR_METRICS_PORT=str(port),
        WATCHFLOOR_APP_ID=app_id,
        WATCHFLOOR_STATE_DIR=str(tmp / app_id),
        **extra,
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchfloor.ops.cli", "worker", "--loglevel", "info"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    w = Worker(bootstrap, f"http://127.0.0.1:{port}/metrics", port, app_id, log, proc)
    _STARTED.append(w)
    wanted = expect_partitions or sum(
        t.partitions
        for t in config.topics
        if t.role in ("input", "detections", "feedback", "rekeyed")
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{w.log_tail()}")
        try:
            if metric_value(w.metrics(), "watchfloor_assigned_partitions") >= wanted:
                return w
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"worker was not assigned its {wanted} partitions within 90 s:\n{w.log_tail()}")


def stop_worker(w: Worker) -> None:
    if w.proc.poll() is None:
        w.proc.terminate()
        try:
            w.proc.wait(30)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


@pytest.fixture(scope="session")
def topics(broker: str, config: Config) -> str:
    run(apply_topics(config, broker))
    return broker


@pytest.fixture(scope="session")
def worker(
    topics: str, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    w = start_worker(topics, config, tmp_path_factory.mktemp("worker"))
    yield w
    stop_worker(w)


def namespace(tmp: Path, prefix: str) -> tuple[Path, Config]:
    """A copy of topics.yaml whose every topic name starts with ``prefix.`` (isolated
    topics for a test that replays lots of traffic), and its parsed config."""
    import yaml

    from watchfloor.config import parse_config

    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["topics"] = {f"{prefix}.{k}": v for k, v in spec["topics"].items()}
    for name, agency in spec["agencies"].items():
        agency["topic"] = f"{prefix}.alerts.{name}"
    path = tmp / f"{prefix}-topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, parse_config(spec, str(path))


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records of ``topics`` not yet committed by consumer group ``group``."""
    from aiokafka.admin import AIOKafkaAdminClient

    from watchfloor.kafka.clients import assigned_consumer

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = {(tp.topic, tp.partition): om.offset for tp, om in committed.items()}
    lag = 0
    for topic in topics:
        consumer = await assigned_consumer(bootstrap, topic, from_beginning=False)
        assert consumer is not None, topic
        try:
            for tp in consumer.assignment():
                end = await consumer.position(tp)
                lag += max(0, end - max(0, done.get((tp.topic, tp.partition), 0)))
        finally:
            await consumer.stop()
    return lag


def prom_query(port: int, expr: str) -> dict:
    """Prometheus's instant-query answer (the whole JSON body)."""
    import json
    import urllib.parse

    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def prometheus(worker: Worker, tmp_path: Path) -> Iterator[int]:
    """A real Prometheus (Debian package) scraping the session worker every second, with
    the shipped rules; yields its port once the worker is up in it."""
    import shutil

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is not installed: `make test` installs it (deploy/prometheus/install.sh)"
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
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail("prometheus exited:\n" + log.read_text()[-3000:])
            try:
                up = prom_query(port, 'up{job="watchfloor"}')["data"]["result"]
            except OSError:
                up = []
            if up and up[0]["value"][1] == "1":
                break
            if time.monotonic() > deadline:
                pytest.fail("Prometheus never scraped the worker")
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)
