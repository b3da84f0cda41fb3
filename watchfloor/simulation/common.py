"""What every part of the simulator shares: the threat catalogue and labels, the scenario
clock (time constants, diurnal profile, the scripted-event record), event ids and encoding,
and the reference data (crossing points, watchlist, lost/stolen documents, high-risk
countries).

Imports nothing from the domain modules, which all import it.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

THREAT_TYPES: tuple[str, ...] = (
    "port_scan",
    "exfiltration",
    "beaconing",
    "dns_tunnel",
    "brute_force",
    "spam",
    "flood",
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
    "brute_force": "brute_force",
    "spam": "spam",
    "flood": "flood",
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
    **dict.fromkeys(
        ("port_scan", "exfiltration", "beaconing", "dns_tunnel", "brute_force", "spam", "flood"),
        "network",
    ),
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
    # Real-network look-alikes (issue 10; watchfloor.simulation.network_lookalikes).
    "p2p_client",
    "nat_gateway",
    "backscatter",
    "av_update",
    "cdn_poll",
    "ntp_poll",
    "dns_poll",
    "multicast",
    "ssh_automation",
    "mail_relay",
    "update_rollout",
)

DAY = 86_400.0
HOUR = 3_600.0
#: 2026-11-23T00:00:00Z, a Monday: fixed so that runs are reproducible.
DEFAULT_START = 1_795_392_000.0

# Relative traffic per UTC hour of day (one operating time zone): quiet nights, a morning
# ramp, a business-hours plateau peaking mid-afternoon, an evening tail.
DIURNAL: tuple[float, ...] = (
    0.25, 0.18, 0.14, 0.12, 0.12, 0.15, 0.30, 0.60, 1.00, 1.35, 1.50, 1.55,
    1.45, 1.50, 1.60, 1.55, 1.40, 1.20, 0.95, 0.80, 0.70, 0.60, 0.45, 0.33,
)  # fmt: skip

DEFAULT_MIX: dict[str, float] = {"network": 0.6, "financial": 0.25, "border": 0.15}


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
