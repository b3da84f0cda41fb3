"""The worker on a real broker, next to the bare Kafka client measured in the same run.

    .venv/bin/python benchmarks/bench_worker.py [--events 200000] [--rates 1000,5000]
        [--duration 60] [--workers 2] [--out benchmarks/results/worker.json]

What it measures (issue 12), each as a ratio to a reference taken in the same run so
that a noisy 2-core machine still gives comparable numbers:

- ``passthrough``: bare aiokafka consume → ``orjson.loads`` → produce → commit over a
  pre-produced backlog of simulator events (the most any Kafka pipeline in Python can do
  here);
- ``backlog``: the watchfloor worker draining the same backlog (start-up and the first
  rebalance excluded: the clock starts when the worker owns its partitions);
- ``rate-N``: a fresh worker fed N events/s for ``--duration`` seconds; alert latency is
  the append time of each alert minus the append time of the newest event it cites, both
  broker timestamps, so nothing inside the worker is trusted;
- ``scale-out``: the backlog drained by ``--workers`` workers in one group.

CPU per event comes from /proc (user+system of the process), peak RSS from VmHWM. The
JSON keeps the machine, versions and load average of the run. This is a benchmark, never
a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchfloor.config import Config, parse_config  # noqa: E402
from watchfloor.core.events import ENTITY_FIELDS  # noqa: E402
from watchfloor.simulation import Simulator  # noqa: E402
from watchfloor.streams.topics import apply_topics  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ helpers
def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def proc_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Documents of the probe crossings (each reported stolen: one new incident, one alert).
PROBES = 20_000


def namespaced(tmp: Path, prefix: str, partitions: int = 0) -> tuple[Path, Config]:
    """topics.yaml with every topic under ``prefix.`` so runs never share topics, and the
    lost/stolen list extended by the probe documents (``probe_event``); ``partitions``:
    that many for every scored topic (input and re-keyed) instead of the shipped count."""
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["topics"] = {f"{prefix}.{k}": v for k, v in spec["topics"].items()}
    if partitions:
        for topic in spec["topics"].values():
            if topic["role"] in ("input", "rekeyed"):
                topic["partitions"] = partitions
    for name, agency in spec["agencies"].items():
        agency["topic"] = f"{prefix}.alerts.{name}"
    stolen = tmp / "probe-documents.txt"
    if not stolen.exists():
        packaged = (ROOT / "watchfloor/data/lost_stolen.txt").read_text()
        stolen.write_text(packaged + "".join(f"PROBE{i:07d}\n" for i in range(PROBES)))
    for det in spec["detectors"]["border"]:
        if det["name"] == "lost_stolen_document":
            det["params"] = {**det.get("params", {}), "path": str(stolen)}
    path = tmp / f"{prefix}-topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, parse_config(spec, str(path))


def input_topics(config: Config) -> dict[str, str]:
    """domain -> input topic name."""
    return {t.domain: t.name for t in config.topics if t.role == "input"}


def probe_event(i: int) -> tuple[str, dict[str, Any]]:
    """A crossing with a stolen document: an alert per probe whatever the simulator's
    slice holds, so every rate run measures latency (its ``ts`` is set when sent)."""
    return "border", {
        "event_id": f"probe-{i}", "ts": 0, "document_id": f"PROBE{i % PROBES:07d}",
        "nationality": "FRA", "crossing_point": "CDG-T2", "direction": "entry", "_probe": 1,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


# ------------------------------------------------------------------------------ producing
async def produce(
    bootstrap: str,
    config: Config,
    events: list[tuple[str, dict[str, Any]]],
    rate: float = 0.0,
) -> dict[str, int]:
    """Publish ``events`` (at ``rate`` per second, 0 = flat out); return the broker
    append time (ms) of every event_id."""
    from aiokafka import AIOKafkaProducer

    topics = input_topics(config)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 18)
    await producer.start()
    stamps: dict[str, int] = {}
    futures: list[tuple[str, asyncio.Future]] = []
    try:
        started = time.monotonic()
        for i, (domain, event) in enumerate(events):
            if rate and i % 50 == 0:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if event.pop("_probe", None):
                event["ts"] = int(time.time() * 1000)
            key = str(event.get(ENTITY_FIELDS[domain][1], "")).encode()
            fut = await producer.send(topics[domain], orjson.dumps(event), key=key)
            futures.append((event["event_id"], fut))
            if len(futures) >= 5000:
                for eid, f in futures:
                    stamps[eid] = (await f).timestamp
                futures.clear()
        for eid, f in futures:
            stamps[eid] = (await f).timestamp
    finally:
        await producer.stop()
    return stamps


# ------------------------------------------------------------------------------ reference
async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def passthrough(bootstrap: str, config: Config, n: int, sink: str) -> dict[str, Any]:
    """Bare aiokafka: consume → orjson.loads → produce → await acks → commit."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        *input_topics(config).values(),
        bootstrap_servers=bootstrap,
        group_id=f"bench-ref-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1 << 22,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 18)
    await consumer.start()
    await producer.start()
    seen = 0
    cpu0 = t0 = None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batch:
                continue
            if t0 is None:
                t0, cpu0 = time.perf_counter(), time.process_time()
            sends = []
            for records in batch.values():
                for rec in records:
                    event = orjson.loads(rec.value)
                    sends.append(await producer.send(sink, orjson.dumps(event), key=rec.key))
                    seen += 1
            await asyncio.gather(*sends)
            await consumer.commit()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "events": seen,
        "seconds": round(elapsed, 3),
        "events_per_s": round(seen / elapsed, 1),
        "cpu_us_per_event": round(cpu / seen * 1e6, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# ------------------------------------------------------------------------------ the worker
class WorkerProc:
    def __init__(self, bootstrap: str, topics_file: Path, app_id: str, tmp: Path) -> None:
        self.port = free_port()
        self.log = tmp / f"{app_id}-{self.port}.log"
        env = dict(os.environ)
        env.update(
            WATCHFLOOR_BROKER=f"kafka://{bootstrap}",
            WATCHFLOOR_TOPICS_FILE=str(topics_file),
            WATCHFLOOR_METRICS_PORT=str(self.port),
            WATCHFLOOR_APP_ID=app_id,
            WATCHFLOOR_STATE_DIR=str(tmp / f"state-{app_id}-{self.port}"),
        )
        env.setdefault("WATCHFLOOR_PSEUDONYM_KEY", uuid.uuid4().hex + uuid.uuid4().hex)
        self.out = open(self.log, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchfloor.ops.cli", "worker", "--loglevel", "warning"],
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " ") or (
                "{" in name and line.startswith(name)
            ):
                total += float(line.rpartition(" ")[2])
        return total

    def stalls_over(self, seconds: str = "0.1") -> float:
        """Event-loop stalls longer than ``seconds`` so far (from the worker's histogram)."""
        total = self.metric("watchfloor_event_loop_stall_seconds_count")
        within = self.metric(f'watchfloor_event_loop_stall_seconds_bucket{{le="{seconds}"}}')
        return total - within

    def wait_assigned(self, partitions: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if self.metric("watchfloor_assigned_partitions") >= partitions:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not assigned in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.out.close()


def py_spy(pid: int, profile: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy recording ``pid``'s collapsed stacks to ``profile`` (None: no profile)."""
    if profile is None:
        return None
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate",
         "200", "--format", "raw", "--nonblocking", "--output", str(profile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def stop_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait(60)


def owned_partitions(config: Config) -> int:
    return sum(t.partitions for t in config.topics if t.role in ("input", "detections", "feedback"))


async def committed_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        meta = await admin.describe_topics(topics)
    finally:
        await admin.close()
    done = {(tp.topic, tp.partition): om.offset for tp, om in committed.items()}
    tps = [TopicPartition(m["topic"], p["partition"]) for m in meta for p in m["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(
        max(0, end - max(0, done.get((tp.topic, tp.partition), 0))) for tp, end in ends.items()
    )


def drain(
    bootstrap: str, config: Config, topics_file: Path, n: int, workers: int, tmp: Path,
    profile: Path | None = None, broker_pid: int | None = None,
) -> dict[str, Any]:
    """Workers in one fresh group drain the backlog already in the input topics;
    ``profile``: py-spy's collapsed stacks of the first worker while it drains. Reports
    the cores the workers, the broker (``broker_pid``) and the machine kept busy: on a
    2-core machine they say whether a second worker had a core to run on."""
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    launched = time.perf_counter()
    procs = [WorkerProc(bootstrap, topics_file, app_id, tmp) for _ in range(workers)]
    try:
        # With several members each owns a share: wait until the group's total is whole.
        need = owned_partitions(config)
        deadline = time.monotonic() + 180
        while sum(max(0.0, p.metric("watchfloor_assigned_partitions")) for p in procs) < need:
            for p in procs:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"worker exited: {p.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("workers were not assigned their partitions")
            time.sleep(0.2)
        spy = py_spy(procs[0].proc.pid, profile)
        t0 = time.perf_counter()
        cpu0 = sum(proc_cpu(p.proc.pid) for p in procs)
        broker0 = proc_cpu(broker_pid) if broker_pid else 0.0
        busy0, total0 = machine_cpu()
        topics = list(input_topics(config).values())
        while True:
            lag = asyncio.run(committed_lag(bootstrap, app_id, topics))
            if lag == 0:
                break
            time.sleep(0.25)
        elapsed = time.perf_counter() - t0
        cpu = sum(proc_cpu(p.proc.pid) for p in procs) - cpu0
        broker_cpu = proc_cpu(broker_pid) - broker0 if broker_pid else None
        busy1, total1 = machine_cpu()
        cores = os.cpu_count() or 1
        stop_spy(spy)
        return {
            "worker_cores": round(cpu / elapsed, 2),
            "broker_cores": None if broker_cpu is None else round(broker_cpu / elapsed, 2),
            "machine_busy_cores": round((busy1 - busy0) / (total1 - total0) * cores, 2),
            "events": n,
            "workers": workers,
            "startup_s": round(t0 - launched, 2),
            "seconds": round(elapsed, 3),
            "events_per_s": round(n / elapsed, 1),
            "cpu_us_per_event": round(cpu / n * 1e6, 2),
            "peak_rss_mb": round(max(proc_hwm_mb(p.proc.pid) for p in procs), 1),
        }
    finally:
        for p in procs:
            p.stop()


async def alert_latencies(
    bootstrap: str,
    config: Config,
    stamps: dict[str, int],
    timeout: float = 20.0,
    detected: dict[str, int] | None = None,
) -> list[tuple[float, str]]:
    """(seconds from the newest cited event's append to the alert's append, that event's
    id) for each alert citing an event of ``stamps``. ``detected`` gets the append time
    (ms) of the first detection of each of those events: the latency's split between
    scoring and correlation."""
    from aiokafka import AIOKafkaConsumer

    detections = config.topic("detections").name
    topics = [a.topic for a in config.agencies] + [detections]
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: list[tuple[float, str]] = []
    try:
        quiet_until = time.monotonic() + timeout
        while time.monotonic() < quiet_until:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                quiet_until = time.monotonic() + 5
                for rec in records:
                    value = orjson.loads(rec.value)
                    if tp.topic == detections:
                        eid = value.get("event_id")
                        if detected is not None and eid in stamps:
                            detected.setdefault(eid, rec.timestamp)
                        continue
                    cited = [
                        (stamps[d["event_id"]], d["event_id"])
                        for d in value.get("detections", [])
                        if d.get("event_id") in stamps
                    ]
                    if cited:
                        newest, eid = max(cited)
                        out.append(((rec.timestamp - newest) / 1000, eid))
    finally:
        await consumer.stop()
    return out


def fixed_rate(
    bootstrap: str, topics_file: Path, config: Config, rate: float, duration: float, tmp: Path,
    seed: int, profile: Path | None = None,
) -> dict[str, Any]:
    app_id = f"bench-rate-{uuid.uuid4().hex[:8]}"
    w = WorkerProc(bootstrap, topics_file, app_id, tmp)
    try:
        w.wait_assigned(owned_partitions(config))
        # Warm-up, reported apart: each partition's first records build its engine (every
        # detector, reference lists) and the first alerts open the agencies' producers.
        warm = list(Simulator(seed=seed + 1, days=1.0).events(int(rate * 3)))
        for k, i in enumerate(range(0, len(warm), max(1, int(rate // 10)))):
            warm[i] = probe_event(PROBES - 1 - k)
        warm_stamps = asyncio.run(produce(bootstrap, config, warm, rate=rate))
        warm_lat = asyncio.run(alert_latencies(bootstrap, config, warm_stamps))
        events = list(Simulator(seed=seed, days=1.0).events(int(rate * duration)))
        # Ten probes a second: latency percentiles from ~10 * duration alerts.
        every = max(1, int(rate // 10))
        for k, i in enumerate(range(0, len(events), every)):
            events[i] = probe_event(k)
        cpu0 = proc_cpu(w.proc.pid)
        stalls0 = w.stalls_over("0.1")
        spy = py_spy(w.proc.pid, profile)
        t0 = time.perf_counter()
        stamps = asyncio.run(produce(bootstrap, config, events, rate=rate))
        achieved = len(events) / (time.perf_counter() - t0)
        stop_spy(spy)
        detected: dict[str, int] = {}
        cited = asyncio.run(alert_latencies(bootstrap, config, stamps, detected=detected))
        warm_ids = {f"probe-{PROBES - 1 - k}" for k in range(len(warm))}
        cited = [(x, eid) for x, eid in cited if eid not in warm_ids]
        lat = [x for x, _ in cited]
        # Event appended -> its detection appended (scoring), and the rest (correlation).
        scoring = [(detected[e] - stamps[e]) / 1000 for _, e in cited if e in detected]
        correlating = [x - (detected[e] - stamps[e]) / 1000 for x, e in cited if e in detected]
        cpu = proc_cpu(w.proc.pid) - cpu0
        stall = w.metric("watchfloor_event_loop_stall_max_seconds")
        return {
            "loop_stall_max_ms": round(stall * 1000, 1),  # warm-up included
            "loop_stalls_over_100ms": int(w.stalls_over("0.1") - stalls0),
            "offered_per_s": rate,
            "achieved_per_s": round(achieved, 1),
            "seconds": duration,
            "alerts": len(lat),
            "p50_ms": round(percentile(lat, 50) * 1000, 1),
            "p95_ms": round(percentile(lat, 95) * 1000, 1),
            "p99_ms": round(percentile(lat, 99) * 1000, 1),
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "scoring_p50_ms": round(percentile(scoring, 50) * 1000, 1),
            "scoring_p99_ms": round(percentile(scoring, 99) * 1000, 1),
            "correlating_p50_ms": round(percentile(correlating, 50) * 1000, 1),
            "correlating_p99_ms": round(percentile(correlating, 99) * 1000, 1),
            "warmup_max_ms": round(max(x for x, _ in warm_lat) * 1000, 1) if warm_lat else None,
            "cpu_us_per_event": round(cpu / len(events) * 1e6, 2),
            "peak_rss_mb": round(proc_hwm_mb(w.proc.pid), 1),
        }
    finally:
        w.stop()


# ------------------------------------------------------------------------------ main
def machine() -> dict[str, Any]:
    import aiokafka
    import faust

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "aiokafka": aiokafka.__version__,
        "faust": faust.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def table(result: dict[str, Any]) -> str:
    ref = result["passthrough"]
    rows = [f"{'run':16} {'ev/s':>9} {'ratio':>6} {'cpu µs/ev':>10} {'rss MB':>7}  latency"]

    def row(name: str, r: dict[str, Any], lat: str = "") -> None:
        rate = r.get("events_per_s") or r.get("achieved_per_s")
        rows.append(
            f"{name:16} {rate:9.0f} {rate / ref['events_per_s']:6.3f} "
            f"{r['cpu_us_per_event']:10.1f} {r['peak_rss_mb']:7.0f}  {lat}"
        )

    def cores(r: dict[str, Any]) -> str:
        if "machine_busy_cores" not in r:
            return ""
        return (f"cores busy: workers {r['worker_cores']}, broker {r['broker_cores']}, "
                f"machine {r['machine_busy_cores']} of {result['machine']['cpus']}")

    row("passthrough", ref)
    if "backlog" in result:
        row("worker backlog", result["backlog"], cores(result["backlog"]))
    if "scale_out" in result:
        row(f"{result['scale_out']['workers']} workers", result["scale_out"],
            cores(result["scale_out"]))
    for r in result.get("rates", []):
        row(
            f"rate {r['offered_per_s']:.0f}/s",
            r,
            f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms "
            f"({r['alerts']} alerts; loop stalls > 100 ms: {r.get('loop_stalls_over_100ms')}; "
            f"p99 scoring {r.get('scoring_p99_ms')} + correlating {r.get('correlating_p99_ms')})",
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="backlog size")
    parser.add_argument("--rates", default="1000,5000", help="offered rates, comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per rate")
    parser.add_argument("--workers", type=int, default=2, help="scale-out run (0 = skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/worker.json")
    parser.add_argument(
        "--profile", type=Path, default=None,
        help="py-spy collapsed stacks of the backlog worker here, and of each rate run in "
        "FILE.rateN.txt (slows them: a diagnosis, not a measurement)",
    )
    parser.add_argument("--only-backlog", action="store_true", help="skip rates and scale-out")
    parser.add_argument(
        "--partitions", type=int, default=0,
        help="partitions of every scored topic (default: topics.yaml's; 3 do not split "
        "evenly over 2 workers)",
    )
    args = parser.parse_args()

    from watchfloor.ops.kafka_local import LocalKafka

    tmp = Path(tempfile.mkdtemp(prefix="wf-bench-"))
    kafka = None
    bootstrap = os.environ.get("WATCHFLOOR_BROKER", "").removeprefix("kafka://")
    if not bootstrap:
        from tests.conftest import free_port as free_pair

        kafka = LocalKafka(port=free_pair(pairs=2), data_dir=tmp / "kafka")  # + controller
        print(kafka.start(timeout=120), file=sys.stderr)
        bootstrap = kafka.bootstrap
    result: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    try:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        topics_file, config = namespaced(tmp, prefix, args.partitions)
        asyncio.run(apply_topics(config, bootstrap))
        sink = f"{prefix}.sink"
        asyncio.run(create_topic(bootstrap, sink, 3))
        events = list(Simulator(seed=args.seed).events(args.events))
        print(f"producing {len(events)} events …", file=sys.stderr)
        asyncio.run(produce(bootstrap, config, events))
        del events
        print("passthrough …", file=sys.stderr)
        result["passthrough"] = asyncio.run(passthrough(bootstrap, config, args.events, sink))
        print("worker backlog …", file=sys.stderr)
        broker_pid = kafka.pid() if kafka is not None else None
        result["backlog"] = drain(
            bootstrap, config, topics_file, args.events, 1, tmp, profile=args.profile,
            broker_pid=broker_pid,
        )
        if args.only_backlog:
            print(table(result))
            return
        if args.workers > 1:
            print(f"{args.workers} workers …", file=sys.stderr)
            result["scale_out"] = drain(
                bootstrap, config, topics_file, args.events, args.workers, tmp,
                broker_pid=broker_pid,
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # partial, in case
        result["rates"] = []
        for rate in [float(r) for r in args.rates.split(",") if r]:
            print(f"rate {rate:.0f}/s for {args.duration:.0f} s …", file=sys.stderr)
            rate_file, rate_config = namespaced(tmp, f"{prefix}r{int(rate)}", args.partitions)
            asyncio.run(apply_topics(rate_config, bootstrap))
            result["rates"].append(
                fixed_rate(
                    bootstrap, rate_file, rate_config, rate, args.duration, tmp, args.seed,
                    profile=args.profile.with_suffix(f".rate{rate:.0f}.txt")
                    if args.profile else None,
                )
            )
    finally:
        if kafka is not None:
            kafka.stop()
    result["ratio_backlog_to_passthrough"] = round(
        result["backlog"]["events_per_s"] / result["passthrough"]["events_per_s"], 3
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
