"""The detector conformance suite (in the spirit of ``river.checks``).

Every detector, built-in or plugin, must pass :func:`check_detector`. Each check is a
function ``check(cls, seed)`` raising ``AssertionError`` with a message saying what to
fix; :func:`yield_checks` lists them so a test can parametrize over them::

    import pytest
    from watchfloor.detectors.checks import yield_checks
    from my_plugin import MyDetector

    @pytest.mark.parametrize("check", yield_checks(MyDetector), ids=lambda c: c.__name__)
    def test_conformance(check):
        check(MyDetector, seed=0)

The separation check needs the detector's own planted scenario: a classmethod
``_conformance_stream(cls, seed) -> (normal_events, anomalous_events)`` returning two
time-ordered lists of decoded events. Normal events are fed first (include enough
warm-up traffic), then the anomalous ones; every normal event must score below the
threshold and at least one anomalous event at or above it.
"""

from __future__ import annotations

import inspect
import math
import pickle
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from watchfloor.core.entity_table import EntityTable
from watchfloor.core.events import DOMAINS
from watchfloor.detectors.base import Detector, Score
from watchfloor.detectors.testkit import (
    border_traffic,
    feed,
    financial_traffic,
    network_traffic,
)

__all__ = [
    "ENTITY_TYPES",
    "Check",
    "check_bounded_state",
    "check_class_attributes",
    "check_clone",
    "check_detector",
    "check_deterministic",
    "check_docstring",
    "check_immutable_defaults",
    "check_pickle",
    "check_score_is_pure",
    "check_score_range",
    "check_separates",
    "conformance_stream",
    "yield_checks",
]

ENTITY_TYPES: tuple[str, ...] = ("ip", "account", "document", "person", "device")

Check = Callable[[type[Detector], int], None]
Events = list[dict[str, Any]]


def _instances(cls: type[Detector]) -> Iterator[Detector]:
    for params in cls._unit_test_params():
        yield cls(**params)


def _background(cls: type[Detector], seed: int) -> Events:
    domain = cls.domains[0] if cls.domains else "network"
    gen = {"network": network_traffic, "financial": financial_traffic, "border": border_traffic}
    return gen.get(domain, network_traffic)(seed, n=1_500)


def conformance_stream(cls: type[Detector], seed: int) -> tuple[Events, Events]:
    """The detector's planted scenario (``_conformance_stream``), or raise explaining it."""
    try:
        normal, anomalous = cls._conformance_stream(seed)
    except NotImplementedError:
        raise AssertionError(
            f"{cls.__name__} defines no planted scenario: add a classmethod "
            f"_conformance_stream(cls, seed) -> (normal_events, anomalous_events)"
        ) from None
    return list(normal), list(anomalous)


def _stream(cls: type[Detector], seed: int) -> Events:
    """Events for the state checks: the planted scenario if any, else background traffic."""
    try:
        normal, anomalous = conformance_stream(cls, seed)
    except AssertionError:
        return _background(cls, seed)
    return normal + anomalous


def _fmt(event: Mapping[str, Any]) -> str:
    return f"event {event.get('event_id')!r} at _ts={event.get('_ts')}"


# -- static checks ---------------------------------------------------------------------


def check_class_attributes(cls: type[Detector], seed: int = 0) -> None:
    """``domains``, ``entity`` and ``kind`` are set and valid."""
    assert cls.domains and set(cls.domains) <= set(DOMAINS), (
        f"{cls.__name__}.domains must be a non-empty tuple from {DOMAINS}, got {cls.domains!r}"
    )
    assert isinstance(cls.domains, tuple), f"{cls.__name__}.domains must be a tuple"
    etype, efield = cls.entity
    assert etype in ENTITY_TYPES and efield, (
        f"{cls.__name__}.entity must be (one of {ENTITY_TYPES}, event field), "
        f"got {cls.entity!r}"
    )
    assert isinstance(cls.kind, str) and cls.kind, f"{cls.__name__}.kind must be a non-empty str"


_SECTION = r"^\s*{}\s*\n\s*-{{3,}}\s*$"


def _section(doc: str, name: str) -> str | None:
    m = re.search(_SECTION.format(name), doc, re.MULTILINE)
    if m is None:
        return None
    rest = doc[m.end() :]
    nxt = re.search(r"^\s*\w[\w ]*\s*\n\s*-{3,}\s*$", rest, re.MULTILINE)
    return rest[: nxt.start()] if nxt else rest


def check_docstring(cls: type[Detector], seed: int = 0) -> None:
    """A numpydoc class docstring documenting every parameter, with a runnable example."""
    doc = inspect.getdoc(cls) or ""
    assert doc and cls.__doc__ is not Detector.__doc__, f"{cls.__name__} has no docstring"
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    section = _section(doc, "Parameters")
    if params:
        assert section is not None, (
            f"{cls.__name__}'s docstring has no numpydoc 'Parameters' section"
        )
        # numpydoc allows "name : type" and grouped "a, b : type" entries.
        documented = {
            name.strip()
            for entry in re.findall(r"^(\w+(?:\s*,\s*\w+)*)\s*(?::.*)?$", section, re.MULTILINE)
            for name in entry.split(",")
        }
        missing = [p for p in params if p not in documented]
        assert not missing, f"{cls.__name__}'s docstring does not document parameters {missing}"
    examples = _section(doc, "Examples")
    assert examples is not None and ">>>" in examples, (
        f"{cls.__name__}'s docstring needs an 'Examples' section with a doctest (>>>)"
    )


def check_immutable_defaults(cls: type[Detector], seed: int = 0) -> None:
    """Constructor defaults are immutable (no list, dict or set shared between instances)."""
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.default is inspect.Parameter.empty:
            continue
        try:
            hash(p.default)
        except TypeError:
            raise AssertionError(
                f"{cls.__name__}({name}={p.default!r}): default is mutable; use a tuple, "
                f"frozenset or None"
            ) from None


# -- behavioural checks ----------------------------------------------------------------


def check_clone(cls: type[Detector], seed: int = 0) -> None:
    """``_get_params`` reflects the constructor and ``clone`` gives an untrained twin."""
    events = _stream(cls, seed)[:300]
    for params, det in zip(cls._unit_test_params(), _instances(cls), strict=True):
        got = det._get_params()
        for k, v in params.items():
            assert got[k] == v, f"{cls.__name__}._get_params()[{k!r}] is {got[k]!r}, not {v!r}"
        repr(det)
        fresh = det.clone()
        assert fresh._get_params() == got, f"{cls.__name__}.clone() changed parameters"
        feed(det, events)
        twin = det.clone()
        assert [s.score for s in feed(twin, events)] == [
            s.score for s in feed(fresh, events)
        ], f"{cls.__name__}.clone() of a trained detector is not untrained (state shared?)"


def check_deterministic(cls: type[Detector], seed: int = 0) -> None:
    """Two fresh instances give identical scores on the same stream."""
    events = _stream(cls, seed)
    for params in cls._unit_test_params():
        a, b = feed(cls(**params), events), feed(cls(**params), events)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert x == y, (
                f"{cls.__name__}({params}) is not deterministic: {_fmt(events[i])} scored "
                f"{x} then {y}"
            )


def check_pickle(cls: type[Detector], seed: int = 0) -> None:
    """A pickled and restored detector scores the rest of the stream exactly as the original."""
    events = _stream(cls, seed)
    half = len(events) // 2
    for det in _instances(cls):
        feed(det, events[:half])
        copy = pickle.loads(pickle.dumps(det))
        a, b = feed(det, events[half:]), feed(copy, events[half:])
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert x == y, (
                f"{cls.__name__} lost state in a pickle round trip: {_fmt(events[half + i])} "
                f"scored {x} before, {y} after"
            )


def check_score_is_pure(cls: type[Detector], seed: int = 0) -> None:
    """``score_one`` does not change state (its pickle is byte-identical afterwards)."""
    events = _stream(cls, seed)
    half = len(events) // 2
    for det in _instances(cls):
        feed(det, events[:half])
        for e in events[half : half + 200]:
            before = pickle.dumps(det)
            first = det.score_one(e)
            again = det.score_one(e)
            assert first == again, (
                f"{cls.__name__}.score_one gave {first} then {again} for {_fmt(e)}"
            )
            assert pickle.dumps(det) == before, (
                f"{cls.__name__}.score_one changed the detector's state on {_fmt(e)}"
            )
            det.learn_one(e)


def _check_score(cls: type[Detector], s: Any, event: Mapping[str, Any]) -> None:
    assert isinstance(s, Score), f"{cls.__name__}.score_one returned {type(s).__name__}, not Score"
    assert isinstance(s.score, float | int) and 0.0 <= s.score <= 1.0, (
        f"{cls.__name__} scored {s.score!r} (outside [0, 1]) for {_fmt(event)}"
    )
    assert isinstance(s.reason, str), f"{cls.__name__} gave a non-str reason {s.reason!r}"
    assert isinstance(s.raw, float | int) and math.isfinite(s.raw), (
        f"{cls.__name__} gave a non-finite raw value {s.raw!r} for {_fmt(event)}"
    )


def check_score_range(cls: type[Detector], seed: int = 0) -> None:
    """Every score is a :class:`Score` with ``score`` in [0, 1] and a finite ``raw``."""
    events = _stream(cls, seed)
    for det in _instances(cls):
        for e, s in zip(events, feed(det, events), strict=True):
            _check_score(cls, s, e)
            if s.score >= 0.5:
                assert s.reason, f"{cls.__name__} scored {s.score:.2f} with no reason"


def check_separates(cls: type[Detector], seed: int = 0, threshold: float = 0.9) -> None:
    """The planted scenario: no normal event reaches ``threshold``, an anomalous one does."""
    normal, anomalous = conformance_stream(cls, seed)
    assert normal and anomalous, f"{cls.__name__}._conformance_stream returned an empty list"
    det = cls()
    got_normal = feed(det, normal)
    worst = max(range(len(normal)), key=lambda i: got_normal[i].score)
    assert got_normal[worst].score < threshold, (
        f"{cls.__name__} flagged normal {_fmt(normal[worst])} with "
        f"{got_normal[worst].score:.3f}: {got_normal[worst].reason}"
    )
    got = feed(det, anomalous)
    best = max(got, key=lambda s: s.score)
    assert best.score >= threshold, (
        f"{cls.__name__} missed its planted anomaly: best score {best.score:.3f} < "
        f"{threshold} ({best.reason or 'no reason'})"
    )


def _tables(det: Detector) -> list[tuple[str, EntityTable[Any]]]:
    found = []
    for name, value in vars(det).items():
        if isinstance(value, EntityTable):
            found.append((name, value))
        elif isinstance(value, Mapping | list | tuple):
            values = value.values() if isinstance(value, Mapping) else value
            found.extend((name, v) for v in values if isinstance(v, EntityTable))
    return found


def check_bounded_state(cls: type[Detector], seed: int = 0) -> None:
    """With ``max_entities=50``, 2,000 distinct entities leave every table at most 50 long."""
    sig = inspect.signature(cls.__init__).parameters
    if "max_entities" not in sig:
        return  # no per-entity state (e.g. a global model): nothing to bound
    det = cls(max_entities=50)
    assert _tables(det), (
        f"{cls.__name__} takes max_entities but holds no EntityTable attribute; keep "
        f"per-entity state in watchfloor.core.entity_table.EntityTable"
    )
    etype, field = cls.entity
    base = _stream(cls, seed)
    for i in range(2_000):
        e = dict(base[i % len(base)])
        e["event_id"] = f"bounded-{i}"
        # Keep ids valid for their type: detectors may parse IP addresses.
        e[field] = f"10.99.{i >> 8}.{i & 255}" if etype == "ip" else f"E{i:06d}"
        _check_score(cls, det.score_one(e), e)
        det.learn_one(e)
    for name, table in _tables(det):
        assert len(table) <= 50, (
            f"{cls.__name__}.{name} holds {len(table)} entities with max_entities=50"
        )


_ALL: tuple[Check, ...] = (
    check_class_attributes,
    check_docstring,
    check_immutable_defaults,
    check_clone,
    check_deterministic,
    check_pickle,
    check_score_is_pure,
    check_score_range,
    check_separates,
    check_bounded_state,
)


def yield_checks(cls: type[Detector]) -> Iterator[Check]:
    """Every conformance check, in order (static ones first)."""
    yield from _ALL


def check_detector(cls: type[Detector], seed: int = 0) -> None:
    """Run the whole suite on ``cls``; raise on the first failure."""
    for check in yield_checks(cls):
        check(cls, seed)
