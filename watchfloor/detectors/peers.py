"""Peer-group and population baselines: judgement before an entity has its own history.

A per-entity detector that waits for an entity's own history misses the account seen
once (account takeovers, mule cash-outs) and everything in the first hours of a fresh
deployment. :class:`PeerBaseline` keeps decayed moments of a value (usually a log amount)
for the whole population and for each peer group the event names (transaction type,
channel, account type: whatever fields it carries), bounded like every per-entity table.
:func:`shrink` blends an entity's own statistics with its peers' by count (empirical
Bayes shrinkage), so an entity with 2 payments is judged mostly by its peers and one
with 40 mostly by itself, and widens the spread for small counts: the uncertainty shows
in the score.

>>> import math, random
>>> rng = random.Random(0)
>>> base = PeerBaseline(fields=("channel",))
>>> for i in range(300):
...     ch = ("card", "batch")[i % 2]
...     amt = rng.lognormvariate(math.log(50 if ch == "card" else 3_000), 0.5)
...     base.update({"channel": ch}, math.log(amt), float(i))
>>> peers = base.lookup({"channel": "card"})
>>> peers.group, round(math.exp(peers.mean)), peers.n >= 150
('card', 51, True)
>>> base.lookup({"channel": "wire"}).group  # an unknown group falls back to everyone
'*'
>>> m, s = shrink(0, 0.0, 0.0, peers, prior_strength=8.0)
>>> round(math.exp(m)), round(s, 2)
(51, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from watchfloor.core.entity_table import EntityTable

__all__ = ["Moments", "PeerBaseline", "PeerView", "shrink"]


class Moments:
    """Decayed count, mean and variance of a stream (Welford with a capped count).

    Capping the count at ``horizon`` makes old values fade: after the cap each new value
    has weight ``1 / horizon``, an exponential moving average of mean and variance.
    """

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0.0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: float, horizon: float) -> None:
        n = min(self.n + 1.0, horizon)
        d = x - self.mean
        self.mean += d / n
        # Welford's update, scaled so the effective count stays at the cap.
        self.m2 = self.m2 * (n - 1.0) / max(self.n, 1.0) + d * (x - self.mean)
        self.n = n

    @property
    def var(self) -> float:
        return self.m2 / (self.n - 1.0) if self.n > 1.0 else 0.0

    def __getstate__(self) -> tuple[float, float, float]:
        return (self.n, self.mean, self.m2)

    def __setstate__(self, s: tuple[float, float, float]) -> None:
        self.n, self.mean, self.m2 = s


class PeerView(NamedTuple):
    """The baseline an event is judged against: its peer group's, or everyone's."""

    group: str  # "*" for the whole population
    n: float
    mean: float
    std: float


class PeerBaseline:
    """Population and per-peer-group moments of one value, bounded.

    Parameters
    ----------
    fields
        Event fields whose values name the peer group (``tx_type``, ``channel``,
        ``account_type``...). An event's group is the values of those it carries, so
        events carrying none are judged against the population.
    min_peers
        Values a peer group needs before it is used instead of the population.
    horizon
        Effective memory (values) of each moment estimate.
    max_groups
        Peer groups kept (least recently seen dropped first); a hostile sensor sending
        many distinct channel names only evicts groups.
    min_std
        Floor of the spread, so a group that always pays the same amount does not make
        a small change look infinitely rare.
    """

    __slots__ = ("_groups", "_pop", "fields", "horizon", "max_groups", "min_peers", "min_std")

    def __init__(
        self,
        fields: tuple[str, ...] = ("tx_type", "channel", "account_type"),
        min_peers: int = 50,
        horizon: float = 20_000.0,
        max_groups: int = 1_024,
        min_std: float = 0.25,
    ) -> None:
        self.fields = tuple(fields)
        self.min_peers = min_peers
        self.horizon = horizon
        self.max_groups = max_groups
        self.min_std = min_std
        self._pop = Moments()
        # Peer groups are few and idle ones matter as long as they exist: no idle TTL
        # beyond a year of event time.
        self._groups: EntityTable[Moments] = EntityTable(max_groups, 365 * 86_400.0)

    def group_of(self, event: Mapping[str, Any]) -> str:
        """The peer-group key of ``event`` ("" when it carries none of ``fields``)."""
        parts = []
        for f in self.fields:
            v = event.get(f)
            if type(v) is str and v:
                parts.append(v[:32].upper())
        return "|".join(parts)

    @property
    def population(self) -> Moments:
        return self._pop

    def update(self, event: Mapping[str, Any], x: float, now: float) -> None:
        """Learn one value ``x`` of ``event`` (its group and the population)."""
        self._pop.update(x, self.horizon)
        key = self.group_of(event)
        if key:
            self._groups.setdefault(key, now, Moments).update(x, self.horizon)

    def lookup(self, event: Mapping[str, Any]) -> PeerView:
        """The peer group's baseline when it has ``min_peers`` values, else the
        population's (whose ``n`` says whether it is warm yet)."""
        key = self.group_of(event)
        m = self._groups.get(key) if key else None
        if m is None or m.n < self.min_peers:
            key, m = "*", self._pop
        return PeerView(key.lower() if key != "*" else "*", m.n, m.mean,
                        max(math.sqrt(m.var), self.min_std))

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def shrink(
    n: int, mean: float, var: float, peers: PeerView, prior_strength: float = 8.0
) -> tuple[float, float]:
    """Blend an entity's ``n`` values (``mean``, ``var``) with its peers by count.

    The peers count as ``prior_strength`` values: the blended mean and variance are the
    count-weighted means of both, and the spread is widened by ``sqrt(1 + 1 / (n + k))``
    (predictive uncertainty of a small sample). Returns ``(mean, std)``.

    >>> shrink(0, 0.0, 0.0, PeerView("*", 500, 4.0, 1.0))[0]
    4.0
    >>> m, s = shrink(40, 2.0, 0.04, PeerView("*", 500, 4.0, 1.0))
    >>> round(m, 2), round(s, 2)
    (2.33, 0.45)
    """
    k = prior_strength
    w = n + k
    m = (n * mean + k * peers.mean) / w
    v = (n * var + k * peers.std**2) / w
    return m, math.sqrt(v * (1.0 + 1.0 / w))
