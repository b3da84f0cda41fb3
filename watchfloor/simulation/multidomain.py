"""The multi-domain scenario: one person's attack across all three domains, linked the way
the correlation stage joins entities."""

from __future__ import annotations

import math
import random
from typing import Any

from watchfloor.core.decoding import parse_ts
from watchfloor.simulation.common import (
    _BENIGN,
    DAY,
    HOUR,
    _Scripted,
    _sim,
    _weighted_cum,
    lost_stolen,
)
from watchfloor.simulation.financial import Account
from watchfloor.simulation.network import _BANK_IPS, Host
from watchfloor.simulation.simulator import Simulator


def multidomain_scenario(start: float, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """One person's attack across all three domains, after a day of benign history.

    Shape (times relative to ``start``; all attack events carry campaign ``md-<seed>``):

    * ``[0 h, 26 h)`` benign background of a small population in all three domains
      (about 2,000 events, look-alikes included) plus the actors' own history: account A
      makes ~25 ordinary payments (``src_ip`` = IP1, ``person_id`` = P), workstation IP1
      makes ~120 ordinary flows (some to the bank with ``account_id`` = A) and person P
      crosses twice on their own document.
    * ``26 h + 0..60 min`` IP1 beacons to a command-and-control address every ~120 s
      (jitter 1 %), 30 small flows, each carrying ``account_id`` = A
      (``threat: beaconing``).
    * ``26 h + 15, 25, 35, 45 min`` account A pays 9,100-9,900 four times
      (``src_ip`` = IP1, ``person_id`` = P; ``threat: structuring``).
    * ``26 h + 40 min`` P crosses a border on a lost/stolen document (``person_id`` = P,
      ``threat: stolen_document``).
    * background continues to ``27 h 30 min``, where the list ends.

    So IP1, account A, person P and the document are linked one hop apart, and the three
    detections fall within one correlation window (an hour).

    Parameters
    ----------
    start
        Simulated start, epoch seconds.
    seed
        Seed of every random choice.

    Returns
    -------
    list[tuple[str, dict]]
        ``(domain, event)`` pairs in non-decreasing event time.
    """
    rng = random.Random(f"multidomain-{seed}")
    sim = Simulator(
        seed=seed, days=2, start=start, n_hosts=200, n_accounts=200, n_travellers=200, threats=False
    )
    stop = start + 27.5 * HOUR
    ip1 = f"10.30.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    person = f"PER-7{rng.randrange(10**5):05d}"
    account_id = f"ACC-7777-{rng.randrange(10**4):04d}"
    extra = linked_case(
        sim, rng, start, f"md-{seed}", ip1=ip1, person=person, account_id=account_id,
        document=lost_stolen()[seed % len(lost_stolen())], name="MARTA KOVAC",
    )

    out: list[tuple[str, dict[str, Any]]] = []
    for domain, ev in sim._stream(4_000, extra):
        if parse_ts(ev["ts"]) >= stop:
            break
        ev["event_id"] = "md-" + ev["event_id"]
        out.append((domain, ev))
    return out


def linked_case(
    sim: Simulator,
    rng: random.Random,
    start: float,
    campaign: str,
    *,
    ip1: str,
    person: str,
    account_id: str,
    document: str,
    name: str,
    seq: int = -1,
) -> list[_Scripted]:
    """The actors' events of :func:`multidomain_scenario` (their day of benign history
    from ``start``, the attack from ``start + 26 h``) as scripted events for ``sim``'s
    stream (``Simulator._stream``), with no background of their own.

    ``ip1`` (an internal workstation), ``account_id`` (held by ``person``, who travels
    under ``name``) and the lost/stolen ``document`` are the case's entities; its events
    get sequence numbers ``seq, seq - 1, ...`` (negative: apart from the simulator's own
    script, whose numbers count up from 0).
    """
    attack = start + 26 * HOUR
    account = Account(
        account_id=account_id,
        kind="personal",
        country="NL",
        mu=math.log(80.0),
        sigma=0.6,
        counterparties=tuple(sim._counterparty(rng, "NL") for _ in range(6)),
        person_id=person,
        src_ip=ip1,
    )
    host = Host(
        ip=ip1,
        kind="workstation",
        country="NL",
        sensor="nl-tap-1",
        mu_out=math.log(4_000),
        sigma_out=0.9,
        cap_out=100_000,
        mu_in=math.log(30_000),
        favourites=tuple(sim._popular[:6]),
        ports=(443, 80),
        port_cum=_weighted_cum((0.9, 0.1)),
        account_id=account.account_id,
    )
    tr = sim._new_traveller(rng, name)
    tr.person_id, tr.nationality = person, "HRV"

    extra: list[_Scripted] = []

    def add(t: float, domain: str, payload: dict[str, Any], label: dict) -> None:
        extra.append(_Scripted(t, seq - len(extra), domain, payload, label))

    for _ in range(25):
        t = start + rng.uniform(1, 25.5) * HOUR
        add(
            t,
            "financial",
            sim.payment(rng, account, sim.amount(rng, account), None, "online"),
            _BENIGN,
        )
    for k in range(120):
        t = start + rng.uniform(0.5, 25.8) * HOUR
        flow = sim.flow(rng, host)
        if k % 10 == 0:
            flow.update(dst_ip=_BANK_IPS[0], dst_port=443, account_id=account.account_id)
        add(t, "network", flow, _BENIGN)
    home = rng.randrange(len(sim.points))
    for hour in (8.5, 19.0):
        add(start + hour * HOUR, "border", sim.crossing(rng, tr, home), _BENIGN)

    c2 = sim._public_ip(rng)
    t = attack
    for _ in range(30):
        flow = sim.flow(rng, host, c2)
        flow.update(
            dst_port=443,
            bytes_out=rng.randint(200, 600),
            bytes_in=rng.randint(100, 900),
            duration_ms=round(rng.uniform(60, 300), 2),
            account_id=account.account_id,
        )
        add(t, "network", flow, _sim("beaconing", campaign))
        t += 120.0 * (1 + rng.uniform(-0.01, 0.01))
    for minute in (15, 25, 35, 45):
        pay = sim.payment(rng, account, round(rng.uniform(9_100, 9_900), 2), None, "online")
        add(
            attack + minute * 60 + rng.uniform(0, 30),
            "financial",
            pay,
            _sim("structuring", campaign),
        )
    add(
        attack + 40 * 60,
        "border",
        sim.crossing(rng, tr, home, document),
        _sim("stolen_document", campaign),
    )
    return extra


def linked_cases(sim: Simulator, every_days: float) -> list[_Scripted]:
    """:func:`linked_case` every ``every_days`` over ``sim``'s span, entities fresh each
    time: case *k* (from 0) starts its history ``k * every_days`` after ``sim.start``
    (its attack 26 h later), on workstation ``10.30.<k // 250>.<k % 250 + 1>``, account
    ``ACC-7777-<k>`` of person ``PER-7<k>`` and the *k*-th lost/stolen document (names
    none of the simulator's populations uses); campaign ``linked-<k>``. Cases whose
    attack would not end within the span are left out.
    """
    out: list[_Scripted] = []
    docs = lost_stolen()
    k = 0
    while True:
        start = sim.start + k * every_days * DAY
        if start + 27.5 * HOUR > sim.end:
            return out
        rng = random.Random(f"linked-{sim.seed}-{k}")
        out += linked_case(
            sim, rng, start, f"linked-{k}",
            ip1=f"10.30.{k // 250}.{k % 250 + 1}", person=f"PER-7{k:05d}",
            account_id=f"ACC-7777-{k:04d}", document=docs[k % len(docs)],
            name=sim._name(rng), seq=-1 - 1_000 * k,
        )
        k += 1
