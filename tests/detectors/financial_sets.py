"""Constructed labelled transaction sets for the financial detectors' tests (issue 11).

Deliberately unlike the simulator: a mobile-money set in the shape of PaySim (every
sender seen once, balances on every row, frauds that empty an account and cash it out)
and a two-year AML network in the shape of AMLSim exports (a hundred accounts paying
fixed neighbours, fan-in typologies injected). Both are seeded and small enough for a
unit test, and both come with the detectors as ``topics.yaml`` configures them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from watchfloor.detectors.engine import DomainEngine, Slot
from watchfloor.detectors.registry import GROUP
from watchfloor.detectors.testkit import START, make_event

DAY = 86_400.0
TOPICS = Path(__file__).resolve().parents[2] / "topics.yaml"


def configured_engine(domain: str = "financial") -> DomainEngine:
    """A fresh engine with the detectors, parameters and thresholds ``topics.yaml``
    gives ``domain`` (loaded by name from the entry points, like the worker)."""
    specs = yaml.safe_load(TOPICS.read_text(encoding="utf-8"))["detectors"][domain]
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    slots = []
    for spec in specs:
        det = eps[spec["name"]].load()(**dict(spec.get("params") or {}))
        etype, efield = det.entity
        slots.append(Slot(spec["name"], det, float(spec["threshold"]), etype, efield, det.kind))
    return DomainEngine(domain, slots)


@dataclass
class Labelled:
    """Events in time order, with the ground truth a scorer needs."""

    events: list[dict[str, Any]]
    bad_events: set[str] = field(default_factory=set)  # event ids of laundering/fraud
    bad_accounts: set[str] = field(default_factory=set)  # accounts labelled suspicious
    targets: set[str] = field(default_factory=set)  # accounts alerts must name


@dataclass
class Outcome:
    detections: list[dict[str, Any]]
    named: set[str]  # accounts detections are about (entity) or link to
    entities: set[str]  # accounts detections are about
    false_alerts: int  # detections on events not labelled bad
    benign_events: int

    @property
    def false_per_10k(self) -> float:
        return 1e4 * self.false_alerts / max(self.benign_events, 1)


def run(engine: DomainEngine, data: Labelled) -> Outcome:
    found: list[dict[str, Any]] = []
    for e in data.events:
        found.extend(engine.process(e, e["_ts"]))
    named: set[str] = set()
    entities: set[str] = set()
    for d in found:
        if d["entity"]["type"] == "account":
            entities.add(d["entity"]["id"])
            named.add(d["entity"]["id"])
        named.update(x["id"] for x in d["links"] if x["type"] == "account")
    false = sum(1 for d in found if d["event_id"] not in data.bad_events)
    return Outcome(found, named, entities, false, len(data.events) - len(data.bad_events))


def _ids(prefix: str, rng: random.Random, n: int) -> list[str]:
    return [f"{prefix}{rng.randrange(10**9):09d}" for _ in range(n)]


# -- mobile money (PaySim-like) ------------------------------------------------------

_TYPES = (("CASH_OUT", 0.35), ("PAYMENT", 0.34), ("CASH_IN", 0.22), ("TRANSFER", 0.08),
          ("DEBIT", 0.01))
_MEDIAN = {"CASH_OUT": 150_000.0, "PAYMENT": 9_000.0, "CASH_IN": 110_000.0,
           "TRANSFER": 420_000.0, "DEBIT": 5_000.0}


def mobile_money(seed: int, n: int = 20_000, frauds: int = 140, days: float = 30.0) -> Labelled:
    """PaySim-like hourly mobile-money traffic: every sender appears once; each fraud
    is a TRANSFER emptying the victim's account to a mule, then a CASH_OUT emptying the
    mule's. Balances floor at zero (payments above the balance leave 0, as in PaySim),
    a fifth of senders hold nothing, and a few honest customers close their account by
    transferring everything (the benign look-alike)."""
    rng = random.Random(seed)
    merchants = _ids("M", rng, 3_000)
    dests = _ids("C", rng, 4_000)
    cum, acc = [], 0.0
    for t, w in _TYPES:
        acc += w
        cum.append((acc, t))
    span = days * DAY
    fraud_at = sorted(rng.uniform(0.02 * span, span) for _ in range(frauds))
    out = Labelled([])
    times = sorted(rng.uniform(0, span) for _ in range(n))
    fi = 0
    for t in times:
        while fi < len(fraud_at) and fraud_at[fi] <= t:
            victim, mule = _ids("C", rng, 2)
            stolen = round(min(rng.lognormvariate(math.log(300_000), 1.3), 10_000_000.0), 2)
            ft = START + fraud_at[fi]
            for who, dest, tx, dt in ((victim, mule, "TRANSFER", 0.0),
                                      (mule, rng.choice(dests), "CASH_OUT", 60.0)):
                e = make_event("financial", _ts=ft + dt, account_id=who, counterparty_id=dest,
                               amount=stolen, tx_type=tx, balance_before=stolen,
                               balance_after=0.0, channel="mobile", currency="XOF",
                               country="KE")
                out.events.append(e)
                out.bad_events.add(e["event_id"])
                out.bad_accounts.add(who)
            fi += 1
        u = rng.random()
        tx = next(name for c, name in cum if u <= c)
        amount = round(rng.lognormvariate(math.log(_MEDIAN[tx]), 1.0), 2)
        before = 0.0 if rng.random() < 0.2 else round(rng.lognormvariate(math.log(60_000), 1.6), 2)
        if tx == "CASH_IN":
            after = round(before + amount, 2)
        elif tx == "TRANSFER" and before > 0 and rng.random() < 0.003:
            amount, after = before, 0.0  # an honest customer closing the account
        else:
            after = round(max(before - amount, 0.0), 2)
        dest = rng.choice(merchants if tx == "PAYMENT" else dests)
        out.events.append(make_event("financial", _ts=START + t, account_id=_ids("C", rng, 1)[0],
                                     counterparty_id=dest, amount=amount, tx_type=tx,
                                     balance_before=before, balance_after=after,
                                     channel="mobile", currency="XOF", country="KE"))
    out.events.sort(key=lambda e: e["_ts"])
    out.targets = set(out.bad_accounts)
    return out


# -- AML network (AMLSim-like) -------------------------------------------------------


def aml_network(seed: int, accounts: int = 98, days: int = 730, fan_ins: int = 3) -> Labelled:
    """Two years of an AMLSim-like bank: ``accounts`` accounts each paying 1-4 fixed
    neighbours about weekly (amounts 100-1,000 around a per-edge habit), some accounts
    with many regular payers (a landlord, a small business), and ``fan_ins`` fan-in
    typologies: 5-9 accounts of the bank, none of which paid the beneficiary before,
    each send it 1-3 payments within 6-12 days."""
    rng = random.Random(seed)
    ids = [f"{rng.randrange(10**6):06d}" for _ in range(accounts)]
    hubs = rng.sample(ids, 4)  # popular beneficiaries: many regular payers
    edges: dict[str, list[tuple[str, float]]] = {}
    for a in ids:
        k = rng.randint(1, 4)
        nbrs = rng.sample([b for b in ids if b != a], k)
        if rng.random() < 0.3:
            nbrs.append(rng.choice([h for h in hubs if h != a]))
        edges[a] = [(b, rng.uniform(100, 1_000)) for b in nbrs]
    out = Labelled([])
    for a, nbrs in edges.items():
        t = rng.uniform(0, 7 * DAY)
        while t < days * DAY:
            b, habit = rng.choice(nbrs)
            out.events.append(make_event("financial", _ts=START + t, account_id=a,
                                         counterparty_id=b, currency="USD", country="US",
                                         amount=round(habit * rng.uniform(0.8, 1.2), 2),
                                         tx_type="TRANSFER"))
            t += rng.expovariate(1 / (7 * DAY))
    ordinary = [a for a in ids if a not in hubs]
    for _ in range(fan_ins):
        bene = rng.choice([a for a in ordinary if a not in out.targets])
        payers = {a for a, nbrs in edges.items() if any(b == bene for b, _ in nbrs)}
        members = rng.sample([a for a in ids if a != bene and a not in payers],
                             rng.randint(5, 9))
        t0 = rng.uniform(60, days - 30) * DAY
        period = rng.uniform(6, 12) * DAY
        out.targets.add(bene)
        out.bad_accounts.update([bene, *members])
        for m in members:
            for _ in range(rng.randint(1, 3)):
                e = make_event("financial", _ts=START + t0 + rng.uniform(0, period),
                               account_id=m, counterparty_id=bene, currency="USD",
                               country="US", amount=round(rng.uniform(700, 990), 2),
                               tx_type="TRANSFER")
                out.events.append(e)
                out.bad_events.add(e["event_id"])
    out.events.sort(key=lambda e: e["_ts"])
    return out


# -- fresh deployment ----------------------------------------------------------------


def everyday_payments(seed: int, n: int, start: float, rate: float,
                      accounts: int = 2_000) -> list[dict[str, Any]]:
    """Benign retail traffic: personal accounts paying ~50 by card or online, a few
    businesses paying suppliers ~2,000 and a monthly rent of ~900."""
    rng = random.Random(seed)
    kinds = ["business" if rng.random() < 0.05 else "personal" for _ in range(accounts)]
    out = []
    t = start
    for _ in range(n):
        t += rng.expovariate(rate)
        a = rng.randrange(accounts)
        if kinds[a] == "business":
            amount, channel = rng.lognormvariate(math.log(2_000), 1.0), "online"
        elif rng.random() < 0.03:
            amount, channel = rng.uniform(700, 1_100), "online"  # rent
        else:
            amount, channel = rng.lognormvariate(math.log(50), 0.9), rng.choice(
                ("card", "card", "online", "mobile"))
        out.append(make_event("financial", _ts=t, account_id=f"R{a:05d}",
                              counterparty_id=f"P{rng.randrange(50_000):05d}",
                              amount=round(max(amount, 1.0), 2), channel=channel,
                              account_type=kinds[a]))
    return out


def ids_of(events: Iterable[Mapping[str, Any]]) -> set[str]:
    return {e["event_id"] for e in events}
