"""Streaming anomaly likelihood of one univariate series (the engine of ``value_anomaly``).

One :class:`SeriesModel` per entity. It fuses three cheap raw scorers, each calibrated to a
tail probability against its own recent history (a conformal p-value, so every scorer is
in the signal's own units and needs no absolute gate):

* **residual**: distance of the value from what was expected, in robust deviations: the
  expectation is a Huber-robust EWMA level, or the hour-of-day/weekend profile when that
  has predicted this series better (seasonal signals). Two-sided: rises and drops.
* **pattern**: the nearest-neighbour distance of the last ``dim`` values (relative to
  the level at their time, in deviations) to every earlier window of the last
  ``memory`` values, trivial self-matches excluded (KNN-CAD's conformal nearest-neighbour
  score on a delay embedding). Sees changes of rhythm, oscillation and spikes in context.
* **flat**: how far the spread of the last ``dim`` values has fallen below the usual
  spread (a stuck sensor, a feed that stopped changing).

Each raw value gets the tail probability of its rank among the last ``history`` raw values
of the same scorer; beyond the largest one the tail is extrapolated exponentially (so a
value far past everything seen keeps getting rarer instead of stopping at ``1/history``).
The fused tail is ``min(p) * 3`` (Bonferroni), its surprise ``-log10(p)`` is the raw
score, and :func:`likelihood` maps it to [0, 1] without saturating.

The level adapts to a lasting shift (clipped updates move it by up to ``3 * alpha``
deviations per observation and the deviation itself grows while residuals stay large),
so a shift is flagged at its onset and is normal again after a bounded time.

Memory per series is fixed: ``memory x dim`` float32 reference windows, three calibration
rings of ``history`` floats and their sorted copies, 48 profile cells: about 15 kB with
the defaults.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right, insort
from typing import NamedTuple

import numpy as np

__all__ = ["Judgement", "SeriesModel", "likelihood"]

_SCORERS = 4
_WIDEN = 48.0  # tail widening for short histories: x(1 + _WIDEN / values kept)
_MIN_CALIBRATION = 40  # raw values a scorer must have seen before its tails mean anything
_LOG10 = math.log(10.0)


def likelihood(surprise: float) -> float:
    """Map a surprise ``-log10(p)`` to [0, 1]: 0.5 at p ~ 2e-2, 0.9 at p = 1e-3.

    ``s^4 / (s^4 + 9)`` keeps increasing far out (p = 1e-20 still scores below 1.0), so
    scores stay ordered where a logistic would have saturated at exactly 1.0.

    >>> [round(likelihood(s), 3) for s in (1.0, 3.0, 6.0, 20.0)]
    [0.1, 0.9, 0.993, 1.0]
    >>> likelihood(20.0) < 1.0
    True
    """
    if surprise <= 0.0:
        return 0.0
    s4 = surprise**4
    return s4 / (s4 + 9.0)


class _Calibration:
    """The last ``size`` raw values of one scorer (a ring) and a sorted copy for ranks."""

    __slots__ = ("pos", "ring", "size", "sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring = array("d")
        self.sorted = array("d")
        self.pos = 0

    def add(self, x: float) -> None:
        s = self.sorted
        if len(self.ring) < self.size:
            self.ring.append(x)
        else:
            old = self.ring[self.pos]
            self.ring[self.pos] = x
            self.pos = (self.pos + 1) % self.size
            del s[bisect_left(s, old)]
        insort(s, x)

    def tail(self, x: float) -> float:
        """Tail probability of ``x``: conformal in the bulk, a fitted exponential tail
        (peaks over the 90th percentile) beyond it, so rarity keeps growing past the
        largest value seen and heavy-tailed scorers get a heavier tail."""
        s = self.sorted
        m = len(s)
        if m == 0:
            return 1.0
        iu = int(0.9 * m)
        u = s[iu]
        if x <= u:
            # (values >= x, ties half) + 1 over m + 1: the conformal p-value.
            ge = m - (bisect_left(s, x) + bisect_right(s, x)) / 2.0
            return (ge + 1.0) / (m + 1.0)
        # Mean excess over u estimates the exponential tail's scale (a generalised
        # Pareto fit's shape estimated from ~19 excesses was worse on every corpus
        # tried). The floor keeps a history of identical values from making a tiny
        # excess infinitely rare; a short history (which knows its tail poorly) gets a
        # wider tail.
        top = s[iu:]
        beta = max(sum(top) / len(top) - u, 0.05 * abs(u), 1e-9) * (1.0 + _WIDEN / m)
        return (m - iu + 1.0) / (m + 1.0) * math.exp(-(x - u) / beta)

    def __getstate__(self) -> tuple[int, array, array, int]:
        return (self.size, self.ring, self.sorted, self.pos)

    def __setstate__(self, st: tuple[int, array, array, int]) -> None:
        self.size, self.ring, self.sorted, self.pos = st


class Judgement(NamedTuple):
    """What :meth:`SeriesModel.judge` found for one value."""

    surprise: float  # -log10 of the fused tail probability; 0.0 while warming up
    which: int  # the scorer with the smallest tail: 0 value, 1 shift, 2 pattern, 3 flat
    expected: float  # what the residual scorer expected
    deviation: float  # signed residual in robust deviations
    raws: tuple[float, ...]
    seasonal: bool


_QUIET = Judgement(0.0, 0, 0.0, 0.0, (0.0,) * _SCORERS, False)


class SeriesModel:
    """Streaming state of one series; ``judge`` is pure, ``update`` learns a value.

    >>> import random
    >>> rng = random.Random(1)
    >>> m = SeriesModel()
    >>> for i in range(300):
    ...     m.update(10.0 + rng.gauss(0, 1), 60.0 * i)
    >>> round(m.judge(10.5, 18_000.0).surprise, 1) < 2, m.judge(25.0, 18_000.0).surprise > 5
    (True, True)
    """

    __slots__ = (
        "alpha", "cal", "dev", "dim", "emb", "emb_n", "emb_pos", "emb_sq", "err_level",
        "err_season", "history", "k", "last", "last_surprise", "level", "memory", "n", "pending",
        "season_n", "season_v", "slow", "warm_up",
    )

    def __init__(
        self, dim: int = 6, memory: int = 192, history: int = 192, k: int = 3,
        alpha: float = 0.025, warm_up: int = 30,
    ) -> None:
        self.dim, self.memory, self.history, self.k = dim, memory, history, k
        self.alpha, self.warm_up = alpha, warm_up
        self.n = 0
        # The last dim - 1 values, oldest first, and the reference windows: centred
        # (mean removed) windows of dim values, a ring of `memory` rows (float32: the
        # distances only rank). A window joins the references once it no longer
        # overlaps the window being judged (trivial self-matches), so `pending` holds
        # the dim - 1 most recent ones.
        self.last: list[float] = []
        self.pending: list[list[float]] = []
        self.emb = np.zeros((memory, dim), dtype=np.float32)
        self.emb_sq = np.zeros(memory, dtype=np.float32)  # squared norms of the rows
        self.emb_n = 0
        self.emb_pos = 0
        self.level = 0.0
        self.dev = 0.0
        self.slow = 0.0  # the deviation with a 5x longer memory: the unit of scores
        self.err_level = 0.0
        self.err_season = 0.0
        # 24 hours x (weekday, weekend): EWMA of the value and how many values each saw.
        self.season_v = array("d", bytes(8 * 48))
        self.season_n = array("i", bytes(4 * 48))
        self.cal = [_Calibration(history) for _ in range(_SCORERS)]
        self.last_surprise = 0.0

    # -- helpers --------------------------------------------------------------------
    @staticmethod
    def _cell(ts: float) -> int:
        day = int(ts // 86_400.0)
        hour = int(ts % 86_400.0 // 3600.0)
        weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        return hour + 24 * weekend

    def _scale(self) -> float:
        # A floor relative to the level keeps a constant series from turning a rounding
        # difference into a thousand deviations; the absolute floor covers level 0.
        return max(self.dev, 1e-3 * abs(self.level), 1e-9)

    def _expected(self, ts: float) -> tuple[float, bool]:
        c = self._cell(ts)
        if self.season_n[c] < 3:
            c = (c + 24) % 48  # the first weekend: the same hour of a weekday, and back
        if self.season_n[c] >= 3 and self.err_season < 0.8 * self.err_level:
            return self.season_v[c], True
        return self.level, False

    def _window(self, x: float) -> list[float]:
        # Windows see a hostile value (1e300) as stored: at most 1,000 deviations out.
        lim = 1_000.0 * self._scale()
        return [v - self.level for v in (*self.last, min(max(x, self.level - lim),
                                                          self.level + lim))]

    def _raws(self, x: float, ts: float) -> tuple[tuple[float, ...], float, bool]:
        """((|residual|, |window shift|, pattern distance, flatness), residual, seasonal)."""
        # Scores are in units of the slowly adapting deviation: the fast one widens within
        # a few values of a shift (to let the level catch up) and would hide its onset.
        unit = max(self.slow, 1e-3 * abs(self.level), 1e-9)
        expected, seasonal = self._expected(ts)
        z = (x - expected) / unit
        # Windows see a hostile value (1e300) as stored: at most 1,000 deviations out.
        lim = 1_000.0 * self._scale()
        w = [*self.last, min(max(x, self.level - lim), self.level + lim)]
        mean = sum(w) / len(w)
        # The window's mean away from the level: a shift of 2-3 deviations is invisible
        # in any one value but not in dim of them.
        shift = abs(mean - self.level) / unit
        centred = [v - mean for v in w]
        rel = [v - self.level for v in w]
        pattern = 0.0
        if self.emb_n >= self.k:
            # |r - v|^2 = |r|^2 - 2 r.v + |v|^2: one small matrix-vector product.
            v = np.asarray(rel, dtype=np.float32)
            m = self.emb_n
            d2 = self.emb_sq[:m] - 2.0 * (self.emb[:m] @ v)
            nearest = np.partition(d2, self.k - 1)[: self.k].tolist()
            vv = sum(c * c for c in rel)
            pattern = sum(math.sqrt(max(d + vv, 0.0)) for d in nearest) / self.k / unit
        spread = sum(abs(v) for v in centred) / len(centred) / unit
        flat = -math.log(spread + 1e-3)
        return (abs(z), shift, pattern, flat), z, seasonal

    # -- the contract ---------------------------------------------------------------
    def judge(self, x: float, ts: float) -> Judgement:
        """Surprise of value ``x`` at event time ``ts`` (seconds) given what was learnt."""
        if self.n < self.warm_up or len(self.cal[0].sorted) < _MIN_CALIBRATION:
            return _QUIET
        raws, z, seasonal = self._raws(x, ts)
        tails = [cal.tail(r) for cal, r in zip(self.cal, raws, strict=True)]
        which = min(range(_SCORERS), key=tails.__getitem__)
        p = min(1.0, _SCORERS * tails[which])
        if which and _SCORERS * tails[0] <= 1e-3:
            which = 0  # the value alone is alarming: the plainest reason to give
        surprise = -math.log10(max(p, 1e-300))
        expected = x - z * max(self.slow, 1e-3 * abs(self.level), 1e-9)
        return Judgement(surprise, which, expected, z, raws, seasonal)

    def update(self, x: float, ts: float, judged: Judgement | None = None) -> None:
        """Learn value ``x`` at ``ts``; ``judged`` is :meth:`judge`'s answer if known."""
        n = self.n
        if self.emb_n >= self.k:
            raws = judged.raws if judged is not None and judged is not _QUIET else None
            if raws is None:
                raws = self._raws(x, ts)[0]
            for cal, r in zip(self.cal, raws, strict=True):
                cal.add(r)
        if n == 0:
            self.level = x
        scale = self._scale()
        # Keep a hostile value (1e300) from overflowing the window arithmetic: store it
        # at most 1,000 deviations from the level; it still counts as that extreme.
        lim = 1_000.0 * scale
        xs = min(max(x, self.level - lim), self.level + lim)
        # Huber update: a spike moves the level by at most 3 deviations * alpha, a lasting
        # shift keeps moving it (and widens the deviation) until the level has caught up.
        alpha = max(self.alpha, 1.0 / (n + 1))
        r = xs - self.level
        clipped = max(-3.0 * scale, min(3.0 * scale, r)) if n > 10 else r
        self.level += alpha * clipped
        if n > 10:
            capped = min(abs(r), 6.0 * scale)
            self.dev += alpha * (capped - self.dev)
            # A plain mean until it has 5 / alpha values, then a long EWMA.
            self.slow += max(0.2 * self.alpha, 1.0 / n) * (capped - self.slow)
        elif n > 0:  # the first deviations: a plain running mean, no cap yet
            self.dev += (abs(r) - self.dev) / n
            self.slow = self.dev
        c = self._cell(ts)
        seen = c if self.season_n[c] >= 3 else (c + 24) % 48
        if self.season_n[seen] >= 3:
            self.err_season += alpha * (abs(xs - self.season_v[seen]) - self.err_season)
        else:
            self.err_season += alpha * (abs(r) - self.err_season)
        self.err_level += alpha * (abs(r) - self.err_level)
        sn = self.season_n[c]
        self.season_v[c] += (xs - self.season_v[c]) / min(sn + 1, 10)
        if sn < 1_000_000:
            self.season_n[c] = sn + 1
        if len(self.last) == self.dim - 1:
            self.pending.append(self._window(xs))
            if len(self.pending) >= self.dim:
                row = self.pending.pop(0)
                self.emb[self.emb_pos] = row
                self.emb_sq[self.emb_pos] = sum(c * c for c in row)
                self.emb_pos = (self.emb_pos + 1) % self.memory
                self.emb_n = min(self.emb_n + 1, self.memory)
            del self.last[0]
        self.last.append(xs)
        self.n = n + 1

    def __getstate__(self) -> dict[str, object]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
