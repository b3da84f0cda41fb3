"""Running the labelled scenario through the worker's pipeline: in process
(:func:`evaluate_offline`, :func:`run_offline`) or through a real worker on the broker
(:func:`evaluate_broker`); both score with :func:`watchfloor.evaluation.scoring.score_run`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from watchfloor.core.decoding import parse_ts
from watchfloor.evaluation.scoring import EvaluationResult, score_run
from watchfloor.simulation import Simulator, encode

DEFAULT_EVENTS = 150_000
DEFAULT_DAYS = 3.0
DEFAULT_SEED = 7


# --------------------------------------------------------------------------------------
# Offline mode
# --------------------------------------------------------------------------------------
def scenario(seed: int, events: int, days: float) -> list[tuple[str, dict[str, Any]]]:
    """The labelled scenario both modes run: ``Simulator(seed, days).events(events)``."""
    return list(Simulator(seed=seed, days=days).events(events))


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka and the Java
    client use) gives ``key`` among ``partitions``."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def run_offline(
    labelled: list[tuple[str, dict[str, Any]]],
    topics_file: str | Path = "topics.yaml",
    batch_size: int = 500,
    progress: Callable[[int, int, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the labelled events through the in-process core; return the detections.
    ``progress(done, total, seconds)`` after each batch (total 0 when not known).

    Events are encoded exactly as the publisher sends them (label included, which the
    detectors never read), keyed and partitioned as the publisher's producer would
    (detector state is per input partition), and handed to the runtime's
    :class:`~watchfloor.streams.pipeline.EventProcessor` in batches of one domain in
    stream order; arrival time is the event time. Each batch's re-keyed records then go
    through the second stage, partitioned by their keys as the worker's producer would.
    """
    from prometheus_client import CollectorRegistry

    from watchfloor.config import load_config
    from watchfloor.core.events import ENTITY_FIELDS
    from watchfloor.detectors.engine import REKEYED
    from watchfloor.settings import Settings
    from watchfloor.streams.runtime import Runtime

    # Offline: pseudonyms need not survive the run, so any strong secret will do.
    settings = Settings(topics_file=Path(topics_file), master_key=secrets.token_hex(32))
    config = load_config(settings.topics_file)
    rt = Runtime.build(settings, config, CollectorRegistry())
    process = rt.processor.process
    specs = config.input_topics
    second = next((t for t in config.topics if t.role == "rekeyed"), None)
    detections: list[dict[str, Any]] = []
    batch: list[Any] = []
    domain = ""
    offsets: Counter[tuple[str, int]] = Counter()
    total = len(labelled) if hasattr(labelled, "__len__") else 0
    done = 0
    started = time.monotonic()

    def flush() -> None:
        nonlocal done
        done += len(batch)
        if progress is not None:
            progress(done, total, time.monotonic() - started)
        out: list[tuple[bytes, bytes]] = []
        detections.extend(process(domain, batch, out)[0])
        if not out or second is None:
            return
        # The second stage, as the worker runs it: each re-keyed record on the partition
        # its key gives, runs of one partition in order.
        rekeyed = []
        for key, value in out:
            part = partition_of(key, second.partitions)
            arrival = 0.0  # the envelope carries the original arrival
            rekeyed.append((value, key, second.name, part, offsets[REKEYED, part], arrival))
            offsets[REKEYED, part] += 1
        rekeyed.sort(key=lambda r: r[3])
        detections.extend(process(REKEYED, rekeyed)[0])

    for dom, ev in labelled:
        if dom != domain or len(batch) >= batch_size:
            if batch:
                flush()
            batch, domain = [], dom
        key = str(ev[ENTITY_FIELDS[dom][1]]).encode()
        part = partition_of(key, specs[dom].partitions)
        batch.append(
            (encode(ev), key, specs[dom].name, part, offsets[dom, part], parse_ts(ev["ts"]))
        )
        offsets[dom, part] += 1
    if batch:
        flush()
    return detections


def configured_detectors(topics_file: str | Path) -> list[str]:
    from watchfloor.config import load_config

    return list(dict.fromkeys(d.name for d in load_config(topics_file).detectors))


def evaluate_offline(
    seed: int = DEFAULT_SEED,
    events: int = DEFAULT_EVENTS,
    days: float = DEFAULT_DAYS,
    topics_file: str | Path = "topics.yaml",
    progress: Callable[[int, int, float], None] | None = None,
) -> EvaluationResult:
    """Simulate, score in process, compare with the labels."""
    started = time.monotonic()
    labelled = scenario(seed, events, days)
    detections = run_offline(labelled, topics_file, progress=progress)
    result = score_run(labelled, detections, configured_detectors(topics_file))
    result.meta = {
        "mode": "offline",
        "seed": seed,
        "events_requested": events,
        "days": days,
        "seconds": round(time.monotonic() - started, 1),
    }
    return result


# --------------------------------------------------------------------------------------
# Broker mode
# --------------------------------------------------------------------------------------
def namespaced_topics(topics_file: str | Path, prefix: str, out: Path) -> Path:
    """Write a copy of ``topics_file`` with every topic name prefixed (agencies' topics
    included) to ``out``; return ``out``."""
    data = yaml.safe_load(Path(topics_file).read_text(encoding="utf-8"))
    data["topics"] = {f"{prefix}{name}": spec for name, spec in data["topics"].items()}
    for name, agency in (data.get("agencies") or {}).items():
        agency["topic"] = prefix + agency.get("topic", f"alerts.{name}")
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def _client_kwargs(settings: Any) -> dict[str, Any]:
    """Authentication kwargs for every client (docs/security.md)."""
    from watchfloor.kafka.security import client_kwargs

    return client_kwargs(settings)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rpartition(" ")[2])
    return total


def _metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


async def _publish_all(
    bootstrap: str,
    labelled: list[tuple[str, dict[str, Any]]],
    topic_of: Mapping[str, str],
    kwargs: Mapping[str, Any],
) -> None:
    """Publish the scenario unpaced, keyed as :func:`simulate.publish` keys it."""
    from watchfloor.core.events import ENTITY_FIELDS
    from watchfloor.kafka import clients

    producer = clients.producer(
        clients.Connection(bootstrap, kwargs),
        linger_ms=20,
        max_batch_size=256 * 1024,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for domain, ev in labelled:
            key = str(ev[ENTITY_FIELDS[domain][1]]).encode()
            pending.append(await producer.send(topic_of[domain], encode(ev), key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, kwargs: Mapping[str, Any]) -> list[dict]:
    """Every record of ``topic`` up to its current end offsets."""
    from watchfloor.kafka import clients

    conn = clients.Connection(bootstrap, kwargs)
    tps = await clients.topic_partitions(conn, topic)
    consumer = clients.consumer(conn, enable_auto_commit=False)
    await consumer.start()
    out: list[dict] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


async def _delete_topics(bootstrap: str, names: list[str], kwargs: Mapping[str, Any]) -> None:
    from watchfloor.kafka import clients

    admin = clients.admin(clients.Connection(bootstrap, kwargs))
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def evaluate_broker(
    seed: int = DEFAULT_SEED,
    events: int = DEFAULT_EVENTS,
    days: float = DEFAULT_DAYS,
    topics_file: str | Path = "topics.yaml",
    broker: str | None = None,
    keep_topics: bool = False,
    timeout: float = 600.0,
    log: Any = None,
) -> EvaluationResult:
    """Run the scenario through a real worker on the broker and score its detections.

    ``broker`` is ``kafka://host:port`` (default ``WATCHFLOOR_BROKER``); the caller starts
    a local one if needed (:func:`run` does). Everything created here (temporary topics
    file, worker process, and unless ``keep_topics`` the namespace's topics) is removed.
    """
    from watchfloor.config import load_config
    from watchfloor.settings import Settings
    from watchfloor.streams.topics import apply_topics

    def say(msg: str) -> None:
        if log is not None:
            print(msg, file=log, flush=True)

    started = time.monotonic()
    base = Settings.from_env()
    if broker is not None:
        base = Settings(**{**base.__dict__, "broker": broker})
    bootstrap = base.bootstrap_servers
    kwargs = _client_kwargs(base)
    prefix = f"eval-{seed}-{secrets.token_hex(4)}."
    with tempfile.TemporaryDirectory(prefix="watchfloor-evaluate-") as tmp:
        tmpdir = Path(tmp)
        tfile = namespaced_topics(topics_file, prefix, tmpdir / "topics.yaml")
        config = load_config(tfile)
        say(f"namespace {prefix}* on {bootstrap}")
        asyncio.run(apply_topics(config, bootstrap, security=kwargs))
        labelled = scenario(seed, events, days)
        port = _free_port()
        env = dict(
            os.environ,
            WATCHFLOOR_BROKER=base.broker,
            WATCHFLOOR_TOPICS_FILE=str(tfile),
            WATCHFLOOR_APP_ID=f"{prefix}worker",
            WATCHFLOOR_METRICS_PORT=str(port),
            WATCHFLOOR_STATE_DIR=str(tmpdir / "state"),
            # A throw-away namespace needs no lasting key; the worker refuses weak ones.
            WATCHFLOOR_PSEUDONYM_KEY=os.environ.get("WATCHFLOOR_PSEUDONYM_KEY")
            or secrets.token_hex(32),
        )
        url = f"http://127.0.0.1:{port}/metrics"
        wanted = sum(
            t.partitions
            for t in config.topics
            if t.role in ("input", "detections", "feedback", "rekeyed")
        )
        logfile = tmpdir / "worker.log"
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "watchfloor.ops.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmpdir,
            )
        try:

            def worker_failed(why: str) -> RuntimeError:
                tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-40:])
                return RuntimeError(f"{why}; worker log:\n{tail}")

            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise worker_failed(f"the worker exited with {proc.returncode}")
                try:
                    if _metric_sum(_metrics(url), "watchfloor_assigned_partitions") >= wanted:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise worker_failed(f"the worker was not assigned {wanted} partitions")
                time.sleep(0.5)
            say(f"worker ready; publishing {len(labelled)} events")
            t_pub = time.monotonic()
            topic_of = {d: s.name for d, s in config.input_topics.items()}
            asyncio.run(_publish_all(bootstrap, labelled, topic_of, kwargs))
            say(f"published in {time.monotonic() - t_pub:.1f} s; waiting for the worker")
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise worker_failed(f"the worker exited with {proc.returncode}")
                text = _metrics(url)
                consumed = _metric_sum(text, "watchfloor_events_total")
                if consumed >= len(labelled):
                    n_detections = _metric_sum(text, "watchfloor_detections_total")
                    break
                if time.monotonic() > deadline:
                    raise worker_failed(f"the worker consumed {consumed:.0f} of {len(labelled)}")
                time.sleep(0.5)
            say(f"all consumed {time.monotonic() - t_pub:.1f} s after publishing began")
            # events_total is counted before the batch's detections are acknowledged:
            # read until the topic holds every detection the worker counted.
            detections_topic = config.topic("detections").name
            deadline = time.monotonic() + 60
            while True:
                detections = asyncio.run(_read_all(bootstrap, detections_topic, kwargs))
                if len({(d["detector"], d["event_id"]) for d in detections}) >= n_detections:
                    break
                if time.monotonic() > deadline:
                    raise worker_failed(
                        f"{len(detections)} detections on the topic, worker counted "
                        f"{n_detections:.0f}"
                    )
                time.sleep(0.5)
            elapsed_pipeline = time.monotonic() - t_pub
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if not keep_topics:
                try:
                    asyncio.run(_delete_topics(bootstrap, [t.name for t in config.topics], kwargs))
                except Exception as exc:  # the result matters more than the clean-up
                    say(f"could not delete the {prefix}* topics: {exc}")
    result = score_run(labelled, detections, configured_detectors(topics_file))
    result.meta = {
        "mode": "broker",
        "seed": seed,
        "events_requested": events,
        "days": days,
        "namespace": prefix,
        "topics_kept": keep_topics,
        "pipeline_seconds": round(elapsed_pipeline, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    return result
