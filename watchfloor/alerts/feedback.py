"""Feedback from operations centres: parse it, measure response latency, learn weights.

Who wrote a feedback message is vouched for by the broker, never by the message: each
agency writes only its own topic (``feedback.<agency>``, ACLs from ``watchfloor acl
apply``), and the worker takes the agency from the topic. The message is a JSON object::

    {"alert_id": "wf-...", "action": "ack"|"escalate"|"close",
     "verdict": "true_positive"|"false_positive", "ts": <RFC 3339 or epoch ms>}

``verdict`` is optional for ``ack`` and required otherwise. ``agency`` may be present;
if it names another agency than the topic's the message is refused (``agency_mismatch``).
Feedback about an alert that was never delivered to that agency (or is no longer
tracked) is refused too (``unknown_alert``). Extra fields are ignored.

Detector weights (used by the correlator's noisy-OR, so a noisy detector's alerts lose
severity and reach fewer agencies) are computed from the **current** verdict set, one
verdict per (alert, agency), a later verdict of the same agency replacing its earlier
one:

* an agency's opinion of a detector is its smoothed precision on the alerts it judged,
  ``(tp + 4) / (tp + fp + 4)``, floored at 0.2, and counts only once it judged more than
  one alert of that detector (``MIN_ALERTS_PER_AGENCY``);
* the target weight is the **highest** opinion among the agencies that have one, and
  stays 1.0 until at least two agencies have one (``MIN_AGENCIES``): no single agency's
  verdicts can lower what the other agencies receive;
* the weight moves towards its target by at most ``MAX_STEP_PER_HOUR`` per hour of the
  worker's clock, so a burst of verdicts cannot swing severity at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from watchfloor.core.decoding import MAX_STR, InvalidEvent, load_object, parse_ts
from watchfloor.core.entity_table import EntityTable

ACTIONS = frozenset({"ack", "escalate", "close"})
VERDICTS = frozenset({"true_positive", "false_positive"})
MAX_FEEDBACK_BYTES = 16_384
# Dead-letter reasons of feedback beyond the decoding ones (a fixed set: metric labels).
FEEDBACK_CODES = ("agency_mismatch", "unknown_alert")

WEIGHT_FLOOR = 0.2
PRIOR = 4.0  # pseudo-verdicts of confidence: one false positive takes an opinion to 0.8
MIN_ALERTS_PER_AGENCY = 2
MIN_AGENCIES = 2
MAX_STEP_PER_HOUR = 0.1
# The correlator reads weights at most this often (they move slowly by construction).
WEIGHT_REFRESH_SECONDS = 5.0

_SEP = "\x1f"


def parse_feedback(raw: bytes | None, agency: str | None = None) -> dict[str, Any]:
    """Decode one feedback message or raise InvalidEvent (codes as in ``decoding``).

    ``agency`` is the writer the broker vouches for (the topic's agency); the result's
    ``agency`` is always it. Without it (tools, tests) the payload must name one.

    >>> parse_feedback(b'{"alert_id":"wf-1","action":"ack","ts":1700000000000}', "cert")
    {'alert_id': 'wf-1', 'action': 'ack', 'agency': 'cert', 'verdict': None, 'ts': 1700000000.0}
    >>> parse_feedback(b'{"alert_id":"wf-1","agency":"fiu","action":"ack","ts":1}', "cert")
    Traceback (most recent call last):
    ...
    watchfloor.core.decoding.InvalidEvent: agency_mismatch: cert's feedback names agency 'fiu'
    >>> parse_feedback(b'{"alert_id":"wf-1","action":"close","ts":1}', "cert")
    Traceback (most recent call last):
    ...
    watchfloor.core.decoding.InvalidEvent: missing_field: 'verdict' is required for 'close'
    """
    msg = load_object(raw, MAX_FEEDBACK_BYTES)
    out: dict[str, Any] = {}
    names = ("alert_id", "action") if agency is not None else ("alert_id", "agency", "action")
    for name in names:
        if name not in msg:
            raise InvalidEvent("missing_field", f"required field {name!r} is missing")
        out[name] = _text(msg[name], name)
    if agency is not None:
        claimed = msg.get("agency")
        if claimed is not None and claimed != agency:
            shown = _text(claimed, "agency")[:64]
            raise InvalidEvent("agency_mismatch", f"{agency}'s feedback names agency {shown!r}")
        out["agency"] = agency
    if out["action"] not in ACTIONS:
        raise InvalidEvent("bad_value", f"'action' must be one of {sorted(ACTIONS)}")
    verdict = msg.get("verdict")
    if verdict is None:
        if out["action"] != "ack":
            raise InvalidEvent("missing_field", f"'verdict' is required for {out['action']!r}")
    elif type(verdict) is not str:
        kind = type(verdict).__name__
        raise InvalidEvent("wrong_type", f"'verdict' must be a string, got {kind}")
    elif verdict not in VERDICTS:
        raise InvalidEvent("bad_value", f"'verdict' must be one of {sorted(VERDICTS)}")
    out["verdict"] = verdict
    if "ts" not in msg:
        raise InvalidEvent("missing_field", "required field 'ts' is missing")
    out["ts"] = parse_ts(msg["ts"])
    return out


def _text(v: Any, name: str) -> str:
    if type(v) is not str:
        raise InvalidEvent("wrong_type", f"{name!r} must be a string, got {type(v).__name__}")
    if not v or len(v) > MAX_STR:
        raise InvalidEvent("bad_value", f"{name!r} must be 1..{MAX_STR} characters")
    return v


class _Pending:
    """One delivery (alert, agency): when, how severe, which detectors, what was said."""

    __slots__ = ("acked", "detectors", "published", "severity", "verdict")

    def __init__(self, published: float, severity: str, detectors: tuple[str, ...]) -> None:
        self.published = published
        self.severity = severity
        self.detectors = detectors
        self.acked = False
        self.verdict: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.verdict = None  # checkpoints from before verdicts were kept per delivery
        for k, v in state.items():
            if k in self.__slots__:
                setattr(self, k, v)


def _move(w: float, target: float, hours: float) -> float:
    step = MAX_STEP_PER_HOUR * max(0.0, hours)
    if target < w:
        return max(target, w - step)
    return min(target, w + step)


class ResponseTracker:
    """Deliveries per (alert_id, agency), bounded; response latency; detector weights.

    The latency is measured to the first feedback of any action (an agency that closes
    without acknowledging has responded), from the first publication of the alert to the
    agency; it uses the feedback's ``ts``, clamped to ``now`` (clocks of operations
    centres drift). Weights: see the module docstring.

    >>> rt = ResponseTracker()
    >>> for i in range(2):
    ...     for agency in ("cert", "ctpu"):
    ...         rt.published(f"wf-{i}", agency, "high", ["port_scan"], 100.0)
    >>> fp = {"alert_id": "wf-0", "agency": "cert", "action": "close",
    ...       "verdict": "false_positive", "ts": 160.0}
    >>> rt.feedback(fp, now=170.0)
    (60.0, 'high', ('port_scan',))
    >>> rt.feedback({**fp, "alert_id": "wf-1"}, now=170.0)[0], rt.weight("port_scan", 170.0)
    (60.0, 1.0)
    >>> for i in range(2):  # a second agency agrees: the weight starts to move
    ...     _ = rt.feedback({**fp, "alert_id": f"wf-{i}", "agency": "ctpu"}, now=180.0)
    >>> rt.weight("port_scan", 180.0), rt.weight("port_scan", 180.0 + 3600.0)
    (1.0, 0.9)
    >>> rt.weight("port_scan", 180.0 + 10 * 3600.0)  # the target: (0 + 4) / (2 + 4)
    0.666667
    """

    def __init__(self, max_pending: int = 200_000, ttl_seconds: float = 7 * 86_400.0) -> None:
        self._pending: EntityTable[_Pending] = EntityTable(max_pending, ttl_seconds)
        # detector -> (weight at t, t, target): the weight moves from there towards target.
        self._anchors: dict[str, tuple[float, float, float]] = {}
        # Keys of deliveries with a verdict (pruned of evicted ones at each recompute), so
        # recomputing targets does not walk every tracked delivery.
        self._judged: dict[str, None] = {}
        self._dirty = False
        self._dirty_since = float("inf")  # when the oldest not yet applied change came
        self._retargeted = float("-inf")
        self._cache: tuple[float, dict[str, float]] = (float("-inf"), {})
        self.unknown = 0  # feedback for an alert we do not (or no longer) track

    def __len__(self) -> int:
        return len(self._pending)

    def __getstate__(self) -> dict[str, Any]:
        return {"pending": self._pending, "anchors": self._anchors, "unknown": self.unknown,
                "changed_since": self._dirty_since if self._dirty else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self._pending = state["pending"] if "pending" in state else state["_pending"]
        self._anchors = dict(state.get("anchors", {}))
        self.unknown = state.get("unknown", 0)
        self._judged = {k: None for k, p in self._pending.items() if p.verdict is not None}
        since = state.get("changed_since")
        if since is not None:
            self._mark(float(since))

    def to_state(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for a data-only checkpoint format.

        >>> rt = ResponseTracker(max_pending=10)
        >>> rt.published("wf-1", "cert", "high", ["port_scan"], 5.0)
        >>> back = ResponseTracker.from_state(rt.to_state())
        >>> back.delivered("wf-1", "cert"), back.to_state() == rt.to_state()
        (True, True)
        """
        t = self._pending
        return {
            "max_pending": t.max_entities,
            "ttl_seconds": t.ttl_seconds,
            "pending": [
                [k, t.last_seen(k), p.published, p.severity, list(p.detectors), p.acked,
                 p.verdict]
                for k, p in t.items()
            ],
            "anchors": {d: list(a) for d, a in self._anchors.items()},
            "unknown": self.unknown,
            "changed_since": self._dirty_since if self._dirty else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ResponseTracker:
        """The tracker :meth:`to_state` described (types checked: it is read from Kafka)."""
        rt = cls(int(state["max_pending"]), float(state["ttl_seconds"]))
        for key, seen, published, severity, detectors, acked, verdict in state["pending"]:
            p = _Pending(float(published), str(severity), tuple(str(d) for d in detectors))
            p.acked = bool(acked)
            p.verdict = verdict if verdict in VERDICTS else None
            rt._pending.put(str(key), float(seen), p)
            if p.verdict is not None:
                rt._judged[str(key)] = None
        rt._anchors = {
            str(d): (float(w), float(t), float(target))
            for d, (w, t, target) in state["anchors"].items()
        }
        rt.unknown = int(state["unknown"])
        since = state.get("changed_since")
        if since is not None:
            rt._mark(float(since))
        return rt

    def delivered(self, alert_id: str, agency: str) -> bool:
        """Whether ``alert_id`` was delivered to ``agency`` (and is still tracked)."""
        return alert_id + _SEP + agency in self._pending

    def published(
        self, alert_id: str, agency: str, severity: str, detectors: Iterable[str], t: float
    ) -> None:
        """Record a delivery; later versions keep the first time, update the rest."""
        key = alert_id + _SEP + agency
        p = self._pending.get(key)
        dets = tuple(sorted(set(detectors)))
        if p is None:
            self._pending.put(key, t, _Pending(t, severity, dets))
        else:
            p.severity = severity
            merged = tuple(sorted(set(p.detectors) | set(dets)))
            if merged != p.detectors and p.verdict is not None:
                self._mark(t)
            p.detectors = merged

    def feedback(self, fb: dict[str, Any], now: float) -> tuple[float, str, tuple[str, ...]] | None:
        """Apply one parsed feedback; return (latency s, severity, detectors) on the
        agency's first response to the alert, else None (also when not delivered to it)."""
        p = self._pending.get(fb["alert_id"] + _SEP + fb["agency"])
        if p is None:
            self.unknown += 1
            return None
        verdict = fb.get("verdict")
        if verdict is not None and verdict != p.verdict:
            p.verdict = verdict  # the agency's current verdict replaces its earlier one
            self._judged[fb["alert_id"] + _SEP + fb["agency"]] = None
            self._mark(now)
            self._retarget(now)  # rate-limited: at most one pass per refresh interval
        if p.acked:
            return None
        p.acked = True
        latency = max(0.0, min(float(fb["ts"]), now) - p.published)
        return latency, p.severity, p.detectors

    # -- weights ------------------------------------------------------------------
    def targets(self) -> dict[str, float]:
        """Target weight per judged detector, from the current verdict set."""
        votes: dict[str, dict[str, list[int]]] = {}
        for key in list(self._judged):
            p = self._pending.get(key)
            if p is None or p.verdict is None:  # evicted or expired since
                del self._judged[key]
                continue
            agency = key.rpartition(_SEP)[2]
            fp = p.verdict == "false_positive"
            for d in p.detectors:
                c = votes.setdefault(d, {}).setdefault(agency, [0, 0])
                c[0 if fp else 1] += 1
        out = {}
        for d, by_agency in votes.items():
            opinions = [
                max(WEIGHT_FLOOR, (tp + PRIOR) / (fp + tp + PRIOR))
                for fp, tp in by_agency.values()
                if fp + tp >= MIN_ALERTS_PER_AGENCY
            ]
            out[d] = max(opinions) if len(opinions) >= MIN_AGENCIES else 1.0
        return out

    def _mark(self, now: float) -> None:
        self._dirty = True
        self._dirty_since = min(self._dirty_since, now)

    def _retarget(self, now: float) -> None:
        # At most every WEIGHT_REFRESH_SECONDS: a stream of verdicts costs one pass over
        # the judged deliveries per interval, not one per verdict.
        if not self._dirty or self._retargeted <= now < self._retargeted + WEIGHT_REFRESH_SECONDS:
            return
        # The change takes effect from when it arrived, not from when it was applied.
        since = min(now, self._dirty_since)
        self._dirty = False
        self._dirty_since = float("inf")
        self._retargeted = now
        targets = self.targets()
        for d in set(targets) | set(self._anchors):
            target = targets.get(d, 1.0)
            w, t, old = self._anchors.get(d, (1.0, since, 1.0))
            if target != old:
                at = max(since, t)
                self._anchors[d] = (_move(w, old, (at - t) / 3600.0), at, target)
        self._cache = (float("-inf"), {})

    def weight(self, detector: str, now: float) -> float:
        """Weight of ``detector`` at time ``now`` in [0.2, 1] (1.0 if never judged)."""
        self._retarget(now)
        anchor = self._anchors.get(detector)
        if anchor is None:
            return 1.0
        w, t, target = anchor
        return round(_move(w, target, (now - t) / 3600.0), 6)

    def weights(self, now: float) -> dict[str, float]:
        """Every judged detector's weight at ``now`` (for ``Correlator.weights``)."""
        return {d: self.weight(d, now) for d in sorted(self._anchors)}

    def current_weights(self, now: float) -> Mapping[str, float]:
        """:meth:`weights`, recomputed at most every ``WEIGHT_REFRESH_SECONDS`` (called per
        detection; weights move at most ``MAX_STEP_PER_HOUR``, so staleness is tiny)."""
        self._retarget(now)  # invalidates the cache when targets changed
        t, cached = self._cache
        if not t <= now < t + WEIGHT_REFRESH_SECONDS:
            cached = self.weights(now)
            self._cache = (now, cached)
        return cached


def apply_feedback(
    tracker: ResponseTracker, agency: str, raw: bytes | None, now: float
) -> tuple[dict[str, Any], tuple[float, str, tuple[str, ...]] | None]:
    """Parse one feedback message written by ``agency`` and apply it to ``tracker``.

    ``agency`` is the one the broker vouches for: the agency of the topic the message
    was read from. Returns the parsed feedback and, on the agency's first response to an
    alert, (latency s, severity, detectors). Raises InvalidEvent if malformed, if the
    payload names another agency, or if the alert was not delivered to ``agency``.
    """
    fb = parse_feedback(raw, agency)
    if not tracker.delivered(fb["alert_id"], agency):
        tracker.unknown += 1
        raise InvalidEvent(
            "unknown_alert",
            f"alert {fb['alert_id'][:64]!r} was not delivered to {agency} "
            "(or is older than the tracking window)",
        )
    return fb, tracker.feedback(fb, now)


__all__ = [
    "ACTIONS",
    "FEEDBACK_CODES",
    "VERDICTS",
    "ResponseTracker",
    "apply_feedback",
    "parse_feedback",
]
