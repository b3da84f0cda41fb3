"""Financial traffic: the accounts, their ordinary payments (:class:`FinancialTraffic`,
mixed into the simulator), and the clock-driven financial look-alikes and threat
campaigns (:class:`FinancialScript`, mixed into the script).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watchfloor.simulation.common import _BENIGN, HOUR, _pick, _sim, _weighted_cum

if TYPE_CHECKING:
    from watchfloor.simulation.simulator import Simulator

REPORTING_THRESHOLD = 10_000.0

_HOME_COUNTRIES: tuple[tuple[str, float], ...] = (
    ("NL", 20), ("DE", 20), ("FR", 18), ("BE", 8), ("ES", 8), ("IT", 8), ("PT", 3),
    ("AT", 3), ("LU", 2), ("IE", 3), ("FI", 2), ("EE", 1), ("LT", 1), ("PL", 3),
)  # fmt: skip
_FOREIGN_COUNTRIES: tuple[str, ...] = ("GB", "US", "CH", "SE", "DK", "NO", "CZ", "TR", "AE", "HK")

@dataclass(slots=True)
class Account:
    account_id: str
    kind: str  # "personal" | "business"
    country: str
    mu: float
    sigma: float
    counterparties: tuple[tuple[str, str], ...]  # (counterparty_id, country)
    person_id: str | None
    src_ip: str

    @property
    def median(self) -> float:
        return math.exp(self.mu)



class FinancialTraffic:
    """The simulator's accounts and background payments."""

    def _counterparty(self, rng: random.Random, home: str) -> tuple[str, str]:
        country = home if rng.random() < 0.8 else rng.choice(_FOREIGN_COUNTRIES)
        return (f"ACC-{rng.randrange(1000, 5000):04d}-{rng.randrange(5000, 10_000):04d}", country)

    def _build_accounts(self, rng: random.Random, n: int) -> None:
        homes = [c for c, _ in _HOME_COUNTRIES]
        home_cum = _weighted_cum(w for _, w in _HOME_COUNTRIES)
        self.accounts: list[Account] = []
        weights: list[float] = []
        for i in range(n):
            business = rng.random() < 0.07
            home = homes[_pick(rng, home_cum)]
            if business:
                mu, sigma = rng.gauss(math.log(900), 0.8), rng.uniform(1.0, 1.3)
            else:
                mu, sigma = rng.gauss(math.log(60), 0.7), rng.uniform(0.5, 0.9)
            cps = tuple(self._counterparty(rng, home) for _ in range(rng.randint(4, 15)))
            person = None if business else f"PER-{i:06d}"
            src_ip = self.workstations[i].ip if i < len(self.workstations) else self._public_ip(rng)
            acc = Account(
                account_id=f"ACC-{rng.randrange(1000, 5000):04d}-{i:04d}",
                kind="business" if business else "personal",
                country=home,
                mu=mu,
                sigma=sigma,
                counterparties=cps,
                person_id=person,
                src_ip=src_ip,
            )
            self.accounts.append(acc)
            weights.append(rng.lognormvariate(0.0, 0.8) * (3.0 if business else 1.0))
            if i < len(self.workstations) and not business:
                # The workstation's owner banks online from it: network<->financial link.
                self.workstations[i].account_id = acc.account_id
        self._account_cum = _weighted_cum(weights)

    def amount(self, rng: random.Random, acc: Account) -> float:
        """One ordinary payment amount following ``acc``'s habits."""
        cap = 20.0 * acc.median
        for _ in range(16):
            v = rng.lognormvariate(acc.mu, acc.sigma)
            # Outside the reporting band and below 20x the median: an unlabelled
            # structuring or takeover pattern would be ground truth the labels miss.
            if v <= cap and not 9_000.0 <= v < REPORTING_THRESHOLD:
                return round(max(v, 1.0), 2)
        return round(min(acc.median, 8_999.0), 2)

    def payment(
        self,
        rng: random.Random,
        acc: Account,
        amount: float,
        counterparty: tuple[str, str] | None = None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        """A payment from ``acc`` with its owner links."""
        cp_id, country = counterparty or rng.choice(acc.counterparties)
        if channel is None:
            r = rng.random()
            channel = "online" if r < 0.55 else "card" if r < 0.9 else "branch"
        ev: dict[str, Any] = {
            "account_id": acc.account_id,
            "counterparty_id": cp_id,
            "amount": amount,
            "currency": "EUR",
            "country": country,
            "channel": channel,
        }
        if acc.person_id is not None:
            ev["person_id"] = acc.person_id
        if channel == "online":
            ev["src_ip"] = acc.src_ip
        return ev

    def _bg_financial(self, rng: random.Random, t: float) -> tuple[dict[str, Any], dict]:
        acc = self.accounts[_pick(rng, self._account_cum)]
        cp = (
            rng.choice(acc.counterparties)
            if rng.random() < 0.85
            else self._counterparty(rng, acc.country)
        )
        return self.payment(rng, acc, self.amount(rng, acc), cp), _BENIGN



class FinancialScript:
    """Clock-driven financial events: look-alikes and threat campaigns.

    A mixin of :class:`~watchfloor.simulation.simulator._Script`, which provides ``s``
    (the simulator), ``rng`` (the script's own random stream) and the helpers ``add``,
    ``at``, ``days``, ``count``, ``host``, ``account`` and ``campaign_times``.
    """

    s: Simulator
    rng: random.Random

    def payroll(self) -> None:
        rng, s = self.rng, self.s
        for _ in range(self.count(2)):
            company = self.account("business")
            employees = [
                (a, rng.uniform(2_000, 5_800))
                for a in rng.sample(
                    [a for a in s.accounts if a.kind == "personal"], rng.randint(20, 60)
                )
            ]
            for day in self.days():
                t = self.at(day, 17.0) + rng.uniform(0, 30)
                for emp, salary in employees:
                    amount = round(min(6_000.0, salary * rng.uniform(0.98, 1.03)), 2)
                    cp = (emp.account_id, company.country)
                    self.add(
                        t,
                        "financial",
                        s.payment(rng, company, amount, cp, "batch"),
                        _sim(lookalike="payroll"),
                    )
                    t += rng.uniform(0.5, 3.0)

    def single_large_payment(self) -> None:
        rng, s = self.rng, self.s
        for day in self.days():
            for j in range(self.count(3)):
                acc = self.account(rng.choice(("personal", "business")))
                amount = 9_500.0 if j == 0 else round(rng.uniform(9_000, 9_999), 2)
                cp = s._counterparty(rng, acc.country)
                self.add(
                    self.at(day, rng.uniform(9, 17)),
                    "financial",
                    s.payment(rng, acc, amount, cp, "online"),
                    _sim(lookalike="single_large_payment"),
                )

    def payday_spike(self) -> None:
        rng, s = self.rng, self.s
        for day in self.days():
            for _ in range(self.count(8)):
                acc = self.account()
                amount = round(acc.median * rng.uniform(3.0, 5.0), 2)
                self.add(
                    self.at(day, rng.uniform(8, 20)),
                    "financial",
                    s.payment(rng, acc, amount),
                    _sim(lookalike="payday_spike"),
                )

    def remittance(self) -> None:
        rng, s = self.rng, self.s
        for _ in range(self.count(15, 2)):
            acc = self.account()
            country = rng.choice(s._high_risk)
            cp = (f"ACC-{rng.randrange(1000, 5000):04d}-{rng.randrange(5000, 10_000):04d}", country)
            t = s.start + rng.uniform(1, 12) * HOUR
            while t < s.end:
                self.add(
                    t,
                    "financial",
                    s.payment(rng, acc, round(rng.uniform(100, 400), 2), cp, "online"),
                    _sim(lookalike="remittance"),
                )
                t += rng.uniform(20, 40) * HOUR

    # -- financial threats -----------------------------------------------------------------
    def history_payments(self, acc: Account, until: float, k: int, hours: float = 30.0) -> None:
        for _ in range(k):
            t = until - self.rng.uniform(0.5, hours) * HOUR
            self.add(
                t, "financial", self.s.payment(self.rng, acc, self.s.amount(self.rng, acc)), _BENIGN
            )

    def structuring(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(20 * HOUR), 1):
            cid = f"structuring-{c}"
            acc = self.account()
            cps = [s._counterparty(rng, acc.country) for _ in range(rng.randint(1, 3))]
            times = sorted(
                t0 + rng.uniform(0, rng.uniform(2, 20)) * HOUR for _ in range(rng.randint(3, 6))
            )
            for t in times:
                amount = round(rng.uniform(9_000, 9_990), 2)
                self.add(
                    t,
                    "financial",
                    s.payment(rng, acc, amount, rng.choice(cps)),
                    _sim("structuring", cid),
                )

    def fan_out(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(HOUR), 1):
            cid = f"fan_out-{c}"
            mule = Account(
                account_id=f"ACC-{rng.randrange(1000, 5000):04d}-6{c:03d}",
                kind="personal",
                country=rng.choice(("NL", "DE", "BE")),
                mu=math.log(rng.uniform(40, 120)),
                sigma=0.6,
                counterparties=tuple(s._counterparty(rng, "NL") for _ in range(3)),
                person_id=f"PER-8{c:05d}",
                src_ip=s._public_ip(rng),
            )
            self.history_payments(mule, t0, rng.randint(4, 8))
            countries = rng.sample((*_FOREIGN_COUNTRIES, "NL", "DE", "FR"), rng.randint(2, 5))
            window = rng.uniform(10, 50) * 60
            for j in range(rng.randint(8, 15)):
                cp = (f"ACC-9{c:03d}-{j:04d}", countries[j % len(countries)])
                self.add(
                    t0 + rng.uniform(0, window),
                    "financial",
                    s.payment(rng, mule, round(rng.uniform(500, 3_000), 2), cp, "online"),
                    _sim("fan_out", cid),
                )

    def account_takeover(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(HOUR), 1):
            cid = f"account_takeover-{c}"
            acc = self.account()
            self.history_payments(acc, t0, rng.randint(20, 30))
            attacker_ip = s._public_ip(rng)
            t = t0
            for _ in range(rng.randint(1, 2)):
                amount = acc.median * rng.uniform(40, 120)
                if 9_000 <= amount < REPORTING_THRESHOLD:
                    amount *= 1.15  # stay out of the structuring band
                cp = (
                    f"ACC-{rng.randrange(1000, 5000):04d}-8{c:03d}",
                    rng.choice(_FOREIGN_COUNTRIES),
                )
                ev = s.payment(rng, acc, round(amount, 2), cp, "online")
                ev["src_ip"] = attacker_ip
                self.add(t, "financial", ev, _sim("account_takeover", cid))
                t += rng.uniform(60, 1_200)

    def high_risk_transfer(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(HOUR), 1):
            cid = f"high_risk_transfer-{c}"
            acc = self.account()
            self.history_payments(acc, t0, rng.randint(10, 15))
            country = rng.choice(s._high_risk)
            cp = (f"ACC-{rng.randrange(1000, 5000):04d}-7{c:03d}", country)
            t = t0
            for _ in range(rng.randint(1, 2)):
                amount = rng.choice((rng.uniform(1_000, 8_900), rng.uniform(10_000, 25_000)))
                self.add(
                    t,
                    "financial",
                    s.payment(rng, acc, round(amount, 2), cp, "online"),
                    _sim("high_risk_transfer", cid),
                )
                t += rng.uniform(300, 3_000)
