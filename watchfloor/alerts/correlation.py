"""Correlate detections into incidents: one alert per incident, versioned as it grows.

Plain Python, no Faust. The lead's agent calls :meth:`Correlator.add` for each detection
read from the detections topic (keyed by entity, so one entity always reaches the same
worker) and publishes what it returns. The whole :class:`Correlator` pickles, so its
state can be checkpointed and restored after a crash.
"""

from __future__ import annotations

import hmac
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from watchfloor.config import CorrelationSpec
from watchfloor.core.decoding import InvalidEvent, rfc3339
from watchfloor.core.entity_table import EntityTable

# Per-incident bounds. A long campaign (beaconing for days) must not grow an incident
# without limit; the alert carries the most recent detections and counts the others.
MAX_DETECTIONS = 50
MAX_ENTITIES = 64
MAX_INCIDENT_LINKS = 64
# A hub entity (a shared proxy IP, a payroll account) links to many others; keeping only
# its most recent neighbours bounds both memory and how far one hop can reach.
MAX_NEIGHBOURS = 16

# Longest detection reason kept in an incident (the engine already cuts reasons; this
# bounds detections written by an older worker too).
MAX_REASON = 1000

_SEP = "\x1f"  # cannot occur in a JSON-decoded id without being escaped by the sender


def severity_for(score: float, n_domains: int) -> str:
    """Severity of an incident from its score and how many domains corroborate it.

    Rule (first match wins):

    * ``critical``: score >= 0.97, or detections from 3 or more domains;
    * ``high``: score >= 0.9, or detections from 2 domains;
    * ``medium``: score >= 0.7;
    * ``low``: otherwise (e.g. detectors whose weight feedback has lowered).

    Several domains agreeing on one entity (a flagged IP that is also a mule account's
    login, whose owner crosses a border) is strong evidence whatever the single scores.

    >>> severity_for(0.9, 1), severity_for(0.97, 1), severity_for(0.5, 3)
    ('high', 'critical', 'critical')
    >>> severity_for(0.6, 2), severity_for(0.75, 1), severity_for(0.5, 1)
    ('high', 'medium', 'low')
    """
    if score >= 0.97 or n_domains >= 3:
        return "critical"
    if score >= 0.9 or n_domains >= 2:
        return "high"
    if score >= 0.7:
        return "medium"
    return "low"


class Incident:
    """Mutable state of one open incident (internal to :class:`Correlator`)."""

    __slots__ = (
        "alert_id",
        "best",
        "created_at",
        "detections",
        "domains",
        "entities",
        "exercise",
        "first",
        "last",
        "links",
        "omitted",
        "updated_at",
        "version",
    )

    def __init__(self, alert_id: str, t: float, max_detections: int) -> None:
        self.alert_id = alert_id
        self.exercise: str | None = None  # the exercise an injected incident belongs to
        self.version = 0
        self.first = t
        self.last = t
        self.created_at = rfc3339(t)
        self.updated_at = self.created_at
        self.detections: deque[dict[str, Any]] = deque(maxlen=max_detections)
        self.omitted = 0
        self.entities: dict[str, dict[str, str]] = {}
        self.links: dict[str, dict[str, Any]] = {}
        # detector -> highest calibrated score seen; repeats of one detector are not
        # independent evidence, so the noisy-OR takes one term per detector.
        self.best: dict[str, float] = {}
        self.domains: dict[str, None] = {}  # insertion-ordered set

    def __getstate__(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class Correlator:
    """Join detections about one entity (or entities linked one hop) into incidents.

    Rules:

    * A detection joins the open incident of its entity (``type:id``) when its event
      time is within ``window_seconds`` of that incident's detections (a session window:
      the incident stays open while detections keep coming). Otherwise it joins the most
      recently updated open incident of an entity linked to it one hop (links come from
      detections' ``links``: an account used from an IP, a person carrying a document),
      else it opens a new incident. Incidents are never merged, so an ``alert_id`` once
      published stays valid.
    * ``alert_id`` is a keyed hash of the first detection's entity, event id and detector:
      replaying the input after a crash yields the same ids.
    * A repeat of the same detector on the same entity within ``cooldown_seconds`` (or at
      the same event time: a replayed duplicate) is suppressed: ``add`` returns None and
      ``suppressed`` counts it. Every other detection yields the alert with ``version``
      incremented and ``updated_at`` set.
    * Score: noisy-OR over detectors of each detector's best score times its feedback
      weight (``weights``, default 1), plus ``multi_domain_boost`` per domain beyond the
      first, capped at 1. Severity: :func:`severity_for`.
    * Event time is trusted only as far as the broker's clock allows. ``watermark`` is
      the latest event time seen, each clamped to the detection's broker ``arrival`` plus
      ``max_future_seconds``; the tables' clocks (expiry, cooldowns) never run ahead of
      it, so one detection dated 2099 cannot expire every open incident. An entity keeps
      pointing at its most recently active incident: a detection dated far in the past
      opens an incident of its own but cannot take over the entity's current one, and
      cannot reset a cooldown.
    * Bounded: ``max_incidents`` open incidents and as many entity-to-incident rows,
      ``max_links`` linked entities, cooldown rows; least recently seen evicted first,
      idle rows expire after the window. Per incident: :data:`MAX_DETECTIONS` most recent
      detections (``detections_omitted`` counts the rest), :data:`MAX_ENTITIES`,
      :data:`MAX_INCIDENT_LINKS`.

    The returned alert is the full, unredacted incident (never share it as is: see
    ``agreements``). It shares its inner dicts with the correlator's state: treat it as
    read-only. Besides the contract fields it carries ``detections_omitted`` and each
    detection's ``jurisdiction`` (for routing); default-deny agreements remove both.

    >>> c = Correlator(CorrelationSpec())
    >>> d = {"detector": "port_scan", "domain": "network", "event_id": "e1", "score": 0.95,
    ...      "event_time": 1700000000.0, "entity": {"type": "ip", "id": "10.0.0.1"},
    ...      "links": [{"type": "account", "id": "A1", "via": "account_id"}]}
    >>> a = c.add(d)
    >>> a["version"], a["severity"], a["created_at"]
    (1, 'high', '2023-11-14T22:13:20.000Z')
    >>> c.add({**d, "event_id": "e2", "event_time": 1700000060.0}) is None  # cooldown
    True
    >>> b = c.add({**d, "detector": "structuring", "domain": "financial", "event_id": "f1",
    ...            "entity": {"type": "account", "id": "A1"}, "links": []})
    >>> b["alert_id"] == a["alert_id"], b["version"], b["domains"], b["severity"]
    (True, 2, ['financial', 'network'], 'critical')
    """

    # Class-level defaults: correlators checkpointed before these existed restore with them.
    watermark = float("-inf")
    max_future = 300.0

    def __init__(
        self,
        spec: CorrelationSpec,
        *,
        id_key: bytes = b"",
        max_detections: int = MAX_DETECTIONS,
        max_future_seconds: float = 300.0,
    ) -> None:
        self.spec = spec
        self.max_future = float(max_future_seconds)
        self.watermark = float("-inf")
        self.window = float(spec.window_seconds)
        self.cooldown = float(spec.cooldown_seconds)
        self.boost = float(spec.multi_domain_boost)
        self.max_detections = max_detections
        # A derived sub-key, never the master key: it only makes alert ids unguessable
        # from an entity id (ids are envelope fields every agency sees).
        self._id_key = bytes(id_key)
        self.weights: dict[str, float] = {}
        self._incidents: EntityTable[Incident] = EntityTable(spec.max_incidents, self.window)
        self._by_entity: EntityTable[str] = EntityTable(spec.max_incidents, self.window)
        self._links: EntityTable[list[str]] = EntityTable(spec.max_links, self.window)
        self._cool: EntityTable[float] = EntityTable(
            spec.max_incidents, max(self.cooldown, 1.0)
        )
        self.detections = 0
        self.suppressed = 0
        self.incidents_opened = 0
        self.incidents_updated = 0
        self.joined_via_link = 0

    def __repr__(self) -> str:  # the id key stays out of logs
        return (
            f"Correlator(open_incidents={len(self._incidents)}, "
            f"links={len(self._links)}, opened={self.incidents_opened})"
        )

    @property
    def counters(self) -> dict[str, int]:
        """Monotonic counters for metrics."""
        return {
            "detections": self.detections,
            "suppressed": self.suppressed,
            "incidents_opened": self.incidents_opened,
            "incidents_updated": self.incidents_updated,
            "joined_via_link": self.joined_via_link,
            "incidents_evicted": self._incidents.evicted,
            "incidents_expired": self._incidents.expired,
            "links_evicted": self._links.evicted,
        }

    @property
    def open_incidents(self) -> int:
        return len(self._incidents)

    @property
    def link_count(self) -> int:
        return len(self._links)

    def sizes(self) -> dict[str, int]:
        """Current row counts of every bounded table."""
        return {
            "incidents": len(self._incidents),
            "entities": len(self._by_entity),
            "links": len(self._links),
            "cooldowns": len(self._cool),
        }

    # -- the hot path -------------------------------------------------------------------

    def add(self, detection: Mapping[str, Any]) -> dict[str, Any] | None:
        """Correlate one detection; return the incident's alert, or None if suppressed.

        Raises :class:`~watchfloor.core.decoding.InvalidEvent` for a detection that
        lacks the fields correlation needs (the caller dead-letters it).
        """
        try:
            detector = detection["detector"]
            entity = detection["entity"]
            etype = entity["type"]
            eid = entity["id"]
            t = detection["event_time"]
            score = detection["score"]
            domain = detection["domain"]
            event_id = detection["event_id"]
        except (KeyError, TypeError) as exc:
            raise InvalidEvent("missing_field", f"detection lacks {exc}") from None
        if (
            type(etype) is not str
            or type(eid) is not str
            or type(detector) is not str
            or type(domain) is not str
            or type(event_id) is not str
        ):
            raise InvalidEvent(
                "wrong_type", "detector, domain, event_id and entity type/id must be strings"
            )
        if type(t) not in (float, int) or not math.isfinite(t):
            raise InvalidEvent("wrong_type", "event_time must be a finite number")
        if type(score) not in (float, int) or not 0.0 <= score <= 1.0:
            raise InvalidEvent("bad_value", "score must be a number in [0, 1]")
        t = float(t)
        arrival = detection.get("arrival")
        if type(arrival) in (float, int) and arrival > 0 and t > arrival + self.max_future:
            # Kept (nothing is lost), but its date cannot move any clock past arrival + skew.
            t = float(arrival) + self.max_future
        if t > self.watermark:
            self.watermark = t
        exercise = detection.get("exercise")
        if exercise is not None and (type(exercise) is not str or not exercise):
            raise InvalidEvent("wrong_type", "exercise must be a non-empty string")
        self.detections += 1
        # An exercise's entities live in a namespace of their own: an injected detection
        # never joins (or is joined by) a real incident, even on a real entity's id.
        ns = "" if exercise is None else "@" + exercise
        ekey = etype + ns + ":" + eid

        # Links are learned from every detection, suppressed ones included: they are facts
        # about entities, independent of whether this detection is news.
        links = detection.get("links") or ()
        if links:
            self._learn_links(ekey, links, t, ns)

        cool_key = ekey + _SEP + detector
        last = self._cool.get(cool_key)
        if last is not None and (abs(t - last) < self.cooldown or t == last):
            self.suppressed += 1
            # Still activity on the incident: keep it (and the entity row) from expiring.
            aid = self._by_entity.get(ekey)
            if aid is not None:
                inc = self._incidents.get(aid)
                if inc is not None and self._in_window(inc, t):
                    self._touch(inc, ekey, t)
            return None
        if last is None or t > last:  # an old detection must not reset a cooldown
            self._cool.put(cool_key, t, t)

        inc = self._find(ekey, t)
        if inc is None:
            aid = self._new_id(ekey, str(event_id), detector)
            inc = Incident(aid, t, self.max_detections)
            inc.exercise = exercise
            if exercise is None:  # exercises stay out of the real statistics
                self.incidents_opened += 1
        else:
            self.incidents_updated += 1
        self._touch(inc, ekey, t)

        if t < inc.first:
            inc.first = t
            inc.created_at = rfc3339(t)
        # The latest event time in the incident: a late, older detection adds a version
        # but does not move updated_at back.
        inc.updated_at = rfc3339(inc.last)
        inc.version += 1
        ent = {"type": etype, "id": eid}
        if len(inc.detections) == inc.detections.maxlen:
            inc.omitted += 1
        inc.detections.append(
            {
                "detector": detector,
                "domain": domain,
                "event_id": event_id,
                "score": score,
                # Only scalars of the expected types enter the incident: a nested value
                # stored here would poison every later version of the alert.
                "raw": _scalar(detection.get("raw"), (float, int)),
                "reason": _cap(_scalar(detection.get("reason"), (str,))),
                "ts": _scalar(detection.get("ts"), (str, int)),
                "entity": ent,
                "jurisdiction": _scalar(detection.get("jurisdiction"), (str,)),
            }
        )
        if ekey not in inc.entities and len(inc.entities) < MAX_ENTITIES:
            inc.entities[ekey] = ent
        for link in links:
            if len(inc.links) >= MAX_INCIDENT_LINKS:
                break
            lk = _link_key(link)
            if lk is None:
                continue
            k = ekey + _SEP + lk + _SEP + str(link.get("via", ""))
            if k not in inc.links:
                inc.links[k] = {
                    "a": ent,
                    "b": {"type": link["type"], "id": link["id"]},
                    "via": link.get("via"),
                }
        if score > inc.best.get(detector, -1.0):
            inc.best[detector] = score
        inc.domains[domain] = None
        return self._alert(inc)

    # -- internals ----------------------------------------------------------------------

    def _in_window(self, inc: Incident, t: float) -> bool:
        return inc.first - self.window <= t <= inc.last + self.window

    def _touch(self, inc: Incident, ekey: str, t: float) -> None:
        if t > inc.last:
            inc.last = t
        self._incidents.put(inc.alert_id, t, inc)
        # The entity points at its most recently active incident: an incident opened by a
        # detection dated long ago must not take the entity over from a current one.
        current = self._by_entity.get(ekey)
        if current is not None and current != inc.alert_id:
            other = self._incidents.get(current)
            if other is not None and other.last > inc.last:
                return
        self._by_entity.put(ekey, t, inc.alert_id)

    def _find(self, ekey: str, t: float) -> Incident | None:
        inc = self._live(ekey, t)
        if inc is not None:
            return inc
        best: Incident | None = None
        connectors: list[str] = []
        for other in self._links.get(ekey) or ():
            inc = self._live(other, t)
            if inc is None:
                connectors.append(other)
            elif best is None or inc.last > best.last:
                best = inc
        if best is None:
            # An entity that only appears in links (a person, a device: no detector is
            # about them) has no incident of its own; it connects the detections that
            # name it: document -> person -> account.
            for other in connectors:
                for far in self._links.get(other) or ():
                    if far == ekey:
                        continue
                    inc = self._live(far, t)
                    if inc is not None and (best is None or inc.last > best.last):
                        best = inc
        if best is not None:
            self.joined_via_link += 1
        return best

    def _live(self, ekey: str, t: float) -> Incident | None:
        """The open incident of ``ekey`` whose window contains ``t``, if any."""
        aid = self._by_entity.get(ekey)
        if aid is None:
            return None
        inc = self._incidents.get(aid)
        return inc if inc is not None and self._in_window(inc, t) else None

    def _learn_links(self, ekey: str, links: Any, t: float, ns: str = "") -> None:
        table = self._links
        for link in links:
            lk = _link_key(link, ns)
            if lk is None or lk == ekey:
                continue
            for a, b in ((ekey, lk), (lk, ekey)):
                nbrs = table.setdefault(a, t, list)
                if b in nbrs:
                    nbrs.remove(b)
                elif len(nbrs) >= MAX_NEIGHBOURS:
                    del nbrs[0]
                nbrs.append(b)

    def _new_id(self, ekey: str, event_id: str, detector: str) -> str:
        material = (ekey + _SEP + event_id + _SEP + detector).encode()
        return "wf-" + hmac.digest(self._id_key, material, "sha256").hex()[:24]

    def _alert(self, inc: Incident) -> dict[str, Any]:
        weights = self.weights
        miss = 1.0
        for detector, s in inc.best.items():
            w = weights.get(detector, 1.0)
            miss *= 1.0 - min(1.0, s * w)
        n_domains = len(inc.domains)
        score = min(1.0, 1.0 - miss + self.boost * (n_domains - 1))
        score = round(score, 6)
        return {
            "alert_id": inc.alert_id,
            "version": inc.version,
            "created_at": inc.created_at,
            "updated_at": inc.updated_at,
            "severity": severity_for(score, n_domains),
            "score": score,
            "domains": sorted(inc.domains),
            "entities": list(inc.entities.values()),
            "detections": list(inc.detections),
            "detections_omitted": inc.omitted,
            "links": list(inc.links.values()),
            "agency": None,
            "agreement": None,
            "kind": "alert",
            # (Incidents restored from a checkpoint older than exercises have no slot.)
            **({"exercise": ex} if (ex := getattr(inc, "exercise", None)) else {}),
        }


def _scalar(value: Any, types: tuple[type, ...]) -> Any:
    return value if type(value) in types else None


def _cap(reason: Any) -> Any:
    if type(reason) is str and len(reason) > MAX_REASON:
        return f"{reason[:MAX_REASON]}…(+{len(reason) - MAX_REASON} more)"
    return reason


def _link_key(link: Any, ns: str = "") -> str | None:
    # Links arrive over Kafka: skip a malformed one rather than fail the detection.
    if type(link) is not dict:
        return None
    ltype, lid = link.get("type"), link.get("id")
    if type(ltype) is not str or type(lid) is not str or not lid:
        return None
    return ltype + ns + ":" + lid


__all__ = ["MAX_DETECTIONS", "Correlator", "Incident", "rfc3339", "severity_for"]
