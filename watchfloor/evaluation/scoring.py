"""Scoring labelled events against detections: precision, recall, false alerts per 10,000
benign events and detection delay, per threat type and per detector (:func:`score_run`),
and the printed table (:meth:`EvaluationResult.table`).

Reusable for any labelled data: the simulator's scenario (labels in the event's ``sim``
field, the default) or a replayed capture (pass ``label_of``: a function of the event
giving its :class:`Label`, or ``None`` for unlabelled background traffic, which is then
neither a hit nor a false alert).

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

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import orjson

from watchfloor.core.decoding import parse_ts
from watchfloor.simulation import THREAT_DETECTORS

#: Targets of the issue: per threat type, and overall.
TARGET_RECALL = 0.9
TARGET_PRECISION = 0.8
TARGET_FALSE_PER_10K = 1.0


LabelledEvent = tuple[str, Mapping[str, Any]]


class Label(NamedTuple):
    """The ground truth of one event: its threat type and campaign (both ``None`` for a
    benign event) and the benign look-alike pattern it follows, if any."""

    threat: str | None
    campaign: str | None
    lookalike: str | None


def sim_label(event: Mapping[str, Any]) -> Label | None:
    """The simulator's label (the event's ``sim`` field); an event without one is benign.

    >>> sim_label({"sim": {"threat": "port_scan", "campaign": "port_scan-1", "lookalike": None}})
    Label(threat='port_scan', campaign='port_scan-1', lookalike=None)
    >>> sim_label({"event_id": "e1"})
    Label(threat=None, campaign=None, lookalike=None)
    """
    sim = event.get("sim") or {}
    return Label(sim.get("threat"), sim.get("campaign"), sim.get("lookalike"))


def detections_of_alerts(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The detections an alert stream carries, for scoring alerts instead of raw detections.

    Every version of an incident repeats its detections; :func:`score_run` counts each
    ``(detector, event_id)`` once, so the versions do not inflate the figures.

    >>> a = {"alert_id": "a1", "version": 2,
    ...      "detections": [{"detector": "port_scan", "event_id": "e7", "score": 0.9}]}
    >>> detections_of_alerts([a, a])
    [{'detector': 'port_scan', 'event_id': 'e7', 'score': 0.9}, \
{'detector': 'port_scan', 'event_id': 'e7', 'score': 0.9}]
    """
    return [dict(d) for alert in alerts for d in alert.get("detections") or ()]


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
        if not any(row.campaigns for row in self.by_threat.values()):
            # Nothing was measured (`evaluate --events 10`): that meets no target.
            out.append("no threat campaign in the run: recall was not measured "
                       "(more --events, or a dataset with labelled threats)")  # fmt: skip
        for threat, row in self.by_threat.items():
            if row.campaigns == 0:
                continue
            if row.recall is None or row.recall < TARGET_RECALL:
                out.append(
                    f"{threat}: recall {fmt(row.recall)} < {TARGET_RECALL} "
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
                fmt(r.recall),
                fmt(r.f1),
                f"{r.false_per_10k:.2f}",
                fmt(r.median_delay_events, ".0f"),
                fmt(r.median_delay_seconds, ".0f"),
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
        lines += grid(rows)
        lines.append("")
        rows = [("detector", "threat types", "campaigns", *head)]
        for d, r in self.by_detector.items():
            rows.append(
                (d, ",".join(r.threats) or "-", f"{r.campaigns_detected}/{r.campaigns}", *cells(r))
            )
        lines += grid(rows)
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


def fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def grid(rows: list[tuple[str, ...]], left: int = 3) -> list[str]:
    """Rows as aligned text: the first ``left`` columns left-aligned, a rule under the
    header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append(
            "  ".join(
                c.ljust(w) if i < left else c.rjust(w)
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
    label_of: Callable[[Mapping[str, Any]], Label | None] = sim_label,
) -> EvaluationResult:
    """Score detections against the labelled stream they came from.

    Parameters
    ----------
    labelled_events
        ``(domain, event)`` in stream order, each event with ``event_id``, ``ts`` and a
        label ``label_of`` reads (by default the simulator's ``sim`` field).
    detections
        Detection dicts with at least ``detector`` and ``event_id``. Duplicates of
        ``(detector, event_id)`` count once; detections of unknown events are ignored.
    detectors
        Detector names to report even if they detected nothing (the configured ones).
    threat_detectors
        Threat type -> detector meant to find it; its order is the order of the rows.
    label_of
        The ground truth of an event (:func:`sim_label` by default). For a replayed
        capture: ``None`` for unlabelled background (left out of every figure, ``events``
        included; detections on it are ignored), and a campaign per malicious source
        (e.g. ``f"{threat}:{src_ip}"``) to score recall and delay per source.

    Returns
    -------
    EvaluationResult
        See the module docstring for the definitions; ``table()`` prints it.

    Examples
    --------
    >>> ps = {"threat": "port_scan", "campaign": "ps-1", "lookalike": None}
    >>> events = [("network", {"event_id": "e1", "ts": "2026-11-24T21:04:05Z", "sim": ps}),
    ...           ("network", {"event_id": "e2", "ts": "2026-11-24T21:04:06Z", "sim": {}})]
    >>> r = score_run(events, [{"detector": "port_scan", "event_id": "e1"}])
    >>> r.by_threat["port_scan"].recall, r.false_alerts
    (1.0, 0)
    """
    # event_id -> (threat, campaign, lookalike, position in its campaign, event time)
    labels: dict[str, tuple[str | None, str | None, str | None, int, float]] = {}
    campaign_threat: dict[str, str] = {}
    campaign_start: dict[str, float] = {}
    campaign_size: Counter[str] = Counter()
    threat_events: Counter[str] = Counter()
    n = benign = 0
    for _domain, ev in labelled_events:
        label = label_of(ev)
        if label is None:
            continue  # unlabelled background: neither a hit nor a false alert
        n += 1
        threat, campaign, lookalike = label
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
    present = [t for t in threat_detectors if t in campaigns_of] + sorted(
        t for t in campaigns_of if t not in threat_detectors
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
