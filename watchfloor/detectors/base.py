"""The detector contract.

A detector is one small class in the style of river's ``AnomalyDetector``: constructor
parameters with immutable defaults, ``learn_one`` to update state and ``score_one`` to
return a :class:`Score` in [0, 1] with a short reason. Deciding (the threshold) is not the
detector's job: ``topics.yaml`` sets a threshold per detector and the engine applies it.

Events are plain dicts as decoded by :func:`watchfloor.core.decoding.decode`; ``_ts``
holds the event time in epoch seconds.
"""

from __future__ import annotations

import abc
import copy
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple


class Score(NamedTuple):
    """A detector's verdict on one event.

    ``score`` is calibrated to [0, 1] so one threshold means the same for every detector;
    ``raw`` is the uncalibrated value that caused it (a z-score, a count, a distance),
    ``reason`` a short human-readable explanation. ``entities`` names other entities of
    the detection's type that the verdict is about (the senders of a fan-in, the ring of
    a cycle): a detection links them, so the alert names them and correlation joins
    their incidents.
    """

    score: float
    reason: str = ""
    raw: float = 0.0
    entities: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # Most verdicts name no other entity: keep their repr as it was.
        named = f", entities={self.entities!r}" if self.entities else ""
        return f"Score(score={self.score!r}, reason={self.reason!r}, raw={self.raw!r}{named})"


# Shared instance for the common case, so normal events allocate nothing.
NORMAL = Score(0.0, "", 0.0)


# An attribute a detector from an older release does not have (see _get_params).
_MISSING = object()


class Detector(abc.ABC):
    """Base class for every detector, built-in or plugin.

    Subclasses set the class attributes and implement ``learn_one`` and ``score_one``.
    ``score_one`` must not change state; the engine calls ``score_one`` then
    ``learn_one`` for each event (prequential: an event is judged before it is learnt).
    """

    #: Domains whose events this detector understands ("network", "financial", "border").
    domains: ClassVar[tuple[str, ...]] = ()
    #: The entity a detection is about: (entity type, event field holding its id),
    #: e.g. ("ip", "src_ip"). Entity types: ip, account, document, person, device.
    entity: ClassVar[tuple[str, str]] = ("", "")
    #: The kind of threat it finds, used by routing rules and evaluation.
    kind: ClassVar[str] = ""
    #: The event field its state is keyed by: every event with the same value of it must
    #: reach the same instance. None: its entity field. ``"*"``: the whole domain (a graph
    #: of payments, say). Input is partitioned by the domain's entity field (``src_ip``,
    #: ``account_id``, ``document_id``); a detector keyed by anything else runs in the
    #: worker's second, re-keyed stage (docs/detectors.md, "Where a detector runs").
    keyed_by: ClassVar[str | None] = None

    @abc.abstractmethod
    def learn_one(self, event: Mapping[str, Any]) -> None:
        """Update state with one event."""

    @abc.abstractmethod
    def score_one(self, event: Mapping[str, Any]) -> Score:
        """Score one event without changing state."""

    # -- river-style helpers -------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        """Constructor parameters and their current values (river's ``_get_params``)."""
        sig = inspect.signature(type(self).__init__)
        # A detector restored from an older release may lack a newer parameter: it then
        # differs from the configured one (and starts fresh) instead of raising.
        return {
            name: getattr(self, name, _MISSING)
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def clone(self, **new_params: Any) -> Detector:
        """A fresh, untrained copy with the same (or overridden) parameters."""
        params = {k: copy.deepcopy(v) for k, v in self._get_params().items()}
        params.update(new_params)
        return type(self)(**params)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        """Parameter sets the conformance suite instantiates; override for small tests."""
        yield {}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Planted scenario for the conformance suite: (normal events, anomalous events),
        each in time order; normal ones are fed first and must all score < 0.9, and at
        least one anomalous one must score >= 0.9."""
        raise NotImplementedError(f"{cls.__name__} defines no planted scenario")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"


class ReusesScore:
    """Mixin for a detector whose ``learn_one`` reuses what ``score_one`` just computed
    for the same event object (the engine scores, then learns, each event).

    The memo is ``self._last``; it is a cache, not state, so it is left out of pickles
    (checkpoints, and the conformance suite's check that ``score_one`` is pure) and
    reads as None after a restore.
    """

    _last: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_last", None)
        return state
