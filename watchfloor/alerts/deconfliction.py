"""Deconfliction: tell agencies working the same entity about each other, and nothing more.

When incidents about one entity are delivered to two or more agencies within
``window_seconds`` (event time), each of them receives a notice naming the other agencies
and their incident references (``alert_id``). A notice carries no content of the other
agencies' alerts (no entity, severity, score, detections) and no content of the agency's
own alert beyond its ``alert_id``: the agency already holds that alert under its own
agreement. Each (agency, other agency, other alert) pair is announced once per window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from watchfloor.alerts.correlation import rfc3339
from watchfloor.core.entity_table import EntityTable

# Per entity and agency, how many announced (other agency, other alert) pairs to remember.
MAX_TOLD = 64


class _Seen:
    """Per entity: agency -> (alert_id, event time); agency -> pairs already announced."""

    __slots__ = ("agencies", "told")

    def __init__(self) -> None:
        self.agencies: dict[str, tuple[str, float]] = {}
        self.told: dict[str, dict[tuple[str, str], None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"agencies": self.agencies, "told": self.told}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.agencies = state["agencies"]
        self.told = state["told"]


class Deconflictor:
    """Bounded by ``max_entities`` (least recently seen evicted, idle rows expire).

    >>> d = Deconflictor(window_seconds=3600)
    >>> alert = {"alert_id": "wf-1", "entities": [{"type": "ip", "id": "10.0.0.1"}]}
    >>> d.observe(alert, ["cert"], 100.0)
    []
    >>> other = {"alert_id": "wf-2", "entities": [{"type": "ip", "id": "10.0.0.1"}]}
    >>> for n in d.observe(other, ["fiu"], 200.0):
    ...     print(n["agency"], n["alert_id"], n["others"])
    cert wf-1 [{'agency': 'fiu', 'alert_id': 'wf-2'}]
    fiu wf-2 [{'agency': 'cert', 'alert_id': 'wf-1'}]
    >>> d.observe(other, ["fiu"], 300.0)  # already announced
    []
    """

    def __init__(self, window_seconds: float = 3600.0, max_entities: int = 100_000) -> None:
        self.window = float(window_seconds)
        self._seen: EntityTable[_Seen] = EntityTable(max_entities, self.window)
        self.notices = 0

    def __len__(self) -> int:
        return len(self._seen)

    def observe(
        self, alert: Mapping[str, Any], agencies: Iterable[str], t: float
    ) -> list[dict[str, Any]]:
        """Record that ``alert`` went to ``agencies`` at event time ``t``; return notices.

        Each notice has ``kind`` "deconfliction", ``agency`` (the recipient), ``alert_id``
        (the recipient's own incident), ``others`` ([{agency, alert_id}], sorted) and
        ``created_at``; the caller sets ``agreement`` and publishes it to the agency.
        """
        agencies = list(agencies)
        if not agencies:
            return []
        aid = alert["alert_id"]
        # An exercise's alerts deconflict among themselves only, never with real ones.
        ns = f"@{alert['exercise']}" if alert.get("exercise") else ""
        # recipient -> other agency -> other alert_id, for pairs not announced yet
        new: dict[str, set[tuple[str, str]]] = {}
        for ent in alert.get("entities") or ():
            key = f"{ent.get('type')}{ns}:{ent.get('id')}"
            seen = self._seen.setdefault(key, t, _Seen)
            for a in agencies:
                seen.agencies[a] = (aid, t)
            live = {
                a: ref
                for a, (ref, ts) in seen.agencies.items()
                if abs(t - ts) <= self.window
            }
            if len(live) < 2:
                continue
            for a in live:
                told = seen.told.setdefault(a, {})
                for b, bref in live.items():
                    if b == a or (b, bref) in told:
                        continue
                    if len(told) >= MAX_TOLD:
                        del told[next(iter(told))]
                    told[(b, bref)] = None
                    new.setdefault(a, set()).add((b, bref))
        notices = []
        created = rfc3339(t)
        for a, pairs in sorted(new.items()):  # deterministic output order
            own = self._own_ref(alert, a, aid, ns)
            others = [{"agency": b, "alert_id": r} for b, r in sorted(pairs)]
            nid = hashlib.sha256(
                repr((a, own, sorted(pairs))).encode()
            ).hexdigest()[:24]
            notices.append(
                {
                    "kind": "deconfliction",
                    "notice_id": "dc-" + nid,
                    "alert_id": own,
                    "agency": a,
                    "created_at": created,
                    "others": others,
                    **({"exercise": alert["exercise"]} if ns else {}),
                }
            )
        self.notices += len(notices)
        return notices

    def _own_ref(self, alert: Mapping[str, Any], agency: str, aid: str, ns: str = "") -> str:
        # The recipient's own incident about the entity: this alert if it received it,
        # else the one recorded for it (its earlier incident about the same entity).
        for ent in alert.get("entities") or ():
            seen = self._seen.get(f"{ent.get('type')}{ns}:{ent.get('id')}")
            if seen is not None and agency in seen.agencies:
                return seen.agencies[agency][0]
        return aid


__all__ = ["Deconflictor"]
