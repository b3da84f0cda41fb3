"""Laundering typologies over recent money flows: fan-in, pass-through, cycles, velocity.

Each detector is keyed by the entity an analyst would open a case on, with the other
end of the payment as a linked entity (``LINK_FIELDS`` of the financial domain names
both ``account_id`` and ``counterparty_id``; the engine links whichever the detection is
not keyed by):

* :class:`FanIn` (``fan_in``): many distinct senders new to one beneficiary in a window;
  keyed by the beneficiary (``counterparty_id``).
* :class:`PassThrough` (``pass_through``): an account forwards what it received within
  hours at a similar amount, again and again (a mule); keyed by the forwarding account.
* :class:`Cycle` (``cycle``): money returns to its origin through 3 to ``max_hops``
  accounts within a window at a similar amount; keyed by the origin.
* :class:`Velocity` (``velocity``): a burst of payments far above the account's own
  busiest hour (or its peers' while it is new).

State is bounded everywhere (``EntityTable`` per account, fixed-size rings inside), and
every count is idempotent on ``event_id``: a re-sent payment is the same payment.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable, Recent
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import StreamingQuantile, logistic
from watchfloor.detectors.financial_common import _DAY, _amount, _money, _window_text

__all__ = ["Cycle", "FanIn", "PassThrough", "Velocity"]

_HOUR = 3_600.0


def _eid(event: Mapping[str, Any]) -> str:
    return str(event.get("event_id", ""))


# -- fan-in ---------------------------------------------------------------------------


class _Inflows:
    """One beneficiary: known senders (LRU), recent inflows (time, sender, new?), and
    decayed counts of inflows and of inflows from new senders in completed windows."""

    __slots__ = ("all_hist", "bucket", "bucket_all", "bucket_new", "known", "new_hist",
                 "recent")

    def __init__(self, max_recent: int) -> None:
        self.known: dict[str, None] = {}
        self.recent: Recent = Recent(max_recent)
        self.bucket = -1
        self.bucket_new = 0
        self.bucket_all = 0
        self.new_hist = 0.0
        self.all_hist = 0.0

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.known, self.recent, self.bucket, self.bucket_new, self.bucket_all,
                self.new_hist, self.all_hist)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        (self.known, self.recent, self.bucket, self.bucket_new, self.bucket_all,
         self.new_hist, self.all_hist) = s


class FanIn(Detector):
    """Many distinct senders, new to one beneficiary, pay it within a window (fan-in:
    a collection account, the placement end of a laundering network).

    Per beneficiary (``counterparty_id``): the senders it has received from (up to
    ``max_senders``, least recent forgotten), its recent inflows, and how often in
    earlier windows an inflow came from a new sender (decayed counts, ``history_decay``
    per window). Until a beneficiary has its own history, that fraction is its peers':
    the fraction of recent inflows of the same kind (``peer_fields``: card payments to
    shops have new payers all the time, transfers between accounts seldom; about
    ``population_horizon`` of them) that came from new senders, blended in as
    ``prior_strength`` inflows. The raw
    evidence is the number of distinct new senders in the last ``window_seconds`` minus
    the number expected from that fraction and the inflows in the window, so an account
    paid by the same tenants every month gaining eight new payers stands out, while a
    shop or a cash-out agent whose payers are always new does not. ``mid`` and
    ``alarm`` are on that excess. During the first ``warmup_seconds`` of event time
    everything is learnt and nothing scored: every sender is new then.

    Parameters
    ----------
    window_seconds
        Window over which new senders are counted (event time).
    mid, alarm
        Excess new senders (count minus expected) scored 0.5 and 0.9.
    max_senders
        Known senders remembered per beneficiary.
    history_decay
        Factor applied to a beneficiary's counts per completed window.
    prior_strength
        Inflows the population's fraction weighs against the beneficiary's own.
    population_horizon
        Effective memory (inflows) of each peer group's new-sender fraction.
    peer_fields
        Event fields naming the peer group of an inflow.
    max_recent
        Inflows kept per beneficiary for the window count.
    warmup_seconds
        Event time after the first event during which nothing is scored.
    max_entities, ttl_seconds
        Bound on beneficiaries tracked and idle time (event time) after which one is
        dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = FanIn(warmup_seconds=0.0)
    >>> rent = [make_event("financial", _ts=START + d * _DAY, account_id=f"T{d // 3 % 3}",
    ...                    counterparty_id="LANDLORD") for d in range(0, 60, 3)]
    >>> t = START + 61 * _DAY
    >>> placement = [make_event("financial", _ts=t + 3_600 * i, account_id=f"SMURF-{i}",
    ...                         counterparty_id="LANDLORD", amount=900.0) for i in range(6)]
    >>> s = feed(det, rent + placement)[-1]
    >>> s.score > 0.9, s.reason
    (True, '6 new senders paid LANDLORD within 14d (1.8 expected from its history)')
    >>> det.score_one(make_event("financial", _ts=t, account_id="T1",
    ...                          counterparty_id="LANDLORD")).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "counterparty_id")
    kind: ClassVar[str] = "fan_in"

    def __init__(
        self,
        window_seconds: float = 14 * _DAY,
        mid: float = 2.5,
        alarm: float = 4.0,
        max_senders: int = 256,
        history_decay: float = 0.9,
        prior_strength: float = 5.0,
        population_horizon: float = 2_000.0,
        peer_fields: tuple[str, ...] = ("tx_type", "channel"),
        max_recent: int = 64,
        warmup_seconds: float = 7 * _DAY,
        max_entities: int = 100_000,
        ttl_seconds: float = 60 * _DAY,
    ) -> None:
        if window_seconds <= 0 or not 0 < mid < alarm or max_senders < 1:
            raise ValueError("need window_seconds > 0, 0 < mid < alarm, max_senders >= 1")
        if not 0.0 <= history_decay <= 1.0 or prior_strength <= 0 or population_horizon < 1:
            raise ValueError("need 0 <= history_decay <= 1, prior_strength > 0, "
                             "population_horizon >= 1")
        if warmup_seconds < 0 or max_recent < alarm:
            raise ValueError("need warmup_seconds >= 0 and max_recent >= alarm")
        self.window_seconds = window_seconds
        self.mid = mid
        self.alarm = alarm
        self.max_senders = max_senders
        self.history_decay = history_decay
        self.prior_strength = prior_strength
        self.population_horizon = population_horizon
        self.peer_fields = tuple(peer_fields)
        self.max_recent = max_recent
        self.warmup_seconds = warmup_seconds
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._window = _window_text(window_seconds) if window_seconds < _DAY else (
            f"{window_seconds / _DAY:.0f}d")
        self._scoring_from: float | None = None
        # peer group -> [decayed inflows from new senders, decayed inflows]
        self._peers: EntityTable[list[float]] = EntityTable(1_024, 365 * _DAY)
        self._table: EntityTable[_Inflows] = EntityTable(max_entities, ttl_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now = event["_ts"]
        if self._scoring_from is None:
            self._scoring_from = now + self.warmup_seconds
        inf = self._table.setdefault(event["counterparty_id"], now,
                                     lambda: _Inflows(self.max_recent))
        bucket = int(now // self.window_seconds)
        if bucket > inf.bucket:
            if inf.bucket >= 0:
                keep = self.history_decay ** (bucket - inf.bucket)
                inf.new_hist = inf.new_hist * keep + inf.bucket_new
                inf.all_hist = inf.all_hist * keep + inf.bucket_all
            inf.bucket, inf.bucket_new, inf.bucket_all = bucket, 0, 0
        sender = event["account_id"]
        known = inf.known
        is_new = sender not in known
        if not is_new:
            del known[sender]  # the dict's order is the LRU order
        elif len(known) >= self.max_senders:
            del known[next(iter(known))]
        known[sender] = None
        # A duplicate (same sender, already known) adds an inflow but no new sender.
        inf.recent.append((now, sender, is_new))
        inf.bucket_new += is_new
        inf.bucket_all += 1
        fade = 1.0 - 1.0 / self.population_horizon
        peer = self._peers.setdefault(self._group(event), now, lambda: [0.0, 0.0])
        peer[0] = peer[0] * fade + is_new
        peer[1] = peer[1] * fade + 1.0

    def _group(self, event: Mapping[str, Any]) -> str:
        parts = [v[:32].upper() for f in self.peer_fields
                 if type(v := event.get(f)) is str and v]
        return "|".join(parts)

    def score_one(self, event: Mapping[str, Any]) -> Score:
        now = event["_ts"]
        if self._scoring_from is None or now < self._scoring_from:
            return NORMAL
        sender = event["account_id"]
        inf = self._table.get(event["counterparty_id"])
        if inf is not None and sender in inf.known:
            return NORMAL
        senders = {sender: None}  # most recent first: the alert names the latest
        inflows = 1
        new_hist = all_hist = 0.0
        if inf is not None:
            since = now - self.window_seconds
            for t, s, is_new in reversed(inf.recent):
                if t <= since:
                    break
                inflows += 1
                if is_new:
                    senders[s] = None
            new_hist, all_hist = inf.new_hist, inf.all_hist
        count = len(senders)
        if count < self.mid:
            return NORMAL
        peer = self._peers.get(self._group(event))
        pop = peer[0] / peer[1] if peer is not None and peer[1] else 1.0
        k = self.prior_strength
        frac = (new_hist + k * pop) / (all_hist + k)
        expected = frac * inflows
        excess = count - expected
        if excess < self.mid - 1:
            return NORMAL
        score = logistic(excess, self.mid, self.alarm)
        del senders[sender]  # the engine links the payment's own sender already
        return Score(
            score,
            f"{count} new senders paid {event['counterparty_id']} within {self._window} "
            f"({expected:.1f} expected from its history)",
            excess,
            # The collection account's case starts from who paid into it.
            tuple(senders),
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"warmup_seconds": 0.0}
        yield {"warmup_seconds": 0.0, "max_senders": 4, "max_recent": 8, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A shop gaining a new customer every half hour, accounts paying their regular
        payees; then six new accounts pay one of those payees within a few days."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        shop = [make_event("financial", _ts=START + 1_800 * i + 5, account_id=f"CUST-{i}",
                           counterparty_id="SHOP", amount=round(rng.uniform(5, 80), 2),
                           channel="card")
                for i in range(1_500)]  # ~31 days
        normal = merge(financial_traffic(seed, n=1_500, rate=1_500 / (31 * _DAY),
                                         accounts=10), shop)
        t = normal[-1]["_ts"]
        payee = next(e["counterparty_id"] for e in normal if e["account_id"] == "ACC-0003")
        placement = [make_event("financial", _ts=t + 7_200 * (i + 1), account_id=f"SM-{i}",
                                counterparty_id=payee, amount=round(rng.uniform(800, 990)))
                     for i in range(6)]
        return normal, placement


# -- pass-through ---------------------------------------------------------------------


class _Flows:
    """One account: recent incoming payments and recent pass-throughs it made."""

    __slots__ = ("incoming", "passes")

    def __init__(self, max_recent: int) -> None:
        self.incoming: Recent = Recent(max_recent)
        self.passes: Recent = Recent(max_recent)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.incoming, self.passes)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        self.incoming, self.passes = s


class PassThrough(Detector):
    """An account forwards what it received within hours at a similar amount, again and
    again (a money mule: funds in, funds out, a commission kept).

    Per account: its last ``max_recent`` incoming payments (time, amount, sender) and the
    pass-throughs it made. An outgoing payment is a pass-through when an incoming payment
    not yet matched arrived at most ``max_delay_seconds`` before it and the amount
    sent is between ``1 - max_kept`` and ``1 + max_added`` times the amount received.
    The raw evidence is the number of pass-throughs within ``window_seconds``: one
    forwarded payment is everyday life (``mid`` = 1 scores 0.5), ``alarm`` of them make the
    mule. Each incoming payment matches one outgoing one, and each payment counts once
    per ``event_id``.

    Parameters
    ----------
    max_delay_seconds
        Longest time between receiving and forwarding.
    max_kept, max_added
        Fractions by which the forwarded amount may be smaller (commission) or larger
        than the amount received.
    window_seconds
        Window over which pass-throughs are counted.
    mid, alarm
        Pass-throughs in the window scored 0.5 and 0.9.
    min_amount
        Forwarded amounts below this are not pass-throughs (pocket money, tests of a
        new payee).
    max_recent
        Incoming payments and pass-throughs kept per account.
    max_entities, ttl_seconds
        Bound on accounts tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = PassThrough()
    >>> flows = []
    >>> for k, amount in enumerate((4_800.0, 3_150.0, 7_020.0)):
    ...     t = START + k * 8 * 3_600
    ...     flows.append(make_event("financial", _ts=t, account_id=f"VICTIM-{k}",
    ...                             counterparty_id="MULE", amount=amount))
    ...     flows.append(make_event("financial", _ts=t + 1_800, account_id="MULE",
    ...                             counterparty_id=f"OUT-{k}", amount=amount * 0.95))
    >>> [round(s.score, 2) for s in feed(det, flows[:-1])[1::2]]
    [0.5, 0.9]
    >>> s = det.score_one(flows[-1])
    >>> round(s.score, 2)
    0.99
    >>> print(s.reason)
    3 pass-throughs within 24h; last: 7,020 from VICTIM-2 forwarded as 6,669 after 30min
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "pass_through"
    # Money in arrives in the payer's events, money out in the account's own: both ends.
    keyed_by: ClassVar[str | None] = "*"

    def __init__(
        self,
        max_delay_seconds: float = 6 * _HOUR,
        max_kept: float = 0.15,
        max_added: float = 0.02,
        window_seconds: float = _DAY,
        mid: float = 1.0,
        alarm: float = 2.0,
        min_amount: float = 100.0,
        max_recent: int = 16,
        max_entities: int = 100_000,
        ttl_seconds: float = 2 * _DAY,
    ) -> None:
        if max_delay_seconds <= 0 or window_seconds <= 0 or not 0 < mid < alarm:
            raise ValueError("need max_delay_seconds, window_seconds > 0 and 0 < mid < alarm")
        if not 0.0 <= max_kept < 1.0 or max_added < 0 or min_amount < 0 or max_recent < 1:
            raise ValueError("need 0 <= max_kept < 1, max_added >= 0, min_amount >= 0, "
                             "max_recent >= 1")
        self.max_delay_seconds = max_delay_seconds
        self.max_kept = max_kept
        self.max_added = max_added
        self.window_seconds = window_seconds
        self.mid = mid
        self.alarm = alarm
        self.min_amount = min_amount
        self.max_recent = max_recent
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._window = _window_text(window_seconds)
        self._table: EntityTable[_Flows] = EntityTable(max_entities, ttl_seconds)

    def _match(
        self, flows: _Flows | None, now: float, amount: float
    ) -> tuple[float, float, str, str] | None:
        """The earliest unmatched incoming payment this outgoing one forwards."""
        if flows is None or amount < self.min_amount:
            return None
        used = {p[1] for p in flows.passes}
        lo, hi = amount / (1.0 + self.max_added), amount / (1.0 - self.max_kept)
        for inc in flows.incoming:
            t, x, _, eid = inc
            if 0.0 <= now - t <= self.max_delay_seconds and lo <= x <= hi and eid not in used:
                return inc
        return None

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now, amount, eid = event["_ts"], _amount(event), _eid(event)
        if amount <= 0.0:
            return
        out = self._table.get(event["account_id"])
        if out is not None and all(p[2] != eid for p in out.passes):
            inc = self._match(out, now, amount)
            if inc is not None:
                out.passes.append((now, inc[3], eid))
        dest = self._table.setdefault(event["counterparty_id"], now,
                                      lambda: _Flows(self.max_recent))
        if all(i[3] != eid for i in dest.incoming):
            dest.incoming.append((now, amount, event["account_id"], eid))

    def score_one(self, event: Mapping[str, Any]) -> Score:
        flows = self._table.get(event["account_id"])
        if flows is None:
            return NORMAL
        now, amount, eid = event["_ts"], _amount(event), _eid(event)
        done = next((p for p in flows.passes if p[2] == eid), None)
        inc = None
        if done is None:
            inc = self._match(flows, now, amount)
            if inc is None:
                return NORMAL
        else:  # a re-sent pass-through: judge it as it was, count it once
            inc = next((i for i in flows.incoming if i[3] == done[1]), None)
        since = now - self.window_seconds
        count = 1 + sum(1 for t, _, e in flows.passes if t > since and e != eid)
        score = logistic(count, self.mid, self.alarm)
        last = ""
        if inc is not None:
            delay = max(now - inc[0], 0.0)
            last = (f"; last: {_money(inc[1])} from {inc[2]} forwarded as {_money(amount)} "
                    f"after {delay / 60:.0f}min")
        noun = "pass-through" if count == 1 else "pass-throughs"
        return Score(score, f"{count} {noun} within {self._window}{last}", float(count))

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"max_recent": 2, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Salaries received and small payments made from them, a friend paying back a
        share the same day; then a mule forwards three victims' transfers."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        life = []
        for d in range(5):
            t = START + d * _DAY + 9 * _HOUR
            for k in range(10):
                life.append(make_event("financial", _ts=t + k, account_id="EMPLOYER",
                                       counterparty_id=f"EMP-{k}",
                                       amount=round(rng.uniform(2_000, 5_000), 2)))
                life.append(make_event("financial", _ts=t + 3_600 + k, account_id=f"EMP-{k}",
                                       counterparty_id="SHOP",
                                       amount=round(rng.uniform(20, 300), 2)))
            # One forwarded payment (a shared bill) is normal, once.
            life.append(make_event("financial", _ts=t + 7_200, account_id="FRIEND",
                                   counterparty_id=f"EMP-{d}", amount=600.0))
            life.append(make_event("financial", _ts=t + 9_000, account_id=f"EMP-{d}",
                                   counterparty_id="LANDLORD", amount=590.0))
        life.sort(key=lambda e: e["_ts"])
        normal = merge(financial_traffic(seed, n=1_500, rate=1_500 / (5 * _DAY)), life)
        t = normal[-1]["_ts"]
        mule = []
        for k in range(3):
            x = round(rng.uniform(2_000, 9_000), 2)
            mule.append(make_event("financial", _ts=t + 3_600 * k + 60, account_id=f"V-{k}",
                                   counterparty_id="ACC-MULE", amount=x))
            mule.append(make_event("financial", _ts=t + 3_600 * k + 1_260,
                                   account_id="ACC-MULE", counterparty_id="CASH-OUT",
                                   amount=round(x * 0.93, 2)))
        return normal, mule


# -- cycles ---------------------------------------------------------------------------


class Cycle(Detector):
    """Money returns to its origin through 3 to ``max_hops`` accounts within a window,
    at a similar amount (round-tripping, layering).

    Keeps a bounded graph of recent payments: per sender, its last ``max_out``
    recipients with the time and amount of the latest payment to each. When a payment
    ``x -> a`` arrives, it searches the payments out of ``a`` for a path
    ``a -> ... -> x`` moving forward in time within ``window_seconds``, each hop made at
    most ``max_hop_seconds`` after the previous one and passing on between
    ``min_ratio`` and ``1 + max_added`` of what the previous hop carried (laundered money
    moves on quickly, minus fees; visiting at most ``max_visits`` edges). Two-account
    loops (refunds, friends settling up) are not cycles: at least 3 accounts. The raw
    evidence is the share of the first payment that came back; ``mid`` and ``alarm`` are
    on it, so a loop returning 80 % of what left scores 0.9. Detections are keyed by the
    origin (``counterparty_id`` of the closing payment), with the closing sender as link.

    Parameters
    ----------
    max_hops
        Most payments in a cycle (the closing one included).
    window_seconds
        Longest time from the first payment to the closing one.
    max_hop_seconds
        Longest time between one hop and the next.
    min_ratio, max_added
        Each hop carries at least ``min_ratio`` and at most ``1 + max_added`` times what
        the previous one carried.
    mid, alarm
        Smallest amount ratio along the loop scored 0.5 and 0.9.
    max_out
        Recipients remembered per sender.
    max_visits
        Edges the search may visit per payment (bounds the cost on hubs).
    max_entities, ttl_seconds
        Bound on senders tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Cycle()
    >>> hops = [("ORIGIN", "SHELL-1", 50_000.0), ("SHELL-1", "SHELL-2", 48_500.0),
    ...         ("SHELL-2", "SHELL-3", 47_000.0), ("SHELL-3", "ORIGIN", 45_600.0)]
    >>> loop = [make_event("financial", _ts=START + 3_600 * i, account_id=a,
    ...                    counterparty_id=b, amount=x) for i, (a, b, x) in enumerate(hops)]
    >>> s = feed(det, loop)[-1]
    >>> s.score > 0.9
    True
    >>> print(s.reason)  # doctest: +NORMALIZE_WHITESPACE
    money returned to ORIGIN in 4 hops within 3h:
    ORIGIN -> SHELL-1 -> SHELL-2 -> SHELL-3 -> ORIGIN (91% of 50,000)
    >>> refund = make_event("financial", _ts=START + 4 * 3_600, account_id="SHELL-1",
    ...                     counterparty_id="ORIGIN", amount=50_000.0)
    >>> det.score_one(refund).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "counterparty_id")
    kind: ClassVar[str] = "cycle"
    # A path through many accounts: the whole payment graph in one place.
    keyed_by: ClassVar[str | None] = "*"

    def __init__(
        self,
        max_hops: int = 5,
        window_seconds: float = 7 * _DAY,
        max_hop_seconds: float = 2 * _DAY,
        min_ratio: float = 0.7,
        max_added: float = 0.02,
        mid: float = 0.5,
        alarm: float = 0.8,
        max_out: int = 32,
        max_visits: int = 256,
        max_entities: int = 100_000,
        ttl_seconds: float = 7 * _DAY,
    ) -> None:
        if not 3 <= max_hops <= 8 or window_seconds <= 0:
            raise ValueError("need 3 <= max_hops <= 8 and window_seconds > 0")
        if not 0.0 < min_ratio <= 1.0 or not mid < alarm or max_out < 1 or max_visits < 1:
            raise ValueError("need 0 < min_ratio <= 1, mid < alarm, max_out, max_visits >= 1")
        if max_hop_seconds <= 0 or max_added < 0:
            raise ValueError("need max_hop_seconds > 0 and max_added >= 0")
        self.max_hops = max_hops
        self.window_seconds = window_seconds
        self.max_hop_seconds = max_hop_seconds
        self.min_ratio = min_ratio
        self.max_added = max_added
        self.mid = mid
        self.alarm = alarm
        self.max_out = max_out
        self.max_visits = max_visits
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._window = _window_text(window_seconds) if window_seconds < _DAY else (
            f"{window_seconds / _DAY:.0f}d")
        # sender -> {recipient: (time, amount)}, insertion order = LRU order
        self._table: EntityTable[dict[str, tuple[float, float]]] = EntityTable(
            max_entities, ttl_seconds
        )

    def learn_one(self, event: Mapping[str, Any]) -> None:
        amount = _amount(event)
        if amount <= 0.0:
            return
        now = event["_ts"]
        out = self._table.setdefault(event["account_id"], now, dict)
        cp = event["counterparty_id"]
        if cp in out:
            del out[cp]
        elif len(out) >= self.max_out:
            del out[next(iter(out))]
        out[cp] = (now, amount)

    def _search(self, origin: str, closer: str, now: float, amount: float) -> list[Any] | None:
        """A path origin -> ... -> closer (>= 2 edges) that the closing payment of
        ``amount`` at ``now`` completes: forward in time, each hop soon after the previous
        and passing on a similar or slightly smaller amount. Returns [(account, time,
        amount), ...] from origin, or None."""
        lo, hi = self.min_ratio, 1.0 + self.max_added
        since, gap = now - self.window_seconds, self.max_hop_seconds
        table = self._table
        visits = 0
        # Depth-first over (node, time and amount of the edge into it, path so far).
        stack: list[tuple[str, float, float, list[tuple[str, float, float]]]] = [
            (origin, since, 0.0, [])
        ]
        while stack:
            node, t_in, x_in, path = stack.pop()
            out = table.get(node)
            if not out:
                continue
            for nxt, (t, x) in out.items():
                visits += 1
                if visits > self.max_visits:
                    return None
                if t < t_in or t > now or (path and t - t_in > gap):
                    continue
                if path and not lo * x_in <= x <= hi * x_in:
                    continue
                step = [*path, (nxt, t, x)]
                if nxt == closer:
                    # The closing payment must follow the last hop like any other hop.
                    if len(step) >= 2 and now - t <= gap and lo * x <= amount <= hi * x:
                        return step
                    continue
                if nxt == origin or any(p[0] == nxt for p in path):
                    continue
                if len(step) < self.max_hops - 1:
                    stack.append((nxt, t, x, step))
        return None

    def score_one(self, event: Mapping[str, Any]) -> Score:
        origin, closer = event["counterparty_id"], event["account_id"]
        if origin == closer or self._table.get(origin) is None:
            return NORMAL
        amount = _amount(event)
        if amount <= 0.0:
            return NORMAL
        path = self._search(origin, closer, event["_ts"], amount)
        if path is None:
            return NORMAL
        first = path[0][2]
        ratio = min(amount / first, 1.0)
        score = logistic(ratio, self.mid, self.alarm)
        route = " -> ".join([origin, *(p[0] for p in path), origin])
        hours = (event["_ts"] - path[0][1]) / _HOUR
        return Score(
            score,
            f"money returned to {origin} in {len(path) + 1} hops within {hours:.0f}h: "
            f"{route} ({amount / first:.0%} of {_money(first)})",
            ratio,
            tuple(p[0] for p in path),  # the ring's members (the origin is the entity)
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"max_hops": 3, "max_out": 2, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Flatmates paying each other unequal shares in a triangle, refunds; then money
        goes round four shell companies and back."""
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        flat = []
        for d in range(5):
            t = START + d * _DAY + 20 * _HOUR
            flat += [
                make_event("financial", _ts=t, account_id="FLAT-A", counterparty_id="FLAT-B",
                           amount=round(rng.uniform(400, 600), 2)),
                make_event("financial", _ts=t + 60, account_id="FLAT-B",
                           counterparty_id="FLAT-C", amount=round(rng.uniform(20, 60), 2)),
                make_event("financial", _ts=t + 120, account_id="FLAT-C",
                           counterparty_id="FLAT-A", amount=round(rng.uniform(5, 15), 2)),
                make_event("financial", _ts=t + 180, account_id="SHOP",
                           counterparty_id="FLAT-A", amount=round(rng.uniform(400, 600), 2)),
            ]
        normal = merge(financial_traffic(seed, n=1_500, rate=1_500 / (5 * _DAY)), flat)
        t = normal[-1]["_ts"]
        x = round(rng.uniform(20_000, 90_000), 2)
        loop = []
        for i, (a, b) in enumerate((("ACC-0001", "SH-1"), ("SH-1", "SH-2"), ("SH-2", "SH-3"),
                                    ("SH-3", "ACC-0001"))):
            x = round(x * rng.uniform(0.95, 0.99), 2)
            loop.append(make_event("financial", _ts=t + 7_200 * (i + 1), account_id=a,
                                   counterparty_id=b, amount=x))
        return normal, loop


# -- velocity -------------------------------------------------------------------------


class _Pace:
    """One account: its recent payment times and the most it made in one past window."""

    __slots__ = ("bucket", "bucket_done", "bucket_n", "peak", "recent")

    def __init__(self, max_recent: int) -> None:
        self.recent: Recent = Recent(max_recent)
        self.bucket = -1
        self.bucket_n = 0
        self.bucket_done = False
        self.peak = 0.0

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.recent, self.bucket, self.bucket_n, self.bucket_done, self.peak)

    def __setstate__(self, s: tuple[Any, ...]) -> None:
        self.recent, self.bucket, self.bucket_n, self.bucket_done, self.peak = s


class Velocity(Detector):
    """A burst of payments far above the account's own busiest window, or its peers'
    while it has none (takeover draining an account in many small payments, a mule
    spreading funds).

    Per account: its last ``max_recent`` payment times and ``peak``, the most payments
    it made in any earlier completed window of ``window_seconds`` (decaying by
    ``peak_decay`` per window). Across accounts, a reservoir of completed windows' counts
    gives the population's ``population_quantile`` level, the baseline of accounts
    that have not completed a window of their own yet. The count in the last window is
    judged against ``baseline = max(own peak or population level, 1)`` two ways: ``raw = count /
    baseline`` with ``mid`` and ``alarm`` as ratios, and the count itself with
    ``min_count`` as alarm (a handful of payments is never a burst); the score is the
    smaller. Each payment counts once per ``event_id``. During the first
    ``warmup_seconds`` of event time nothing is scored (a payroll run's first day).

    Parameters
    ----------
    window_seconds
        Window over which payments are counted.
    mid, alarm
        Ratios of the count to the baseline scored 0.5 and 0.9.
    min_count
        Payments in the window below which nothing is a burst; scored 0.9 at
        ``min_count``, 0.5 at half of it.
    peak_decay
        Factor applied to the remembered peak per completed window.
    population_quantile
        Quantile of completed windows' counts across accounts used as the baseline of
        accounts without their own.
    warmup_seconds
        Event time after the first event during which nothing is scored.
    max_recent
        Payment times kept per account (at least ``min_count``).
    seed
        Seed of the population reservoir.
    max_entities, ttl_seconds
        Bound on accounts tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Velocity(warmup_seconds=0.0)
    >>> days = [make_event("financial", _ts=START + 5_400 * i, account_id=f"A{i % 8}")
    ...         for i in range(200)]
    >>> t = START + 5_400 * 200
    >>> burst = [make_event("financial", _ts=t + 90 * i, account_id="A3",
    ...                     counterparty_id=f"X{i}") for i in range(30)]
    >>> s = feed(det, days + burst)[-1]
    >>> s.score > 0.9, s.reason
    (True, '30 payments within 1h; busiest earlier hour: 1')
    >>> det.score_one(make_event("financial", _ts=t, account_id="A5")).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("financial",)
    entity: ClassVar[tuple[str, str]] = ("account", "account_id")
    kind: ClassVar[str] = "velocity"

    def __init__(
        self,
        window_seconds: float = _HOUR,
        mid: float = 4.0,
        alarm: float = 8.0,
        min_count: int = 20,
        peak_decay: float = 0.995,
        population_quantile: float = 0.99,
        warmup_seconds: float = _DAY,
        max_recent: int = 128,
        seed: int = 0,
        max_entities: int = 100_000,
        ttl_seconds: float = 30 * _DAY,
    ) -> None:
        if window_seconds <= 0 or not 1.0 < mid < alarm or min_count < 2:
            raise ValueError("need window_seconds > 0, 1 < mid < alarm, min_count >= 2")
        if not 0.0 <= peak_decay <= 1.0 or not 0.5 <= population_quantile < 1.0:
            raise ValueError("need 0 <= peak_decay <= 1 and 0.5 <= population_quantile < 1")
        if warmup_seconds < 0 or max_recent < min_count:
            raise ValueError("need warmup_seconds >= 0 and max_recent >= min_count")
        self.window_seconds = window_seconds
        self.mid = mid
        self.alarm = alarm
        self.min_count = min_count
        self.peak_decay = peak_decay
        self.population_quantile = population_quantile
        self.warmup_seconds = warmup_seconds
        self.max_recent = max_recent
        self.seed = seed
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._window = _window_text(window_seconds)
        self._unit = "hour" if window_seconds == _HOUR else "window"
        self._scoring_from: float | None = None
        self._population = StreamingQuantile(2_048, seed)
        self._pop_level = 1.0
        self._table: EntityTable[_Pace] = EntityTable(max_entities, ttl_seconds)

    def _new_pace(self) -> _Pace:
        return _Pace(self.max_recent)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now = event["_ts"]
        if self._scoring_from is None:
            self._scoring_from = now + self.warmup_seconds
        pace = self._table.setdefault(event["account_id"], now, self._new_pace)
        eid = _eid(event)
        recent = pace.recent
        for _, e in recent:  # a plain loop: cheaper than any() over a generator
            if e == eid:
                return  # a re-sent payment is not another payment
        bucket = int(now // self.window_seconds)
        last = pace.bucket
        if bucket > last:
            if last >= 0:
                # Completed windows feed the account's peak and the population level.
                n = float(pace.bucket_n)
                peak = pace.peak * self.peak_decay ** (bucket - last)
                pace.peak = n if n > peak else peak  # max(peak, n)
                pace.bucket_done = True
                self._population.update(n)
                self._pop_level = self._population.quantile(self.population_quantile)
            pace.bucket, pace.bucket_n = bucket, 1
        else:
            pace.bucket_n += 1
        recent.append((now, eid))

    def score_one(self, event: Mapping[str, Any]) -> Score:
        now = event["_ts"]
        if self._scoring_from is None or now < self._scoring_from:
            return NORMAL
        pace = self._table.get(event["account_id"])
        if pace is None or len(pace.recent) < self.min_count // 2 - 1:
            return NORMAL
        eid = _eid(event)
        since = now - self.window_seconds
        count = 1
        for t, e in reversed(pace.recent):
            if t <= since:
                break
            if e != eid:
                count += 1
        if count < self.min_count // 2:
            return NORMAL
        # An account's own busiest window once it has completed one; until then the
        # population's level (a typical account's busy hour, not the busiest payroll's).
        baseline = max(pace.peak if pace.bucket_done else self._pop_level, 1.0)
        ratio = count / baseline
        score = min(logistic(ratio, self.mid, self.alarm),
                    logistic(count, self.min_count / 2, self.min_count))
        if score < 0.01:
            return NORMAL
        return Score(
            score,
            f"{count} payments within {self._window}; busiest earlier {self._unit}: "
            f"{pace.peak:.0f}",
            ratio,
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"warmup_seconds": 0.0}
        yield {"warmup_seconds": 0.0, "min_count": 4, "max_recent": 8, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Background payments and a daily payroll run of 40 payments in minutes (learnt
        on day one); then an ordinary account makes 40 payments in half an hour."""
        from watchfloor.detectors.financial_common import payroll_runs
        from watchfloor.detectors.testkit import START, financial_traffic, make_event, merge

        rng = random.Random(seed)
        normal = merge(financial_traffic(seed, n=1_500, rate=1_500 / (3 * _DAY)),
                       payroll_runs(rng, START, days=3))
        t = normal[-1]["_ts"]
        burst = [make_event("financial", _ts=t + 45 * (i + 1), account_id="ACC-0009",
                            counterparty_id=f"ACC-NEW-{i}", amount=round(rng.uniform(50, 400)))
                 for i in range(40)]
        return normal, burst
