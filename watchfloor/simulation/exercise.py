"""Joint exercise scenarios: a planner's timeline of injects, turned into events.

A scenario is a YAML file (two ship in ``watchfloor/data/exercises/``)::

    name: cyber-intrusion
    description: A workstation is probed, then its SSH service guessed at ...
    injects:
      - at: 0                  # seconds after the exercise starts
        pattern: port_scan     # one of PATTERNS
        source: 10.66.0.5      # the pattern's parameters (each has defaults)
        target: 10.0.0.40
        expect: [cert]         # agencies that should receive it

Each inject becomes a short burst of events in the pattern's real shape (a probe of many
ports, a run of password guesses, deposits just under the reporting threshold...). Every
event carries ``exercise: <id>`` and a ``sim`` label naming its inject, so the pipeline
labels its alerts EXERCISE and keeps them out of the real statistics, and
``watchfloor report --exercise ID`` can score detection and response per inject.
Unknown keys, patterns and parameters are errors that name their place.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchfloor.core.decoding import EXERCISE_ID

SCENARIOS = Path(__file__).resolve().parent.parent / "data" / "exercises"
Events = list[tuple[float, str, dict[str, Any]]]  # (seconds after the inject, domain, event)


class ScenarioError(ValueError):
    """An exercise file is invalid; the message says where and what."""


# -- patterns: one burst of events each ------------------------------------------------
def _net(src: str, dst: str, port: int, **kw: Any) -> dict[str, Any]:
    return {"src_ip": src, "dst_ip": dst, "dst_port": port, "protocol": "tcp",
            "bytes_out": 60, "bytes_in": 0, "duration_ms": 0, "sensor": "exercise", **kw}


def port_scan(rng: random.Random, source: str = "10.66.0.5", target: str = "10.0.0.40",
              ports: int = 120, seconds: float = 60.0) -> Events:
    """A vertical scan: ``ports`` ports of one host probed within ``seconds``, mostly
    refused (a SYN answered by RST), as Nmap's connect scan looks in flow records."""
    picks = rng.sample(range(1, 10_000), ports)
    return [(seconds * i / ports, "network",
             _net(source, target, p, conn_state="REJ", tcp_flags="S", packets_out=1,
                  packets_in=1, bytes_in=40))
            for i, p in enumerate(picks)]


def brute_force(rng: random.Random, source: str = "10.66.0.5", target: str = "10.0.0.22",
                port: int = 22, attempts: int = 80, seconds: float = 240.0) -> Events:
    """A password-guessing run: ``attempts`` short connections of nearly the same size."""
    return [(seconds * i / attempts, "network",
             _net(source, target, port, bytes_out=int(rng.gauss(1_400, 40)),
                  bytes_in=int(rng.gauss(2_300, 60)), duration_ms=int(rng.uniform(300, 900)),
                  conn_state="SF", packets_out=12, packets_in=11))
            for i in range(attempts)]


def exfiltration(rng: random.Random, source: str = "10.66.0.9", destination: str = "198.51.100.77",
                 megabytes: float = 900.0, flows: int = 6, seconds: float = 600.0) -> Events:
    """Large uploads to one external host (judged against the source's usual uploads: a
    source with no history may not be detected, which the exercise then measures)."""
    per = int(megabytes * 1e6 / flows)
    return [(seconds * i / flows, "network",
             _net(source, destination, 443, bytes_out=per, bytes_in=per // 200,
                  duration_ms=int(rng.uniform(60_000, 120_000)), conn_state="SF",
                  packets_out=per // 1_400, packets_in=per // 40_000))
            for i in range(flows)]


def _pay(account: str, counterparty: str, amount: float, **kw: Any) -> dict[str, Any]:
    return {"account_id": account, "counterparty_id": counterparty, "amount": round(amount, 2),
            "currency": "EUR", "country": "NL", "channel": "branch", **kw}


def structuring(rng: random.Random, account: str = "EX-ACC-0001", person: str = "EX-PERSON-1",
                deposits: int = 6, below: float = 10_000.0, seconds: float = 1_800.0) -> Events:
    """Cash deposits just under the reporting threshold ``below``, within half an hour."""
    return [(seconds * i / deposits, "financial",
             _pay(account, f"EX-CASH-{i}", below * rng.uniform(0.9, 0.99), person_id=person))
            for i in range(deposits)]


def high_risk_transfer(rng: random.Random, account: str = "EX-ACC-0001",
                       person: str = "EX-PERSON-1", country: str = "KP",
                       amount: float = 48_000.0) -> Events:
    """One wire to a beneficiary in a high-risk jurisdiction."""
    pay = _pay(account, "EX-BEN-0001", amount, person_id=person, channel="online")
    return [(0.0, "financial", {**pay, "country": country})]  # the beneficiary's country


def _cross(document: str, name: str, nationality: str, point: str, **kw: Any) -> dict[str, Any]:
    return {"document_id": document, "person_name": name, "nationality": nationality,
            "crossing_point": point, "direction": "entry", **kw}


def stolen_document(rng: random.Random, document: str = "P0000913", person: str = "EX-PERSON-1",
                    name: str = "EXERCISE TRAVELLER", nationality: str = "NLD",
                    point: str = "AMS-T1") -> Events:
    """An entry on a document listed as lost or stolen (``data/lost_stolen.txt``)."""
    return [(0.0, "border", _cross(document, name, nationality, point, person_id=person))]


def watchlist(rng: random.Random, name: str = "IVAN PETROVICH SOKOLOV",
              document: str = "EX-D-0002", nationality: str = "RUS", person: str = "EX-PERSON-2",
              point: str = "HEL-P1") -> Events:
    """An entry by a traveller on the watch list (``data/watchlist.csv``)."""
    return [(0.0, "border", _cross(document, name, nationality, point, person_id=person))]


PATTERNS: dict[str, Callable[..., Events]] = {
    f.__name__: f
    for f in (port_scan, brute_force, exfiltration, structuring, high_risk_transfer,
              stolen_document, watchlist)
}
#: The detector expected to find each pattern (for the exercise score).
DETECTS: dict[str, str] = {
    "port_scan": "port_scan", "brute_force": "brute_force", "exfiltration": "exfiltration",
    "structuring": "structuring", "high_risk_transfer": "high_risk_jurisdiction",
    "stolen_document": "lost_stolen_document", "watchlist": "watchlist",
}


# -- the scenario file -----------------------------------------------------------------
@dataclass(frozen=True)
class Inject:
    at: float
    pattern: str
    params: Mapping[str, Any]
    expect: tuple[str, ...]
    name: str  # "1-port_scan": its place in the timeline


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    injects: tuple[Inject, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return max((i.at for i in self.injects), default=0.0)


def _nearest(word: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(word, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"


def parse_scenario(data: Any, where: str, agencies: set[str] | None = None) -> Scenario:
    """The scenario in ``data`` (a loaded YAML document); ScenarioError names the place."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping with name and injects")
    for key in data:
        if key not in ("name", "description", "injects"):
            raise ScenarioError(f"{where}: {key}: unknown key"
                                + _nearest(str(key), ["name", "description", "injects"]))
    name = data.get("name")
    if not isinstance(name, str) or not EXERCISE_ID.fullmatch(name):
        raise ScenarioError(f"{where}: name: 1..64 letters, digits, '.', '_' or '-'")
    raw = data.get("injects")
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{where}: injects: a non-empty list")
    injects = []
    for k, item in enumerate(raw):
        at = f"{where}: injects[{k}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{at}: expected a mapping")
        pattern = item.get("pattern")
        if pattern not in PATTERNS:
            raise ScenarioError(f"{at}.pattern: {pattern!r} is not a pattern"
                                + _nearest(str(pattern), sorted(PATTERNS)))
        fn = PATTERNS[pattern]
        allowed = [p for p in fn.__code__.co_varnames[1:fn.__code__.co_argcount]]
        params = {}
        for key, value in item.items():
            if key in ("at", "pattern", "expect"):
                continue
            if key not in allowed:
                raise ScenarioError(f"{at}.{key}: not a parameter of {pattern}"
                                    + _nearest(str(key), allowed))
            params[key] = value
        t = item.get("at", 0)
        if not isinstance(t, int | float) or isinstance(t, bool) or t < 0:
            raise ScenarioError(f"{at}.at: seconds after the start, >= 0")
        expect = item.get("expect", [])
        if not isinstance(expect, list) or not all(isinstance(a, str) for a in expect):
            raise ScenarioError(f"{at}.expect: a list of agency names")
        for a in expect:
            if agencies is not None and a not in agencies:
                raise ScenarioError(f"{at}.expect: {a!r} is not an agency"
                                    + _nearest(a, sorted(agencies)))
        injects.append(Inject(float(t), pattern, params, tuple(expect), f"{k + 1}-{pattern}"))
    injects.sort(key=lambda i: i.at)
    return Scenario(name, str(data.get("description", "")), tuple(injects))


def load_scenario(spec: str, agencies: set[str] | None = None) -> Scenario:
    """A scenario by file path, or by the name of one shipped in ``data/exercises``."""
    path = Path(spec)
    if not path.exists():
        shipped = SCENARIOS / f"{spec}.yaml"
        if not shipped.exists():
            names = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
            raise ScenarioError(f"{spec}: no such file or shipped scenario"
                                + _nearest(spec, names))
        path = shipped
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    return parse_scenario(data, str(path), agencies)


def exercise_events(
    scenario: Scenario, exercise_id: str, start: float, seed: int = 1
) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """(send time, domain, event) of every inject, in time order, each event marked with
    ``exercise`` and labelled (``sim``) with its inject; ``ts`` is its send time."""
    rng = random.Random(seed)
    out = []
    n = 0
    for inject in scenario.injects:
        for dt, domain, event in PATTERNS[inject.pattern](rng, **inject.params):
            t = start + inject.at + dt
            n += 1
            out.append((t, domain, {
                # The inject is in the id: alerts cite event ids, so the score of an
                # exercise is computed from its alerts alone.
                "event_id": f"{exercise_id}:{inject.name}:{n:05d}", "ts": round(t * 1000),
                **event,
                "exercise": exercise_id,
                "sim": {"threat": inject.pattern, "campaign": inject.name, "exercise": True},
            }))
    out.sort(key=lambda x: x[0])
    yield from out
