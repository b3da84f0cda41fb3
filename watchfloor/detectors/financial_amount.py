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


class _AmountHistory:
    """Recent log amounts of one account (a ring), their cached median and scale, and
    their mean and variance (for the blend with peers while the history is short)."""

    __slots__ = ("buf", "mean", "med", "n", "pos", "scale", "var")

    def __init__(self) -> None:
        self.buf: list[float] = []
        self.pos = 0
        self.n = 0
        self.med = 0.0
        self.scale = 0.0
        self.mean = 0.0
        self.var = 0.0

    def __getstate__(self) -> tuple[list[float], int, int, float, float, float, float]:
        return (self.buf, self.pos, self.n, self.med, self.scale, self.mean, self.var)

    def __setstate__(self, s: tuple[list[float], int, int, float, float, float, float]) -> None:
        self.buf, self.pos, self.n, self.med, self.scale, self.mean, self.var = s


class AmountAnomaly(Detector):
    """An account sends far more than it usually does, or than its peers do while it is
    new (account takeover).

    Keeps each account's last ``window`` amounts and their median and MAD on a log
    scale (robust: a few past outliers move neither). After ``warm_up`` payments, an
    amount scores high when it is both a large *multiple* of the median (``mid`` and
    ``alarm`` are multiples) and far outside the account's usual spread (robust z above
    ``z_alarm``). Requiring both keeps payday spikes (3-5x the median) and business
    accounts with heavy-tailed amounts quiet: their multiples are small or their spread
    is wide.

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
    >>> s.score > 0.95, s.reason
    (True, 'amount 4,000 is 38x the median 105 (robust z 8.9)')
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
            k = len(buf)
            h.mean = sum(buf) / k
            h.var = sum((v - h.mean) ** 2 for v in buf) / (k - 1) if k > 1 else 0.0
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
        return Score(
            score,
            f"amount {_money(math.exp(x))} is {math.exp(d):.0f}x the median "
            f"{_money(math.exp(h.med))} (robust z {z:.1f})",
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
    """A transfer or cash-out empties an account holding a sizeable balance.

    The classic takeover (PaySim-like): the fraudster moves the whole balance to a mule
    and cashes it out, and the victim's account is seen once. Judged on the event alone
    and the peers: the payment takes the whole balance (``amount`` within ``tolerance``
    of ``balance_before`` and ``balance_after`` at most ``tolerance`` of it), its type is
    one of ``drain_types`` (or the event carries no ``tx_type``), and the balance is
    large next to what the peer group (``tx_type``, ``channel``, ``account_type``)
    usually moves: ``raw`` is ``log10(balance / peers' typical amount)`` and ``mid`` and
    ``alarm`` are on that scale (by default a balance of 1/100 of a typical payment
    scores 0.5 and 1/10 of one 0.9, so emptying a near-empty account stays quiet).
    Events without balances are not judged.

    Look-alikes kept quiet: payments larger than the balance (the balance floors at 0:
    an overdraft, not a drain), payments leaving money behind, and card payments or
    cash-ins that happen to spend the last euro.

    Parameters
    ----------
    drain_types
        Transaction types (``tx_type``, case-insensitive) that can drain an account.
    tolerance
        Largest fraction of the balance by which the amount may differ from it, and
        that may remain after it.
    mid, alarm
        ``log10(balance / peers' typical amount)`` scored 0.5 and 0.9.
    min_population
        Payments seen overall before anything is judged.
    min_peers
        Payments a peer group needs before it replaces the population as baseline.
    peer_fields
        Event fields naming the peer group.

    Examples
    --------
    >>> import random
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> rng = random.Random(1)
    >>> det = AccountDrain()
    >>> for i in range(200):
    ...     bal = round(rng.uniform(1_000, 50_000), 2)
    ...     amt = round(bal * rng.uniform(0.01, 0.3), 2)
    ...     det.learn_one(make_event("financial", _ts=START + i, tx_type="TRANSFER",
    ...                              amount=amt, balance_before=bal,
    ...                              balance_after=round(bal - amt, 2)))
    >>> s = det.score_one(make_event("financial", _ts=START + 300, tx_type="TRANSFER",
    ...     account_id="C1", amount=181_000.0, balance_before=181_000.0, balance_after=0.0))
    >>> s.score > 0.99
    True
    >>> print(s.reason)
    TRANSFER of 181,000 emptied the account (181,000 -> 0.00; transfer online peers move ~2,284)
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
        mid: float = -2.0,
        alarm: float = -1.0,
        min_population: int = 100,
        min_peers: int = 50,
        peer_fields: tuple[str, ...] = _PEER_FIELDS,
    ) -> None:
        if not 0.0 <= tolerance < 0.5 or not mid < alarm:
            raise ValueError("need 0 <= tolerance < 0.5 and mid < alarm")
        if min_population < 2 or min_peers < 2:
            raise ValueError("need min_population, min_peers >= 2")
        self.drain_types = tuple(drain_types)
        self.tolerance = tolerance
        self.mid = mid
        self.alarm = alarm
        self.min_population = min_population
        self.min_peers = min_peers
        self.peer_fields = tuple(peer_fields)
        self._types = frozenset(t.upper() for t in self.drain_types)
        self._peers = PeerBaseline(self.peer_fields, min_peers)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        x = _log_amount(event)
        if x is not None:
            self._peers.update(event, x, event["_ts"])

    def _drained(self, event: Mapping[str, Any]) -> float:
        """The balance the payment emptied, or 0.0 if it did not empty one."""
        tx = event.get("tx_type")
        if tx is not None and (type(tx) is not str or tx.upper() not in self._types):
            return 0.0
        before = _amount(event, "balance_before")
        if before <= 0.0 or "balance_after" not in event:
            return 0.0
        after = _amount(event, "balance_after")
        amount = _amount(event)
        slack = self.tolerance * before
        if after > slack or abs(amount - before) > slack:
            return 0.0
        return before

    def score_one(self, event: Mapping[str, Any]) -> Score:
        before = self._drained(event)
        if before <= 0.0:
            return NORMAL
        peers = self._peers.lookup(event)
        if peers.n < self.min_population and peers.group == "*":
            return NORMAL
        raw = (math.log(before) - peers.mean) / math.log(10.0)
        score = logistic(raw, self.mid, self.alarm)
        if score < 0.01:
            return NORMAL
        tx = event.get("tx_type")
        what = f"{tx.upper()} of" if type(tx) is str else "payment of"
        return Score(
            score,
            f"{what} {_money(_amount(event))} emptied the account ({_money(before)} "
            f"-> {_money(_amount(event, 'balance_after'))}; {_peer_text(peers)} move "
            f"~{_money(math.exp(peers.mean))})",
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
