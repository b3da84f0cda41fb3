"""Generated corpora in NAB's format, for testing detectors and the NAB scorer.

Each series is one kind of signal with labelled anomalies placed as NAB places them: a
window of ``10 % of the series / number of anomalies`` rows centred on each anomaly's
start, none inside the 15 % probation. Kinds (``KINDS``) model what the real benchmark
holds: level shifts, spikes, drops, flat-lines (stuck sensors), daily seasonal patterns
with noise (traffic, taxis), trends, ad-exchange-like heavy tails (click counts with
bursts), temperature-like slow drift before a failure, a change of rhythm, and clean
series with no anomaly. A corpus is fully determined by its :class:`CorpusSpec`.

>>> spec = CorpusSpec(seed=1, series_per_kind=1, min_rows=1200, max_rows=1500)
>>> corpus = generate(spec)
>>> len(corpus), sum(len(s.windows) for s in corpus) > 0
(11, True)
>>> all(w[0] > 0.15 * len(s.values) for s in corpus for w in s.windows)
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from watchfloor.evaluation.nab import Series

__all__ = ["KINDS", "CorpusSpec", "generate"]

START = 1_388_534_400.0  # 2014-01-01T00:00:00Z, NAB's era


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate: ``noise`` is ``"gauss"``, ``"laplace"`` or ``"student"``;
    ``intervals`` the row spacings (seconds) to draw from; ``strength`` scales every
    anomaly (1.0 = clearly visible to an analyst, smaller = subtler)."""

    seed: int = 0
    series_per_kind: int = 2
    min_rows: int = 2000
    max_rows: int = 4000
    noise: str = "gauss"
    intervals: tuple[float, ...] = (300.0,)
    strength: float = 1.0


class _Gen:
    def __init__(self, rng: random.Random, spec: CorpusSpec, n: int) -> None:
        self.rng, self.spec, self.n = rng, spec, n
        self.step = rng.choice(spec.intervals)
        first = START + rng.randrange(0, 30) * 86_400
        self.ts = [first + i * self.step for i in range(n)]

    def noise(self, scale: float) -> float:
        r, kind = self.rng, self.spec.noise
        if kind == "laplace":
            return scale * (r.expovariate(1.0) - r.expovariate(1.0)) / math.sqrt(2)
        if kind == "student":  # t with 4 degrees of freedom, unit-ish spread
            chi = sum(r.gauss(0, 1) ** 2 for _ in range(4)) / 4
            return scale * r.gauss(0, 1) / math.sqrt(chi) / math.sqrt(2)
        return r.gauss(0, scale)

    def starts(self, count: int) -> list[int]:
        """Anomaly start rows: after probation plus half a window, spread apart."""
        n = self.n
        half = int(0.1 * n / max(count, 1) / 2)
        lo = int(0.15 * n) + half + 10
        hi = n - half - 10
        seg = (hi - lo) // count
        return [lo + i * seg + self.rng.randrange(0, max(seg - half, 1)) for i in range(count)]

    def hour(self, i: int) -> float:
        return (self.ts[i] % 86_400) / 3600.0


def _windows(n: int, starts: list[int]) -> list[tuple[int, int]]:
    if not starts:
        return []
    size = int(0.1 * n / len(starts))
    return [(max(0, s - size // 2), min(n - 1, s - size // 2 + size - 1)) for s in starts]


Kind = Callable[[_Gen], tuple[list[float], list[int]]]


def _level_shift(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(20, 200), g.rng.uniform(1, 5)
    starts = g.starts(g.rng.choice((1, 2)))
    v, level = [], base
    for i in range(g.n):
        if i in starts:
            level += g.rng.choice((-1, 1)) * g.spec.strength * g.rng.uniform(4, 8) * sd
        v.append(level + g.noise(sd))
    return v, starts


def _spikes(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(5, 80), g.rng.uniform(0.5, 3)
    starts = g.starts(g.rng.choice((1, 2, 3)))
    v = [base + g.noise(sd) for _ in range(g.n)]
    for s in starts:
        for j in range(g.rng.choice((1, 2, 3))):
            v[s + j] += g.spec.strength * g.rng.uniform(6, 12) * sd
    return v, starts


def _drop(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(50, 500), g.rng.uniform(2, 10)
    starts = g.starts(g.rng.choice((1, 2)))
    v = [base + g.noise(sd) for _ in range(g.n)]
    for s in starts:
        depth = min(0.95, g.spec.strength * g.rng.uniform(0.3, 0.9))
        for j in range(g.rng.randrange(5, 40)):
            if s + j < g.n:
                v[s + j] = base * (1 - depth) + g.noise(sd * 0.5)
    return v, starts


def _flatline(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(10, 100), g.rng.uniform(1, 4)
    starts = g.starts(1)
    v = [base + g.noise(sd) for _ in range(g.n)]
    s = starts[0]
    stuck = v[s]
    for j in range(g.rng.randrange(30, 120)):
        if s + j < g.n:
            v[s + j] = stuck
    return v, starts


def _seasonal(g: _Gen) -> tuple[list[float], list[int]]:
    base, amp = g.rng.uniform(100, 1000), g.rng.uniform(0.3, 0.6)
    sd = base * g.rng.uniform(0.03, 0.08)
    starts = g.starts(g.rng.choice((1, 2)))
    v = []
    for i in range(g.n):
        daily = 1 + amp * math.sin(2 * math.pi * (g.hour(i) - 9) / 24)
        v.append(base * daily + g.noise(sd))
    for s in starts:
        # the usual daily peak fails to come (a holiday, an outage) or a night-time burst
        length = max(6, int(6 * 3600 / g.step))
        if g.rng.random() < 0.5:
            for j in range(length):
                if s + j < g.n:
                    v[s + j] = base * (1 - amp * g.spec.strength * 0.8) + g.noise(sd)
        else:
            for j in range(min(length, 12)):
                if s + j < g.n:
                    v[s + j] += g.spec.strength * base * amp * 1.2
    return v, starts


def _trend(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(10, 100), g.rng.uniform(1, 3)
    slope = g.rng.uniform(-1, 1) * 10 * sd / g.n
    starts = g.starts(1)
    v = [base + slope * i + g.noise(sd) for i in range(g.n)]
    s = starts[0]
    for j in range(g.rng.randrange(3, 20)):
        if s + j < g.n:
            v[s + j] += g.rng.choice((-1, 1)) * g.spec.strength * 7 * sd
    return v, starts


def _heavy_tail(g: _Gen) -> tuple[list[float], list[int]]:
    mu, sigma = g.rng.uniform(0, 3), g.rng.uniform(0.4, 0.8)
    starts = g.starts(g.rng.choice((1, 2)))
    v = [math.exp(g.rng.gauss(mu, sigma)) for _ in range(g.n)]
    for s in starts:
        burst = 1 + g.spec.strength * g.rng.uniform(4, 8)
        for j in range(g.rng.randrange(3, 15)):
            if s + j < g.n:
                v[s + j] = math.exp(g.rng.gauss(mu, sigma)) * burst
    return v, starts


def _temperature(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(60, 90), g.rng.uniform(0.5, 1.5)
    starts = g.starts(1)
    s = starts[0]
    ramp = max(20, int(0.05 * g.n))
    v, wander = [], 0.0
    for i in range(g.n):
        wander = 0.995 * wander + g.noise(0.2 * sd)
        x = base + wander + g.noise(sd)
        if s - ramp <= i < s:  # slow drift up before the failure (labelled at its onset)
            x += g.spec.strength * 6 * sd * (i - s + ramp) / ramp
        elif s <= i < s + ramp:  # the failure: temperature collapses
            x -= g.spec.strength * 15 * sd
        v.append(x)
    return v, [s - ramp // 2]


def _rhythm(g: _Gen) -> tuple[list[float], list[int]]:
    base, amp, sd = g.rng.uniform(20, 60), g.rng.uniform(5, 10), g.rng.uniform(0.5, 1.5)
    period = g.rng.randrange(12, 30)
    starts = g.starts(1)
    s = starts[0]
    v = []
    for i in range(g.n):
        p = period if i < s or i >= s + 4 * period else max(3, period // 4)
        v.append(base + amp * math.sin(2 * math.pi * i / p) + g.noise(sd))
    return v, starts


def _clean(g: _Gen) -> tuple[list[float], list[int]]:
    base, sd = g.rng.uniform(10, 100), g.rng.uniform(1, 5)
    amp = g.rng.uniform(0, 0.3) * base
    return [base + amp * math.sin(2 * math.pi * g.hour(i) / 24) + g.noise(sd)
            for i in range(g.n)], []


KINDS: dict[str, Kind] = {
    "level_shift": _level_shift,
    "spikes": _spikes,
    "drop": _drop,
    "flatline": _flatline,
    "seasonal": _seasonal,
    "trend": _trend,
    "heavy_tail": _heavy_tail,
    "temperature": _temperature,
    "rhythm": _rhythm,
    "clean": _clean,
    "clean_heavy": _heavy_tail,  # replaced below: heavy tails without anomalies
}


def generate(spec: CorpusSpec) -> list[Series]:
    """The corpus ``spec`` describes: ``series_per_kind`` series of every kind."""
    rng = random.Random(spec.seed)
    out = []
    for kind, make in KINDS.items():
        for j in range(spec.series_per_kind):
            n = rng.randrange(spec.min_rows, spec.max_rows + 1)
            g = _Gen(random.Random(rng.getrandbits(64)), spec, n)
            values, starts = make(g)
            if kind == "clean_heavy":
                starts = []
                values = [math.exp(g.rng.gauss(1.0, 0.7)) for _ in range(n)]
            out.append(Series(f"{kind}/{kind}_{j}.csv", g.ts, values, _windows(n, starts)))
    return out
