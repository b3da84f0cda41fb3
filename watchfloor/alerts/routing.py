"""Decide which agencies receive an alert and build each one's view.

An agency receives an alert when all of these hold:

* one of the alert's ``domains`` is in the agency's ``domains``;
* the alert's severity is at least the agency's ``min_severity``;
* if the agency lists ``detectors``: a detection in the alert comes from one of them;
* if the agency lists ``jurisdictions``: a detection in the alert has one of them.

Detector and jurisdiction rules look at the detections the alert carries (the most recent
ones of the incident; see ``correlation.MAX_DETECTIONS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchfloor.alerts.agreements import AgreementPlan, check_key
from watchfloor.config import AgencySpec
from watchfloor.core.alert_schema import SEVERITY_RANK


@dataclass(frozen=True, slots=True)
class Delivery:
    """One agency's copy of an alert: publish ``value`` on ``topic``; audit the rest."""

    agency: str
    topic: str
    agreement: str
    value: dict[str, Any]
    shared: tuple[str, ...]
    pseudonymised: tuple[str, ...]
    redacted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Route:
    spec: AgencySpec
    plan: AgreementPlan
    min_rank: int


class Router:
    """Route full alerts to agencies, each under its precompiled agreement.

    >>> from watchfloor.config import Agreement
    >>> a = AgencySpec("fiu", "alerts.fiu", "", frozenset({"financial"}), "high",
    ...                Agreement("FIU-1", {"severity": "full"}))
    >>> r = Router([a], b"k" * 32)
    >>> alert = {"alert_id": "wf-1", "version": 1, "severity": "high",
    ...          "domains": ["financial"], "detections": []}
    >>> [(d.agency, d.topic, d.value["severity"]) for d in r.route(alert)]
    [('fiu', 'alerts.fiu', 'high')]
    >>> r.route({**alert, "severity": "medium"})
    []
    """

    __slots__ = ("_routes",)

    def __init__(self, agencies: Sequence[AgencySpec], key: bytes) -> None:
        key = check_key(key)
        self._routes = tuple(
            _Route(a, AgreementPlan(a, key), SEVERITY_RANK[a.min_severity]) for a in agencies
        )

    def __repr__(self) -> str:
        return f"Router(agencies={[r.spec.name for r in self._routes]!r})"

    def __reduce__(self) -> Any:
        raise TypeError("Router holds key material and cannot be pickled")

    @property
    def agencies(self) -> tuple[AgencySpec, ...]:
        return tuple(r.spec for r in self._routes)

    def plan(self, agency: str) -> AgreementPlan:
        for r in self._routes:
            if r.spec.name == agency:
                return r.plan
        raise KeyError(agency)

    def recipients(self, alert: Mapping[str, Any]) -> list[AgencySpec]:
        """The agencies that receive ``alert`` (no views built)."""
        return [r.spec for r in self._match(alert)]

    def route(self, alert: Mapping[str, Any]) -> list[Delivery]:
        """One :class:`Delivery` per receiving agency, in configuration order."""
        out = []
        for r in self._match(alert):
            s = r.plan.apply(alert)
            out.append(
                Delivery(
                    r.spec.name, r.spec.topic, r.plan.agreement, s.view,
                    s.shared, s.pseudonymised, s.redacted,
                )
            )
        return out

    def _match(self, alert: Mapping[str, Any]) -> list[_Route]:
        rank = SEVERITY_RANK.get(alert.get("severity"), -1)  # type: ignore[arg-type]
        domains = alert.get("domains") or ()
        detections = alert.get("detections") or ()
        detectors: set[Any] | None = None
        jurisdictions: set[Any] | None = None
        out = []
        for r in self._routes:
            spec = r.spec
            if rank < r.min_rank or spec.domains.isdisjoint(domains):
                continue
            if spec.detectors is not None:
                if detectors is None:
                    detectors = {d.get("detector") for d in detections}
                if spec.detectors.isdisjoint(detectors):
                    continue
            if spec.jurisdictions is not None:
                if jurisdictions is None:
                    jurisdictions = {d.get("jurisdiction") for d in detections}
                if spec.jurisdictions.isdisjoint(jurisdictions):
                    continue
            out.append(r)
        return out


__all__ = ["Delivery", "Router"]
