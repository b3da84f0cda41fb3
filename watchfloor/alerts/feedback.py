"""Feedback from operations centres: parse it, measure response latency, learn weights.

A feedback message (topic ``alerts.feedback``) is a JSON object::

    {"alert_id": "wf-...", "agency": "cert", "action": "ack"|"escalate"|"close",
     "verdict": "true_positive"|"false_positive", "ts": <RFC 3339 or epoch ms>}

``verdict`` is optional for ``ack`` and required otherwise. Extra fields are ignored.

Detector weights (used by the correlator's noisy-OR, so a noisy detector's alerts lose
severity and reach fewer agencies): each detector starts at 1.0. The first verdict per
(alert, agency) updates every detector of that alert:

* ``false_positive``: ``w = max(0.2, w * 0.8)`` (five in a row take 1.0 to 0.33);
* ``true_positive``: ``w = min(1.0, w + 0.05)`` (recovery is slower than decay, so a
  detector must earn trust back with many confirmed detections).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from watchfloor.core.decoding import MAX_STR, InvalidEvent, load_object, parse_ts
from watchfloor.core.entity_table import EntityTable

ACTIONS = frozenset({"ack", "escalate", "close"})
VERDICTS = frozenset({"true_positive", "false_positive"})
MAX_FEEDBACK_BYTES = 16_384

FP_DECAY = 0.8
TP_RECOVERY = 0.05
WEIGHT_FLOOR = 0.2


def parse_feedback(raw: bytes | None) -> dict[str, Any]:
    """Decode one feedback message or raise InvalidEvent (codes as in ``decoding``).

    >>> parse_feedback(b'{"alert_id":"wf-1","agency":"cert","action":"ack","ts":1700000000000}')
    {'alert_id': 'wf-1', 'agency': 'cert', 'action': 'ack', 'verdict': None, 'ts': 1700000000.0}
    >>> parse_feedback(b'{"alert_id":"wf-1","agency":"cert","action":"close","ts":1}')
    Traceback (most recent call last):
    ...
    watchfloor.core.decoding.InvalidEvent: missing_field: 'verdict' is required for 'close'
    """
    msg = load_object(raw, MAX_FEEDBACK_BYTES)
    out: dict[str, Any] = {}
    for name in ("alert_id", "agency", "action"):
        if name not in msg:
            raise InvalidEvent("missing_field", f"required field {name!r} is missing")
        v = msg[name]
        if type(v) is not str:
            raise InvalidEvent("wrong_type", f"{name!r} must be a string, got {type(v).__name__}")
        if not v or len(v) > MAX_STR:
            raise InvalidEvent("bad_value", f"{name!r} must be 1..{MAX_STR} characters")
        out[name] = v
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


class _Pending:
    __slots__ = ("acked", "detectors", "judged", "published", "severity")

    def __init__(self, published: float, severity: str, detectors: tuple[str, ...]) -> None:
        self.published = published
        self.severity = severity
        self.detectors = detectors
        self.acked = False
        self.judged = False

    def __getstate__(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class ResponseTracker:
    """Publication times per (alert_id, agency), bounded; response latency; weights.

    The latency is measured to the first feedback of any action (an agency that closes
    without acknowledging has responded), from the first publication of the alert to the
    agency; it uses the feedback's ``ts``, clamped to ``now`` (clocks of operations
    centres drift).

    >>> rt = ResponseTracker()
    >>> rt.published("wf-1", "cert", "high", ["port_scan"], 100.0)
    >>> fb = {"alert_id": "wf-1", "agency": "cert", "action": "close",
    ...       "verdict": "false_positive", "ts": 160.0}
    >>> rt.feedback(fb, now=170.0)
    (60.0, 'high', ('port_scan',))
    >>> rt.weight("port_scan"), rt.feedback(fb, now=171.0)
    (0.8, None)
    """

    def __init__(self, max_pending: int = 200_000, ttl_seconds: float = 7 * 86_400.0) -> None:
        self._pending: EntityTable[_Pending] = EntityTable(max_pending, ttl_seconds)
        self._weights: dict[str, float] = {}
        self.unknown = 0  # feedback for an alert we do not (or no longer) track

    def __len__(self) -> int:
        return len(self._pending)

    def published(
        self, alert_id: str, agency: str, severity: str, detectors: Iterable[str], t: float
    ) -> None:
        """Record a delivery; later versions keep the first time, update the rest."""
        key = alert_id + "\x1f" + agency
        p = self._pending.get(key)
        dets = tuple(sorted(set(detectors)))
        if p is None:
            self._pending.put(key, t, _Pending(t, severity, dets))
        else:
            p.severity = severity
            p.detectors = tuple(sorted(set(p.detectors) | set(dets)))

    def feedback(self, fb: dict[str, Any], now: float) -> tuple[float, str, tuple[str, ...]] | None:
        """Apply one parsed feedback; return (latency s, severity, detectors) on first response."""
        p = self._pending.get(fb["alert_id"] + "\x1f" + fb["agency"])
        if p is None:
            self.unknown += 1
            return None
        verdict = fb.get("verdict")
        if verdict is not None and not p.judged:
            p.judged = True
            for d in p.detectors:
                self._judge(d, verdict)
        if p.acked:
            return None
        p.acked = True
        latency = max(0.0, min(float(fb["ts"]), now) - p.published)
        return latency, p.severity, p.detectors

    def _judge(self, detector: str, verdict: str) -> None:
        w = self._weights.get(detector, 1.0)
        if verdict == "false_positive":
            w = max(WEIGHT_FLOOR, w * FP_DECAY)
        else:
            w = min(1.0, w + TP_RECOVERY)
        self._weights[detector] = round(w, 6)

    def weight(self, detector: str) -> float:
        """Current weight of ``detector`` in [0.2, 1] (1.0 if never judged)."""
        return self._weights.get(detector, 1.0)

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)


def apply_feedback(
    tracker: ResponseTracker, agencies: Container[str], raw: bytes | None, now: float
) -> tuple[dict[str, Any], tuple[float, str, tuple[str, ...]] | None]:
    """Parse one feedback message from a known agency and apply it to ``tracker``.

    Returns the parsed feedback and, on an agency's first response to an alert,
    (latency s, severity, detectors). Raises InvalidEvent if malformed or from an
    agency not in ``agencies``.
    """
    fb = parse_feedback(raw)
    if fb["agency"] not in agencies:
        raise InvalidEvent("bad_value", f"unknown agency {fb['agency'][:64]!r}")
    return fb, tracker.feedback(fb, now)


__all__ = ["ACTIONS", "VERDICTS", "ResponseTracker", "apply_feedback", "parse_feedback"]
