"""Financial detectors: payments and transfers, one entity per ``account_id``.

Each detector keeps only what its threat needs, per account, in an :class:`EntityTable`
(bounded by ``max_entities`` and an idle ``ttl_seconds`` in event time), and scores with
:func:`~watchfloor.detectors.calibration.logistic` so 0.9 means "what the threat in
``docs/threats.md`` looks like" for every detector.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator, Mapping
from importlib.resources import files
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import logistic

__all__ = ["AmountAnomaly", "FanOut", "HighRiskJurisdiction", "Structuring"]

HIGH_RISK_COUNTRIES_PATH = str(files("watchfloor") / "data" / "high_risk_countries.txt")

_DAY = 86_400.0


def _window_text(seconds: float) -> str:
    """``86400`` -> ``"24h"``, ``5400`` -> ``"90min"``: how reasons name a window."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 60:.0f}min"


def _money(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _amount(event: Mapping[str, Any]) -> float:
    """The payment amount, or 0.0 when absent or not a number (nothing to judge)."""
    a = event.get("amount")
    return float(a) if type(a) is float or type(a) is int else 0.0


def payroll_runs(
    rng: random.Random, start: float, days: int, account: str = "ACC-PAYROLL", staff: int = 40
) -> list[dict[str, Any]]:
    """A company paying the same ``staff`` employees 2,000-6,000 every day at 17:00.

    The benign look-alike of structuring and fan-out (``docs/threats.md``).
    """
    from watchfloor.detectors.testkit import make_event

    salaries = [round(rng.uniform(2_000, 6_000), 2) for _ in range(staff)]
    return [
        make_event("financial", _ts=start + d * _DAY + 17 * 3600 + 5 * i, account_id=account,
                   counterparty_id=f"EMP-{i:03d}", amount=salaries[i], country="NL")
        for d in range(days)
        for i in range(staff)
    ]


def load_countries(path: str) -> tuple[str, ...]:
    """ISO country codes from a text file, one per line; ``#`` starts a comment."""
    with open(path, encoding="utf-8") as fh:
        codes = (line.split("#", 1)[0].strip().upper() for line in fh)
        return tuple(c for c in codes if c)


# -- amount anomaly -------------------------------------------------------------------


class _AmountHistory:
    """Recent log amounts of one account (a ring) and their cached median and scale."""

    __slots__ = ("buf", "med", "n", "pos", "scale")

    def __init__(self) -> None:
        self.buf: list[float] = []
        self.pos = 0
        self.n = 0
        self.med = 0.0
        self.scale = 0.0

    def __getstate__(self) -> tuple[list[float], int, int, float, float]:
        return (self.buf, self.pos, self.n, self.med, self.scale)

    def __setstate__(self, s: tuple[list[float], int, int, float, float]) -> None:
        self.buf, self.pos, self.n, self.med, self.scale = s


class AmountAnomaly(Detector):
    """An account sends far more than it usually does (account takeover).

    Keeps each account's last ``window`` amounts and their median and MAD on a log
    scale (robust: a few past outliers move neither). After ``warm_up`` payments, an
    amount scores high when it is both a large *multiple* of the median (``mid`` and
    ``alarm`` are multiples) and far outside the account's usual spread (robust z above
    ``z_alarm``). Requiring both keeps payday spikes (3-5x the median) and business
    accounts with heavy-tailed amounts quiet: their multiples are small or their spread
    is wide.

    Parameters
    ----------
    window
        Amounts kept per account for the baseline.
    warm_up
        Payments an account must have made before it is scored.
    mid, alarm
        Multiples of the account's median amount scored 0.5 and 0.9.
    z_mid, z_alarm
        Robust z-scores (log-amount distance from the median in MAD units) scored 0.5
        and 0.9; the final score is the smaller of the two.
    min_scale
        Floor of the log-amount spread, so an account that always pays the same amount
        is not alarmed by a small change.
    small_sample
        Widening of the spread for short histories: it is multiplied by
        ``1 + small_sample / sqrt(history length)``.
    max_entities, ttl_seconds
        Bound on accounts tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> import random
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> rng = random.Random(3)
    >>> det = AmountAnomaly()
    >>> for i in range(40):
    ...     det.learn_one(make_event("financial", _ts=START + i * 3600,
    ...                              amount=round(rng.uniform(60, 140), 2)))
    >>> takeover = make_event("financial", _ts=START + 41 * 3600, amount=4_000.0)
    >>> s = det.score_one(takeover)
    >>> s.score > 0.95, s.reason
    (True, 'amount 4,000 is 38x the median 105 (robust z 8.9)')
    >>> det.score_one(make_event("financial", _ts=START + 41 * 3600, amount=130.0)).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "account_takeover"

    def __init__(
        self,
        window: int = 64,
        warm_up: int = 15,
        mid: float = 8.0,
        alarm: float = 16.0,
        z_mid: float = 3.0,
        z_alarm: float = 5.0,
        min_scale: float = 0.15,
        small_sample: float = 3.0,
        max_entities: int = 100_000,
        ttl_seconds: float = 30 * _DAY,
    ) -> None:
        if window < 3 or not 1 <= warm_up <= window:
            raise ValueError("need window >= 3 and 1 <= warm_up <= window")
        if not 1.0 < mid < alarm or not z_mid < z_alarm:
            raise ValueError("need 1 < mid < alarm and z_mid < z_alarm")
        if min_scale <= 0:
            raise ValueError("min_scale must be > 0")
        self.window = window
        self.warm_up = warm_up
        self.mid = mid
        self.alarm = alarm
        self.z_mid = z_mid
        self.z_alarm = z_alarm
        self.min_scale = min_scale
        self.small_sample = small_sample
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._log_mid = math.log(mid)
        self._log_alarm = math.log(alarm)
        self._table: EntityTable[_AmountHistory] = EntityTable(max_entities, ttl_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        amount = _amount(event)
        if amount <= 0.0:
            return
        h = self._table.setdefault(event["account_id"], event["_ts"], _AmountHistory)
        x = math.log(amount)
        buf = h.buf
        if len(buf) < self.window:
            buf.append(x)
        else:
            buf[h.pos] = x
            h.pos = (h.pos + 1) % self.window
        h.n += 1
        if h.n < self.warm_up:
            return
        # Recomputed on learn so scoring is two subtractions; 64 floats sort in ~2 µs.
        s = sorted(buf)
        k = len(s)
        med = s[k // 2] if k % 2 else 0.5 * (s[k // 2 - 1] + s[k // 2])
        dev = sorted([abs(v - med) for v in buf])
        mad = dev[k // 2] if k % 2 else 0.5 * (dev[k // 2 - 1] + dev[k // 2])
        h.med = med
        # 1.4826 * MAD estimates the standard deviation of a normal distribution; from a
        # short history it is often far too small (heavy-tailed business accounts look
        # steady for their first dozen payments), so widen it by 1 + c/sqrt(k).
        h.scale = max(1.4826 * mad, self.min_scale) * (1.0 + self.small_sample / math.sqrt(k))

    def score_one(self, event: Mapping[str, Any]) -> Score:
        h = self._table.get(event["account_id"])
        if h is None or h.n < self.warm_up:
            return NORMAL
        amount = _amount(event)
        if amount <= 0.0:
            return NORMAL
        d = math.log(amount) - h.med
        if d <= 0.0:
            return NORMAL
        ratio_score = logistic(d, self._log_mid, self._log_alarm)
        z = d / h.scale
        score = min(ratio_score, logistic(z, self.z_mid, self.z_alarm))
        if score < 0.01:
            return NORMAL
        ratio = math.exp(d)
        return Score(
            score,
            f"amount {_money(amount)} is {ratio:.0f}x the median {_money(math.exp(h.med))} "
            f"(robust z {z:.1f})",
            ratio,
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"window": 16, "warm_up": 5, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Heavy-tailed background accounts and a salaried account with payday spikes;
        then the salaried account sends 40x its median."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        steady = []
        for i in range(60):
            # Every 10th payment is rent or a payday splurge: 3-5x the usual.
            amount = rng.uniform(80, 120) * (rng.uniform(3, 5) if i % 10 == 9 else 1)
            steady.append(make_event("financial", _ts=START + 600 * i + 300,
                                     account_id="ACC-STEADY", amount=round(amount, 2)))
        normal = merge(financial_traffic(seed, n=1_500, rate=0.04), steady)
        t = normal[-1]["_ts"] + 60
        takeover = [make_event("financial", _ts=t, account_id="ACC-STEADY", amount=4_000.0,
                               counterparty_id="ACC-UNKNOWN", country="CY")]
        return normal, takeover


# -- structuring ----------------------------------------------------------------------


class Structuring(Detector):
    """Several payments just under the reporting threshold within a window (smurfing).

    Counts an account's payments in ``[threshold * (1 - margin), threshold)`` over the
    last ``window_seconds``; ``min_count`` of them score above 0.9 (one fewer scores 0.5).
    Only accounts that make such payments are tracked, so payroll runs of ordinary
    amounts cost nothing and a single legitimate payment just under the threshold
    scores low.

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
        self._table: EntityTable[deque[float]] = EntityTable(max_entities, ttl_seconds)

    def _in_band(self, event: Mapping[str, Any]) -> bool:
        return self._low <= _amount(event) < self.threshold

    def learn_one(self, event: Mapping[str, Any]) -> None:
        if self._in_band(event):
            now = event["_ts"]
            self._table.setdefault(
                event["account_id"], now, lambda: deque(maxlen=self.max_recent)
            ).append(now)

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if not self._in_band(event):
            return NORMAL
        count = 1
        recent = self._table.get(event["account_id"])
        if recent:
            since = event["_ts"] - self.window_seconds
            for t in reversed(recent):
                if t <= since:
                    break
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
        self.recent: deque[tuple[float, str]] = deque(maxlen=max_recent)

    def __getstate__(self) -> tuple[dict[str, None], deque[tuple[float, str]]]:
        return (self.known, self.recent)

    def __setstate__(self, s: tuple[dict[str, None], deque[tuple[float, str]]]) -> None:
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
