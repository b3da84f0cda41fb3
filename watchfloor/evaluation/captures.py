"""``watchfloor evaluate --dataset FORMAT:PATH``: detector quality on a labelled capture.

The capture is read by its format's reader (:mod:`watchfloor.evaluation.formats`), put in
time order, and run through the same offline pipeline as ``watchfloor evaluate
--offline`` (:func:`watchfloor.evaluation.evaluate.run_offline`: the worker's
:class:`~watchfloor.streams.pipeline.EventProcessor`, one detector engine per input
partition, with the default ``topics.yaml``); its detections then go through the worker's
alert stage (:class:`~watchfloor.alerts.stage.AlertStage`: correlation into incidents,
cooldown, routing to agencies). Detectors never see the labels.

Definitions
-----------

*Sources* are the entities alerts are about: the source host (``src_ip``) of a network
flow, both accounts of a transaction. A source is **malicious** if it is the source of at
least one malicious event (a CTU-13 ``From-Botnet`` flow, an IoT-23 ``Malicious`` one, a
CIC-IDS attack flow, a PaySim fraud, an AMLSim SAR transaction or alert account), with the
threat types of those events; a **target** if it is only the destination of flood or
brute-force flows (a flood detector names the flooded host: that finds the flood, and is
never a false alert; targets are counted with the threat's sources);
**benign** if it has benign events and no malicious one; **unlabelled** otherwise
(CTU-13 background). Unlabelled sources and targets are neither hits nor false alerts.

A detector *names* a source when one of its detections produced an alert version (it was
not suppressed by the correlator's cooldown) and the detection's entity, or one of its
links of the same entity type, is that source.

Per threat type ``X`` (with the detectors ``THREAT_DETECTORS`` maps it to; ``any`` when
none is configured) and per detector:

* **sources**: malicious sources of ``X`` named / all malicious sources of ``X``
  (recall); ``recall any`` counts a name by any detector;
* **precision** = TP / (TP + FP) over the sources the detectors named: TP sources of
  ``X``, FP benign ones (``cross``: malicious sources of another threat, reported only);
* **false alerts per 10k** = incidents (distinct ``alert_id``, so de-duplicated) that the
  detectors contributed to and whose named sources are benign only, per 10,000 benign
  events;
* **delay**: per detected source, from its first malicious event to the event time of
  the first alert naming it; the median in seconds;
* **flow level**: detected malicious events / malicious events of ``X``, and precision over
  the labelled events the detectors flagged.
"""

from __future__ import annotations

import hmac
import itertools
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from watchfloor.core.events import ENTITY_FIELDS
from watchfloor.evaluation.formats import (
    BENIGN,
    MALICIOUS,
    Label,
    Labelled,
    ReadStats,
    get_format,
    time_ordered,
)
from watchfloor.evaluation.scoring import fmt, grid

#: Threat type of a real capture -> detectors meant to find it (the configured ones are
#: used; names other engineers' detectors may have are listed so the table picks them up).
THREAT_DETECTORS: dict[str, tuple[str, ...]] = {
    "scan": ("port_scan", "horizontal_scan", "scan"),
    "c2": ("beaconing",),
    "brute_force": ("brute_force",),
    "spam": ("spam",),
    "dos": ("flood", "dos"),
    "exfiltration": ("exfiltration",),
    "fraud": ("amount_anomaly", "account_drain", "value_anomaly", "velocity",
              "pass_through"),
    "laundering_fan_in": ("fan_in",),
    "laundering_fan_out": ("fan_out",),
    "laundering_cycle": ("cycle",),
    "laundering_stack": ("pass_through",),
    "laundering_scatter_gather": ("fan_in", "fan_out", "pass_through"),
    "laundering_gather_scatter": ("fan_in", "fan_out", "pass_through"),
}
#: Threats whose victims count as found when an alert names them (a flood detector names
#: the flooded host); victims are never false alerts.
VICTIM_THREATS = frozenset({"dos", "brute_force"})

#: Targets of issues 10 and 11 for real captures.
NETWORK_TARGETS = {"recall": 0.8, "precision": 0.8, "false_per_10k": 5.0, "delay_s": 300.0}
FINANCIAL_TARGETS = {"recall": 0.5, "precision": 0.5, "false_per_10k": 10.0}
DEFAULT_WINDOW = 50_000
_KEY = b"watchfloor/evaluate-capture/offline-key"


@dataclass
class Source:
    first_malicious: float | None = None  # epoch s
    threats: set[str] = field(default_factory=set)
    first_by_threat: dict[str, float] = field(default_factory=dict)
    malicious: int = 0
    benign: int = 0
    victim_of: set[str] = field(default_factory=set)

    def kind(self) -> str:
        if self.threats:
            return MALICIOUS
        if self.victim_of:
            return "target"
        return BENIGN if self.benign else "unlabelled"


class Truth:
    """What the labels say, gathered while the capture streams past."""

    def __init__(self, domain: str, entity_labels: Mapping[str, Label] | None = None) -> None:
        self.domain = domain
        self.sources: dict[str, Source] = defaultdict(Source)
        self.events: dict[str, tuple[str, str | None]] = {}  # event_id -> (kind, threat)
        self.counts: Counter[str] = Counter()  # benign / unlabelled / malicious events
        self.threat_events: Counter[str] = Counter()
        self.fan_in: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for acct, label in (entity_labels or {}).items():
            if label.kind == MALICIOUS:
                self.sources[acct].threats.add(label.threat or "malicious")
            elif label.kind == BENIGN:
                self.sources[acct].benign += 1

    def add(self, rec: Labelled) -> None:
        ev, label = rec.event, rec.label
        t = ev["ts"] / 1000.0
        if label.kind != "unlabelled":  # background is most of a CTU-13 capture
            self.events[str(ev["event_id"])] = (label.kind, label.threat)
        self.counts[label.kind] += 1
        if self.domain == "financial":
            who = [str(ev["account_id"]), str(ev["counterparty_id"])]
        else:
            who = [str(ev[ENTITY_FIELDS[self.domain][1]])] if label.source else []
        if label.kind == MALICIOUS:
            threat = label.threat or "malicious"
            self.threat_events[threat] += 1
            for w in who:
                s = self.sources[w]
                s.threats.add(threat)
                s.malicious += 1
                if s.first_malicious is None or t < s.first_malicious:
                    s.first_malicious = t
                if t < s.first_by_threat.get(threat, float("inf")):
                    s.first_by_threat[threat] = t
            if threat in VICTIM_THREATS and self.domain == "network":
                v = self.sources[str(ev["dst_ip"])]
                v.victim_of.add(threat)
                if t < v.first_by_threat.get(threat, float("inf")):
                    v.first_by_threat[threat] = t
            if threat == "laundering_fan_in" and label.group:
                self.fan_in[label.group][str(ev["counterparty_id"])].add(str(ev["account_id"]))
        elif label.kind == BENIGN:
            for w in who:
                self.sources[w].benign += 1

    def beneficiaries(self) -> list[str]:
        """Per fan-in campaign, the account receiving from the most distinct senders."""
        return sorted(max(recv, key=lambda a: len(recv[a])) for recv in self.fan_in.values())


@dataclass
class CaptureRow:
    name: str
    detectors: list[str]
    sources: int = 0
    detected: int = 0
    detected_any: int = 0
    tp: int = 0
    fp: int = 0
    cross: int = 0
    precision: float | None = None
    recall: float | None = None
    recall_any: float | None = None
    false_alerts: int = 0
    false_per_10k: float = 0.0
    median_delay_s: float | None = None
    flows: int = 0
    flows_detected: int = 0
    flow_tp: int = 0
    flow_fp: int = 0
    flow_precision: float | None = None
    flow_recall: float | None = None
    missed: list[str] = field(default_factory=list)
    false_sources: list[str] = field(default_factory=list)


@dataclass
class CaptureResult:
    """The tables of one capture; ``table()``, ``to_json()``, ``failures()``."""

    format: str
    path: str
    domain: str
    events: int
    benign_events: int
    malicious_events: int
    unlabelled_events: int
    detections: int
    incidents: int
    false_incidents: int
    false_per_10k: float
    overall: CaptureRow
    by_threat: dict[str, CaptureRow]
    by_detector: dict[str, CaptureRow]
    beneficiaries: dict[str, bool] = field(default_factory=dict)
    read: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def failures(self) -> list[str]:
        """Which of the issues' targets this capture misses (empty when met)."""
        out: list[str] = []
        if self.domain == "network":
            tg = NETWORK_TARGETS
            for threat, need_precision in (("scan", True), ("c2", False)):
                row = self.by_threat.get(threat)
                if row is None or not row.sources:
                    continue
                if (row.recall or 0.0) < tg["recall"]:
                    out.append(f"{threat}: source recall {fmt(row.recall)} < {tg['recall']}")
                if need_precision and (row.precision or 0.0) < tg["precision"]:
                    out.append(f"{threat}: precision {fmt(row.precision)} < {tg['precision']}")
            delay = self.overall.median_delay_s
            if delay is not None and delay > tg["delay_s"]:
                out.append(f"median detection delay {delay:.0f} s > {tg['delay_s']:.0f} s")
        else:
            tg = FINANCIAL_TARGETS
            o = self.overall
            if (o.recall or 0.0) < tg["recall"]:
                out.append(f"account recall {fmt(o.recall)} < {tg['recall']}")
            if (o.precision or 0.0) < tg["precision"]:
                out.append(f"account precision {fmt(o.precision)} < {tg['precision']}")
            if self.beneficiaries:
                named = sum(self.beneficiaries.values())
                if named * 3 < 2 * len(self.beneficiaries):
                    out.append(f"fan-in beneficiaries named {named}/{len(self.beneficiaries)}")
        if self.false_per_10k > tg["false_per_10k"]:
            out.append(
                f"{self.false_per_10k:.2f} false alerts per 10k benign > {tg['false_per_10k']}"
            )
        return out

    @property
    def meets_targets(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = {"met": self.meets_targets, "failures": self.failures()}
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    def table(self) -> str:
        head = ("sources", "TP", "FP", "cross", "prec", "recall", "rec any", "FA/10k",
                "delay s", "flows", "flow prec", "flow rec")

        def cells(r: CaptureRow) -> tuple[str, ...]:
            return (f"{r.detected}/{r.sources}", str(r.tp), str(r.fp), str(r.cross),
                    fmt(r.precision), fmt(r.recall), fmt(r.recall_any), f"{r.false_per_10k:.2f}",
                    fmt(r.median_delay_s, ".0f"), f"{r.flows_detected}/{r.flows}",
                    fmt(r.flow_precision), fmt(r.flow_recall))

        lines = [
            f"{self.format}:{self.path}: {self.events} events ({self.malicious_events} "
            f"malicious, {self.benign_events} benign, {self.unlabelled_events} unlabelled); "
            f"{self.detections} detections, {self.incidents} incidents, "
            f"{self.false_incidents} false",
            "",
        ]
        rows = [("threat", "detectors", *head)]
        for name, r in self.by_threat.items():
            rows.append((name, ",".join(r.detectors) or "any", *cells(r)))
        rows.append(("(all)", "all", *cells(self.overall)))
        lines += grid(rows, left=2)
        lines.append("")
        rows = [("detector", "", *head)]
        for name, r in self.by_detector.items():
            rows.append((name, "", *cells(r)))
        lines += grid(rows, left=2)
        if self.beneficiaries:
            named = [a for a, ok in self.beneficiaries.items() if ok]
            lines.append(f"\nfan-in beneficiaries named: {len(named)}/{len(self.beneficiaries)}")
        fails = self.failures()
        lines.append(
            "\nfalse alerts: "
            f"{self.false_incidents} incidents on {self.benign_events} benign events = "
            f"{self.false_per_10k:.2f} per 10k"
        )
        lines.append("targets met" if not fails else "targets MISSED:\n  " + "\n  ".join(fails))
        if self.read.get("skipped") or self.read.get("late"):
            lines.append(f"read: {self.read['skipped']} malformed lines skipped "
                         f"({self.read['skipped_by_reason']}), {self.read['late']} events "
                         "out of order beyond the sort window")
        return "\n".join(lines)


@dataclass
class Named:
    """One alert version: which detector's detection produced it, whom it names, when."""

    detector: str
    alert_id: str
    names: tuple[str, ...]
    t: float


def alert_stream(detections: Iterable[Mapping[str, Any]], topics_file: Path,
                 entity_type: str) -> tuple[list[Named], int]:
    """Run detections through the worker's alert stage; return the alert versions some
    agency received, and the number of incidents."""
    from watchfloor.alerts.stage import AlertStage
    from watchfloor.config import load_config

    stage = AlertStage(load_config(topics_file), hmac.digest(_KEY, b"stage", "sha256"))
    out: list[Named] = []
    incidents: set[str] = set()
    for det in detections:
        sent = [o for o in stage.process(det) if o.kind == "alert"]
        if not sent:
            continue
        aid = orjson.loads(sent[0].value)["alert_id"]
        incidents.add(aid)
        names = [str(det["entity"]["id"])] if det["entity"]["type"] == entity_type else []
        names += [str(lk["id"]) for lk in det.get("links") or () if lk.get("type") == entity_type]
        out.append(Named(str(det["detector"]), aid, tuple(dict.fromkeys(names)),
                         float(det["event_time"])))
    return out, len(incidents)


def _row(name: str, detectors: list[str], wanted: set[str] | None, truth: Truth,
         named: list[Named], detections: list[Mapping[str, Any]], any_first: dict[str, float],
         benign_events: int) -> CaptureRow:
    """Figures for the detectors in ``detectors`` against the sources of threats
    ``wanted`` (None: every threat)."""
    dset = set(detectors)
    row = CaptureRow(name, sorted(dset))
    first: dict[str, float] = {}
    by_alert: dict[str, set[str]] = defaultdict(set)
    for n in named:
        if n.detector in dset:
            by_alert[n.alert_id].update(n.names)
            for s in n.names:
                if s not in first or n.t < first[s]:
                    first[s] = n.t
    srcs = truth.sources

    def hit(s: Source) -> bool:
        found = s.threats | s.victim_of
        return bool(found) and (wanted is None or bool(found & wanted))

    targets = [k for k, s in srcs.items() if hit(s)]
    row.sources = len(targets)
    row.detected = sum(k in first for k in targets)
    row.detected_any = sum(k in any_first for k in targets)
    row.missed = sorted(k for k in targets if k not in first)[:20]
    for k in first:
        s = srcs.get(k)
        if s is None:
            continue
        kind = s.kind()
        if hit(s):
            row.tp += 1
        elif kind == MALICIOUS:
            row.cross += 1
        elif kind == BENIGN:
            row.fp += 1
            if len(row.false_sources) < 20:
                row.false_sources.append(k)
    if row.tp + row.fp:
        row.precision = row.tp / (row.tp + row.fp)
    if row.sources:
        row.recall = row.detected / row.sources
        row.recall_any = row.detected_any / row.sources
    for names in by_alert.values():
        kinds = {srcs[k].kind() for k in names if k in srcs}
        if BENIGN in kinds and not kinds & {MALICIOUS, "target"}:
            row.false_alerts += 1
    row.false_per_10k = row.false_alerts * 10_000 / benign_events if benign_events else 0.0
    def onset(s: Source) -> float | None:
        # From the first malicious event of the threats this row is about.
        ts = [t for x, t in s.first_by_threat.items() if wanted is None or x in wanted]
        return min(ts) if ts else s.first_malicious

    delays = [first[k] - t for k in targets if k in first
              and (t := onset(srcs[k])) is not None]
    if delays:
        row.median_delay_s = round(max(0.0, statistics.median(delays)), 1)
    row.flows = sum(n for t, n in truth.threat_events.items() if wanted is None or t in wanted)
    seen: set[str] = set()
    for d in detections:
        if d["detector"] not in dset or d["event_id"] in seen:
            continue
        seen.add(d["event_id"])
        kind, threat = truth.events.get(str(d["event_id"]), ("unlabelled", None))
        if kind == MALICIOUS and (wanted is None or threat in wanted):
            row.flow_tp += 1
        elif kind == BENIGN:
            row.flow_fp += 1
    row.flows_detected = row.flow_tp
    if row.flow_tp + row.flow_fp:
        row.flow_precision = row.flow_tp / (row.flow_tp + row.flow_fp)
    if row.flows:
        row.flow_recall = row.flow_tp / row.flows
    return row


def labelled_stream(fmt: str, path: Path, stats: ReadStats, window: int = DEFAULT_WINDOW,
                    limit: int | None = None) -> Iterator[Labelled]:
    """The capture's labelled events in time order (``window``: sort window, records)."""
    records: Iterable[Labelled] = get_format(fmt).read(path, stats)
    if limit is not None:
        records = itertools.islice(records, limit)
    return time_ordered(records, window, stats)


def evaluate_capture(fmt: str, path: str | Path, topics_file: str | Path = "topics.yaml",
                     window: int = DEFAULT_WINDOW, limit: int | None = None,
                     batch_size: int = 500) -> CaptureResult:
    """Score the configured detectors on a labelled capture (see the module docstring)."""
    from watchfloor.config import load_config
    from watchfloor.evaluation.evaluate import run_offline

    started = time.monotonic()
    path, topics_file = Path(path), Path(topics_file)
    spec = get_format(fmt)
    stats = ReadStats()
    truth = Truth(spec.domain, spec.entity_labels(path) if spec.entity_labels else None)

    def events() -> Iterator[tuple[str, dict[str, Any]]]:
        for rec in labelled_stream(spec.name, path, stats, window, limit):
            truth.add(rec)
            yield rec.domain, rec.event

    detections = run_offline(events(), topics_file, batch_size)  # type: ignore[arg-type]
    entity_type = ENTITY_FIELDS[spec.domain][0]
    named, incidents = alert_stream(detections, topics_file, entity_type)
    any_first: dict[str, float] = {}
    for n in named:
        for s in n.names:
            any_first.setdefault(s, n.t)
    configured = [d.name for d in load_config(topics_file).detectors_for(spec.domain)]
    benign = truth.counts[BENIGN]
    overall = _row("(all)", configured, None, truth, named, detections, any_first, benign)
    by_threat = {}
    for threat in sorted(truth.threat_events, key=lambda t: -truth.threat_events[t]):
        dets = [d for d in configured if d in THREAT_DETECTORS.get(threat, ())] or configured
        row = _row(threat, dets, {threat}, truth, named, detections, any_first, benign)
        if dets == configured:
            row.detectors = []
        by_threat[threat] = row
    by_detector = {
        d: _row(d, [d], None, truth, named, detections, any_first, benign) for d in configured
    }
    return CaptureResult(
        format=spec.name,
        path=str(path),
        domain=spec.domain,
        events=sum(truth.counts.values()),
        benign_events=benign,
        malicious_events=truth.counts[MALICIOUS],
        unlabelled_events=truth.counts["unlabelled"],
        detections=len(detections),
        incidents=incidents,
        false_incidents=overall.false_alerts,
        false_per_10k=overall.false_per_10k,
        overall=overall,
        by_threat=by_threat,
        by_detector=by_detector,
        beneficiaries={a: a in any_first for a in truth.beneficiaries()},
        read=stats.to_dict(),
        meta={"window": window, "limit": limit, "topics_file": str(topics_file),
              "seconds": round(time.monotonic() - started, 1)},
    )


__all__ = ["THREAT_DETECTORS", "CaptureResult", "CaptureRow", "Truth", "evaluate_capture",
           "labelled_stream"]
