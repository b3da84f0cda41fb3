"""Synthetic sensor traffic for the three domains, with injected and labelled threats.

The generator core (:class:`Simulator`) is pure: no Kafka, no wall clock, no global
random state. The same seed gives the same stream, byte for byte. :func:`publish` paces it
onto Kafka in wall-clock time; :func:`write_jsonl` writes it to a file for offline replay.

The contract with the detectors is ``docs/threats.md``: every threat type of the catalogue
is injected after the first (warm-up) simulated day, exactly as described there, among
benign traffic that contains the catalogue's look-alike for each. Every event carries
``"sim": {"threat", "campaign", "lookalike"}`` with the ground truth; detectors must not
read it.

Timeline. The stream is the merge of two parts, both in event-time order:

* *scripted* events, placed at absolute simulated times because their shape is defined by
  the clock: threat campaigns (a port scan within 60 s, beacons every 60-300 s, ...), the
  benign history a campaign's victim needs for per-entity baselines, and the clock-driven
  look-alikes (payroll at 17:00, backups at 01:00-03:00, NTP polling, remittances, ...);
* *background* events, whose count fills ``n`` and whose times follow a diurnal density
  over ``days`` simulated days, so ``n`` events span the configured days whatever ``n``.

Entities are linked the way the correlation stage expects: person *i* holds account *i*,
uses workstation *i* and travels on document *i* (where those exist), so financial events
carry ``person_id``/``src_ip``, network events to the bank carry ``account_id`` and border
events carry ``person_id`` and ``person_name``.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from watchfloor.core.events import DOMAINS
from watchfloor.simulation.border import BorderScript, BorderTraffic
from watchfloor.simulation.common import (
    _PREFIX,
    DAY,
    DEFAULT_MIX,
    DEFAULT_START,
    DIURNAL,
    HOUR,
    _pick,
    _Scripted,
    _weighted_cum,
    crossing_points,
    haversine_km,
    high_risk_countries,
    lost_stolen,
    rfc3339,
    watchlist,
)
from watchfloor.simulation.financial import Account, FinancialScript, FinancialTraffic
from watchfloor.simulation.network import Host, NetworkScript, NetworkTraffic
from watchfloor.simulation.network_attacks import RealNetworkAttacks
from watchfloor.simulation.network_lookalikes import RealNetworkLookalikes
from watchfloor.simulation.network_records import record


class Simulator(NetworkTraffic, FinancialTraffic, BorderTraffic):
    """Realistic network, financial and border traffic with labelled threat campaigns.

    Parameters
    ----------
    seed
        Seed of every random choice: the same seed (and parameters) gives the same stream.
    days
        Simulated span the ``n`` events of :meth:`events` cover. The first day is warm-up
        (no threats); campaigns are placed after it.
    start
        Simulated start, epoch seconds (UTC). Clock-driven patterns (payroll at 17:00,
        backups at 01:00) use UTC hours, so a start at midnight UTC reads most naturally.
    n_hosts, n_accounts, n_travellers
        Population sizes: internal hosts (about 90 % workstations), bank accounts (about
        7 % business) and travel documents.
    threats
        Inject threat campaigns. ``False`` gives benign traffic (look-alikes included).
    campaigns
        Campaigns per threat type for a stream of 50,000 events or more; fewer (at least
        one) for shorter streams so that campaigns do not dominate them.
    mix
        Share of background events per domain.
    real_network
        Add what real networks have (issue 10): benign P2P clients, a NAT gateway,
        backscatter, pollers, multicast, SSH automation, a mail relay, update roll-outs,
        and (with ``threats``) horizontal/block/telnet scans, jittery beacons, password
        guessing, spam and floods. ``False`` gives the original, cleaner world.
    linked
        Every ``linked`` simulated days, one linked multi-domain case: the actors of
        :func:`~watchfloor.simulation.multidomain.multidomain_scenario` (a workstation
        beaconing to a C2 address, its user's account structuring payments, the same
        person crossing on a lost/stolen document, after a day of their own benign
        history), each case with entities of its own. The first attack is 26 h after
        ``start``. ``0`` (the default): none.

    Notes
    -----
    A stream shorter than the scripted part (a few thousand events at the default sizes)
    is cut at ``n`` events, so it ends early; use ``threats=False`` for tiny streams.
    """

    def __init__(
        self,
        seed: int = 0,
        days: float = 3.0,
        start: float = DEFAULT_START,
        n_hosts: int = 3000,
        n_accounts: int = 3000,
        n_travellers: int = 3000,
        threats: bool = True,
        campaigns: int = 3,
        mix: dict[str, float] | None = None,
        real_network: bool = True,
        linked: float = 0.0,
    ) -> None:
        if days <= 0:
            raise ValueError(f"days must be positive, got {days}")
        if min(n_hosts, n_accounts, n_travellers) < 50:
            raise ValueError("populations must have at least 50 members each")
        self.seed = seed
        self.days = float(days)
        self.start = float(start)
        self.end = self.start + self.days * DAY
        self.threats = threats
        self.campaigns = campaigns
        self.real_network = real_network
        if linked < 0:
            raise ValueError(f"linked must be 0 (none) or a number of days, got {linked}")
        self.linked = float(linked)
        mix = dict(DEFAULT_MIX if mix is None else mix)
        if set(mix) - set(DOMAINS) or not any(v > 0 for v in mix.values()):
            raise ValueError(f"mix must weight some of {DOMAINS}, got {mix}")
        self._domains = tuple(d for d in DOMAINS if mix.get(d, 0) > 0)
        self._domain_cum = _weighted_cum(mix[d] for d in self._domains)

        master = random.Random(seed)
        self._seed_script = master.getrandbits(64)
        self._seed_background = master.getrandbits(64)
        rng = random.Random(master.getrandbits(64))

        self.points = crossing_points()
        self._dist = [[haversine_km(a, b) for b in self.points] for a in self.points]
        self._high_risk = high_risk_countries()
        self._lost_stolen = lost_stolen()
        self._watchlist = watchlist()
        self._taken_docs: set[str] = set(self._lost_stolen) | {
            w.document_id for w in self._watchlist
        }
        self._fresh = 0
        self._ext_pool = [self._public_ip(rng) for _ in range(20_000)]
        self._popular = self._ext_pool[:400]
        self._popular_cum = _weighted_cum(1.0 / (k + 1) for k in range(len(self._popular)))
        self._build_hosts(rng, n_hosts)
        self._build_accounts(rng, n_accounts)
        self._build_travellers(rng, n_travellers)
        self._time_cum = self._diurnal_cdf()
        # Streams mint fresh documents/persons; each starts from this snapshot so that
        # calling events() twice on one instance gives the same stream.
        self._fresh0, self._taken0 = self._fresh, frozenset(self._taken_docs)

    def _diurnal_cdf(self) -> list[float]:
        # Per-minute cumulative weight over the span (linear between hourly values), the
        # inverse of which maps sorted uniforms to event times.
        n_bins = max(1, math.ceil(self.days * 1440))
        cum = [0.0]
        for b in range(n_bins):
            t = self.start + b * 60.0 + 30.0
            h = (t % DAY) / HOUR
            lo = int(h) % 24
            frac = h - int(h)
            w = DIURNAL[lo] * (1 - frac) + DIURNAL[(lo + 1) % 24] * frac
            cum.append(cum[-1] + w)
        return cum

    # -- the stream ------------------------------------------------------------------------
    def events(self, n: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``n`` events ``(domain, event)`` in non-decreasing event time.

        Parameters
        ----------
        n
            Number of events; their times span :attr:`days` simulated days.

        Yields
        ------
        tuple[str, dict]
            The domain and the event (``ts`` as RFC 3339 for network/border and epoch
            milliseconds for financial, plus a ``sim`` ground-truth label).
        """
        extra: list[_Scripted] = []
        if self.linked and self.threats:
            from watchfloor.simulation.multidomain import linked_cases

            extra = linked_cases(self, self.linked)
        yield from self._stream(n, extra)

    def _stream(self, n: int, extra: Iterable[_Scripted]) -> Iterator[tuple[str, dict[str, Any]]]:
        if n <= 0:
            return
        self._fresh, self._taken_docs = self._fresh0, set(self._taken0)
        for tr in (*self.travellers, *self.similar_name_travellers, *self.near_miss_travellers):
            tr.last_t, tr.last_point, tr.inbound = -1e18, -1, False
        script = _Script(self, random.Random(self._seed_script), n)
        scripted = sorted([*script.build(), *extra])
        n_bg = max(0, n - len(scripted))
        rng = random.Random(self._seed_background)
        counters = dict.fromkeys(DOMAINS, 0)
        makers: dict[str, Callable[[random.Random, float], tuple[dict[str, Any], dict]]] = {
            "network": self._bg_network,
            "financial": self._bg_financial,
            "border": self._bg_border,
        }
        i = emitted = 0
        n_script = len(scripted)

        def finish(domain: str, t: float, payload: dict[str, Any], sim: dict) -> dict:
            counters[domain] += 1
            ms = int(t * 1000)
            ev: dict[str, Any] = {
                "event_id": f"{_PREFIX[domain]}-{self.seed}-{counters[domain]:09d}",
                "ts": ms if domain == "financial" else rfc3339(ms),
            }
            ev.update(payload)
            if domain == "network":
                record(ev)
            ev["sim"] = sim
            return ev

        for t in self._background_times(rng, n_bg):
            while i < n_script and scripted[i].t <= t:
                s = scripted[i]
                i += 1
                yield s.domain, finish(s.domain, s.t, s.payload, s.sim)
                emitted += 1
                if emitted >= n:
                    return
            domain = self._domains[_pick(rng, self._domain_cum)]
            payload, sim = makers[domain](rng, t)
            yield domain, finish(domain, t, payload, sim)
            emitted += 1
            if emitted >= n:
                return
        while i < n_script and emitted < n:
            s = scripted[i]
            i += 1
            yield s.domain, finish(s.domain, s.t, s.payload, s.sim)
            emitted += 1

    def _background_times(self, rng: random.Random, k: int) -> Iterator[float]:
        # Sorted uniforms one at a time: the next is the minimum of the remaining ones,
        # uniform on [x, 1), which is x + (1 - x) * (1 - U ** (1 / remaining)). Mapped
        # through the inverse diurnal CDF this gives exactly k sorted times over the span.
        cum = self._time_cum
        total = cum[-1]
        n_bins = len(cum) - 1
        span = min(self.days * DAY, n_bins * 60.0)
        x = 0.0
        for remaining in range(k, 0, -1):
            x += (1.0 - x) * -math.expm1(math.log(1.0 - rng.random()) / remaining)
            target = x * total
            b = min(bisect.bisect_right(cum, target) - 1, n_bins - 1)
            width = cum[b + 1] - cum[b]
            frac = (target - cum[b]) / width if width > 0 else 0.0
            yield self.start + min((b + min(frac, 1.0)) * 60.0, span - 1e-3)



class _Script(
    NetworkScript, FinancialScript, BorderScript, RealNetworkLookalikes, RealNetworkAttacks
):
    """Clock-driven events of one stream: look-alikes, campaigns and victims' history."""

    def __init__(self, sim: Simulator, rng: random.Random, n: int) -> None:
        self.s = sim
        self.rng = rng
        # Scale of the scripted populations relative to a 200k-event stream, so that
        # short streams are not dominated by them.
        self.scale = min(1.0, n / 200_000)
        self.n_campaigns = (
            max(1, min(sim.campaigns, math.ceil(sim.campaigns * n / 50_000))) if sim.threats else 0
        )
        self.out: list[_Scripted] = []
        self.used_hosts: set[str] = set()
        self.used_accounts: set[str] = set()
        self._midnight = sim.start - (sim.start % DAY)

    def count(self, base: float, minimum: int = 1) -> int:
        return max(minimum, round(base * self.scale))

    def add(
        self, t: float, domain: str, payload: dict[str, Any], sim: dict[str, str | None]
    ) -> None:
        if self.s.start <= t < self.s.end:
            self.out.append(_Scripted(t, len(self.out), domain, payload, sim))

    def days(self) -> range:
        return range(math.ceil(self.s.days) + 1)

    def at(self, day: int, hour: float) -> float:
        return self._midnight + day * DAY + hour * HOUR

    def host(self, pool: list[Host], top: float = 1.0) -> Host:
        # Victims from the busier part of the pool have a per-entity history to deviate
        # from; `top` is the fraction of the pool considered.
        k = max(1, int(len(pool) * top))
        ranked = pool if top >= 1.0 else self._busiest(pool)[:k]
        for _ in range(100):
            h = self.rng.choice(ranked)
            if h.ip not in self.used_hosts:
                self.used_hosts.add(h.ip)
                return h
        return self.rng.choice(ranked)  # tiny populations: reuse rather than fail

    def _busiest(self, pool: list[Host]) -> list[Host]:
        weight = dict(zip((h.ip for h in self.s.hosts), self.s._host_weights, strict=True))
        return sorted(pool, key=lambda h: -weight[h.ip])

    def account(self, kind: str = "personal") -> Account:
        for _ in range(1000):
            a = self.rng.choice(self.s.accounts)
            if a.kind == kind and a.account_id not in self.used_accounts:
                self.used_accounts.add(a.account_id)
                return a
        # Tiny populations: reuse rather than fail.
        return self.rng.choice([a for a in self.s.accounts if a.kind == kind] or self.s.accounts)

    def campaign_times(self, duration: float) -> list[float]:
        """Start times after the warm-up day, spread over the rest of the span."""
        lo, hi = self.s.start + DAY + 600.0, self.s.end - duration - 600.0
        if hi <= lo:
            return []
        k = self.n_campaigns
        # One start per equal slice keeps campaigns of one type apart in time.
        return [lo + (hi - lo) * (j + self.rng.random()) / k for j in range(k)]

    def build(self) -> list[_Scripted]:
        self.lookalikes()
        if self.n_campaigns:
            self.port_scan()
            self.exfiltration()
            self.beaconing()
            self.dns_tunnel()
            self.structuring()
            self.fan_out()
            self.account_takeover()
            self.high_risk_transfer()
            self.watchlist_match()
            self.impossible_travel()
            self.stolen_document()
            self.unusual_route()
        if self.s.real_network:
            # After everything above, and on their own random streams: the patterns
            # above come out exactly as without them.
            self.real_network_lookalikes()
            self.real_network_attacks()
        return self.out

    # -- look-alikes -------------------------------------------------------------------------
    def lookalikes(self) -> None:
        self.nightly_backup()
        self.ntp_sync()
        self.cdn_browsing()
        self.payroll()
        self.single_large_payment()
        self.payday_spike()
        self.remittance()
        self.frequent_traveller()
