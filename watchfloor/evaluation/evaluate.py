"""``watchfloor evaluate``: detector quality on the simulator's labelled scenario.

The simulator (``watchfloor/simulation/``) labels every event with the threat it
belongs to, if any (``sim.threat``/``sim.campaign``), and the benign look-alike pattern
it follows (``sim.lookalike``). This module runs such a scenario through the detectors and
compares what they found with the labels. Detectors never see the labels: the scoring
here is the only code that reads them.

Two ways to run it:

* **broker mode** (the default): a fresh namespace of topics (``eval-<seed>-<hex>.`` in
  front of every topic name of ``topics.yaml``) is created on the broker, a real worker
  process is started on it with a fresh app id, the scenario is published as fast as the
  broker takes it, and once the worker has consumed every event the namespace's internal
  detections topic is read back and scored. This measures what production would do,
  partitioning and batching included.
* **offline mode** (``--offline``): the same events go through the in-process core
  (:class:`~watchfloor.streams.runtime.Runtime`'s
  :class:`~watchfloor.streams.pipeline.EventProcessor`) in seconds; used for tuning and
  for the regression test of detector quality.

Definitions (:func:`score_run`)
-------------------------------

A *detection* is one record of the detections topic (a detector's score at or above its
threshold on one event); duplicates of ``(detector, event_id)`` (at-least-once delivery)
count once. Each event carries a label: a threat type and campaign, or none (*benign*;
look-alike events are benign).

Per detector ``D``, with ``T(D)`` the threat types ``THREAT_DETECTORS`` assigns to it:

* **TP**: detections by ``D`` on events labelled with a threat in ``T(D)``.
* **FP**: detections by ``D`` on benign events, look-alikes included (``fp_lookalike``
  of them on look-alikes).
* **cross**: detections by ``D`` on events of a threat it is not meant for (a
  high-risk transfer of 1,000x the account's median is also an account-takeover
  pattern). Reported, but neither TP nor FP: the alert is about a real attack.
* **precision** = TP / (TP + FP), over detections (1.0 if ``D`` detected nothing).
* **recall** is per *campaign*: a campaign (one injected attack, one incident) is
  detected when at least one of its events is detected by the matching detector.
  recall = detected campaigns / campaigns of the types in ``T(D)``. Detecting the
  campaign is what matters: a port scan cannot be seen before its 40th probe, so
  per-event recall (``event_recall``, also reported) is informative only.
* **F1** = 2 * precision * recall / (precision + recall).
* **false alerts per 10k benign** = detections by ``D`` on benign events * 10,000 /
  number of benign events in the run.
* **detection delay**, per detected campaign: from the campaign's first event to its
  first event detected by the matching detector, counted in the campaign's own events
  (0 = its first event was detected) and in simulated seconds (event time, ``ts``);
  reported as the median over detected campaigns.

Per threat type ``X`` the same figures use the detector ``THREAT_DETECTORS[X]``: TP are
its detections on ``X`` events, FP its detections on anything else, recall is over the
campaigns of ``X``. Overall: every detection on a benign event by any detector, per
10,000 benign events.

Targets (from the issue; :meth:`EvaluationResult.failures`): every threat type injected in
the run has recall >= 0.9 at precision >= 0.8, and overall at most 1 false alert per
10,000 benign events.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from watchfloor.core.decoding import parse_ts
from watchfloor.simulation import THREAT_DETECTORS, THREAT_TYPES, Simulator, encode

#: Targets of the issue: per threat type, and overall.
TARGET_RECALL = 0.9
TARGET_PRECISION = 0.8
TARGET_FALSE_PER_10K = 1.0

DEFAULT_EVENTS = 150_000
DEFAULT_DAYS = 3.0
DEFAULT_SEED = 7

LabelledEvent = tuple[str, Mapping[str, Any]]


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
@dataclass
class Row:
    """The figures of one detector or one threat type."""

    name: str
    detector: str
    threats: list[str]
    tp: int = 0
    fp: int = 0
    fp_benign: int = 0
    fp_lookalike: int = 0
    cross: int = 0
    fn: int = 0  # campaigns missed
    campaigns: int = 0
    campaigns_detected: int = 0
    threat_events: int = 0
    threat_events_detected: int = 0
    precision: float = 1.0
    recall: float | None = None
    event_recall: float | None = None
    f1: float | None = None
    false_per_10k: float = 0.0
    median_delay_events: float | None = None
    median_delay_seconds: float | None = None
    missed_campaigns: list[str] = field(default_factory=list)


@dataclass
class EvaluationResult:
    """What :func:`score_run` computes; ``to_json()`` / ``table()`` render it."""

    events: int
    benign_events: int
    threat_events: int
    detections: int
    false_alerts: int
    false_per_10k: float
    by_detector: dict[str, Row]
    by_threat: dict[str, Row]
    false_by_lookalike: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def failures(self) -> list[str]:
        """Why the run misses the targets; empty when it meets them."""
        out = []
        for threat, row in self.by_threat.items():
            if row.campaigns == 0:
                continue
            if row.recall is None or row.recall < TARGET_RECALL:
                out.append(
                    f"{threat}: recall {_fmt(row.recall)} < {TARGET_RECALL} "
                    f"(missed {', '.join(row.missed_campaigns)})"
                )
            if row.precision < TARGET_PRECISION:
                out.append(f"{threat}: precision {row.precision:.3f} < {TARGET_PRECISION}")
        if self.false_per_10k > TARGET_FALSE_PER_10K:
            out.append(
                f"overall: {self.false_per_10k:.2f} false alerts per 10k benign events "
                f"> {TARGET_FALSE_PER_10K}"
            )
        return out

    @property
    def meets_targets(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = {
            "recall": TARGET_RECALL,
            "precision": TARGET_PRECISION,
            "false_per_10k": TARGET_FALSE_PER_10K,
            "met": self.meets_targets,
            "failures": self.failures(),
        }
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    def table(self) -> str:
        """The result as readable text tables."""
        head = (
            "TP",
            "FP",
            "FN",
            "cross",
            "prec",
            "recall",
            "F1",
            "FP/10k",
            "delay ev",
            "delay s",
        )

        def cells(r: Row) -> tuple[str, ...]:
            return (
                str(r.tp),
                str(r.fp),
                str(r.fn),
                str(r.cross),
                f"{r.precision:.3f}",
                _fmt(r.recall),
                _fmt(r.f1),
                f"{r.false_per_10k:.2f}",
                _fmt(r.median_delay_events, ".0f"),
                _fmt(r.median_delay_seconds, ".0f"),
            )

        lines = []
        meta = " ".join(f"{k}={v}" for k, v in self.meta.items() if not isinstance(v, dict))
        if meta:
            lines.append(meta)
        lines.append(
            f"{self.events} events: {self.threat_events} in threat campaigns, "
            f"{self.benign_events} benign; {self.detections} detections"
        )
        lines.append("")
        rows = [("threat type", "detector", "campaigns", *head)]
        for t, r in self.by_threat.items():
            rows.append((t, r.detector, f"{r.campaigns_detected}/{r.campaigns}", *cells(r)))
        lines += _grid(rows)
        lines.append("")
        rows = [("detector", "threat types", "campaigns", *head)]
        for d, r in self.by_detector.items():
            rows.append(
                (d, ",".join(r.threats) or "-", f"{r.campaigns_detected}/{r.campaigns}", *cells(r))
            )
        lines += _grid(rows)
        lines.append("")
        lines.append(
            f"false alerts: {self.false_alerts} on {self.benign_events} benign events = "
            f"{self.false_per_10k:.2f} per 10k (target <= {TARGET_FALSE_PER_10K:g})"
            + (
                "; on look-alikes: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.false_by_lookalike.items()))
                if self.false_by_lookalike
                else ""
            )
        )
        fails = self.failures()
        lines.append(
            "targets met: recall >= 0.9 at precision >= 0.8 for every threat type, "
            "<= 1 false alert per 10k benign events"
            if not fails
            else "targets MISSED:\n  " + "\n  ".join(fails)
        )
        return "\n".join(lines)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _grid(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _f1(p: float, r: float | None) -> float | None:
    if r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def score_run(
    labelled_events: Iterable[LabelledEvent],
    detections: Iterable[Mapping[str, Any]],
    detectors: Iterable[str] = (),
    threat_detectors: Mapping[str, str] = THREAT_DETECTORS,
) -> EvaluationResult:
    """Score detections against the labelled stream they came from.

    Parameters
    ----------
    labelled_events
        ``(domain, event)`` in stream order, each event with ``event_id``, ``ts`` and the
        simulator's ``sim`` label (``threat``, ``campaign``, ``lookalike``).
    detections
        Detection dicts with at least ``detector`` and ``event_id``. Duplicates of
        ``(detector, event_id)`` count once; detections of unknown events are ignored.
    detectors
        Detector names to report even if they detected nothing (the configured ones).
    threat_detectors
        Threat type -> detector meant to find it.

    Returns
    -------
    EvaluationResult
        See the module docstring for the definitions.
    """
    # event_id -> (threat, campaign, lookalike, position in its campaign, event time)
    labels: dict[str, tuple[str | None, str | None, str | None, int, float]] = {}
    campaign_threat: dict[str, str] = {}
    campaign_start: dict[str, float] = {}
    campaign_size: Counter[str] = Counter()
    threat_events: Counter[str] = Counter()
    n = benign = 0
    for _domain, ev in labelled_events:
        n += 1
        sim = ev.get("sim") or {}
        threat, campaign, lookalike = sim.get("threat"), sim.get("campaign"), sim.get("lookalike")
        t = parse_ts(ev["ts"])
        pos = 0
        if threat is None:
            benign += 1
        else:
            campaign = campaign or f"{threat}-?"
            threat_events[threat] += 1
            pos = campaign_size[campaign]
            campaign_size[campaign] += 1
            campaign_threat.setdefault(campaign, threat)
            campaign_start.setdefault(campaign, t)
        labels[str(ev["event_id"])] = (threat, campaign, lookalike, pos, t)

    seen: set[tuple[str, str]] = set()
    det_tp: Counter[str] = Counter()
    det_fp: dict[str, Counter[str]] = defaultdict(Counter)  # detector -> kind of FP
    threat_events_hit: dict[str, set[str]] = defaultdict(set)
    first_hit: dict[str, tuple[int, float]] = {}  # campaign -> (position, time)
    false_by_lookalike: Counter[str] = Counter()
    n_det = 0
    for d in detections:
        name, eid = str(d["detector"]), str(d["event_id"])
        if (name, eid) in seen or eid not in labels:
            continue
        seen.add((name, eid))
        n_det += 1
        threat, campaign, lookalike, pos, t = labels[eid]
        if threat is not None and threat_detectors.get(threat) == name:
            det_tp[name] += 1
            threat_events_hit[threat].add(eid)
            assert campaign is not None
            if campaign not in first_hit or pos < first_hit[campaign][0]:
                first_hit[campaign] = (pos, t)
        elif threat is not None:
            det_fp[name]["other_threat"] += 1
        else:
            det_fp[name]["lookalike" if lookalike else "benign"] += 1
            if lookalike:
                false_by_lookalike[f"{lookalike}/{name}"] += 1

    threats_of: dict[str, list[str]] = defaultdict(list)
    for threat, det in threat_detectors.items():
        threats_of[det].append(threat)
    campaigns_of: dict[str, list[str]] = defaultdict(list)
    for c, threat in campaign_threat.items():
        campaigns_of[threat].append(c)

    def fill(row: Row, threats: list[str], det: str) -> Row:
        fp = det_fp.get(det, Counter())
        # threat_events_hit only holds hits by the threat's own detector.
        row.tp = sum(len(threat_events_hit[x]) for x in threats)
        row.fp_benign, row.fp_lookalike = fp["benign"], fp["lookalike"]
        row.cross = fp["other_threat"] + (det_tp[det] - row.tp)
        row.fp = row.fp_benign + row.fp_lookalike
        row.precision = row.tp / (row.tp + row.fp) if row.tp + row.fp else 1.0
        camps = [c for x in threats for c in campaigns_of.get(x, [])]
        hit = [c for c in camps if c in first_hit]
        row.campaigns, row.campaigns_detected = len(camps), len(hit)
        row.fn = len(camps) - len(hit)
        row.missed_campaigns = sorted(c for c in camps if c not in first_hit)
        row.threat_events = sum(threat_events[x] for x in threats)
        row.threat_events_detected = sum(len(threat_events_hit[x]) for x in threats)
        if camps:
            row.recall = len(hit) / len(camps)
            row.event_recall = row.threat_events_detected / row.threat_events
        row.f1 = _f1(row.precision, row.recall)
        row.false_per_10k = row.fp * 10_000 / benign if benign else 0.0
        if hit:
            row.median_delay_events = float(statistics.median(first_hit[c][0] for c in hit))
            row.median_delay_seconds = round(
                statistics.median(first_hit[c][1] - campaign_start[c] for c in hit), 3
            )
        return row

    names = list(dict.fromkeys([*detectors, *sorted(det_tp), *sorted(det_fp)]))
    by_detector = {
        d: fill(Row(d, d, threats_of.get(d, [])), threats_of.get(d, []), d) for d in names
    }
    present = [t for t in THREAT_TYPES if t in campaigns_of] + sorted(
        t for t in campaigns_of if t not in THREAT_TYPES
    )
    by_threat = {}
    for t in present:
        det = threat_detectors.get(t, "?")
        by_threat[t] = fill(Row(t, det, [t]), [t], det)
    false_alerts = sum(f["benign"] + f["lookalike"] for f in det_fp.values())
    return EvaluationResult(
        events=n,
        benign_events=benign,
        threat_events=n - benign,
        detections=n_det,
        false_alerts=false_alerts,
        false_per_10k=false_alerts * 10_000 / benign if benign else 0.0,
        by_detector=by_detector,
        by_threat=by_threat,
        false_by_lookalike=dict(false_by_lookalike),
    )


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
) -> list[dict[str, Any]]:
    """Run the labelled events through the in-process core; return the detections.

    Events are encoded exactly as the publisher sends them (label included, which the
    detectors never read), keyed and partitioned as the publisher's producer would
    (detector state is per input partition), and handed to the runtime's
    :class:`~watchfloor.streams.pipeline.EventProcessor` in batches of one domain in
    stream order; arrival time is the event time.
    """
    from prometheus_client import CollectorRegistry

    from watchfloor.config import load_config
    from watchfloor.core.events import ENTITY_FIELDS
    from watchfloor.settings import Settings
    from watchfloor.streams.runtime import Runtime

    settings = Settings(topics_file=Path(topics_file), pseudonym_key="evaluate-offline")
    config = load_config(settings.topics_file)
    rt = Runtime.build(settings, config, CollectorRegistry())
    process = rt.processor.process
    specs = config.input_topics
    detections: list[dict[str, Any]] = []
    batch: list[Any] = []
    domain = ""
    offsets: Counter[tuple[str, int]] = Counter()
    for dom, ev in labelled:
        if dom != domain or len(batch) >= batch_size:
            if batch:
                detections.extend(process(domain, batch)[0])
            batch, domain = [], dom
        key = str(ev[ENTITY_FIELDS[dom][1]]).encode()
        part = partition_of(key, specs[dom].partitions)
        batch.append(
            (encode(ev), key, specs[dom].name, part, offsets[dom, part], parse_ts(ev["ts"]))
        )
        offsets[dom, part] += 1
    if batch:
        detections.extend(process(domain, batch)[0])
    return detections


def configured_detectors(topics_file: str | Path) -> list[str]:
    from watchfloor.config import load_config

    return list(dict.fromkeys(d.name for d in load_config(topics_file).detectors))


def evaluate_offline(
    seed: int = DEFAULT_SEED,
    events: int = DEFAULT_EVENTS,
    days: float = DEFAULT_DAYS,
    topics_file: str | Path = "topics.yaml",
) -> EvaluationResult:
    """Simulate, score in process, compare with the labels."""
    started = time.monotonic()
    labelled = scenario(seed, events, days)
    detections = run_offline(labelled, topics_file)
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
    from aiokafka import AIOKafkaProducer

    from watchfloor.core.events import ENTITY_FIELDS

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=256 * 1024,
        acks="all",
        enable_idempotence=True,
        **kwargs,
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
    from aiokafka import AIOKafkaConsumer

    from watchfloor.kafka.clients import topic_partitions

    tps = await topic_partitions(bootstrap, topic, security=kwargs)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **kwargs)
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
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kwargs)
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
            WATCHFLOOR_PSEUDONYM_KEY=os.environ.get("WATCHFLOOR_PSEUDONYM_KEY")
            or secrets.token_hex(16),
        )
        url = f"http://127.0.0.1:{port}/metrics"
        wanted = sum(
            t.partitions for t in config.topics if t.role in ("input", "detections", "feedback")
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
