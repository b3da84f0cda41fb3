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

import asyncio
import bisect
import csv
import io
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from watchfloor.core.decoding import parse_ts
from watchfloor.core.events import DOMAINS, ENTITY_FIELDS

log = logging.getLogger(__name__)

THREAT_TYPES: tuple[str, ...] = (
    "port_scan",
    "exfiltration",
    "beaconing",
    "dns_tunnel",
    "structuring",
    "fan_out",
    "account_takeover",
    "high_risk_transfer",
    "watchlist_match",
    "impossible_travel",
    "stolen_document",
    "unusual_route",
)

#: Threat type -> name of the detector that must find it (the catalogue's table).
THREAT_DETECTORS: dict[str, str] = {
    "port_scan": "port_scan",
    "exfiltration": "exfiltration",
    "beaconing": "beaconing",
    "dns_tunnel": "flow_halfspace",
    "structuring": "structuring",
    "fan_out": "fan_out",
    "account_takeover": "amount_anomaly",
    "high_risk_transfer": "high_risk_jurisdiction",
    "watchlist_match": "watchlist",
    "impossible_travel": "impossible_travel",
    "stolen_document": "lost_stolen_document",
    "unusual_route": "unusual_route",
}

THREAT_DOMAINS: dict[str, str] = {
    **dict.fromkeys(("port_scan", "exfiltration", "beaconing", "dns_tunnel"), "network"),
    **dict.fromkeys(
        ("structuring", "fan_out", "account_takeover", "high_risk_transfer"), "financial"
    ),
    **dict.fromkeys(
        ("watchlist_match", "impossible_travel", "stolen_document", "unusual_route"), "border"
    ),
}

#: Benign look-alike patterns (``sim.lookalike``), one or more per threat type.
LOOKALIKES: tuple[str, ...] = (
    "shared_proxy",
    "nightly_backup",
    "ntp_sync",
    "cdn_browsing",
    "large_download",
    "payroll",
    "single_large_payment",
    "payday_spike",
    "remittance",
    "similar_name",
    "near_miss_document",
    "frequent_traveller",
)

DAY = 86_400.0
HOUR = 3_600.0
#: 2026-11-23T00:00:00Z, a Monday: fixed so that runs are reproducible.
DEFAULT_START = 1_795_392_000.0
REPORTING_THRESHOLD = 10_000.0

# Relative traffic per UTC hour of day (one operating time zone): quiet nights, a morning
# ramp, a business-hours plateau peaking mid-afternoon, an evening tail.
DIURNAL: tuple[float, ...] = (
    0.25, 0.18, 0.14, 0.12, 0.12, 0.15, 0.30, 0.60, 1.00, 1.35, 1.50, 1.55,
    1.45, 1.50, 1.60, 1.55, 1.40, 1.20, 0.95, 0.80, 0.70, 0.60, 0.45, 0.33,
)  # fmt: skip

DEFAULT_MIX: dict[str, float] = {"network": 0.6, "financial": 0.25, "border": 0.15}

# Background share of the labelled look-alikes that are kinds of traffic rather than
# clock-driven scripts (per domain's background events).
P_PROXY = 0.05
P_DOWNLOAD = 0.004
P_DNS = 0.12
P_BANKING = 0.02
P_SIMILAR_NAME = 0.01
P_NEAR_MISS = 0.006

# Public-looking first octets for synthetic external addresses (no private/reserved ones).
_PUBLIC_OCTETS: tuple[int, ...] = (
    13, 20, 23, 31, 34, 35, 37, 45, 46, 51, 52, 54, 62, 77, 78, 80, 81, 82, 85, 87, 89,
    91, 93, 94, 104, 108, 130, 140, 141, 145, 146, 151, 157, 176, 178, 185, 188, 193, 194,
    195, 212, 213, 217,
)  # fmt: skip

# Background names avoid every watchlist name part (and near spellings of them), so an
# unlabelled crossing never resembles a listed person: only `similar_name` travellers do.
_FIRST_NAMES: tuple[str, ...] = (
    "ANNA", "MARIE", "SOPHIE", "JULIA", "LAURA", "SARA", "EMMA", "CLARA", "INES", "NINA",
    "PAULA", "EVA", "LENA", "HANNA", "MAJA", "AINO", "KATRI", "RUTA", "AGNIESZKA", "ZOFIA",
    "PIERRE", "LUC", "THOMAS", "NICOLAS", "JAN", "PIETER", "DIRK", "LUKAS", "FELIX", "JONAS",
    "MATTEO", "LUCA", "PABLO", "JAVIER", "JOAO", "RUI", "NIKOS", "GIORGOS", "MIKKO", "JUHA",
    "TOOMAS", "MARTYNAS", "TOMASZ", "PIOTR", "OLIVER", "GEORGE", "HENRY", "DAVID", "SIMON",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "DUPONT", "MARTIN", "BERNARD", "MOREAU", "LAURENT", "MUELLER", "SCHMIDT", "SCHNEIDER",
    "FISCHER", "WAGNER", "JANSSEN", "DE VRIES", "BAKKER", "VISSER", "PEETERS", "MAES",
    "GARCIA", "FERNANDEZ", "LOPEZ", "SANTOS", "FERREIRA", "COSTA", "PAPADOPOULOS",
    "GEORGIOU", "VIRTANEN", "KORHONEN", "TAMM", "SAAR", "KAZLAUSKAS", "JANKAUSKAS", "NOWAK",
    "KOWALSKI", "WISNIEWSKI", "SMITH", "JONES", "TAYLOR", "BROWN", "ROSSI", "BIANCHI",
    "ESPOSITO", "ROMANO", "GALLO", "HUBER", "GRUBER", "NIELSEN", "HANSEN", "LINDQVIST",
)  # fmt: skip
_NATIONALITIES: tuple[tuple[str, float], ...] = (
    ("FRA", 18), ("DEU", 18), ("NLD", 10), ("BEL", 6), ("ESP", 9), ("PRT", 4), ("GRC", 4),
    ("FIN", 3), ("EST", 2), ("LTU", 2), ("GBR", 10), ("ITA", 9), ("POL", 5),
)  # fmt: skip
_HOME_COUNTRIES: tuple[tuple[str, float], ...] = (
    ("NL", 20), ("DE", 20), ("FR", 18), ("BE", 8), ("ES", 8), ("IT", 8), ("PT", 3),
    ("AT", 3), ("LU", 2), ("IE", 3), ("FI", 2), ("EE", 1), ("LT", 1), ("PL", 3),
)  # fmt: skip
_FOREIGN_COUNTRIES: tuple[str, ...] = ("GB", "US", "CH", "SE", "DK", "NO", "CZ", "TR", "AE", "HK")
_SITES: tuple[str, ...] = ("NL", "DE", "FR", "BE")

# Hand-written transliterations: how the listed names come out of other alphabets/systems.
_TRANSLITERATIONS: dict[str, str] = {
    "IVAN PETROVICH SOKOLOV": "IWAN PETROWITSCH SOKOLOW",
    "AHMAD KARIMI": "AHMED KARIMY",
    "MARCO DELLA ROVERE": "MARKO DELA ROVERE",
    "ELENA VOSKRESENSKAYA": "YELENA VOSKRESENSKAIA",
    "JOHAN VAN DER BERGH": "JOHANN VANDERBERGH",
    "SAMIR HADDAD": "SAMEER HADAD",
    "VIKTOR LEBEDEV": "VICTOR LEBEDEFF",
    "CARLOS MENDOZA RUIZ": "KARLOS MENDOSA RUIS",
    "LI WEI CHEN": "LEE WEI CHENG",
    "OMAR FAROUK SALEH": "UMAR FARUQ SALIH",
}
_WATCHLIST_VARIANTS: tuple[str, ...] = ("typo", "transliteration", "reordered", "document", "exact")
_DOCUMENT_FORMATS: tuple[str, ...] = ("lower", "spaces", "dashes", "as_is", "mixed")

_PROXY_IPS: tuple[str, ...] = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
_NTP_SERVER = "10.0.0.123"
_DNS_SERVERS: tuple[str, ...] = ("10.0.0.53", "10.0.1.53")
_BANK_IPS: tuple[str, ...] = ("193.0.14.20", "193.0.14.21")


# --------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrossingPoint:
    code: str
    name: str
    country: str
    lat: float
    lon: float


@dataclass(frozen=True)
class WatchlistEntry:
    name: str
    document_id: str
    nationality: str
    list: str


def _data_text(name: str) -> str:
    return resources.files("watchfloor").joinpath("data", name).read_text(encoding="utf-8")


def _data_lines(name: str) -> list[str]:
    lines = (line.strip() for line in _data_text(name).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@lru_cache(maxsize=1)
def crossing_points() -> tuple[CrossingPoint, ...]:
    """The crossing points of ``watchfloor/data/crossing_points.csv``."""
    rows = csv.DictReader(io.StringIO(_data_text("crossing_points.csv")))
    return tuple(
        CrossingPoint(r["code"], r["name"], r["country"], float(r["lat"]), float(r["lon"]))
        for r in rows
    )


@lru_cache(maxsize=1)
def watchlist() -> tuple[WatchlistEntry, ...]:
    """The entries of ``watchfloor/data/watchlist.csv``."""
    rows = csv.DictReader(io.StringIO(_data_text("watchlist.csv")))
    return tuple(
        WatchlistEntry(r["name"], r["document_id"], r["nationality"], r["list"]) for r in rows
    )


@lru_cache(maxsize=1)
def lost_stolen() -> tuple[str, ...]:
    """Document ids of ``watchfloor/data/lost_stolen.txt``."""
    return tuple(_data_lines("lost_stolen.txt"))


@lru_cache(maxsize=1)
def high_risk_countries() -> tuple[str, ...]:
    """ISO alpha-2 codes of ``watchfloor/data/high_risk_countries.txt``."""
    return tuple(_data_lines("high_risk_countries.txt"))


def haversine_km(a: CrossingPoint, b: CrossingPoint) -> float:
    """Great-circle distance between two crossing points in km."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------
@lru_cache(maxsize=8192)
def _second_prefix(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def rfc3339(ms: int) -> str:
    """RFC 3339 UTC string with milliseconds for epoch milliseconds.

    >>> rfc3339(1795392000123)
    '2026-11-23T00:00:00.123Z'
    """
    sec, milli = divmod(ms, 1000)
    return f"{_second_prefix(sec)}.{milli:03d}Z"


def encode(event: dict[str, Any]) -> bytes:
    """Serialize one event as the UTF-8 JSON the input topics carry."""
    return orjson.dumps(event)


def _sim(
    threat: str | None = None, campaign: str | None = None, lookalike: str | None = None
) -> dict[str, str | None]:
    return {"threat": threat, "campaign": campaign, "lookalike": lookalike}


_BENIGN: dict[str, str | None] = _sim()
_PREFIX: dict[str, str] = {"network": "net", "financial": "fin", "border": "brd"}


# --------------------------------------------------------------------------------------
# Populations
# --------------------------------------------------------------------------------------
@dataclass(slots=True)
class Host:
    ip: str
    kind: str  # "workstation" | "server" | "backup"
    country: str
    sensor: str
    mu_out: float
    sigma_out: float
    cap_out: int
    mu_in: float
    favourites: tuple[str, ...]
    ports: tuple[int, ...]
    port_cum: tuple[float, ...]
    account_id: str | None = None


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


@dataclass(slots=True)
class Traveller:
    document_id: str
    person_id: str
    name: str
    nationality: str
    points: tuple[int, ...]  # indexes into crossing_points(); 1 or 2 habitual points
    last_t: float = -1e18
    last_point: int = -1
    inbound: bool = False


@dataclass(order=True, slots=True)
class _Scripted:
    t: float
    seq: int
    domain: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    sim: dict[str, str | None] = field(compare=False)


def _weighted_cum(weights: Iterable[float]) -> list[float]:
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    return cum


def _pick(rng: random.Random, cum: list[float]) -> int:
    return bisect.bisect_right(cum, rng.random() * cum[-1])


class Simulator:
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

    # -- population ---------------------------------------------------------------------
    @staticmethod
    def _public_ip(rng: random.Random) -> str:
        return (
            f"{rng.choice(_PUBLIC_OCTETS)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )

    def _build_hosts(self, rng: random.Random, n: int) -> None:
        n_servers = max(10, n // 10)
        n_ws = n - n_servers
        self.workstations: list[Host] = []
        self.servers: list[Host] = []
        for i in range(n_ws):
            site = _SITES[i % len(_SITES)]
            favs = tuple(self._popular[_pick(rng, self._popular_cum)] for _ in range(8))
            self.workstations.append(
                Host(
                    ip=f"10.20.{i // 250}.{i % 250 + 1}",
                    kind="workstation",
                    country=site,
                    sensor=f"{site.lower()}-tap-{i % 3 + 1}",
                    # Per-host habit: each workstation has its own typical upload size.
                    mu_out=math.log(rng.uniform(1_500, 8_000)),
                    sigma_out=rng.uniform(0.7, 1.1),
                    cap_out=100_000,
                    mu_in=math.log(rng.uniform(8_000, 60_000)),
                    favourites=favs,
                    ports=(443, 80, 8443, 993, 22),
                    port_cum=_weighted_cum((0.84, 0.1, 0.03, 0.02, 0.01)),
                    account_id=None,
                )
            )
        for j in range(n_servers):
            site = _SITES[j % len(_SITES)]
            favs = tuple(rng.choice(self._ext_pool) for _ in range(4))
            self.servers.append(
                Host(
                    ip=f"10.10.{j // 250}.{j % 250 + 1}",
                    kind="server",
                    country=site,
                    sensor=f"{site.lower()}-dc-tap-{j % 2 + 1}",
                    mu_out=math.log(rng.uniform(10_000, 80_000)),
                    sigma_out=rng.uniform(1.0, 1.4),
                    cap_out=20_000_000,
                    mu_in=math.log(rng.uniform(2_000, 20_000)),
                    favourites=favs,
                    ports=(443, 5432, 22, 8080, 9092),
                    port_cum=_weighted_cum((0.6, 0.15, 0.1, 0.1, 0.05)),
                )
            )
        # Backup servers: quiet by day, 1-5 GB to one target every night (nightly_backup).
        self.backup_hosts = [
            Host(
                ip=f"10.10.200.{k + 1}",
                kind="backup",
                country=_SITES[k % len(_SITES)],
                sensor="nl-dc-tap-1",
                mu_out=math.log(5_000),
                sigma_out=0.8,
                cap_out=2_000_000,
                mu_in=math.log(5_000),
                favourites=(self._ext_pool[-1],),
                ports=(443, 22),
                port_cum=_weighted_cum((0.7, 0.3)),
            )
            for k in range(3)
        ]
        self.backup_target = self._ext_pool[-1]
        all_hosts = self.workstations + self.servers + self.backup_hosts
        self.hosts = all_hosts
        # Heavy-tailed activity: a few hosts are far busier than most.
        weights = [rng.lognormvariate(0.0, 1.0) for _ in all_hosts]
        for k, h in enumerate(all_hosts):
            if h.kind == "backup":
                weights[k] = 0.05
        self._host_weights = weights
        self._host_cum = _weighted_cum(weights)

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

    def _document_id(self, rng: random.Random) -> str:
        # Two positions (letter, first digit) can never match a listed document, so a
        # background document is never within one edit of the lost/stolen or watch lists.
        while True:
            doc = f"{rng.choice('CEGHKMNRT')}{rng.choice('3568')}{rng.randrange(10**6):06d}"
            if doc not in self._taken_docs:
                self._taken_docs.add(doc)
                return doc

    def _name(self, rng: random.Random) -> str:
        return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"

    def _home_points(self, rng: random.Random) -> tuple[int, ...]:
        first = rng.randrange(len(self.points))
        if rng.random() < 0.6:
            return (first,)
        near = [k for k in range(len(self.points)) if k != first and self._dist[first][k] < 500]
        return (first, rng.choice(near)) if near else (first,)

    def _nationality(self, rng: random.Random) -> str:
        return rng.choices([c for c, _ in _NATIONALITIES], [w for _, w in _NATIONALITIES])[0]

    def _new_traveller(self, rng: random.Random, name: str | None = None) -> Traveller:
        self._fresh += 1
        return Traveller(
            document_id=self._document_id(rng),
            person_id=f"PER-9{self._fresh:05d}",
            name=name or self._name(rng),
            nationality=self._nationality(rng),
            points=self._home_points(rng),
        )

    def _build_travellers(self, rng: random.Random, n: int) -> None:
        self.travellers = [
            Traveller(
                document_id=self._document_id(rng),
                person_id=f"PER-{i:06d}",
                name=self._name(rng),
                nationality=self._nationality(rng),
                points=self._home_points(rng),
            )
            for i in range(n)
        ]
        self._traveller_cum = _weighted_cum(rng.lognormvariate(0.0, 1.0) for _ in range(n))
        # similar_name: one name part shared with a listed person, the rest ordinary.
        self.similar_name_travellers: list[Traveller] = []
        for k in range(40):
            entry = self._watchlist[k % len(self._watchlist)]
            part = rng.choice(entry.name.split())
            name = (
                f"{part} {rng.choice(_LAST_NAMES)}"
                if k % 2
                else f"{rng.choice(_FIRST_NAMES)} {part}"
            )
            self.similar_name_travellers.append(self._new_traveller(rng, name))
        # near_miss_document: one character away from a lost/stolen document.
        self.near_miss_travellers: list[Traveller] = []
        for doc in self._lost_stolen:
            for _ in range(2):
                pos = rng.randrange(1, len(doc))
                digit = rng.choice([d for d in "0123456789" if d != doc[pos]])
                near = doc[:pos] + digit + doc[pos + 1 :]
                if near in self._taken_docs:
                    continue
                self._taken_docs.add(near)
                tr = self._new_traveller(rng)
                tr.document_id = near
                self.near_miss_travellers.append(tr)

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
        yield from self._stream(n, ())

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

    # -- background events -----------------------------------------------------------------
    @staticmethod
    def _lognorm_int(rng: random.Random, mu: float, sigma: float, cap: int, floor: int = 1) -> int:
        # Resample above the cap rather than clip, so no point mass sits at the cap.
        for _ in range(8):
            v = rng.lognormvariate(mu, sigma)
            if v <= cap:
                return max(floor, int(v))
        return cap

    def flow(self, rng: random.Random, host: Host, dst: str | None = None) -> dict[str, Any]:
        """One ordinary flow following ``host``'s habits."""
        if dst is None:
            if host.kind == "server" and rng.random() < 0.5:
                dst = rng.choice(self.servers).ip
            elif rng.random() < 0.7:
                dst = rng.choice(host.favourites)
            else:
                dst = rng.choice(self._ext_pool)
        port = host.ports[_pick(rng, host.port_cum)]
        return {
            "src_ip": host.ip,
            "dst_ip": dst,
            "dst_port": port,
            "protocol": "tcp",
            "bytes_out": self._lognorm_int(rng, host.mu_out, host.sigma_out, host.cap_out),
            "bytes_in": self._lognorm_int(rng, host.mu_in, 1.5, 50_000_000),
            "duration_ms": round(rng.lognormvariate(math.log(300), 1.2), 2),
            "sensor": host.sensor,
            "country": host.country,
        }

    def _bg_network(self, rng: random.Random, t: float) -> tuple[dict[str, Any], dict]:
        r = rng.random()
        if r < P_PROXY:
            # shared_proxy: NAT/proxy egress reaching many distinct hosts, on 80/443 only.
            return {
                "src_ip": rng.choice(_PROXY_IPS),
                "dst_ip": rng.choice(self._ext_pool),
                "dst_port": 443 if rng.random() < 0.85 else 80,
                "protocol": "tcp",
                "bytes_out": self._lognorm_int(rng, math.log(1_200), 1.0, 200_000, 60),
                "bytes_in": self._lognorm_int(rng, math.log(30_000), 1.6, 50_000_000),
                "duration_ms": round(rng.lognormvariate(math.log(400), 1.0), 2),
                "sensor": "nl-edge-1",
                "country": "NL",
            }, _sim(lookalike="shared_proxy")
        host = self.hosts[_pick(rng, self._host_cum)]
        r -= P_PROXY
        if r < P_DOWNLOAD and host.kind == "workstation":
            # large_download: big bytes_in over long HTTPS, small upload.
            size = self._lognorm_int(rng, math.log(300e6), 1.0, 4_000_000_000, 20_000_000)
            return {
                "src_ip": host.ip,
                "dst_ip": rng.choice(self._popular[:40]),
                "dst_port": 443,
                "protocol": "tcp",
                "bytes_out": rng.randint(8_000, 90_000),
                "bytes_in": size,
                "duration_ms": round(size / rng.uniform(5e6, 60e6) * 1000, 2),
                "sensor": host.sensor,
                "country": host.country,
            }, _sim(lookalike="large_download")
        r -= P_DOWNLOAD
        if r < P_DNS:
            return {
                "src_ip": host.ip,
                "dst_ip": rng.choice(_DNS_SERVERS),
                "dst_port": 53,
                "protocol": "udp",
                "bytes_out": rng.randint(40, 120),
                "bytes_in": rng.randint(80, 500),
                "duration_ms": round(rng.uniform(0.5, 60.0), 2),
                "sensor": host.sensor,
                "country": host.country,
            }, _BENIGN
        r -= P_DNS
        payload = self.flow(rng, host)
        if r < P_BANKING and host.account_id is not None:
            # Online banking session: ties this workstation to its owner's account.
            payload["dst_ip"] = rng.choice(_BANK_IPS)
            payload["dst_port"] = 443
            payload["account_id"] = host.account_id
        return payload, _BENIGN

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

    def crossing(
        self, rng: random.Random, tr: Traveller, point: int, document_id: str | None = None
    ) -> dict[str, Any]:
        """A crossing of ``tr`` at ``point``, alternating entry and exit."""
        tr.inbound = not tr.inbound
        return {
            "document_id": document_id or tr.document_id,
            "nationality": tr.nationality,
            "crossing_point": self.points[point].code,
            "direction": "entry" if tr.inbound else "exit",
            "person_name": tr.name,
            "person_id": tr.person_id,
        }

    def _bg_border(self, rng: random.Random, t: float) -> tuple[dict[str, Any], dict]:
        r = rng.random()
        if r < P_SIMILAR_NAME:
            tr, sim = rng.choice(self.similar_name_travellers), _sim(lookalike="similar_name")
        elif r < P_SIMILAR_NAME + P_NEAR_MISS:
            tr, sim = rng.choice(self.near_miss_travellers), _sim(lookalike="near_miss_document")
        else:
            sim = _BENIGN
            for _ in range(4):
                tr = self.travellers[_pick(rng, self._traveller_cum)]
                if t - tr.last_t > 1_800:  # nobody crosses twice within half an hour
                    break
        hour = (t % DAY) / HOUR
        point = rng.choice(tr.points)
        if sim is _BENIGN and 7 <= hour < 20 and rng.random() < 0.03:
            # An occasional trip elsewhere, by day only (a night crossing at a new point
            # after a daytime routine is the unusual_route threat).
            point = rng.randrange(len(self.points))
        if 1 <= hour < 5 and tr.last_point >= 0:
            # At night a traveller crosses where they last did: a first use of even a
            # habitual second point at night, after a daytime routine at the first, is
            # exactly the unusual_route threat and must not appear unlabelled.
            point = tr.last_point
        if tr.last_point >= 0 and point != tr.last_point:
            hours = max(t - tr.last_t, 1.0) / HOUR
            if self._dist[tr.last_point][point] / hours > 400.0:
                # Too fast to be plausible: stay at the previous point.
                point = tr.last_point
        tr.last_t, tr.last_point = t, point
        return self.crossing(rng, tr, point), sim


class _Script:
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

    def nightly_backup(self) -> None:
        rng, s = self.rng, self.s
        for host in s.backup_hosts:
            for day in self.days():
                t = self.at(day, 1.0 + rng.uniform(0, 0.6))
                total = rng.uniform(1e9, 5e9)
                parts = rng.randint(1, 3)
                for _ in range(parts):
                    size = int(total / parts * rng.uniform(0.9, 1.1))
                    dur = size / rng.uniform(80e6, 200e6)
                    self.add(
                        t,
                        "network",
                        {
                            "src_ip": host.ip,
                            "dst_ip": s.backup_target,
                            "dst_port": 22,
                            "protocol": "tcp",
                            "bytes_out": size,
                            "bytes_in": rng.randint(200_000, 2_000_000),
                            "duration_ms": round(dur * 1000, 2),
                            "sensor": host.sensor,
                            "country": host.country,
                        },
                        _sim(lookalike="nightly_backup"),
                    )
                    t += dur + rng.uniform(5, 60)

    def ntp_sync(self) -> None:
        rng, s = self.rng, self.s
        for k in range(self.count(8, 2)):
            host = self.host(s.servers)
            ntp = k % 2 == 0
            period = rng.choice((512.0, 1024.0)) if ntp else 300.0
            dst = _NTP_SERVER if ntp else rng.choice(_DNS_SERVERS)
            t = s.start + rng.uniform(0, period)
            while t < s.end:
                self.add(
                    t,
                    "network",
                    {
                        "src_ip": host.ip,
                        "dst_ip": dst,
                        "dst_port": 123 if ntp else 53,
                        "protocol": "udp",
                        "bytes_out": 76 if ntp else rng.randint(50, 70),
                        "bytes_in": 76 if ntp else rng.randint(90, 140),
                        "duration_ms": round(rng.uniform(0.2, 3.0), 2),
                        "sensor": host.sensor,
                        "country": host.country,
                    },
                    _sim(lookalike="ntp_sync"),
                )
                t += period * (1 + rng.uniform(-0.002, 0.002))

    def cdn_browsing(self) -> None:
        rng, s = self.rng, self.s
        for _ in range(self.count(10, 2)):
            host = self.host(s.workstations)
            cdn = rng.choice(s._popular[:20])
            for day in self.days():
                for _ in range(rng.randint(2, 5)):
                    t = self.at(day, rng.uniform(8.0, 18.0))
                    for _ in range(rng.randint(15, 80)):
                        self.add(
                            t,
                            "network",
                            {
                                **s.flow(rng, host, cdn),
                                "dst_port": 443,
                                "bytes_out": rng.randint(400, 5_000),
                                "bytes_in": s._lognorm_int(rng, math.log(60_000), 1.3, 5_000_000),
                            },
                            _sim(lookalike="cdn_browsing"),
                        )
                        # Bursty and irregular: mostly seconds apart, sometimes minutes.
                        t += rng.lognormvariate(math.log(15), 1.2)

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

    def frequent_traveller(self) -> None:
        rng, s = self.rng, self.s
        for _ in range(self.count(12, 2)):
            tr = s._new_traveller(rng)
            point = rng.randrange(len(s.points))
            t = s.start + rng.uniform(0, 6) * HOUR
            while t < s.end:
                self.add(
                    t, "border", s.crossing(rng, tr, point), _sim(lookalike="frequent_traveller")
                )
                nxt = rng.choice([k for k in range(len(s.points)) if k != point])
                # Plausible: at most 450 km/h door to door, plus time on the ground.
                t += s._dist[point][nxt] / 450.0 * HOUR + rng.uniform(1.5, 9.0) * HOUR
                point = nxt

    # -- network threats -----------------------------------------------------------------
    def history_flows(self, host: Host, until: float, k: int) -> None:
        # Benign per-entity history a baseline detector needs, in the day before `until`.
        for _ in range(k):
            t = until - self.rng.uniform(0.5, 24.0) * HOUR
            self.add(t, "network", self.s.flow(self.rng, host), _BENIGN)

    def port_scan(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(120.0), 1):
            cid = f"port_scan-{c}"
            src = self.host(s.workstations)
            targets = rng.sample(s.servers, rng.randint(1, 3))
            window = rng.uniform(10.0, 55.0)
            for target in targets:
                ports = rng.sample(range(1, 10_000), rng.randint(40, 120))
                for port in ports:
                    self.add(
                        t0 + rng.uniform(0, window),
                        "network",
                        {
                            "src_ip": src.ip,
                            "dst_ip": target.ip,
                            "dst_port": port,
                            "protocol": "tcp",
                            "bytes_out": rng.randint(40, 120),
                            "bytes_in": rng.choice((0, 0, 40, 54, 60)),
                            "duration_ms": round(rng.uniform(0.1, 40.0), 2),
                            "sensor": src.sensor,
                            "country": src.country,
                        },
                        _sim("port_scan", cid),
                    )

    def exfiltration(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(2 * HOUR), 1):
            cid = f"exfiltration-{c}"
            victim = self.host(s.workstations, top=0.2)
            self.history_flows(victim, t0, 40)
            dst = s._public_ip(rng)
            t = t0
            for _ in range(rng.randint(1, 2)):
                size = rng.randint(200_000_000, 2_000_000_000)
                dur = size / rng.uniform(5e6, 40e6)
                self.add(
                    t,
                    "network",
                    {
                        **s.flow(rng, victim, dst),
                        "dst_port": 443,
                        "bytes_out": size,
                        "bytes_in": rng.randint(20_000, 400_000),
                        "duration_ms": round(dur * 1000, 2),
                    },
                    _sim("exfiltration", cid),
                )
                t += dur + rng.uniform(60, 900)

    def beaconing(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(60 * 300.0), 1):
            cid = f"beaconing-{c}"
            host = self.host(s.workstations)
            c2 = s._public_ip(rng)
            period = rng.uniform(60, 300)
            jitter = rng.uniform(0.002, 0.03)
            port = rng.choice((443, 8443, 80))
            t = t0
            for _ in range(rng.randint(20, 60)):
                self.add(
                    t,
                    "network",
                    {
                        **s.flow(rng, host, c2),
                        "dst_port": port,
                        "bytes_out": rng.randint(200, 800),
                        "bytes_in": rng.randint(100, 2_000),
                        "duration_ms": round(rng.uniform(50, 400), 2),
                    },
                    _sim("beaconing", cid),
                )
                t += period * (1 + rng.uniform(-jitter, jitter))

    def dns_tunnel(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(3 * HOUR), 1):
            cid = f"dns_tunnel-{c}"
            host = self.host(s.workstations)
            resolver = s._public_ip(rng)
            t = t0
            for _ in range(rng.randint(4, 12)):
                dur = rng.uniform(20.0, 120.0)
                self.add(
                    t,
                    "network",
                    {
                        **s.flow(rng, host, resolver),
                        "dst_port": 53,
                        "protocol": "udp",
                        "bytes_out": rng.randint(50_000, 500_000),
                        "bytes_in": rng.randint(5_000, 60_000),
                        "duration_ms": round(dur * 1000, 2),
                    },
                    _sim("dns_tunnel", cid),
                )
                t += dur + rng.uniform(30, 900)

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

    # -- border threats --------------------------------------------------------------------
    def _typo(self, name: str) -> str:
        rng = self.rng
        parts = name.split()
        k = max(range(len(parts)), key=lambda j: len(parts[j]))
        p = parts[k]
        i = rng.randrange(1, len(p) - 1)
        op = rng.randrange(3)
        if op == 0:  # substitution
            p = p[:i] + rng.choice([ch for ch in "AEIOUY" if ch != p[i]]) + p[i + 1 :]
        elif op == 1:  # deletion
            p = p[:i] + p[i + 1 :]
        else:  # transposition
            p = p[: i - 1] + p[i] + p[i - 1] + p[i + 1 :]
        parts[k] = p
        return " ".join(parts)

    def watchlist_match(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(12 * HOUR), 1):
            cid = f"watchlist_match-{c}"
            entry = s._watchlist[(c - 1 + rng.randrange(len(s._watchlist))) % len(s._watchlist)]
            tr = s._new_traveller(rng, entry.name)
            tr.nationality = entry.nationality
            point = rng.randrange(len(s.points))
            t = t0
            # Out and back, each time written differently: all variants appear over the
            # default three campaigns.
            for leg in range(2):
                variant = _WATCHLIST_VARIANTS[(2 * (c - 1) + leg) % len(_WATCHLIST_VARIANTS)]
                ev = s.crossing(rng, tr, point)
                if variant == "typo":
                    ev["person_name"] = self._typo(entry.name)
                elif variant == "transliteration":
                    ev["person_name"] = _TRANSLITERATIONS.get(entry.name, entry.name)
                elif variant == "reordered":
                    parts = entry.name.split()
                    ev["person_name"] = " ".join([parts[-1], *parts[:-1]])
                elif variant == "document":
                    ev["document_id"] = entry.document_id
                    ev["person_name"] = s._name(rng)  # travelling under an alias
                self.add(t, "border", ev, _sim("watchlist_match", cid))
                t += rng.uniform(4, 10) * HOUR

    def impossible_travel(self) -> None:
        rng, s = self.rng, self.s
        pairs = [
            (a, b)
            for a in range(len(s.points))
            for b in range(len(s.points))
            if s._dist[a][b] >= 800
        ]
        for c, t0 in enumerate(self.campaign_times(4 * HOUR), 1):
            cid = f"impossible_travel-{c}"
            tr = s._new_traveller(rng)
            a, b = rng.choice(pairs)
            speed = rng.uniform(1_500, 6_000)  # km/h: well above any airliner
            self.add(t0, "border", s.crossing(rng, tr, a), _sim("impossible_travel", cid))
            t1 = t0 + s._dist[a][b] / speed * HOUR
            self.add(t1, "border", s.crossing(rng, tr, b), _sim("impossible_travel", cid))

    def stolen_document(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(12 * HOUR), 1):
            cid = f"stolen_document-{c}"
            doc = rng.choice(s._lost_stolen)
            tr = s._new_traveller(rng)
            point = rng.choice(tr.points)
            t = t0
            for leg in range(2):
                fmt = _DOCUMENT_FORMATS[(2 * (c - 1) + leg) % len(_DOCUMENT_FORMATS)]
                written = {
                    "lower": doc.lower(),
                    "spaces": f"{doc[:4]} {doc[4:]}",
                    "dashes": f"{doc[:1]}-{doc[1:4]}-{doc[4:]}",
                    "as_is": doc,
                    "mixed": f"{doc[:1].lower()} {doc[1:]}",
                }[fmt]
                self.add(
                    t, "border", s.crossing(rng, tr, point, written), _sim("stolen_document", cid)
                )
                t += rng.uniform(3, 10) * HOUR

    def unusual_route(self) -> None:
        rng, s = self.rng, self.s
        first_day = math.ceil((s.start + DAY - self._midnight) / DAY)
        nights = [d for d in range(first_day, math.ceil(s.days) + 1) if self.at(d, 5.0) <= s.end]
        if not nights:
            return
        for c in range(1, self.n_campaigns + 1):
            cid = f"unusual_route-{c}"
            tr = s._new_traveller(rng)
            night = nights[(c - 1) % len(nights)]
            t_night = self.at(night, rng.uniform(1.2, 4.8))
            if t_night < s.start + DAY:
                continue
            # Routine: 6-10 daytime crossings at the habitual 1-2 points, before the night.
            # Hourly daytime slots, at least 1.5 h apart: even between the two habitual
            # points (< 500 km apart) the routine itself stays at plausible speeds.
            slots = [
                t
                for d in range(night)
                for t in (self.at(d, h + rng.uniform(0, 0.5)) for h in range(7, 19, 2))
                if s.start <= t < t_night - 4 * HOUR
            ]
            if len(slots) < 6:
                continue
            for t in sorted(rng.sample(slots, min(len(slots), rng.randint(6, 10)))):
                self.add(t, "border", s.crossing(rng, tr, rng.choice(tr.points)), _BENIGN)
            home = tr.points[0]
            # A new point among the five nearest: a plausible drive or flight from home.
            new = sorted(
                (k for k in range(len(s.points)) if k not in tr.points),
                key=lambda k: s._dist[home][k],
            )[:5]
            self.add(
                t_night, "border", s.crossing(rng, tr, rng.choice(new)), _sim("unusual_route", cid)
            )


# --------------------------------------------------------------------------------------
# Multi-domain scenario
# --------------------------------------------------------------------------------------
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
    campaign = f"md-{seed}"
    attack = start + 26 * HOUR
    stop = attack + 1.5 * HOUR

    ip1 = f"10.30.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    person = f"PER-7{rng.randrange(10**5):05d}"
    account = Account(
        account_id=f"ACC-7777-{rng.randrange(10**4):04d}",
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
    tr = sim._new_traveller(rng, "MARTA KOVAC")
    tr.person_id, tr.nationality = person, "HRV"

    extra: list[_Scripted] = []

    def add(t: float, domain: str, payload: dict[str, Any], label: dict) -> None:
        extra.append(_Scripted(t, -1 - len(extra), domain, payload, label))

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
    doc = lost_stolen()[seed % len(lost_stolen())]
    add(
        attack + 40 * 60,
        "border",
        sim.crossing(rng, tr, home, doc),
        _sim("stolen_document", campaign),
    )

    out: list[tuple[str, dict[str, Any]]] = []
    for domain, ev in sim._stream(4_000, extra):
        if parse_ts(ev["ts"]) >= stop:
            break
        ev["event_id"] = "md-" + ev["event_id"]
        out.append((domain, ev))
    return out


# --------------------------------------------------------------------------------------
# Sinks
# --------------------------------------------------------------------------------------
def _tally(counts: Counter[str], domain: str, event: dict[str, Any]) -> None:
    counts[domain] += 1
    threat = event["sim"]["threat"]
    if threat is not None:
        counts[threat] += 1


def write_jsonl(path: str | Path, n: int, seed: int = 0, **sim_kwargs: Any) -> dict[str, int]:
    """Write ``n`` simulated events to ``path`` for offline replay.

    Each line is ``{"domain": ..., "event": {...}}``; :func:`read_jsonl` reads it back.

    Returns
    -------
    dict[str, int]
        Events per domain and per threat type.
    """
    counts: Counter[str] = Counter()
    with open(path, "wb") as fh:
        for domain, event in Simulator(seed=seed, **sim_kwargs).events(n):
            fh.write(orjson.dumps({"domain": domain, "event": event}))
            fh.write(b"\n")
            _tally(counts, domain, event)
    return dict(counts)


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Read back a file written by :func:`write_jsonl`."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                rec = orjson.loads(line)
                yield rec["domain"], rec["event"]


async def _delivered(pending: list[asyncio.Future[Any]]) -> None:
    # asyncio.wait, unlike gather, does not cancel the producer's delivery futures if this
    # task is cancelled meanwhile; result() re-raises a failed delivery.
    if pending:
        await asyncio.wait(pending)
        for fut in pending:
            fut.result()
        pending.clear()


async def publish(
    bootstrap_servers: str,
    rate: float,
    duration: float,
    seed: int,
    topics: dict[str, str] | None = None,
    security: dict[str, Any] | None = None,
    **sim_kwargs: Any,
) -> dict[str, int]:
    """Publish ``rate * duration`` simulated events to Kafka, paced in wall-clock time.

    The simulated span (``days``, default 3) is compressed into ``duration`` seconds.
    Messages are keyed by the domain's primary entity (``ENTITY_FIELDS``), so one entity's
    events stay in order on one partition. Pacing is a token bucket refilled at ``rate``
    whose bucket holds about 20 ms of events: sends go out in small bursts, and the task
    sleeps only when the bucket is empty.

    On cancellation the producer is flushed and stopped before ``CancelledError``
    propagates; the counts so far are logged.

    Parameters
    ----------
    bootstrap_servers
        Kafka bootstrap servers, ``host:port[,host:port]``.
    rate
        Events per second (wall clock).
    duration
        Seconds (wall clock).
    seed
        Simulator seed.
    topics
        Domain -> topic; defaults to ``events.<domain>``.
    security
        Authentication kwargs for the producer
        (``watchfloor.kafka.security.client_kwargs``); default PLAINTEXT.
    **sim_kwargs
        Further :class:`Simulator` parameters.

    Returns
    -------
    dict[str, int]
        Events sent per domain and per threat type.
    """
    from aiokafka import AIOKafkaProducer

    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    topic_of = {d: f"events.{d}" for d in DOMAINS}
    topic_of.update(topics or {})
    n = max(1, round(rate * duration))
    simulator = Simulator(seed=seed, **sim_kwargs)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=5,
        acks="all",
        enable_idempotence=True,
        **(security or {}),
    )
    await producer.start()
    counts: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    burst = max(1.0, rate * 0.02)
    tokens, last = burst, loop.time()
    pending: list[asyncio.Future[Any]] = []
    try:
        for domain, event in simulator.events(n):
            if tokens < 1.0:
                now = loop.time()
                tokens = min(burst, tokens + (now - last) * rate)
                last = now
                if tokens < 1.0:
                    # Sleep until a burst's worth has accumulated, not one event's.
                    await asyncio.sleep((burst - tokens) / rate)
                    now = loop.time()
                    tokens = min(burst, tokens + (now - last) * rate)
                    last = now
            tokens -= 1.0
            key = event[ENTITY_FIELDS[domain][1]].encode()
            pending.append(await producer.send(topic_of[domain], encode(event), key=key))
            _tally(counts, domain, event)
            if len(pending) >= 10_000:
                # Surface delivery errors early and bound memory held by futures.
                await _delivered(pending)
        await _delivered(pending)
    except asyncio.CancelledError:
        log.info("publish cancelled after %d events: %s", counts.total(), dict(counts))
        raise
    finally:
        # stop() flushes what is buffered, then closes the connections.
        await producer.stop()
    return dict(counts)


__all__ = [
    "DEFAULT_START",
    "LOOKALIKES",
    "THREAT_DETECTORS",
    "THREAT_DOMAINS",
    "THREAT_TYPES",
    "Simulator",
    "encode",
    "multidomain_scenario",
    "publish",
    "read_jsonl",
    "rfc3339",
    "write_jsonl",
]
