"""``value_anomaly``: a streaming anomaly detector for any numeric signal of any entity.

The same class watches amounts per account, bytes per source, crossings per crossing point
per hour: constructor parameters name the field, the entity and, for volumes, the
aggregate (events or sum per entity per ``bucket_seconds``). The per-series engine is
:class:`watchfloor.detectors.likelihood.SeriesModel`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from watchfloor.core.alert_schema import ENTITY_TYPES
from watchfloor.core.entity_table import EntityTable
from watchfloor.core.events import DOMAINS
from watchfloor.detectors.base import NORMAL, Detector, ReusesScore, Score
from watchfloor.detectors.likelihood import Judgement, SeriesModel, likelihood

__all__ = ["ValueAnomaly"]

_AGGREGATES = (None, "count", "sum")
_ALARM = 3.0  # surprise of an alarm: 1 in 1,000 (score 0.9)
_TWO = math.log10(2.0)  # Bonferroni over the two scales


class _Entity:
    """One entity's model and, when aggregating, its open bucket; with ``coarse``, the
    model of its block means (created at the first full block) and the open block."""

    __slots__ = ("block", "blocks", "bucket", "coarse", "model", "total")

    def __init__(self, model: SeriesModel) -> None:
        self.model = model
        self.bucket = -1
        self.total = 0.0
        self.coarse: SeriesModel | None = None
        self.block = 0.0  # the open block's sum of value / coarse
        self.blocks = 0  # values in the open block

    def __getstate__(self) -> tuple[SeriesModel, int, float, SeriesModel | None, float, int]:
        return (self.model, self.bucket, self.total, self.coarse, self.block, self.blocks)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        # A state from before the coarse scale has three fields (such a detector lacks
        # the ``coarse`` parameter, so a restored engine starts it fresh; it must still
        # unpickle).
        self.model, self.bucket, self.total = s[:3]
        self.coarse, self.block, self.blocks = s[3:] if len(s) == 6 else (None, 0.0, 0)


class _Fused(NamedTuple):
    """One observation judged on both scales: the fused surprise and the judgement that
    gave it (``on_coarse``: the coarse scale's, about the mean of the block)."""

    surprise: float
    best: Judgement
    on_coarse: bool
    fine: Judgement
    coarse: Judgement | None
    mean: float


def _fmt(x: float) -> str:
    ax = abs(x)
    if ax >= 1e6:
        return f"{x:.3g}"
    if ax >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


class ValueAnomaly(ReusesScore, Detector):
    """A numeric signal of an entity behaves unlike its own recent past.

    Works on the raw ``field`` of each event or, with ``aggregate``, on the events
    (``"count"``) or the sum of ``field`` (``"sum"``) per entity per ``bucket_seconds``, so
    volumes are signals too. Each entity's series is judged by three scorers (residual
    from a robust level or its hour-of-day profile; nearest-neighbour distance of the
    recent shape; collapse of the spread) calibrated on that series' own history, fused
    into a tail probability ``p`` and scored as a likelihood: 0.5 at ``p`` ~ 2e-2,
    0.9 at 1e-3, still increasing (not saturating) far beyond. The same scorers also
    judge a second, coarser scale: the means of ``coarse`` consecutive observations,
    where noise is halved (for 4) and a subtle shift, dip, missing peak or drift stands
    out twice as far; the rarer of the two scales counts (Bonferroni: ``p`` doubles).
    There is no absolute gate: a 10x rise, a drop to zero and a stuck value all count,
    in the signal's own units. After an alarm, repeats of the same episode are damped
    by ``refractory`` until the series has been quiet again, so one episode is one
    detection.

    Parameters
    ----------
    field
        Event field holding the number (ignored for ``aggregate="count"``).
    entity_field, entity_type
        Event field naming the entity and the entity's type (``ip``, ``account``,
        ``document``, ``person``, ``device``).
    domains
        Domains whose events this instance reads.
    kind
        Threat kind reported on detections.
    aggregate, bucket_seconds
        ``None`` (each event's value), ``"count"`` or ``"sum"`` per entity per bucket.
        An open bucket is judged upwards as it fills (a surge alerts before it closes);
        a closed one is judged both ways (drops, silences).
    dim, memory, history, neighbours
        Embedding length, values kept for the nearest-neighbour scorer, raw scores kept
        per scorer for calibration, neighbours averaged.
    alpha
        Adaptation rate of the level and spread (a lasting shift is absorbed within a few
        hundred observations).
    warm_up
        Observations of an entity before it is scored.
    coarse
        Block length of the coarse scale (its model sees one mean per ``coarse``
        observations, judged as each block completes, and adapts ``coarse`` times
        faster per value so both scales absorb a shift at the same pace); 0 turns it
        off.
    refractory
        Surprise (decades of rarity) an alarm's afterglow subtracts from the next ones;
        it decays by half every ``dim`` observations.
    max_entities, ttl_seconds
        Bound on entities tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> import random
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> rng = random.Random(7)
    >>> det = ValueAnomaly()
    >>> for i in range(200):
    ...     det.learn_one(make_event("financial", _ts=START + 600 * i,
    ...                              amount=round(rng.gauss(120, 10), 2)))
    >>> later = START + 600 * 200
    >>> det.score_one(make_event("financial", _ts=later, amount=125.0)).score < 0.5
    True
    >>> s = det.score_one(make_event("financial", _ts=later, amount=900.0))
    >>> s.score > 0.9, s.reason.split(":")[0]
    (True, 'amount 900 is 97 deviations above the expected 120')
    >>> drop = det.score_one(make_event("financial", _ts=later, amount=0.0))
    >>> drop.score > 0.9, drop.score < 1.0, drop.reason.split(":")[0]
    (True, True, 'amount 0 is 15 deviations below the expected 120')
    """

    domains: ClassVar[tuple[str, ...]] = ("financial", "network", "border")
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "value_anomaly"

    def __init__(
        self,
        field: str = "amount",
        entity_field: str = "account_id",
        entity_type: str = "account",
        domains: tuple[str, ...] = ("financial", "network", "border"),
        kind: str = "value_anomaly",
        aggregate: str | None = None,
        bucket_seconds: float = 3600.0,
        dim: int = 6,
        memory: int = 192,
        history: int = 192,
        neighbours: int = 3,
        alpha: float = 0.025,
        warm_up: int = 30,
        coarse: int = 4,
        refractory: float = 2.0,
        max_entities: int = 20_000,
        ttl_seconds: float = 30 * 86_400.0,
    ) -> None:
        if entity_type not in ENTITY_TYPES:
            raise ValueError(f"entity_type must be one of {ENTITY_TYPES}, got {entity_type!r}")
        if not domains or not set(domains) <= set(DOMAINS):
            raise ValueError(f"domains must be a non-empty subset of {DOMAINS}, got {domains!r}")
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {_AGGREGATES}, got {aggregate!r}")
        if not (2 <= dim <= 64 and memory >= 4 * dim and history >= 16 and neighbours >= 1):
            raise ValueError("need 2 <= dim <= 64, memory >= 4 * dim, history >= 16, "
                             "neighbours >= 1")
        if not 0.0 < alpha < 1.0 or bucket_seconds <= 0 or warm_up < 1 or refractory < 0:
            raise ValueError("need 0 < alpha < 1, bucket_seconds > 0, warm_up >= 1, "
                             "refractory >= 0")
        if type(coarse) is not int or not (coarse == 0 or 2 <= coarse <= 64):
            raise ValueError(f"coarse must be 0 (off) or 2..64, got {coarse!r}")
        self.field = field
        self.entity_field = entity_field
        self.entity_type = entity_type
        self.domains = tuple(domains)  # type: ignore[misc]  # instance narrows the class's
        self.kind = kind  # type: ignore[misc]
        self.entity = (entity_type, entity_field)  # type: ignore[misc]
        self.aggregate = aggregate
        self.bucket_seconds = bucket_seconds
        self.dim = dim
        self.memory = memory
        self.history = history
        self.neighbours = neighbours
        self.alpha = alpha
        self.warm_up = warm_up
        self.coarse = coarse
        self.refractory = refractory
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._table: EntityTable[_Entity] = EntityTable(max_entities, ttl_seconds)
        self._decay = 0.5 ** (1.0 / dim)
        # score_one's judgement of the event the engine is about to learn (not state).
        self._last: tuple[Mapping[str, Any], _Fused] | None = None

    def _new(self) -> _Entity:
        return _Entity(SeriesModel(self.dim, self.memory, self.history, self.neighbours,
                                   self.alpha, self.warm_up))

    def _new_coarse(self) -> SeriesModel:
        return SeriesModel(self.dim, self.memory, self.history, self.neighbours,
                           min(self.alpha * self.coarse, 0.5), self.warm_up)

    def _judge(self, ent: _Entity, x: float, ts: float) -> _Fused:
        """``x`` at ``ts`` judged by the fine model and, if it completes a block, by the
        coarse one: the rarer counts, at twice its tail probability."""
        j = ent.model.judge(x, ts)
        b = self.coarse
        if not b:
            return _Fused(j.surprise, j, False, j, None, x)
        mean = ent.block + x / b  # x / b each: four 1e308s do not overflow
        jc = None
        if ent.blocks + 1 >= b and ent.coarse is not None:
            jc = ent.coarse.judge(mean, ts)
            # The rarer scale counts; an alarming value alone is the plainest reason.
            if jc.surprise > j.surprise and not (j.which == 0 and j.surprise >= _ALARM):
                return _Fused(max(jc.surprise - _TWO, 0.0), jc, True, j, jc, mean)
        top = max(j.surprise, jc.surprise) if jc is not None else j.surprise
        return _Fused(max(top - _TWO, 0.0), j, False, j, jc, mean)

    def _value(self, event: Mapping[str, Any]) -> float | None:
        if self.aggregate == "count":
            return 1.0
        v = event.get(self.field)
        if type(v) is not float and type(v) is not int:  # bools and strings: nothing
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    # -- the contract ---------------------------------------------------------------
    def score_one(self, event: Mapping[str, Any]) -> Score:
        key = event.get(self.entity_field)
        x = self._value(event)
        if key is None or x is None:
            return NORMAL
        ent = self._table.get(str(key))
        if ent is None:
            return NORMAL
        ts = float(event["_ts"])
        if self.aggregate is None:
            f = self._judge(ent, x, ts)
            self._last = (event, f)
            return self._verdict(ent.model, f, x, self.field)
        bucket = int(ts // self.bucket_seconds)
        self._last = None
        if bucket > ent.bucket >= 0:
            # The open bucket closes: judge its total (drops and silences show here), and
            # this event as the first of a new bucket.
            closed = self._judge(ent, ent.total, ent.bucket * self.bucket_seconds)
            return self._verdict(ent.model, closed, ent.total, self._agg_name())
        total = ent.total + x if bucket == ent.bucket else x
        j = ent.model.judge(total, bucket * self.bucket_seconds)
        if j.deviation <= 0 or j.which != 0:
            return NORMAL  # a partial bucket below the usual is not yet evidence
        # A partial bucket is judged on the fine scale only (its block is not complete).
        surprise = max(j.surprise - _TWO, 0.0) if self.coarse else j.surprise
        return self._verdict(ent.model, _Fused(surprise, j, False, j, None, total), total,
                             self._agg_name())

    def learn_one(self, event: Mapping[str, Any]) -> None:
        last, self._last = self._last, None
        key = event.get(self.entity_field)
        x = self._value(event)
        if key is None or x is None:
            return
        ts = float(event["_ts"])
        ent = self._table.setdefault(str(key), ts, self._new)
        if self.aggregate is None:
            judged = last[1] if last is not None and last[0] is event else None
            self._learn(ent, x, ts, judged)
            return
        bucket = int(ts // self.bucket_seconds)
        if ent.bucket < 0:
            ent.bucket, ent.total = bucket, x
            return
        if bucket <= ent.bucket:  # same bucket (or a little out of order)
            ent.total += x
            return
        # Close the bucket and the empty ones after it (at most a day's worth: a long
        # silence is one drop, not thousands of observations).
        self._learn(ent, ent.total, ent.bucket * self.bucket_seconds, None)
        gap = min(bucket - ent.bucket - 1, max(1, int(86_400 // self.bucket_seconds)))
        for b in range(bucket - gap, bucket):
            self._learn(ent, 0.0, b * self.bucket_seconds, None)
        ent.bucket, ent.total = bucket, x

    def _learn(self, ent: _Entity, x: float, ts: float, judged: _Fused | None) -> None:
        """Learn one observation on both scales (``judged``: score_one's, if known)."""
        model, b = ent.model, self.coarse
        if judged is None and (self.refractory > 0.0 or b):
            judged = self._judge(ent, x, ts)
        if self.refractory > 0.0 and judged is not None:
            # An alarm (1 in 1,000 or rarer) leaves an afterglow that decays by half
            # every dim observations; ordinary surprises leave none.
            glow = model.last_surprise * self._decay
            s = judged.surprise
            model.last_surprise = max(glow if glow >= _ALARM else 0.0,
                                      s if s >= _ALARM else 0.0)
        model.update(x, ts, judged.fine if judged is not None else None)
        if not b or judged is None:
            return
        if ent.blocks + 1 < b:
            ent.block, ent.blocks = judged.mean, ent.blocks + 1
            return
        if ent.coarse is None:
            ent.coarse = self._new_coarse()
        ent.coarse.update(judged.mean, ts, judged.coarse)
        ent.block, ent.blocks = 0.0, 0

    def _agg_name(self) -> str:
        unit = _bucket_text(self.bucket_seconds)
        return f"events per {unit}" if self.aggregate == "count" else f"{self.field} per {unit}"

    def _verdict(self, model: SeriesModel, f: _Fused, x: float, name: str) -> Score:
        surprise = f.surprise
        if surprise <= 0.0:
            return NORMAL
        if self.refractory > 0.0 and model.last_surprise * self._decay >= _ALARM:
            # Inside an episode (a recent alarm's afterglow): a repeat must be rarer by
            # ``refractory`` decades to be news, so one episode is one detection.
            surprise = max(0.0, surprise - self.refractory)
        score = likelihood(surprise)
        raw = min(surprise, 1e6)
        if score < 0.5:
            return Score(score, "", raw)
        return Score(score, self._reason(f, x, name), raw)

    def _reason(self, f: _Fused, x: float, name: str) -> str:
        j = f.best
        rarity = (f"rarer than 1 in {10 ** f.surprise:,.0f}" if f.surprise < 9
                  else "rarer than 1 in a billion")
        # On the coarse scale the judged value is the mean of the block x completes.
        what = (f"{name} {_fmt(x)}: the mean of the last {self.coarse} values, "
                f"{_fmt(f.mean)}," if f.on_coarse else f"{name} {_fmt(x)}")
        last = (f"the last {self.dim} means of {self.coarse} values" if f.on_coarse
                else f"the last {self.dim} values")
        if j.which == 0:
            where = "above" if j.deviation > 0 else "below"
            ctx = " for this hour" if j.seasonal else ""
            return (f"{what} is {abs(j.deviation):.0f} deviations {where} the "
                    f"expected {_fmt(j.expected)}{ctx}: {rarity}")
        if j.which == 1:
            return (f"{name} {_fmt(x)}: {last} moved away from the usual level "
                    f"{_fmt(j.expected)}: {rarity}")
        if j.which == 2:
            return f"{name} {_fmt(x)}: {last} form an unseen pattern: {rarity}"
        return f"{name} {_fmt(x)}: {last} barely vary (stuck?): {rarity}"

    # -- conformance ------------------------------------------------------------------
    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        import random

        from watchfloor.detectors.testkit import START, make_event

        rng = random.Random(seed)
        accounts = [f"ACC-{i:03d}" for i in range(6)]
        base = {a: rng.uniform(40, 400) for a in accounts}
        # Six accounts of steady payments; 1 in 1,000 is the alarm point, so 900
        # ordinary payments must stay below it and the 30x takeover must not.
        normal = [
            make_event("financial", _ts=START + 300 * i, account_id=a,
                       amount=round(base[a] * (1.0 + rng.gauss(0, 0.1)), 2))
            for i in range(150)
            for a in accounts
        ]
        t = START + 300 * 150
        anomalous = [make_event("financial", _ts=t, account_id="ACC-003",
                                amount=round(base["ACC-003"] * 30, 2))]
        return normal, anomalous


def _bucket_text(seconds: float) -> str:
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds / 3600:.0f}h"
    if seconds % 60 == 0:
        return "minute" if seconds == 60 else f"{seconds / 60:.0f}min"
    return f"{seconds:g}s"
