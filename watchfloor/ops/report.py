"""``watchfloor report``: the after-action report managers and oversight ask for.

It reads what the deployment recorded in Kafka over a period — every agency's alert
topic (alerts and deconfliction notices), the publications, every agency's feedback
topic and the sharing audit trail — and computes every figure from those records alone
(:func:`figures`, plain Python, unit-tested without a broker). ``report_html`` renders
them as one self-contained HTML page with inline SVG charts; ``report.json`` holds every
figure in the page.

Figures: alerts per agency and severity, and over time; time to share (event arrival →
alert delivered) and time to respond (delivered → first acknowledgement) per agency
against its target, as distributions; alerts never acknowledged; precision per detector
and per agency from analyst verdicts; incidents shared with more than one agency,
deconfliction notices and how fast both sides acted; what each agreement let through
(fields in clear, pseudonymised, redacted); top entities and the longest-running
incidents with their timeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass
class Records:
    """What was read, per source: (Kafka append time in epoch seconds, decoded value)."""

    alerts: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    published: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    feedback: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    audit: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


def _quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "max": None}
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))], 3)

    return {"n": len(values), "p50": q(0.5), "p90": q(0.9), "max": round(ordered[-1], 3)}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def figures(
    records: Records,
    targets: Mapping[str, float],
    start: float,
    end: float,
    bucket_seconds: float = 3600.0,
) -> dict[str, Any]:
    """Every figure of the report from the records of ``[start, end)``. Exercise alerts
    (``watchfloor exercise run``) and what followed them are left out: they are scored
    apart (``--exercise``) and never mix with the real figures."""
    records = real_only(records)
    agencies = sorted(set(records.alerts) | set(targets))
    out: dict[str, Any] = {"period": {"from": _iso(start), "to": _iso(end)}, "agencies": agencies}

    buckets = range(max(1, int((end - start) // bucket_seconds) + 1))

    def series(counts: Counter[int]) -> list[int]:
        return [counts.get(i, 0) for i in buckets]

    # -- volumes -------------------------------------------------------------------
    per_severity: dict[str, Counter[str]] = {a: Counter() for a in agencies}
    over_time: dict[str, Counter[int]] = {a: Counter() for a in agencies}
    new_over_time: dict[str, Counter[int]] = {a: Counter() for a in agencies}
    severity_over_time: dict[str, Counter[int]] = {s: Counter() for s in (*SEVERITIES,
                                                                           "unknown")}
    incidents_by_agency: dict[str, set[str]] = {a: set() for a in agencies}
    versions: dict[str, list[tuple[float, int, str, str]]] = defaultdict(list)
    entities: dict[tuple[str, str], set[str]] = defaultdict(set)
    notices: list[tuple[float, dict[str, Any]]] = []
    for agency, recs in records.alerts.items():
        for t, rec in recs:
            if rec.get("kind", "alert") == "deconfliction":
                notices.append((t, rec))
                continue
            aid = str(rec.get("alert_id"))
            sev = rec.get("severity") if rec.get("severity") in SEVERITIES else "unknown"
            bucket = int((t - start) // bucket_seconds)
            per_severity[agency][sev] += 1
            over_time[agency][bucket] += 1
            severity_over_time[sev][bucket] += 1
            if aid not in incidents_by_agency[agency]:  # the incident's first delivery
                new_over_time[agency][bucket] += 1
            incidents_by_agency[agency].add(aid)
            versions[aid].append((t, int(rec.get("version") or 0), agency, sev))
            for ent in rec.get("entities") or ():
                eid = str(ent.get("id", ""))
                if eid and not eid.startswith("ps_"):  # counted where seen in clear
                    entities[(str(ent.get("type")), eid)].add(aid)
    out["alerts"] = {
        "total_deliveries": sum(sum(c.values()) for c in per_severity.values()),
        "incidents": len(versions),
        "by_agency": {a: {"deliveries": sum(per_severity[a].values()),
                          "incidents": len(incidents_by_agency[a]),
                          "by_severity": dict(per_severity[a])} for a in agencies},
        "over_time": {"bucket_seconds": bucket_seconds,
                      "by_agency": {a: series(over_time[a]) for a in agencies},
                      "incidents_by_agency": {a: series(new_over_time[a]) for a in agencies},
                      "by_severity": {s: series(c) for s, c in severity_over_time.items()
                                      if c}},
    }

    # -- time to share and to respond ----------------------------------------------
    first_pub: dict[tuple[str, str], float] = {}
    share: dict[str, list[float]] = defaultdict(list)
    for t, rec in records.published:
        key = (str(rec.get("alert_id")), str(rec.get("agency")))
        first_pub.setdefault(key, t)
        arrival = rec.get("arrival")
        if isinstance(arrival, int | float) and arrival > 0:
            share[key[1]].append(max(0.0, t - float(arrival)))
    first_ack: dict[tuple[str, str], float] = {}
    verdicts: dict[tuple[str, str], str] = {}
    for agency, recs in records.feedback.items():
        for t, rec in sorted(recs, key=lambda x: x[0]):
            key = (str(rec.get("alert_id")), agency)  # the topic names the agency
            first_ack.setdefault(key, t)
            if rec.get("verdict") in ("true_positive", "false_positive"):
                verdicts[key] = rec["verdict"]  # a later verdict replaces an earlier one
    respond: dict[str, list[float]] = defaultdict(list)
    never: dict[str, list[str]] = defaultdict(list)
    for (aid, agency), t in first_pub.items():
        if (aid, agency) in first_ack:
            respond[agency].append(max(0.0, first_ack[(aid, agency)] - t))
        else:
            never[agency].append(aid)
    out["time_to_share_s"] = {a: _quantiles(share.get(a, [])) for a in agencies}
    out["time_to_respond_s"] = {
        a: {**_quantiles(respond.get(a, [])), "target": targets.get(a),
            "within_target": sum(v <= targets.get(a, float("inf")) for v in respond.get(a, []))}
        for a in agencies
    }
    out["never_acknowledged"] = {a: sorted(set(never.get(a, []))) for a in agencies}
    out["distributions_s"] = {"share": {a: sorted(share.get(a, [])) for a in agencies},
                              "respond": {a: sorted(respond.get(a, [])) for a in agencies}}

    # -- accuracy from verdicts ----------------------------------------------------
    detectors_of: dict[str, set[str]] = defaultdict(set)
    for _, rec in records.published:
        detectors_of[str(rec.get("alert_id"))].update(rec.get("detectors") or ())
    by_detector: dict[str, Counter[str]] = defaultdict(Counter)
    by_agency: dict[str, Counter[str]] = defaultdict(Counter)
    for (aid, agency), verdict in verdicts.items():
        by_agency[agency][verdict] += 1
        for det in detectors_of.get(aid, ()):
            by_detector[det][verdict] += 1

    def precision(c: Counter[str]) -> dict[str, Any]:
        tp, fp = c["true_positive"], c["false_positive"]
        return {"true_positive": tp, "false_positive": fp,
                "precision": round(tp / (tp + fp), 3) if tp + fp else None}

    out["accuracy"] = {
        "by_detector": {d: precision(c) for d, c in sorted(by_detector.items())},
        "by_agency": {a: precision(c) for a, c in sorted(by_agency.items())},
        "proved_false": sorted({aid for (aid, _), v in verdicts.items()
                                if v == "false_positive"}),
        "proved_false_detail": [
            {"alert_id": aid, "agency": agency, "detectors": sorted(detectors_of.get(aid, ()))}
            for (aid, agency), v in sorted(verdicts.items()) if v == "false_positive"
        ],
    }

    # -- collaboration -------------------------------------------------------------
    shared_with: dict[str, set[str]] = defaultdict(set)
    for aid, agency in first_pub:
        shared_with[aid].add(agency)
    multi = {aid: sorted(a) for aid, a in shared_with.items() if len(a) > 1}
    both_acted = []
    for t, n in notices:
        own = (str(n.get("alert_id")), str(n.get("agency")))
        others = [(str(o.get("alert_id")), str(o.get("agency"))) for o in n.get("others") or ()
                  if isinstance(o, Mapping)]
        acts = [first_ack.get(k) for k in (own, *others)]
        if acts and all(a is not None for a in acts):
            both_acted.append(max(0.0, max(acts) - t))  # type: ignore[type-var]
    let_through: dict[str, Counter[str]] = defaultdict(Counter)
    for _, rec in records.audit:
        agency = str(rec.get("agency"))
        for kind in ("shared", "pseudonymised", "redacted"):
            for path in rec.get(kind) or ():
                let_through[agency][f"{kind}:{path}"] += 1
    out["collaboration"] = {
        "incidents_shared_with_several": len(multi),
        "shared_with": multi,
        "deconfliction_notices": len(notices),
        "notices_both_acted": len(both_acted),
        "both_acted_within_s": _quantiles(both_acted),
        "agreements": {
            a: {kind: sorted({p.split(":", 1)[1] for p in c if p.startswith(kind + ":")})
                for kind in ("shared", "pseudonymised", "redacted")}
            for a, c in sorted(let_through.items())
        },
        "audit_records": len(records.audit),
    }

    # -- entities and long incidents ---------------------------------------------
    top = sorted(entities.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    out["top_entities"] = [{"type": k[0], "id": k[1], "incidents": len(v)} for k, v in top]
    spans = []
    for aid, vs in versions.items():
        vs.sort()
        spans.append({"alert_id": aid, "seconds": round(vs[-1][0] - vs[0][0], 3),
                      "versions": max(v[1] for v in vs), "severity": vs[-1][3],
                      "timeline": [{"t": _iso(t), "version": v, "agency": a, "severity": s}
                                   for t, v, a, s in vs[:50]]})
    spans.sort(key=lambda s: (-s["seconds"], s["alert_id"]))
    out["longest_incidents"] = spans[:5]
    return out


def real_only(records: Records) -> Records:
    """``records`` without exercise alerts, their publications and their feedback."""
    drill = {str(rec.get("alert_id")) for recs in records.alerts.values()
             for _, rec in recs if rec.get("exercise")}  # fmt: skip
    if not drill:
        return records

    def keep(recs: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
        return [(t, r) for t, r in recs if str(r.get("alert_id")) not in drill]

    return Records(
        alerts={a: keep(r) for a, r in records.alerts.items()},
        published=keep(records.published),
        feedback={a: keep(r) for a, r in records.feedback.items()},
        audit=keep(records.audit),
    )


# ---------------------------------------------------------------------------- reading
async def read_topic(
    target: Any, topic: str, start: float, end: float, progress: Any = None
) -> list[tuple[float, dict[str, Any]]]:
    """JSON objects of ``topic`` appended in ``[start, end)`` (others skipped).
    ``progress(topic, done, total)`` after each fetch (records from the period's first
    offset to the end of the topic)."""
    from watchfloor.kafka.clients import assigned_consumer

    consumer = await assigned_consumer(target, topic, from_beginning=True)
    if consumer is None:
        return []
    out: list[tuple[float, dict[str, Any]]] = []
    try:
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times({tp: int(start * 1000) for tp in tps})
        first = {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}
        for tp in tps:
            consumer.seek(tp, first[tp])
        total, done = sum(ends[tp] - first[tp] for tp in tps), 0
        if progress is not None:
            progress(topic, 0, total)
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                return out
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for tp, recs in batch.items():
                for r in recs:
                    if r.offset >= ends[tp] or not (start <= r.timestamp / 1000 < end):
                        continue
                    try:
                        value = orjson.loads(r.value) if r.value else None
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(value, dict):
                        out.append((r.timestamp / 1000, value))
                done += len(recs)
            if progress is not None:
                progress(topic, min(done, total), total)
    finally:
        await consumer.stop()


async def read_all(config: Any, target: Any, start: float, end: float, progress: Any) -> Records:
    recs = Records()
    for agency in config.agencies:
        recs.alerts[agency.name] = await read_topic(target, agency.topic, start, end, progress)
    for agency, topic in config.feedback_topics.items():
        recs.feedback[agency] = await read_topic(target, topic.name, start, end, progress)
    recs.published = await read_topic(target, config.topic("published").name, start, end,
                                      progress)
    recs.audit = await read_topic(target, config.topic("audit").name, start, end, progress)
    return recs


class ReadProgress:
    """A progress bar while the topics are read, on stderr: redrawn in place on a
    terminal, otherwise one plain line per topic read (and every ``every`` seconds).

    >>> import io
    >>> out = io.StringIO()
    >>> p = ReadProgress(2, out)
    >>> p("alerts.cert", 0, 40); p("alerts.cert", 40, 40); p("feedback.cert", 10, 10)
    >>> p.close(); print(out.getvalue(), end="")
    reading [##########----------]  50% topic 1/2 alerts.cert: 40/40 records
    reading [####################] 100% topic 2/2 feedback.cert: 10/10 records
    read 50 records from 2 topics
    """

    WIDTH = 20

    def __init__(self, topics: int, stream: Any, quiet: bool = False,
                 every: float = 5.0) -> None:
        self.topics, self.stream, self.quiet, self.every = max(1, topics), stream, quiet, every
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.index, self.current, self.records = 0, None, 0
        self._done, self._last = 0, time.monotonic()

    def __call__(self, topic: str, done: int, total: int) -> None:
        if topic != self.current:
            self.current, self.index = topic, self.index + 1
            self._done = 0
        self.records += done - self._done
        self._done = done
        if self.quiet:
            return
        finished = done >= total
        now = time.monotonic()
        if not self.tty and not (finished or now - self._last >= self.every):
            return
        self._last = now
        # Whole topics read, and the share of this one.
        share = (self.index - 1 + (done / total if total else 1.0)) / self.topics
        filled = round(share * self.WIDTH)
        line = (f"reading [{'#' * filled}{'-' * (self.WIDTH - filled)}] {share:4.0%} "
                f"topic {self.index}/{self.topics} {topic}: {done:,}/{total:,} records")
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\n")
        self.stream.write(f"read {self.records:,} records from {self.index} topics\n")
        self.stream.flush()


def parse_since(value: str) -> float:
    """``90m``, ``24h``, ``7d`` as seconds.

    >>> parse_since("24h"), parse_since("90m"), parse_since("2d")
    (86400.0, 5400.0, 172800.0)
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not value or value[-1] not in units or not value[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"--since {value!r}: expected a number and s, m, h or d (e.g. 24h)")
    return float(value[:-1]) * units[value[-1]]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="after-action report: HTML with charts and a JSON of every figure"
    )
    p.add_argument("--since", default="24h", help="period ending now (e.g. 90m, 24h, 7d)")
    p.add_argument("--from", dest="start", help="period start, RFC 3339 (with --to)")
    p.add_argument("--to", dest="end", help="period end, RFC 3339")
    p.add_argument("--out", required=True, help="directory for report.html and report.json")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--exercise", default=None,
                   help="score this exercise (watchfloor exercise run) instead: exercise.json")
    p.add_argument("--scenario", default=None,
                   help="with --exercise: its scenario, so undetected injects are listed too")
    p.set_defaults(func=cmd_report)
    return p


def _rfc3339(value: str, flag: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(
            f"{flag} {value!r}: expected RFC 3339, e.g. 2026-12-01T08:00:00Z"
        ) from None


def cmd_report(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from aiokafka.errors import KafkaError

    from watchfloor.config import load_config
    from watchfloor.ops.report_html import render
    from watchfloor.settings import Settings

    settings = Settings.from_env()
    config = load_config(getattr(args, "topics_file", None) or settings.topics_file)
    try:
        end = _rfc3339(args.end, "--to") if args.end else time.time()
        start = _rfc3339(args.start, "--from") if args.start else end - parse_since(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    topics = len(config.agencies) + len(config.feedback_topics) + 2
    progress = ReadProgress(topics, sys.stderr, quiet=args.quiet)
    try:
        records = asyncio.run(read_all(config, settings, start, end, progress))
    except KafkaError as exc:
        progress.close()
        print(f"error: Kafka: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    progress.close()
    if getattr(args, "exercise", None):
        return _exercise_report(args, config, records)
    targets = {a.name: a.response_target_seconds for a in config.agencies}
    span = end - start
    figs = figures(records, targets, start, end, bucket_seconds=max(60.0, span / 24))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(figs, option=orjson.OPT_INDENT_2) + b"\n")
    (out / "report.html").write_text(render(figs))
    print(f"report: {out / 'report.html'} ({figs['alerts']['incidents']} incidents, "
          f"{figs['alerts']['total_deliveries']} deliveries); figures: {out / 'report.json'}")
    return 0


def _exercise_report(args: argparse.Namespace, config: Any, records: Records) -> int:
    from pathlib import Path

    from watchfloor.ops.exercise import score, table
    from watchfloor.simulation.exercise import ScenarioError, load_scenario

    scenario = None
    if args.scenario:
        try:
            scenario = load_scenario(args.scenario, {a.name for a in config.agencies})
        except ScenarioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    card = score(records, args.exercise, scenario)
    if not card["injects"]:
        print(f"error: no alert of exercise {args.exercise!r} in the period; widen --since "
              "or check the id", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "exercise.json").write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(card))
    print(f"\nscorecard: {out / 'exercise.json'}")
    return 0
