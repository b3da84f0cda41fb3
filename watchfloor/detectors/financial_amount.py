"""Financial detectors judging the size of one payment: against the account's own history
once it has one, against its peers and the population until then.

* :class:`AmountAnomaly` (``amount_anomaly``): an account sends far more than it (or,
  while it is new, its peers) usually does.
* :class:`AccountDrain` (``account_drain``): a transfer or cash-out empties an account
  holding a sizeable balance: the account-takeover signal of PaySim-like data, where
  every defrauded account is seen once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import logistic
from watchfloor.detectors.financial_common import _DAY, _amount, _log_amount, _money
from watchfloor.detectors.peers import PeerBaseline, PeerView, shrink

__all__ = ["AccountDrain", "AmountAnomaly"]

_PEER_FIELDS = ("tx_type", "channel", "account_type")


def _peer_text(view: PeerView) -> str:
    return "all accounts" if view.group == "*" else view.group.replace("|", " ") + " peers"


def _kth_deviation(s: list[float], med: float, m: int) -> float:
    """The ``m``-th smallest ``abs(v - med)`` over the sorted values ``s`` (1 <= m <= len).

    The ``m`` values nearest ``med`` are ``m`` consecutive ones of ``s``, and the
    answer is the smallest, over such windows, of the larger deviation of the two ends:
    a binary search instead of computing and sorting every deviation. Exactly the same
    float as ``sorted(abs(v - med) for v in s)[m - 1]`` (``med - v`` is ``-(v - med)``
    rounded the same way).

    >>> s = [0.5, 1.0, 1.0, 2.0, 7.0]
    >>> [_kth_deviation(s, 1.0, m) for m in range(1, 6)]
    [0.0, 0.0, 0.5, 1.0, 6.0]
    """
    n = len(s)
    lo, hi = 0, n - m + 1
    while lo < hi:  # the first window whose right end is at least as far as its left
        mid = (lo + hi) // 2
        if s[mid + m - 1] - med >= med - s[mid]:
            hi = mid
        else:
            lo = mid + 1
    best = -1.0
    if lo <= n - m:  # that window: its right end is the larger deviation
        best = s[lo + m - 1] - med
    if lo >= 1:  # the window before it: its left end is the larger deviation
        left = med - s[lo - 1]
        if best < 0.0 or left < best:
            best = left
    return best


class _AmountHistory:
    """Recent log amounts of one account (a ring), their cached median and scale, and
    their mean and variance (for the blend with peers while the history is short)."""

    __slots__ = ("buf", "mean", "med", "n", "pos", "scale", "top", "var")

    def __init__(self) -> None:
        self.buf: list[float] = []
        self.pos = 0
        self.n = 0
        self.med = 0.0
        self.scale = 0.0
        self.mean = 0.0
        self.var = 0.0
        self.top = 0.0  # the largest log amount of the ring

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.buf, self.pos, self.n, self.med, self.scale, self.mean, self.var, self.top)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        self.buf, self.pos, self.n, self.med, self.scale, self.mean, self.var = s[:7]
        # A checkpoint from before ``top`` existed (its detector restarts fresh anyway:
        # its parameters differ, but the pickle must load first).
        self.top = s[7] if len(s) > 7 else max(self.buf, default=0.0)


class AmountAnomaly(Detector):
    """An account sends far more than it usually does, or than its peers do while it is
    new (account takeover).

    Keeps each account's last ``window`` amounts and their median and MAD on a log
    scale (robust: a few past outliers move neither). After ``warm_up`` payments, an
    amount scores high when it is both a large *multiple* of the median (``mid`` and
    ``alarm`` are multiples), far outside the account's usual spread (robust z above
    ``z_alarm``) and well above the largest payment in its window (``record_mid``,
    ``record_alarm``). Requiring all three keeps payday spikes (3-5x the median),
    business accounts with heavy-tailed amounts and the occasional large purchase quiet:
    their multiples are small, their spread is wide, or they have paid as much before.

    Before that, the account is judged from its first payment on against its peer group
    (the event's ``tx_type``, ``channel``, ``account_type``; the whole population while
    the group has fewer than ``min_peers`` payments): the account's own few amounts and
    its peers' are blended by count (the peers weigh as ``prior_strength`` payments) and
    the spread is widened for the small sample, with stricter multiples (``peer_mid``,
    ``peer_alarm``) and z-scores (``peer_z_mid``, ``peer_z_alarm``): a first payment of
    9.5 million from an account whose peers move ~50 is an alarm on a fresh deployment,
    once ``min_population`` payments have been seen. Amounts that alarm against the
    population are kept out of the peer baselines, so an attack does not calibrate its
    own baseline away.

    Parameters
    ----------
    window
        Amounts kept per account for the baseline.
    warm_up
        Payments an account must have made before it is judged by its own history alone.
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
    record_mid, record_alarm
        Multiples of the largest amount among the account's last ``window`` payments
        scored 0.5 and 0.9: an account that has paid nearly as much before (a car, a
        rent deposit) is not taken over by paying it again.
    peer_mid, peer_alarm
        Multiples of the blended (own + peer) typical amount scored 0.5 and 0.9.
    peer_z_mid, peer_z_alarm
        z-scores against the blended mean and spread scored 0.5 and 0.9.
    prior_strength
        How many payments the peer baseline weighs in the blend.
    min_population
        Payments seen overall before anyone is judged against peers.
    min_peers
        Payments a peer group needs before it replaces the population as baseline.
    peer_fields
        Event fields naming the peer group.
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
    >>> s.score > 0.95
    True
    >>> print(s.reason)
    amount 4,000 is 38x the median 105 and 28.6x the largest of its last 40 payments (robust z 8.9)
    >>> det.score_one(make_event("financial", _ts=START + 41 * 3600, amount=130.0)).score
    0.0

    A fresh deployment: 150 payments of ~50 by other accounts, then a never-seen account
    sends 9.5 million.

    >>> det = AmountAnomaly()
    >>> for i in range(150):
    ...     det.learn_one(make_event("financial", _ts=START + i, account_id=f"A{i % 60}",
    ...                              amount=round(rng.lognormvariate(3.9, 0.8), 2)))
    >>> s = det.score_one(make_event("financial", _ts=START + 200, account_id="NEW",
    ...                              amount=9_500_000.0))
    >>> s.score > 0.99, s.reason
    (True, 'amount 9,500,000 is 186,749x the usual 50.87 of online peers (z 14.9, 0 own payments)')
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
        record_mid: float = 1.5,
        record_alarm: float = 4.0,
        peer_mid: float = 30.0,
        peer_alarm: float = 300.0,
        peer_z_mid: float = 4.5,
        peer_z_alarm: float = 6.5,
        prior_strength: float = 8.0,
        min_population: int = 100,
        min_peers: int = 50,
        peer_fields: tuple[str, ...] = _PEER_FIELDS,
        max_entities: int = 100_000,
        ttl_seconds: float = 30 * _DAY,
    ) -> None:
        if window < 3 or not 1 <= warm_up <= window:
            raise ValueError("need window >= 3 and 1 <= warm_up <= window")
        if not 1.0 < mid < alarm or not z_mid < z_alarm:
            raise ValueError("need 1 < mid < alarm and z_mid < z_alarm")
        if not 1.0 < record_mid < record_alarm:
            raise ValueError("need 1 < record_mid < record_alarm")
        if not 1.0 < peer_mid < peer_alarm or not peer_z_mid < peer_z_alarm:
            raise ValueError("need 1 < peer_mid < peer_alarm and peer_z_mid < peer_z_alarm")
        if min_scale <= 0 or prior_strength <= 0 or min_population < 2 or min_peers < 2:
            raise ValueError("need min_scale, prior_strength > 0; min_population, min_peers >= 2")
        self.window = window
        self.warm_up = warm_up
        self.mid = mid
        self.alarm = alarm
        self.z_mid = z_mid
        self.z_alarm = z_alarm
        self.min_scale = min_scale
        self.small_sample = small_sample
        self.record_mid = record_mid
        self.record_alarm = record_alarm
        self.peer_mid = peer_mid
        self.peer_alarm = peer_alarm
        self.peer_z_mid = peer_z_mid
        self.peer_z_alarm = peer_z_alarm
        self.prior_strength = prior_strength
        self.min_population = min_population
        self.min_peers = min_peers
        self.peer_fields = tuple(peer_fields)
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._log_mid = math.log(mid)
        self._log_alarm = math.log(alarm)
        self._log_record_mid = math.log(record_mid)
        self._log_record_alarm = math.log(record_alarm)
        self._log_peer_mid = math.log(peer_mid)
        self._log_peer_alarm = math.log(peer_alarm)
        self._peers = PeerBaseline(self.peer_fields, min_peers)
        self._table: EntityTable[_AmountHistory] = EntityTable(max_entities, ttl_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        x = _log_amount(event)
        if x is None:
            return
        pop = self._peers.population
        if pop.n < self.min_population or (x - pop.mean) <= self.peer_z_alarm * max(
            math.sqrt(pop.var), self._peers.min_std
        ):
            self._peers.update(event, x, event["_ts"])
        h = self._table.setdefault(event["account_id"], event["_ts"], _AmountHistory)
        buf = h.buf
        if len(buf) < self.window:
            buf.append(x)
        else:
            buf[h.pos] = x
            h.pos = (h.pos + 1) % self.window
        h.n += 1
        if h.n < self.warm_up:
            # Welford's update: the ring only grows while n < warm_up <= window, so the
            # running mean and variance are exactly those of the buffer.
            k = len(buf)
            d = x - h.mean
            h.mean += d / k
            m2 = h.var * (k - 2) + d * (x - h.mean) if k > 1 else 0.0
            h.var = m2 / (k - 1) if k > 1 else 0.0
            return
        # Recomputed on learn so scoring is two subtractions; 64 floats sort in ~2 µs.
        s = sorted(buf)
        k = len(s)
        half = k // 2
        if k % 2:
            med = s[half]
            mad = _kth_deviation(s, med, half + 1)
        else:
            med = 0.5 * (s[half - 1] + s[half])
            mad = 0.5 * (_kth_deviation(s, med, half) + _kth_deviation(s, med, half + 1))
        h.med = med
        h.top = s[-1]
        # 1.4826 * MAD estimates the standard deviation of a normal distribution; from a
        # short history it is often far too small (heavy-tailed business accounts look
        # steady for their first dozen payments), so widen it by 1 + c/sqrt(k).
        spread = 1.4826 * mad
        if self.min_scale > spread:  # max(1.4826 * mad, self.min_scale)
            spread = self.min_scale
        h.scale = spread * (1.0 + self.small_sample / math.sqrt(k))

    def score_one(self, event: Mapping[str, Any]) -> Score:
        x = _log_amount(event)
        if x is None:
            return NORMAL
        h = self._table.get(event["account_id"])
        if h is None or h.n < self.warm_up:
            return self._score_new(event, x, h)
        d = x - h.med
        if d <= 0.0:
            return NORMAL
        ratio_score = logistic(d, self._log_mid, self._log_alarm)
        z = d / h.scale
        score = min(ratio_score, logistic(z, self.z_mid, self.z_alarm))
        if score < 0.01:
            return NORMAL
        # An account that has already paid nearly this much (a car, a rent deposit) is
        # not taken over by paying it again: the amount must also exceed its record.
        record = x - h.top
        score = min(score, logistic(record, self._log_record_mid, self._log_record_alarm))
        if score < 0.01:
            return NORMAL
        return Score(
            score,
            f"amount {_money(math.exp(x))} is {math.exp(d):.0f}x the median "
            f"{_money(math.exp(h.med))} and {math.exp(record):.1f}x the largest of its last "
            f"{len(h.buf)} payments (robust z {z:.1f})",
            math.exp(d),
        )

    def _score_new(self, event: Mapping[str, Any], x: float, h: _AmountHistory | None) -> Score:
        """Judge an account with a short history against its blend with its peers."""
        peers = self._peers.lookup(event)
        if peers.n < self.min_population and peers.group == "*":
            return NORMAL
        n = 0 if h is None else len(h.buf)
        m, s = shrink(n, h.mean if h else 0.0, h.var if h else 0.0, peers,
                      self.prior_strength)
        d = x - m
        if d <= 0.0:
            return NORMAL
        z = d / s
        score = min(logistic(d, self._log_peer_mid, self._log_peer_alarm),
                    logistic(z, self.peer_z_mid, self.peer_z_alarm))
        if score < 0.01:
            return NORMAL
        ratio = math.exp(d)
        own = "1 own payment" if n == 1 else f"{n} own payments"
        return Score(
            score,
            f"amount {_money(math.exp(x))} is {ratio:,.0f}x the usual {_money(math.exp(m))} "
            f"of {_peer_text(peers)} (z {z:.1f}, {own})",
            ratio,
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"window": 16, "warm_up": 5, "max_entities": 10, "min_population": 20}

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


# -- account drain --------------------------------------------------------------------


class AccountDrain(Detector):
    """A transfer or cash-out empties an account holding a large balance for its peers,
    where emptying an account is rare.

    The classic takeover (PaySim-like): the fraudster moves the whole balance to a mule
    and cashes it out, and the victim's account is seen once. Judged on the event alone
    and its peers (the group named by ``peer_fields``, e.g. all TRANSFERs; the whole
    population while the group has fewer than ``min_peers`` events). A payment *drains*
    the account when its type is one of ``drain_types`` (or the event has no
    ``tx_type``), ``amount`` is within ``tolerance`` of ``balance_before`` and
    ``balance_after`` is at most ``tolerance`` of it. The raw evidence adds two things,
    both learnt from the peers:

    * how rare a drain is among the peers' payments: ``-log10(drain rate)`` (the rate
      is blended with ``prior_rate`` as ``prior_strength`` payments), so where honest
      customers often withdraw everything (cash-outs at an agent) a drain alone says
      little, and where they never do (transfers) it says a lot;
    * how large the balance is for the peers: its z-score among their log balances;
    * how novel the payment is for the peers: for each end (sender, receiver) never seen
      before, ``-log10`` of the rate at which the peers' payments involve a never-seen
      account of that side (blended with ``prior_novel``), so a never-seen mule stands
      out where customers and payees recur, and means nothing where every sender is new.

    ``mid`` and ``alarm`` are on that sum. A drain counts toward the rate by how
    unremarkable it was (``1 - score``; squared for an account seen for the first
    time), so a wave of takeovers does not make itself normal while common honest
    drains soon do. Events without balances are not
    judged.

    Look-alikes kept quiet: payments larger than the balance (the balance floors at 0:
    an overdraft, not a drain), payments leaving money behind, card payments spending the
    last cent, small accounts emptied where that is common.

    Parameters
    ----------
    drain_types
        Transaction types (``tx_type``, case-insensitive) that can drain an account.
    tolerance
        Largest fraction of the balance by which the amount may differ from it, and
        that may remain after it.
    mid, alarm
        Rarity of a drain (``-log10`` of the peers' drain rate) plus the balance's
        z-score among the peers', scored 0.5 and 0.9.
    prior_rate, prior_strength
        Drain rate assumed before the peers have shown theirs, and how many payments it
        weighs.
    prior_novel
        Rate of never-seen senders (and receivers) assumed before the peers have shown
        theirs (weighing ``prior_strength`` payments).
    min_population
        Events with a balance seen overall before anything is judged.
    min_peers
        Events a peer group needs before it replaces the population as baseline.
    peer_fields
        Event fields naming the peer group.
    max_entities, ttl_seconds
        Bound on accounts remembered as seen, and idle time (event time) after which one
        is forgotten.

    Examples
    --------
    >>> import random
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> rng = random.Random(1)
    >>> det = AccountDrain()
    >>> for i in range(300):
    ...     bal = round(rng.lognormvariate(9, 1.0), 2)
    ...     amt = round(bal * rng.uniform(0.01, 0.3), 2)
    ...     det.learn_one(make_event("financial", _ts=START + i, tx_type="TRANSFER",
    ...                              amount=amt, balance_before=bal,
    ...                              balance_after=round(bal - amt, 2)))
    >>> s = det.score_one(make_event("financial", _ts=START + 300, tx_type="TRANSFER",
    ...     account_id="C1", amount=81_000.0, balance_before=81_000.0, balance_after=0.0))
    >>> s.score > 0.99
    True
    >>> print(s.reason)  # doctest: +NORMALIZE_WHITESPACE
    TRANSFER of 81,000 emptied the account (81,000 -> 0.00); 1 in 7,000 payments of
    transfer online peers does that; balance z 2.3 among theirs; never-seen sender
    >>> det.score_one(make_event("financial", _ts=START + 300, tx_type="TRANSFER",
    ...     amount=4_000.0, balance_before=9_000.0, balance_after=5_000.0)).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "account_takeover"

    def __init__(
        self,
        drain_types: tuple[str, ...] = ("TRANSFER", "CASH_OUT"),
        tolerance: float = 0.001,
        mid: float = 2.5,
        alarm: float = 3.5,
        prior_rate: float = 0.001,
        prior_strength: float = 50.0,
        prior_novel: float = 0.2,
        min_population: int = 100,
        min_peers: int = 50,
        peer_fields: tuple[str, ...] = _PEER_FIELDS,
        max_entities: int = 200_000,
        ttl_seconds: float = 90 * _DAY,
    ) -> None:
        if not 0.0 < prior_novel < 1.0:
            raise ValueError("need 0 < prior_novel < 1")
        if not 0.0 <= tolerance < 0.5 or not mid < alarm:
            raise ValueError("need 0 <= tolerance < 0.5 and mid < alarm")
        if not 0.0 < prior_rate < 1.0 or prior_strength <= 0:
            raise ValueError("need 0 < prior_rate < 1 and prior_strength > 0")
        if min_population < 2 or min_peers < 2:
            raise ValueError("need min_population, min_peers >= 2")
        self.drain_types = tuple(drain_types)
        self.tolerance = tolerance
        self.mid = mid
        self.alarm = alarm
        self.prior_rate = prior_rate
        self.prior_strength = prior_strength
        self.prior_novel = prior_novel
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self.min_population = min_population
        self.min_peers = min_peers
        self.peer_fields = tuple(peer_fields)
        self._types = frozenset(t.upper() for t in self.drain_types)
        # Log balances of the peers, and their drain rate (as moments of 0/1 values).
        self._balances = PeerBaseline(self.peer_fields, min_peers, min_std=0.1)
        self._drains = PeerBaseline(self.peer_fields, min_peers, min_std=0.0)
        # How often the peers' payments come from / go to a never-seen account.
        self._new_from = PeerBaseline(self.peer_fields, min_peers, min_std=0.0)
        self._new_to = PeerBaseline(self.peer_fields, min_peers, min_std=0.0)
        self._seen: EntityTable[bool] = EntityTable(max_entities, ttl_seconds)

    def _rate(self, base: PeerBaseline, event: Mapping[str, Any], prior: float) -> float:
        v = base.lookup(event)
        k = self.prior_strength
        return (v.n * v.mean + k * prior) / (v.n + k)

    def _novelty(self, event: Mapping[str, Any]) -> tuple[float, str]:
        """Surprise of the never-seen ends of the payment, and how the reason says so."""
        total, said = 0.0, []
        for field, base, name in (("account_id", self._new_from, "sender"),
                                  ("counterparty_id", self._new_to, "receiver")):
            if event.get(field) not in self._seen:
                total -= math.log10(self._rate(base, event, self.prior_novel))
                said.append(name)
        return total, " and ".join(said)
    def _balance(self, event: Mapping[str, Any]) -> float:
        """``balance_before`` when the event carries both balances, else 0.0."""
        if "balance_after" not in event:
            return 0.0
        return _amount(event, "balance_before")

    def _drained(self, event: Mapping[str, Any], before: float) -> bool:
        tx = event.get("tx_type")
        if tx is not None and (type(tx) is not str or tx.upper() not in self._types):
            return False
        slack = self.tolerance * before
        return (_amount(event, "balance_after") <= slack
                and abs(_amount(event) - before) <= slack)

    def _judge(self, event: Mapping[str, Any], before: float) -> tuple[float, float, PeerView]:
        """(raw, drain rate, balance peers) of a drain; raw is -inf when not judged."""
        peers = self._balances.lookup(event)
        if peers.n < self.min_population and peers.group == "*":
            return -math.inf, 1.0, peers
        rate = self._rate(self._drains, event, self.prior_rate)
        z = (math.log(before) - peers.mean) / peers.std
        return -math.log10(rate) + z + self._novelty(event)[0], rate, peers

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now = event["_ts"]
        before = self._balance(event)
        if before <= 0.0:
            self._learn_novelty(event, now)
            return
        if not self._drained(event, before):
            self._balances.update(event, math.log(before), now)
            self._drains.update(event, 0.0, now)
            self._learn_novelty(event, now)
            return
        # Takeovers must not make draining look normal for the next ones, while honest
        # customers who often empty their account (cash-outs at an agent) should soon
        # teach the rate that it is common there. So a drain counts toward its peers'
        # rate by how unremarkable it was, (1 - score), and less still, (1 - score)^2,
        # when the account is seen for the first time: a first-and-only account
        # emptying itself is the very pattern judged.
        raw = self._judge(event, before)[0]
        score = logistic(raw, self.mid, self.alarm) if raw > -math.inf else 0.0
        weight = 1.0 - score if event.get("account_id") in self._seen else (1.0 - score) ** 2
        self._drains.update(event, weight, now)
        if score < 0.9:
            self._balances.update(event, math.log(before), now)
        self._learn_novelty(event, now)

    def _learn_novelty(self, event: Mapping[str, Any], now: float) -> None:
        # The rates first (was this end new?), then both ends become seen. Learnt after
        # the drain statistics, which judge the event as it was scored.
        sender, receiver = event.get("account_id"), event.get("counterparty_id")
        self._new_from.update(event, float(sender not in self._seen), now)
        self._new_to.update(event, float(receiver not in self._seen), now)
        for end in (sender, receiver):
            if type(end) is str:
                self._seen.setdefault(end, now, bool)

    def score_one(self, event: Mapping[str, Any]) -> Score:
        before = self._balance(event)
        if before <= 0.0 or not self._drained(event, before):
            return NORMAL
        raw, rate, peers = self._judge(event, before)
        score = logistic(raw, self.mid, self.alarm) if raw > -math.inf else 0.0
        if score < 0.01:
            return NORMAL
        tx = event.get("tx_type")
        what = f"{tx.upper()} of" if type(tx) is str else "payment of"
        novelty, new = self._novelty(event)
        z = raw + math.log10(rate) - novelty
        new = f"; never-seen {new}" if new else ""
        return Score(
            score,
            f"{what} {_money(_amount(event))} emptied the account ({_money(before)} -> "
            f"{_money(_amount(event, 'balance_after'))}); 1 in {1 / rate:,.0f} payments of "
            f"{_peer_text(peers)} does that; balance z {z:.1f} among theirs{new}",
            raw,
        )

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """PaySim-like traffic: payments, cash-ins and transfers leaving money behind,
        overdrafts flooring at zero, card payments spending the last cent; then a
        never-seen account transfers its whole balance and the mule cashes it out."""
        from watchfloor.detectors.testkit import START, make_event

        rng = random.Random(seed)
        normal = []
        for i in range(1_500):
            tx = rng.choice(("PAYMENT", "PAYMENT", "CASH_IN", "TRANSFER", "CASH_OUT", "DEBIT"))
            before = round(rng.lognormvariate(9.0, 1.5), 2)
            amount = round(rng.lognormvariate(7.0, 1.5), 2)
            if i % 50 == 7:  # an overdraft: more than the balance, which floors at 0
                amount = round(before * rng.uniform(1.1, 3.0), 2)
            if i % 70 == 3:  # a card payment spending exactly what was left
                tx, amount = "PAYMENT", before
            after = round(before + amount, 2) if tx == "CASH_IN" else max(
                round(before - amount, 2), 0.0)
            normal.append(make_event("financial", _ts=START + 30 * i, account_id=f"C{i:06d}",
                                     tx_type=tx, amount=amount, balance_before=before,
                                     balance_after=after))
        t = START + 30 * 1_500
        stolen = round(rng.uniform(20_000, 400_000), 2)
        fraud = [
            make_event("financial", _ts=t, account_id="C-VICTIM", counterparty_id="C-MULE",
                       tx_type="TRANSFER", amount=stolen, balance_before=stolen,
                       balance_after=0.0),
            make_event("financial", _ts=t + 60, account_id="C-MULE", counterparty_id="M-ATM",
                       tx_type="CASH_OUT", amount=stolen, balance_before=stolen,
                       balance_after=0.0),
        ]
        return normal, fraud
