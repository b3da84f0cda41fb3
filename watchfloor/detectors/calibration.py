"""Score calibration shared by every detector.

The calibration rule
--------------------
A detector's ``Score.score`` is in [0, 1] and means the same for every detector, so one
``threshold`` in ``topics.yaml`` means the same everywhere:

* **0.0** - nothing remarkable (return :data:`watchfloor.detectors.base.NORMAL`).
* **0.5** - the raw evidence is at the detector's *mid* point: the edge of what normal
  traffic does (e.g. half the distinct-port count of a port scan). Never alert here.
* **0.9** - the raw evidence is at the detector's *alarm* point: the level
  ``docs/threats.md`` describes for the threat (e.g. 40 distinct ports in 60 s,
  ≥ 12 periodic contacts), or for learnt scores an event rarer than ``alarm_tail`` of the
  traffic the detector has seen (by default 1 in 1,000). **A score of 0.9 means "this is
  what the threat looks like; an analyst should look"**, for every detector.
* **→ 1.0** - evidence well beyond the alarm point; the map saturates, so scores above
  0.97 mean "far past the alarm point", not "more certain".

Rule-based detectors map their raw value with :func:`logistic` (``mid``, ``alarm`` are
constructor parameters in the raw unit: ports, bytes ratio, repetitions). Learnt scores
(river models whose raw score has no fixed scale) are turned into a rank among recent
normal scores with :class:`StreamingQuantile`, then into a score with :func:`tail_score`.
``raw`` always carries the uncalibrated value so analysts see the evidence itself.

>>> round(logistic(20, mid=20, alarm=40), 3), round(logistic(40, mid=20, alarm=40), 3)
(0.5, 0.9)
>>> round(tail_score(1e-3), 3)
0.9
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right, insort

__all__ = ["LN9", "StreamingQuantile", "logistic", "tail_score"]

# logistic(alarm) = 1 / (1 + e^-k(alarm - mid)) = 0.9  <=>  k (alarm - mid) = ln 9.
LN9 = math.log(9.0)


def logistic(raw: float, mid: float, alarm: float) -> float:
    """Map a raw value to [0, 1]: 0.5 at ``raw == mid``, 0.9 at ``raw == alarm``.

    Monotone increasing in ``raw`` and saturating toward 0 and 1; ``alarm`` must exceed
    ``mid``.

    >>> [round(logistic(x, mid=10, alarm=20), 3) for x in (0, 10, 20, 40)]
    [0.1, 0.5, 0.9, 0.999]
    >>> logistic(40, mid=20, alarm=40) >= 0.9  # exactly, so a 0.9 threshold fires
    True
    >>> logistic(1e9, mid=0, alarm=1), logistic(-1e9, mid=0, alarm=1)
    (1.0, 0.0)
    """
    if not alarm > mid:
        raise ValueError(f"alarm ({alarm}) must be greater than mid ({mid})")
    # 1 / (1 + e^-z) with z = ln 9 * t is 9^t / (1 + 9^t); this form is exactly 0.9 at
    # t == 1 in floating point, so a threshold of 0.9 fires at the alarm point itself.
    t = (raw - mid) / (alarm - mid)
    if t > 300.0:  # 9^300 is near float max; the result is 1.0 long before
        return 1.0
    if t < -300.0:
        return 0.0
    p = 9.0**t
    return p / (1.0 + p)


def tail_score(tail: float, mid_tail: float = 1e-2, alarm_tail: float = 1e-3) -> float:
    """Score an event by how rare it is: ``tail`` = fraction of normal traffic as extreme.

    0.5 when one event in ``1 / mid_tail`` is as extreme, 0.9 at one in ``1 / alarm_tail``
    (on a log scale, so each factor of ten in rarity counts the same).

    >>> [round(tail_score(t), 3) for t in (0.5, 1e-2, 1e-3, 1e-4)]
    [0.023, 0.5, 0.9, 0.988]
    """
    if not 0.0 < alarm_tail < mid_tail < 1.0:
        raise ValueError("need 0 < alarm_tail < mid_tail < 1")
    surprise = -math.log10(max(tail, 1e-300))
    return logistic(surprise, -math.log10(mid_tail), -math.log10(alarm_tail))


class StreamingQuantile:
    """Bounded-memory streaming rank and quantile estimate (a uniform reservoir).

    Keeps a uniform random sample of at most ``capacity`` values (Vitter's algorithm R)
    in sorted order, so ``rank`` is a binary search and ``update`` costs at most one
    list insertion and one deletion. The random generator is seeded, so the same stream
    gives the same estimates, and the object pickles with its generator state.

    Parameters
    ----------
    capacity
        Most values kept. Rank resolution is about ``1 / capacity``: a value above every
        kept value has tail ``0.5 / capacity``.
    seed
        Seed of the sampling generator.

    Examples
    --------
    >>> q = StreamingQuantile(capacity=256, seed=1)
    >>> for i in range(10_000):
    ...     q.update(float(i % 100))
    >>> q.n, len(q)
    (10000, 256)
    >>> 0.4 < q.rank(50.0) < 0.6, q.rank(1000.0) > 0.99, q.rank(-1.0)
    (True, True, 0.0)
    >>> 40 <= q.quantile(0.5) <= 60
    True
    """

    __slots__ = ("_rng", "_sample", "_sorted", "capacity", "n", "seed")

    def __init__(self, capacity: int = 1024, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.seed = seed
        self.n = 0
        self._rng = random.Random(seed)
        self._sample: list[float] = []  # insertion order, to pick the value to replace
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def update(self, x: float) -> None:
        """Offer one value to the sample."""
        x = float(x)
        if x != x:  # NaN has no rank; keep it out rather than poison the sort order
            return
        self.n += 1
        if len(self._sample) < self.capacity:
            self._sample.append(x)
            insort(self._sorted, x)
            return
        j = self._rng.randrange(self.n)
        if j < self.capacity:
            old = self._sample[j]
            self._sample[j] = x
            s = self._sorted
            del s[bisect_left(s, old)]
            insort(s, x)

    def rank(self, x: float) -> float:
        """Fraction of the sample below ``x`` (ties count half); 0.0 while empty."""
        s = self._sorted
        m = len(s)
        if m == 0:
            return 0.0
        return (bisect_left(s, x) + bisect_right(s, x)) / (2.0 * m)

    def tail(self, x: float) -> float:
        """Estimated fraction of values at least as large as ``x``.

        1.0 while empty, so an untrained calibrator never makes anything look rare.
        Above the largest kept value the tail is extrapolated (exponentially), so it keeps
        falling below the sample's resolution ``0.5 / len``.

        >>> q = StreamingQuantile(capacity=100)
        >>> for i in range(100):
        ...     q.update(i / 100)
        >>> round(q.tail(0.5), 3), round(q.tail(0.99), 3), q.tail(1.0) < q.tail(0.995) < 0.005
        (0.495, 0.005, True)
        """
        s = self._sorted
        m = len(s)
        if m == 0:
            return 1.0
        top = s[-1]
        if x <= top:
            # max(1.0 - self.rank(x), 0.5 / m), spelt out: this runs once or twice per event.
            t = 1.0 - (bisect_left(s, x) + bisect_right(s, x)) / (2.0 * m)
            floor = 0.5 / m
            return floor if floor > t else t
        # Beyond the largest kept value the sample says nothing; extrapolate an
        # exponential tail so far outliers still rank rarer than near ones: every
        # "top 1 % spread" further out divides the tail by ten. The spread has a floor so
        # a sample of identical values does not make every tiny excess infinitely rare.
        spread = max(top - s[m - 1 - m // 100], 0.01 * (top - s[0]), 1e-9)
        return (0.5 / m) * 10.0 ** (-(x - top) / spread)

    def quantile(self, q: float) -> float:
        """The ``q``-quantile of the sample (nearest rank); NaN while empty."""
        s = self._sorted
        if not s:
            return math.nan
        q = min(max(q, 0.0), 1.0)
        return s[min(int(q * len(s)), len(s) - 1)]

    def __getstate__(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"StreamingQuantile(capacity={self.capacity}, seed={self.seed}, n={self.n})"
