"""The simulator against the threat catalogue (docs/threats.md) and the event contracts."""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchfloor.core.decoding import decode, parse_ts
from watchfloor.core.events import DOMAINS
from watchfloor.simulation import (
    DEFAULT_START,
    LOOKALIKES,
    THREAT_DETECTORS,
    THREAT_TYPES,
    Simulator,
    crossing_points,
    encode,
    haversine_km,
    high_risk_countries,
    lost_stolen,
    multidomain_scenario,
    read_jsonl,
    watchlist,
    write_jsonl,
)
from watchfloor.simulation.border import _TRANSLITERATIONS

ROOT = Path(__file__).resolve().parents[2]
N = 200_000
DAY = 86_400.0

Event = dict[str, Any]


def by_campaign(stream: list[tuple[str, Event]], threat: str) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for _, e in stream:
        if e["sim"]["threat"] == threat:
            out[e["sim"]["campaign"]].append(e)
    assert len(out) >= 3, f"{threat}: expected several campaigns, got {len(out)}"
    return out


def history(
    stream: list[tuple[str, Event]], domain: str, field: str, value: str, before: float
) -> list[Event]:
    """Events of ``domain`` whose ``field`` is ``value``, before time ``before``."""
    return [e for d, e in stream if d == domain and e.get(field) == value and e["_ts"] < before]


def hour(ts: float) -> float:
    return (ts % DAY) / 3600.0


def norm_doc(doc: str) -> str:
    return re.sub(r"[\s-]", "", doc).upper()


# -- contracts ------------------------------------------------------------------------------
def test_every_event_decodes_and_has_a_label(stream: list[tuple[str, Event]]) -> None:
    assert {d for d, _ in stream} == set(DOMAINS)
    for domain, e in stream:
        assert set(e["sim"]) == {"threat", "campaign", "lookalike"}
        # Both timestamp encodings appear: RFC 3339 (UTC, Z) and epoch milliseconds.
        if domain == "financial":
            assert type(e["ts"]) is int
        else:
            assert isinstance(e["ts"], str) and e["ts"].endswith("Z")
    assert len({e["event_id"] for _, e in stream}) == N


def test_border_and_financial_events_carry_entity_links(stream: list[tuple[str, Event]]) -> None:
    border = [e for d, e in stream if d == "border"]
    assert all(e["person_id"] and e["person_name"] for e in border)
    fin = [e for d, e in stream if d == "financial"]
    assert sum("src_ip" in e for e in fin) > len(fin) / 3
    assert sum("person_id" in e for e in fin) > len(fin) / 2
    net = [e for d, e in stream if d == "network"]
    assert sum("account_id" in e for e in net) > 100
    # The links are consistent: an account's online payments come from the workstation
    # that carries that account in its banking flows.
    ip_of_account = {e["account_id"]: e["src_ip"] for e in net if "account_id" in e}
    paid_from = {e["account_id"]: e["src_ip"] for e in fin if "src_ip" in e}
    shared = [a for a in ip_of_account if a in paid_from]
    assert shared and sum(ip_of_account[a] == paid_from[a] for a in shared) > 0.9 * len(shared)


def test_same_seed_same_stream_other_seed_differs() -> None:
    a = [encode(e) for _, e in Simulator(seed=5).events(20_000)]
    sim = Simulator(seed=5)
    b = [encode(e) for _, e in sim.events(20_000)]
    again = [encode(e) for _, e in sim.events(20_000)]
    c = [encode(e) for _, e in Simulator(seed=6).events(20_000)]
    assert a == b == again
    assert a != c


def test_event_time_is_ordered_and_spans_the_days() -> None:
    for days, n in ((3, 50_000), (1.5, 10_000)):
        ts = [parse_ts(e["ts"]) for _, e in Simulator(seed=2, days=days).events(n)]
        assert len(ts) == n
        assert all(a <= b for a, b in itertools.pairwise(ts))
        assert ts[0] >= DEFAULT_START and ts[-1] < DEFAULT_START + days * DAY
        assert ts[-1] - ts[0] > 0.97 * days * DAY


def test_catalogue_names_and_detectors() -> None:
    assert set(THREAT_DETECTORS) == set(THREAT_TYPES)
    config = yaml.safe_load((ROOT / "topics.yaml").read_text())
    configured = {d["name"] for dets in config["detectors"].values() for d in dets}
    # Every threat's detector runs in the default configuration (it may run others too).
    assert set(THREAT_DETECTORS.values()) <= configured
    catalogue = (ROOT / "docs" / "threats.md").read_text()
    for threat, detector in THREAT_DETECTORS.items():
        assert f"| `{threat}` |" in catalogue and f"| `{detector}` |" in catalogue
    for name in LOOKALIKES:
        assert f"`lookalike: {name}`" in catalogue


# -- realism ----------------------------------------------------------------------------
def test_every_threat_and_lookalike_appears(stream: list[tuple[str, Event]]) -> None:
    threats = Counter(e["sim"]["threat"] for _, e in stream)
    lookalikes = Counter(e["sim"]["lookalike"] for _, e in stream)
    assert set(THREAT_TYPES) <= set(threats)
    assert set(LOOKALIKES) <= set(lookalikes)
    # Threats are rare: a detector flagging everything has a precision below 0.05. (A
    # horizontal scan or a flood is hundreds of flows by itself.)
    assert sum(v for k, v in threats.items() if k) < 0.05 * N


def test_no_threat_in_the_warm_up_day(stream: list[tuple[str, Event]]) -> None:
    first = min(e["_ts"] for _, e in stream if e["sim"]["threat"])
    assert first >= DEFAULT_START + DAY


def test_amounts_and_volumes_are_heavy_tailed(stream: list[tuple[str, Event]]) -> None:
    amounts = [e["amount"] for d, e in stream if d == "financial" and not e["sim"]["threat"]]
    assert max(amounts) / statistics.median(amounts) > 100
    q99 = statistics.quantiles(amounts, n=100)[98]
    assert q99 / statistics.median(amounts) > 10
    out = [e["bytes_out"] for d, e in stream if d == "network" and not e["sim"]["threat"]]
    assert max(out) / statistics.median(out) > 1e4


def test_diurnal_cycle(stream: list[tuple[str, Event]]) -> None:
    hours = Counter(int(hour(e["_ts"])) for _, e in stream)
    assert hours[14] > 4 * hours[4]
    assert hours[10] > hours[7] > hours[5]


def test_entities_have_their_own_habits(stream: list[tuple[str, Event]]) -> None:
    per_host: dict[str, list[int]] = defaultdict(list)
    for d, e in stream:
        if d == "network" and e["src_ip"].startswith("10.20.") and e["dst_port"] == 443:
            per_host[e["src_ip"]].append(e["bytes_out"])
    medians = [statistics.median(v) for v in per_host.values() if len(v) >= 20]
    assert len(medians) > 100
    assert max(medians) / min(medians) > 2  # hosts differ from each other
    activity = Counter(e["src_ip"] for d, e in stream if d == "network")
    counts = sorted(activity.values())
    assert counts[-1] > 10 * statistics.median(counts)  # a few hosts are much busier


# -- threats exactly as catalogued ------------------------------------------------------
def original(campaigns: dict[str, list[Event]]) -> list[list[Event]]:
    """The campaigns of the original shape (``<threat>-<n>``); the real-network shapes
    (``<threat>-<shape>-<n>``) are tested in ``test_real_network.py``."""
    out = [v for k, v in campaigns.items() if re.fullmatch(r"[a-z_]+-\d+", k)]
    assert len(out) >= 3
    return out


def test_port_scan(stream: list[tuple[str, Event]]) -> None:
    for events in original(by_campaign(stream, "port_scan")):
        assert len({e["src_ip"] for e in events}) == 1
        assert len({e["dst_ip"] for e in events}) <= 3
        ports = defaultdict(set)
        for e in events:
            ports[e["dst_ip"]].add(e["dst_port"])
        assert all(len(p) >= 40 for p in ports.values())
        ts = [e["_ts"] for e in events]
        assert max(ts) - min(ts) <= 60
        assert all(e["bytes_out"] < 200 and e["duration_ms"] < 50 for e in events)


def test_exfiltration(stream: list[tuple[str, Event]]) -> None:
    for events in by_campaign(stream, "exfiltration").values():
        src = events[0]["src_ip"]
        assert all(2e8 <= e["bytes_out"] <= 2e9 for e in events)
        assert not events[0]["dst_ip"].startswith("10.")
        before = history(stream, "network", "src_ip", src, min(e["_ts"] for e in events))
        assert len(before) >= 30 and max(e["bytes_out"] for e in before) <= 100_000


def test_beaconing(stream: list[tuple[str, Event]]) -> None:
    for events in original(by_campaign(stream, "beaconing")):
        assert len({(e["src_ip"], e["dst_ip"]) for e in events}) == 1
        assert len(events) >= 12
        ts = sorted(e["_ts"] for e in events)
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        period = statistics.median(gaps)
        assert 60 <= period <= 300
        # 3 % jitter around the period, plus millisecond rounding of the timestamps.
        assert all(abs(g - period) <= 0.061 * period + 0.002 for g in gaps)
        assert all(e["bytes_out"] < 1_000 for e in events)


def test_dns_tunnel(stream: list[tuple[str, Event]]) -> None:
    for events in by_campaign(stream, "dns_tunnel").values():
        for e in events:
            assert (e["protocol"], e["dst_port"]) == ("udp", 53)
            assert 50_000 <= e["bytes_out"] <= 500_000
            assert 20_000 <= e["duration_ms"] <= 120_000
    normal = [
        e for d, e in stream if d == "network" and e["dst_port"] == 53 and not e["sim"]["threat"]
    ]
    assert normal and all(e["bytes_out"] < 512 for e in normal)


def test_structuring(stream: list[tuple[str, Event]]) -> None:
    for events in by_campaign(stream, "structuring").values():
        assert len({e["account_id"] for e in events}) == 1
        assert len(events) >= 3
        assert all(9_000 <= e["amount"] < 10_000 for e in events)
        ts = [e["_ts"] for e in events]
        assert max(ts) - min(ts) <= DAY
    # Nothing unlabelled repeats payments in the band: only single_large_payment enters it.
    band = Counter(
        e["account_id"]
        for d, e in stream
        if d == "financial" and 9_000 <= e["amount"] < 10_000 and not e["sim"]["threat"]
    )
    assert band and max(band.values()) == 1


def test_fan_out(stream: list[tuple[str, Event]]) -> None:
    for events in by_campaign(stream, "fan_out").values():
        acc = events[0]["account_id"]
        t0 = min(e["_ts"] for e in events)
        seen = {e["counterparty_id"] for e in history(stream, "financial", "account_id", acc, t0)}
        new = {e["counterparty_id"] for e in events} - seen
        assert len(new) >= 8
        assert max(e["_ts"] for e in events) - t0 <= 3600
        assert len({e["country"] for e in events}) >= 2


def test_account_takeover(stream: list[tuple[str, Event]]) -> None:
    for events in by_campaign(stream, "account_takeover").values():
        acc = events[0]["account_id"]
        before = history(stream, "financial", "account_id", acc, min(e["_ts"] for e in events))
        assert len(before) >= 20
        median = statistics.median(e["amount"] for e in before)
        assert all(e["amount"] >= 30 * median for e in events)


def test_high_risk_transfer(stream: list[tuple[str, Event]]) -> None:
    high_risk = set(high_risk_countries())
    for events in by_campaign(stream, "high_risk_transfer").values():
        acc = events[0]["account_id"]
        before = history(stream, "financial", "account_id", acc, min(e["_ts"] for e in events))
        assert before and not any(e["country"] in high_risk for e in before)
        assert all(e["country"] in high_risk and e["amount"] >= 1_000 for e in events)
    # Only remittances (100-400) reach high-risk countries otherwise.
    benign = [e for d, e in stream if d == "financial" and e["country"] in high_risk
              and not e["sim"]["threat"]]  # fmt: skip
    assert benign and all(e["sim"]["lookalike"] == "remittance" for e in benign)
    assert all(100 <= e["amount"] <= 400 for e in benign)


def test_watchlist_match(stream: list[tuple[str, Event]]) -> None:
    entries = watchlist()
    names = {w.name for w in entries}
    docs = {w.document_id for w in entries}
    parts = {p for w in entries for p in w.name.split()}
    events = [e for c in by_campaign(stream, "watchlist_match").values() for e in c]
    exact = [e for e in events if e["person_name"] in names or e["document_id"] in docs]
    variants = [e for e in events if e not in exact]
    assert exact and variants  # listed verbatim, and spelt differently
    assert any(e["document_id"] in docs for e in events)
    spellings = set(_TRANSLITERATIONS.values())
    for e in variants:  # a typo or reordering keeps name parts; else a transliteration
        assert set(e["person_name"].split()) & parts or e["person_name"] in spellings
    # Unlabelled travellers never share a name part with the list, except similar_name.
    for d, e in stream:
        if d == "border" and not e["sim"]["threat"]:
            shares = bool(set(e["person_name"].split()) & parts)
            assert shares == (e["sim"]["lookalike"] == "similar_name")


def test_impossible_travel_and_plausible_background(stream: list[tuple[str, Event]]) -> None:
    points = {p.code: p for p in crossing_points()}

    def speeds(events: list[Event]) -> Iterator[float]:
        for a, b in itertools.pairwise(events):
            km = haversine_km(points[a["crossing_point"]], points[b["crossing_point"]])
            yield km / max(b["_ts"] - a["_ts"], 1e-3) * 3600

    for events in by_campaign(stream, "impossible_travel").values():
        assert len({e["document_id"] for e in events}) == 1
        assert max(speeds(sorted(events, key=lambda e: e["_ts"]))) > 1_000
    per_doc: dict[str, list[Event]] = defaultdict(list)
    for d, e in stream:
        if d == "border" and e["sim"]["threat"] != "impossible_travel":
            per_doc[norm_doc(e["document_id"])].append(e)
    assert all(max(speeds(v), default=0) <= 1_000 for v in per_doc.values())
    frequent = [v for v in per_doc.values() if v[0]["sim"]["lookalike"] == "frequent_traveller"]
    assert frequent and all(len({e["crossing_point"] for e in v}) >= 4 for v in frequent)


def test_stolen_document_and_near_misses(
    stream: list[tuple[str, Event]], raw_stream: list[tuple[str, Event]]
) -> None:
    listed = set(lost_stolen())
    events = [e for c in by_campaign(stream, "stolen_document").values() for e in c]
    assert all(norm_doc(e["document_id"]) in listed for e in events)
    # Sensors write a listed document differently (decoding makes it one id again).
    raw = [e for c in by_campaign(raw_stream, "stolen_document").values() for e in c]
    assert any(e["document_id"] not in listed for e in raw)
    for d, e in stream:
        if d != "border" or e["sim"]["threat"]:
            continue
        doc = e["document_id"]
        assert doc not in listed
        one_off = any(
            len(doc) == len(x) and sum(a != b for a, b in zip(doc, x, strict=True)) == 1
            for x in listed
        )
        assert one_off == (e["sim"]["lookalike"] == "near_miss_document")


def test_unusual_route(stream: list[tuple[str, Event]]) -> None:
    for events in by_campaign(stream, "unusual_route").values():
        (night,) = events
        assert 1 <= hour(night["_ts"]) < 5
        before = history(stream, "border", "document_id", night["document_id"], night["_ts"])
        assert len(before) >= 6
        routine = {e["crossing_point"] for e in before}
        assert len(routine) <= 2 and night["crossing_point"] not in routine
        assert all(6 <= hour(e["_ts"]) < 20 for e in before)


# -- look-alikes ---------------------------------------------------------------------------
def test_payroll_pays_the_same_employees_daily_at_17(stream: list[tuple[str, Event]]) -> None:
    runs: dict[tuple[str, int], set[str]] = defaultdict(set)
    for _, e in stream:
        if e["sim"]["lookalike"] == "payroll":
            assert 17 <= hour(e["_ts"]) < 17.5 and 2_000 <= e["amount"] <= 6_000
            runs[(e["account_id"], int((e["_ts"] - DEFAULT_START) // DAY))].add(
                e["counterparty_id"]
            )
    per_company: dict[str, list[set[str]]] = defaultdict(list)
    for (company, _), employees in sorted(runs.items()):
        per_company[company].append(employees)
    for days in per_company.values():
        assert len(days) == 3 and all(e == days[0] for e in days)
        assert 20 <= len(days[0]) <= 60


def test_network_lookalikes(stream: list[tuple[str, Event]]) -> None:
    label = defaultdict(list)
    for d, e in stream:
        if d == "network" and e["sim"]["lookalike"]:
            label[e["sim"]["lookalike"]].append(e)
    proxy = label["shared_proxy"]
    assert {e["dst_port"] for e in proxy} <= {80, 443}
    assert len({e["dst_ip"] for e in proxy}) > 300
    backups = label["nightly_backup"]
    assert all(1 <= hour(e["_ts"]) < 3 for e in backups)
    assert len({e["dst_ip"] for e in backups}) == 1
    nightly: Counter[tuple[str, int]] = Counter()
    for e in backups:
        nightly[(e["src_ip"], int((e["_ts"] - DEFAULT_START) // DAY))] += e["bytes_out"]
    assert all(0.9e9 <= v <= 5.5e9 for v in nightly.values())
    assert {e["dst_port"] for e in label["ntp_sync"]} == {53, 123}
    assert all(e["bytes_in"] > 10_000_000 for e in label["large_download"])


# -- multi-domain scenario ---------------------------------------------------------------
def test_multidomain_scenario_links_all_three_domains() -> None:
    start = DEFAULT_START
    events = multidomain_scenario(start, seed=3)
    assert events == multidomain_scenario(start, seed=3)
    decoded = [(d, decode(d, encode(e))) for d, e in events]
    ts = [e["_ts"] for _, e in decoded]
    assert all(a <= b for a, b in itertools.pairwise(ts))
    attack = [(d, e) for d, e in decoded if e["sim"]["campaign"] == "md-3"]
    assert {d for d, _ in attack} == set(DOMAINS)
    assert {e["sim"]["threat"] for _, e in attack} == {
        "beaconing",
        "structuring",
        "stolen_document",
    }
    fin = [e for d, e in attack if d == "financial"]
    net = [e for d, e in attack if d == "network"]
    (brd,) = [e for d, e in attack if d == "border"]
    (account,) = {e["account_id"] for e in fin}
    (ip,) = {e["src_ip"] for e in fin}
    (person,) = {e["person_id"] for e in fin}
    assert {e["src_ip"] for e in net} == {ip} and {e["account_id"] for e in net} == {account}
    assert brd["person_id"] == person and norm_doc(brd["document_id"]) in set(lost_stolen())
    # Shapes the detectors need: >= 12 regular beacons, >= 3 payments in the band.
    assert len(net) >= 12 and len(fin) >= 3 and all(9_000 <= e["amount"] < 10_000 for e in fin)
    # One correlation window, after a day of benign history of the same entities.
    attack_ts = [e["_ts"] for _, e in attack]
    assert max(attack_ts) - min(attack_ts) <= 3600
    assert min(attack_ts) >= start + DAY
    first = min(attack_ts)
    assert len(history(decoded, "financial", "account_id", account, first)) >= 20
    assert len(history(decoded, "network", "src_ip", ip, first)) >= 100
    assert len(decoded) > 1_000 and not any(
        e["sim"]["threat"] for _, e in decoded if e["sim"]["campaign"] != "md-3"
    )


# -- sinks ------------------------------------------------------------------------------
def test_write_and_read_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "sim.jsonl"
    counts = write_jsonl(path, 20_000, seed=4)
    back = list(read_jsonl(path))
    assert back == list(Simulator(seed=4).events(20_000))
    assert sum(counts[d] for d in DOMAINS) == 20_000
    assert all(counts[t] > 0 for t in THREAT_TYPES)


def test_small_streams_and_invalid_parameters() -> None:
    small = list(Simulator(seed=1, threats=False).events(500))
    assert len(small) == 500 and not any(e["sim"]["threat"] for _, e in small)
    assert list(Simulator(seed=1).events(0)) == []
    with pytest.raises(ValueError):
        Simulator(days=0)
    with pytest.raises(ValueError):
        Simulator(mix={"telemetry": 1.0})
    assert math.isclose(DEFAULT_START % DAY, 0.0)
