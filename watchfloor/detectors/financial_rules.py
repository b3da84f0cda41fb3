"""Rule-based financial detectors: structuring, fan-out and high-risk jurisdictions.

Each keeps only what its threat needs, per account, in an :class:`EntityTable` (bounded
by ``max_entities`` and an idle ``ttl_seconds`` in event time), and scores with
:func:`~watchfloor.detectors.calibration.logistic` so 0.9 means "what the threat in
``docs/threats.md`` looks like" for every detector.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable, Recent
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import logistic
from watchfloor.detectors.financial_common import (
    _DAY,
    HIGH_RISK_COUNTRIES_PATH,
    _amount,
    _money,
    _window_text,
    load_countries,
    payroll_runs,
)

__all__ = ["FanOut", "HighRiskJurisdiction", "Structuring"]


# -- structuring ----------------------------------------------------------------------


class Structuring(Detector):
    """Several payments just under the reporting threshold within a window (smurfing).

    Counts an account's payments in ``[threshold * (1 - margin), threshold)`` over the
    last ``window_seconds``; ``min_count`` of them score above 0.9 (one fewer scores 0.5).
    Only accounts that make such payments are tracked, so payroll runs of ordinary
    amounts cost nothing and a single legitimate payment just under the threshold
    scores low. A payment is counted once per ``event_id``: a sensor re-sending it
    (at-least-once delivery, or an attacker replaying it) does not make three.

    Parameters
    ----------
    threshold
        The reporting threshold being evaded.
    margin
        How far under the threshold (a fraction of it) a payment counts as "just under".
    window_seconds
        Window over which such payments are counted (event time).
    min_count
        Payments in the window that make the alarm.
    max_recent
        Timestamps kept per account (only in-window ones matter).
    max_entities, ttl_seconds
        Bound on accounts tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Structuring()
    >>> pays = [make_event("financial", _ts=START + h * 3600, amount=a)
    ...         for h, a in ((1, 9_400.0), (5, 9_850.0), (9, 9_120.0))]
    >>> [(round(s.score, 2), s.reason) for s in feed(det, pays)]  # doctest: +NORMALIZE_WHITESPACE
    [(0.01, '1 payment of 9,000-9,999 within 24h'),
     (0.5, '2 payments of 9,000-9,999 within 24h'),
     (0.99, '3 payments of 9,000-9,999 within 24h')]
    >>> det.score_one(make_event("financial", _ts=START + 10 * 3600, amount=4_000.0))
    Score(score=0.0, reason='', raw=0.0)
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "structuring"

    def __init__(
        self,
        threshold: float = 10_000.0,
        margin: float = 0.1,
        window_seconds: float = _DAY,
        min_count: int = 3,
        max_recent: int = 64,
        max_entities: int = 100_000,
        ttl_seconds: float = 2 * _DAY,
    ) -> None:
        if threshold <= 0 or not 0.0 < margin < 1.0:
            raise ValueError("need threshold > 0 and 0 < margin < 1")
        if window_seconds <= 0 or min_count < 2 or max_recent < min_count:
            raise ValueError("need window_seconds > 0, min_count >= 2, max_recent >= min_count")
        self.threshold = threshold
        self.margin = margin
        self.window_seconds = window_seconds
        self.min_count = min_count
        self.max_recent = max_recent
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._low = threshold * (1.0 - margin)
        self._band = f"{_money(self._low)}-{_money(math.ceil(threshold) - 1)}"
        self._window = _window_text(window_seconds)
        self._table: EntityTable[Recent] = EntityTable(
            max_entities, ttl_seconds
        )

    def _in_band(self, event: Mapping[str, Any]) -> bool:
        return self._low <= _amount(event) < self.threshold

    def learn_one(self, event: Mapping[str, Any]) -> None:
        if self._in_band(event):
            now = event["_ts"]
            recent = self._table.setdefault(
                event["account_id"], now, lambda: Recent(self.max_recent)
            )
            eid = str(event.get("event_id", ""))
            if all(e != eid for _, e in recent):  # idempotent on event_id
                recent.append((now, eid))

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if not self._in_band(event):
            return NORMAL
        count = 1
        recent = self._table.get(event["account_id"])
        if recent:
            since = event["_ts"] - self.window_seconds
            eid = str(event.get("event_id", ""))
            for t, e in reversed(recent):
                if t <= since:
                    break
                if e != eid:  # a re-sent payment is the one being scored, not another
                    count += 1
        # A count rule: min_count - 1 is the edge of normal (0.5), min_count the alarm.
        score = logistic(count, self.min_count - 1, self.min_count - 0.5)
        noun = "payment" if count == 1 else "payments"
        return Score(score, f"{count} {noun} of {self._band} within {self._window}", count)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"threshold": 5_000.0, "window_seconds": 3600.0, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Payroll runs and single 9,500 payments; then three 9,000-9,999 in a day."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        normal = merge(
            financial_traffic(seed, n=1_500, rate=0.02),
            payroll_runs(rng, START, days=1),
            [make_event("financial", _ts=START + 3_600 * (2 + 5 * k),
                        account_id=f"ACC-{k:04d}", amount=9_500.0) for k in range(10)],
        )
        t = normal[-1]["_ts"]
        smurf = [make_event("financial", _ts=t + 3_600 * (i + 1), account_id="ACC-SMURF",
                            amount=round(rng.uniform(9_000, 9_999), 2)) for i in range(3)]
        return normal, smurf


# -- fan-out --------------------------------------------------------------------------


class _Counterparties:
    """One account's known counterparties (an LRU set) and recent first payments."""

    __slots__ = ("known", "recent")

    def __init__(self, max_recent: int) -> None:
        self.known: dict[str, None] = {}
        self.recent: Recent = Recent(max_recent)

    def __getstate__(self) -> tuple[dict[str, None], Recent]:
        return (self.known, self.recent)

    def __setstate__(self, s: tuple[dict[str, None], Recent]) -> None:
        self.known, self.recent = s


class FanOut(Detector):
    """An account suddenly pays many counterparties it never paid before (mule account).

    Remembers up to ``max_counterparties`` counterparties per account (least recently
    paid forgotten first) and counts payments to never-seen ones in the last
    ``window_seconds``; ``min_new`` of them score above 0.9. A payroll account pays the
    same employees every run, so after its first run they are all known. During the
    first ``warmup_seconds`` of event time the detector only learns: every account is
    new then, and its first payroll run would look like a fan-out.

    Parameters
    ----------
    window_seconds
        Window over which first payments are counted (event time).
    min_new
        First payments to never-seen counterparties in the window that make the alarm.
    max_counterparties
        Known counterparties remembered per account.
    warmup_seconds
        Event time after the first event during which nothing is scored.
    max_entities, ttl_seconds
        Bound on accounts tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = FanOut(warmup_seconds=0.0)
    >>> habits = [make_event("financial", _ts=START + i * 86_400,
    ...                      counterparty_id=("LANDLORD", "SHOP")[i % 2]) for i in range(30)]
    >>> t = START + 31 * 86_400
    >>> mule = [make_event("financial", _ts=t + 60 * i, counterparty_id=f"NEW-{i}",
    ...                    country=("NL", "LT", "CY")[i % 3]) for i in range(8)]
    >>> s = feed(det, habits + mule)[-1]
    >>> s.score > 0.9, s.reason
    (True, '8 never-seen counterparties within 1h (3 countries)')
    >>> det.score_one(make_event("financial", _ts=t + 600, counterparty_id="SHOP")).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "fan_out"

    def __init__(
        self,
        window_seconds: float = 3600.0,
        min_new: int = 8,
        max_counterparties: int = 256,
        warmup_seconds: float = _DAY,
        max_entities: int = 100_000,
        ttl_seconds: float = 30 * _DAY,
    ) -> None:
        if window_seconds <= 0 or min_new < 2 or max_counterparties < 1 or warmup_seconds < 0:
            raise ValueError(
                "need window_seconds > 0, min_new >= 2, max_counterparties >= 1, "
                "warmup_seconds >= 0"
            )
        self.window_seconds = window_seconds
        self.min_new = min_new
        self.max_counterparties = max_counterparties
        self.warmup_seconds = warmup_seconds
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._window = _window_text(window_seconds)
        self._scoring_from: float | None = None
        self._table: EntityTable[_Counterparties] = EntityTable(max_entities, ttl_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now = event["_ts"]
        if self._scoring_from is None:
            self._scoring_from = now + self.warmup_seconds
        cps = self._table.setdefault(
            event["account_id"], now, lambda: _Counterparties(4 * self.min_new)
        )
        cp = event["counterparty_id"]
        known = cps.known
        if cp in known:
            # Move to the end: the dict's order is the LRU order.
            del known[cp]
        else:
            cps.recent.append((now, str(event.get("country", ""))))
            if len(known) >= self.max_counterparties:
                del known[next(iter(known))]
        known[cp] = None

    def score_one(self, event: Mapping[str, Any]) -> Score:
        now = event["_ts"]
        if self._scoring_from is None or now < self._scoring_from:
            return NORMAL
        cps = self._table.get(event["account_id"])
        if cps is not None and event["counterparty_id"] in cps.known:
            return NORMAL
        count = 1
        countries = {event.get("country", "")}
        if cps is not None:
            since = now - self.window_seconds
            for t, country in reversed(cps.recent):
                if t <= since:
                    break
                count += 1
                countries.add(country)
        if count < self.min_new - 2:
            return NORMAL  # a new payee or two is everyday life; skip the allocation
        score = logistic(count, self.min_new - 1, self.min_new - 0.5)
        n_c = len(countries - {""})
        where = f" ({n_c} countries)" if n_c > 1 else ""
        return Score(
            score, f"{count} never-seen counterparties within {self._window}{where}", count
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"warmup_seconds": 0.0}
        yield {"warmup_seconds": 0.0, "max_counterparties": 4, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Two days of regular payments and daily payroll runs (all new on day one);
        then an established account pays ten never-seen accounts in half an hour."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        normal = merge(
            financial_traffic(seed, n=1_500, rate=1_500 / (2.2 * _DAY)),
            payroll_runs(rng, START, days=3),
        )
        t = normal[-1]["_ts"]
        mule = [make_event("financial", _ts=t + 180 * (i + 1), account_id="ACC-0007",
                           counterparty_id=f"ACC-MULE-{i}", amount=round(rng.uniform(500, 900)),
                           country=("NL", "LT", "CY", "MT")[i % 4]) for i in range(10)]
        return normal, mule


# -- high-risk jurisdiction -----------------------------------------------------------


class HighRiskJurisdiction(Detector):
    """A sizeable transfer to a high-risk country the account has never paid before.

    Only payments to high-risk countries are tracked (per account: how many it made to
    each), so the table stays small. An account with ``min_history`` earlier payments to
    that country is not scored: regular family remittances are its normal. A first
    payment is scored by its amount: ``mid`` scores 0.5 and ``alarm`` 0.9 (on a log
    scale), so a first 100-400 remittance stays low and 1,000 or more is an alarm.

    Parameters
    ----------
    countries
        ISO 3166-1 alpha-2 codes of high-risk jurisdictions; ``None`` reads ``path``.
    path
        File with one code per line (``#`` comments), used when ``countries`` is None;
        by default the packaged ``watchfloor/data/high_risk_countries.txt``.
    mid, alarm
        Amounts of a first transfer scored 0.5 and 0.9.
    min_history
        Earlier payments to a country after which transfers there are normal.
    max_entities, ttl_seconds
        Bound on accounts tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> det = HighRiskJurisdiction()
    >>> for week in range(8):  # a family remittance every week
    ...     det.learn_one(make_event("financial", _ts=START + week * 604_800,
    ...                              account_id="FAM", country="AF", amount=250.0))
    >>> t = START + 9 * 604_800
    >>> s = det.score_one(make_event("financial", _ts=t, account_id="CO", country="IR",
    ...                              amount=25_000.0))
    >>> s.score > 0.9, s.reason
    (True, 'first transfer to high-risk IR: 25,000')
    >>> det.score_one(make_event("financial", _ts=t, account_id="FAM", country="AF",
    ...                          amount=300.0)).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "high_risk_transfer"

    def __init__(
        self,
        countries: tuple[str, ...] | None = None,
        path: str = HIGH_RISK_COUNTRIES_PATH,
        mid: float = 500.0,
        alarm: float = 900.0,
        min_history: int = 1,
        max_entities: int = 100_000,
        ttl_seconds: float = 90 * _DAY,
    ) -> None:
        if not 0.0 < mid < alarm:
            raise ValueError("need 0 < mid < alarm")
        if min_history < 1:
            raise ValueError("min_history must be >= 1")
        self.countries = countries
        self.path = path
        self.mid = mid
        self.alarm = alarm
        self.min_history = min_history
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        try:
            codes = load_countries(path) if countries is None else countries
        except OSError as exc:
            raise ValueError(f"cannot read high-risk country list {path!r}: {exc}") from exc
        # Kept as data, not re-read on unpickle: a restarted worker judges as before.
        self._high_risk = frozenset(c.strip().upper() for c in codes)
        self._log_mid = math.log(mid)
        self._log_alarm = math.log(alarm)
        self._table: EntityTable[dict[str, int]] = EntityTable(max_entities, ttl_seconds)

    def _country(self, event: Mapping[str, Any]) -> str | None:
        c = event.get("country")
        if type(c) is not str:
            return None
        if c in self._high_risk:
            return c
        c = c.strip().upper()
        return c if c in self._high_risk else None

    def learn_one(self, event: Mapping[str, Any]) -> None:
        country = self._country(event)
        if country is not None:
            paid = self._table.setdefault(event["account_id"], event["_ts"], dict)
            paid[country] = paid.get(country, 0) + 1

    def score_one(self, event: Mapping[str, Any]) -> Score:
        country = self._country(event)
        if country is None:
            return NORMAL
        paid = self._table.get(event["account_id"])
        if paid is not None and paid.get(country, 0) >= self.min_history:
            return NORMAL
        amount = _amount(event)
        if amount <= 0.0:
            return NORMAL
        score = logistic(math.log(amount), self._log_mid, self._log_alarm)
        return Score(score, f"first transfer to high-risk {country}: {_money(amount)}", amount)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"countries": ("IR", "KP"), "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Family remittances of 100-400 to AF and YE; then 5,000 from a new payer to IR."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        remittances = [
            make_event("financial", _ts=START + 1_800 * i + 7, account_id=f"ACC-FAM-{i % 5}",
                       counterparty_id=f"FAM-{i % 5}", country=("AF", "YE")[i % 5 % 2],
                       amount=round(rng.uniform(100, 400), 2))
            for i in range(40)
        ]
        normal = merge(financial_traffic(seed, n=1_500, rate=0.05), remittances)
        t = normal[-1]["_ts"] + 60
        transfer = [make_event("financial", _ts=t, account_id="ACC-0003", country="IR",
                               counterparty_id="IR-TRADING-1", amount=5_000.0)]
        return normal, transfer
