"""Helpers for testing detectors, built-in or plugin.

Import it from a plugin's own tests::

    from watchfloor.detectors.testkit import assert_separates, feed, make_event

Events built here look like decoded events (:func:`watchfloor.core.decoding.decode`):
plain dicts with every required field of their domain and ``_ts`` (event time, epoch
seconds). Generators are seeded and deterministic.

>>> e = make_event("network", dst_port=22, _ts=START + 60)
>>> e["dst_port"], e["_ts"] - START, e["ts"] == int((START + 60) * 1000)
(22, 60.0, True)
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from watchfloor.core.decoding import parse_ts
from watchfloor.core.events import EXAMPLES
from watchfloor.detectors.base import Detector, Score

__all__ = [
    "START",
    "assert_separates",
    "border_traffic",
    "feed",
    "financial_traffic",
    "make_event",
    "merge",
    "network_traffic",
    "scores",
]

#: Default event time of built events: 2026-11-23T00:00:00Z (a midnight, so hour-of-day
#: arithmetic in scenarios is easy to read).
START = 1_795_392_000.0

_ids = itertools.count(1)


def make_event(domain: str, **overrides: Any) -> dict[str, Any]:
    """A decoded event of ``domain`` with realistic defaults, ``overrides`` applied.

    Give the time either as ``_ts`` (epoch seconds, the usual choice) or as ``ts`` (as
    sent: epoch milliseconds or RFC 3339); the other is derived. ``event_id`` is unique
    unless overridden. Set a field to ``None`` to remove it.

    >>> make_event("financial", amount=9500.0, _ts=START)["amount"]
    9500.0
    >>> "channel" in make_event("financial", channel=None)
    False
    """
    if domain not in EXAMPLES:
        raise ValueError(f"unknown domain {domain!r}; expected one of {sorted(EXAMPLES)}")
    event: dict[str, Any] = dict(EXAMPLES[domain])
    event["event_id"] = f"{domain[:3]}-t{next(_ids):08d}"
    if "_ts" in overrides:
        event["ts"] = round(float(overrides["_ts"]) * 1000)
    elif "ts" not in overrides:
        event["ts"] = round(START * 1000)
    for key, value in overrides.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    if "_ts" not in overrides:
        event["_ts"] = parse_ts(event["ts"])
    else:
        event["_ts"] = float(overrides["_ts"])
    return event


def feed(detector: Detector, events: Iterable[Mapping[str, Any]]) -> list[Score]:
    """Score then learn each event (prequential, as the engine does); return the scores."""
    out: list[Score] = []
    for event in events:
        out.append(detector.score_one(event))
        detector.learn_one(event)
    return out


def scores(detector: Detector, events: Iterable[Mapping[str, Any]]) -> list[float]:
    """Like :func:`feed` but only the ``score`` floats."""
    return [s.score for s in feed(detector, events)]


def assert_separates(
    detector: Detector,
    normal_events: Sequence[Mapping[str, Any]],
    anomalous_events: Sequence[Mapping[str, Any]],
    threshold: float = 0.9,
    min_detected: int = 1,
) -> tuple[list[Score], list[Score]]:
    """Feed normal then anomalous events; assert only the anomalous ones reach ``threshold``.

    Every normal event must score below ``threshold`` and at least ``min_detected``
    anomalous events at or above it (an attack is many events; flagging one of them
    detects it). Feed warm-up traffic first, or make it the head of ``normal_events``;
    for interleaved scenarios merge them yourself and use :func:`feed`. Returns both
    score lists so tests can assert more.
    """
    normal = feed(detector, normal_events)
    anomalous = feed(detector, anomalous_events)
    worst = max(normal, key=lambda s: s.score, default=None)
    if worst is not None and worst.score >= threshold:
        i = normal.index(worst)
        raise AssertionError(
            f"{type(detector).__name__} flagged normal event #{i} "
            f"({dict(normal_events[i])!r}) with {worst.score:.3f} >= {threshold}: "
            f"{worst.reason}"
        )
    hits = sum(s.score >= threshold for s in anomalous)
    if hits < min_detected:
        best = max(anomalous, key=lambda s: s.score, default=Score(0.0))
        raise AssertionError(
            f"{type(detector).__name__} flagged {hits} of {len(anomalous)} anomalous events "
            f"(need {min_detected}); best score {best.score:.3f} ({best.reason or 'no reason'})"
        )
    return normal, anomalous


def merge(*streams: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge event streams, each already in time order, into one ordered by ``_ts``."""
    return list(heapq.merge(*streams, key=lambda e: e["_ts"]))


def _times(rng: random.Random, start: float, n: int, rate: float) -> Iterator[float]:
    t = start
    for _ in range(n):
        t += rng.expovariate(rate)
        yield t


def network_traffic(
    seed: int = 0,
    n: int = 5_000,
    start: float = START,
    hosts: int = 40,
    rate: float = 5.0,
) -> list[dict[str, Any]]:
    """Benign flows from ``hosts`` workstations 10.1.0.x: web, DNS, NTP, mail, SSH.

    ``rate`` is flows per second overall, so ``n / rate`` seconds are covered. Sizes are
    log-normal around what each service normally moves; DNS and NTP go to internal
    servers. No threats and no look-alikes: add those per test.
    """
    rng = random.Random(seed)
    out = []
    web = [f"198.51.100.{i}" for i in range(1, 60)]
    for t in _times(rng, start, n, rate):
        src = f"10.1.0.{rng.randrange(hosts) + 10}"
        u = rng.random()
        if u < 0.6:
            dst, port, proto = rng.choice(web), rng.choice((443, 443, 443, 80)), "tcp"
            bo, bi = rng.lognormvariate(7.5, 1.0), rng.lognormvariate(10, 1.5)
            dur = 10 ** rng.uniform(1.5, 3.8)
        elif u < 0.85:
            dst, port, proto = "10.0.0.53", 53, "udp"
            bo, bi, dur = rng.uniform(40, 120), rng.uniform(60, 500), rng.uniform(1, 80)
        elif u < 0.92:
            dst, port, proto = "10.0.0.123", 123, "udp"
            bo, bi, dur = 76, 76, rng.uniform(1, 20)
        elif u < 0.97:
            dst, port, proto = "10.0.0.25", rng.choice((587, 993)), "tcp"
            bo, bi = rng.lognormvariate(8, 1.2), rng.lognormvariate(8.5, 1.2)
            dur = 10 ** rng.uniform(1.5, 3)
        else:
            dst, port, proto = f"10.2.0.{rng.randrange(20)}", 22, "tcp"
            bo, bi = rng.lognormvariate(8, 1), rng.lognormvariate(9, 1)
            dur = 10 ** rng.uniform(3, 5)
        out.append(
            make_event(
                "network",
                _ts=t,
                src_ip=src,
                dst_ip=dst,
                dst_port=port,
                protocol=proto,
                bytes_out=int(bo),
                bytes_in=int(bi),
                duration_ms=round(dur, 3),
            )
        )
    return out


def financial_traffic(
    seed: int = 0, n: int = 2_000, start: float = START, accounts: int = 50, rate: float = 0.05
) -> list[dict[str, Any]]:
    """Benign payments: each account pays a few regular counterparties log-normal amounts."""
    rng = random.Random(seed)
    payees = {a: [f"ACC-P{a:03d}-{j}" for j in range(rng.randint(2, 8))] for a in range(accounts)}
    out = []
    for t in _times(rng, start, n, rate):
        a = rng.randrange(accounts)
        out.append(
            make_event(
                "financial",
                _ts=t,
                account_id=f"ACC-{a:04d}",
                counterparty_id=rng.choice(payees[a]),
                amount=round(min(rng.lognormvariate(4.5, 1.0), 8_000.0), 2),
                country=rng.choice(("NL", "NL", "NL", "DE", "BE", "FR")),
            )
        )
    return out


def border_traffic(
    seed: int = 0,
    n: int = 2_000,
    start: float = START,
    travellers: int = 200,
    rate: float = 0.02,
    points: Sequence[str] = ("CDG-T2", "AMS", "FRA"),
) -> list[dict[str, Any]]:
    """Benign crossings: each traveller uses one home point at daytime hours."""
    rng = random.Random(seed)
    out = []
    for t in _times(rng, start, n, rate):
        p = rng.randrange(travellers)
        day = math.floor((t - start) / 86_400)
        t_day = start + day * 86_400 + rng.uniform(8, 20) * 3600
        out.append(
            make_event(
                "border",
                _ts=max(t, t_day),
                document_id=f"P{p:07d}",
                person_name=f"TRAVELLER {p}",
                crossing_point=points[p % len(points)],
                direction=rng.choice(("entry", "exit")),
            )
        )
    out.sort(key=lambda e: e["_ts"])
    return out
