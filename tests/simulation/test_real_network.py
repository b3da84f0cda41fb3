"""The simulator's real-network traffic (issue 10): benign look-alikes and attack shapes as
real captures show them, and the flow-record fields sensors write."""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter, defaultdict
from typing import Any

import pytest

from watchfloor.simulation import LOOKALIKES, THREAT_TYPES, Simulator
from watchfloor.simulation.network_lookalikes import NAT_GATEWAY_IP
from watchfloor.simulation.network_records import NETFLOW_SITES

Event = dict[str, Any]
Stream = list[tuple[str, Event]]
FAILED = {"S0", "REJ", "RSTO", "RSTR", "RSTOS0"}
REAL_LOOKALIKES = LOOKALIKES[LOOKALIKES.index("p2p_client") :]


def network(stream: Stream) -> list[Event]:
    return [e for d, e in stream if d == "network"]


def campaigns(stream: Stream, prefix: str) -> list[list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for _, e in stream:
        if (e["sim"]["campaign"] or "").startswith(prefix):
            out[e["sim"]["campaign"]].append(e)
    assert len(out) >= 3, f"{prefix}: expected several campaigns, got {sorted(out)}"
    return [sorted(v, key=lambda e: e["_ts"]) for v in out.values()]


def lookalike(stream: Stream, name: str) -> list[Event]:
    out = sorted((e for e in network(stream) if e["sim"]["lookalike"] == name),
                 key=lambda e: e["_ts"])  # fmt: skip
    assert out, name
    return out


def failed(e: Event) -> bool:
    """What the record says about the attempt, whichever way its sensor writes it."""
    if "conn_state" in e:
        return e["conn_state"] in FAILED
    return e["bytes_in"] <= 60  # NetFlow-style: nothing but a reset came back


def gaps(events: list[Event]) -> list[float]:
    return [b["_ts"] - a["_ts"] for a, b in itertools.pairwise(events)]


# -- flow records ---------------------------------------------------------------------------
def test_flow_records_follow_the_sensor(stream: Stream) -> None:
    for e in network(stream):
        assert isinstance(e["packets_out"], int) and isinstance(e["packets_in"], int)
        assert e["packets_out"] >= 0 and e["packets_in"] >= 0
        assert (e["bytes_in"] == 0) == (e["packets_in"] == 0)
        if e["sensor"].startswith(NETFLOW_SITES):
            assert "conn_state" not in e
            assert ("tcp_flags" in e) == (e["protocol"] == "tcp")
        else:
            assert "tcp_flags" not in e or e["sim"]["lookalike"] == "backscatter"
            assert e["conn_state"] in {"SF", "S0", "REJ", "RSTO", "RSTR", "OTH", "RSTRH"}
            if e["conn_state"] == "S0":
                assert e["bytes_in"] == 0
        if "service" in e:  # named by an analyser: data went both ways
            assert e["conn_state"] in {"SF", "RSTO", "RSTR"} and e["bytes_in"] > 60
    states = Counter(e.get("conn_state") for e in network(stream))
    assert states["SF"] > 5 * states["S0"] > 0  # most connections complete
    services = Counter(e.get("service") for e in network(stream))
    assert {"ssh", "ssl", "http", "dns", "smtp"} <= set(services)


def test_real_lookalikes_are_a_realistic_share(stream: Stream) -> None:
    net = network(stream)
    share = Counter(e["sim"]["lookalike"] for e in net)
    assert set(REAL_LOOKALIKES) <= set(share)
    total = sum(share[k] for k in REAL_LOOKALIKES) / len(net)
    assert 0.1 < total < 0.35
    assert all(share[k] < 0.06 * len(net) for k in REAL_LOOKALIKES)
    assert {"brute_force", "spam", "flood"} <= set(THREAT_TYPES)


# -- scans ----------------------------------------------------------------------------------
def test_horizontal_scan(stream: Stream) -> None:
    for events in campaigns(stream, "port_scan-horizontal-"):
        assert len({e["src_ip"] for e in events}) == 1
        assert len({e["dst_port"] for e in events}) == 1
        assert len({e["dst_ip"] for e in events}) >= 100
        assert events[-1]["_ts"] - events[0]["_ts"] <= 60
        assert sum(map(failed, events)) >= 0.8 * len(events)


def test_block_scan(stream: Stream) -> None:
    for events in campaigns(stream, "port_scan-block-"):
        assert len({e["dst_port"] for e in events}) >= 4
        assert len({e["dst_ip"] for e in events}) >= 20
        assert events[-1]["_ts"] - events[0]["_ts"] <= 120
        assert sum(map(failed, events)) >= 0.8 * len(events)


def test_telnet_worm_scan(stream: Stream) -> None:
    for events in campaigns(stream, "port_scan-telnet-"):
        assert {e["dst_port"] for e in events} <= {23, 2323}
        assert len({e["dst_ip"] for e in events}) >= 150
        assert all(not e["dst_ip"].startswith("10.") for e in events)
        assert sum(map(failed, events)) >= 0.9 * len(events)


# -- beacons --------------------------------------------------------------------------------
def test_jittery_beacon_misses_beats(stream: Stream) -> None:
    for events in campaigns(stream, "beaconing-jittery-"):
        assert len({(e["src_ip"], e["dst_ip"]) for e in events}) == 1
        g = [x for x in gaps(events) if x > 10]  # retries are seconds after a failure
        period = statistics.median(g)
        assert 50 <= period <= 700
        spread = statistics.median(abs(x - period) for x in g) / period
        assert 0.03 < spread < 0.35  # 10-30 % jitter, far above a poller's
        assert len(events) >= 20


def test_paired_beacon_33s_with_variants(stream: Stream) -> None:
    for events in campaigns(stream, "beaconing-paired-"):
        g = gaps(events)
        assert sum(x < 1.0 for x in g) >= 0.45 * len(g)  # paired sub-second flows
        assert 60 <= len(events) // 2
        starts = [events[0]] + [b for a, b in itertools.pairwise(events) if b["_ts"] - a["_ts"] > 5]
        periods = Counter(min((28, 33, 40, 42), key=lambda p: abs(x - p)) for x in gaps(starts))
        assert all(min(abs(x - p) for p in (28, 33, 40, 42)) < 0.7 for x in gaps(starts))
        assert set(periods) == {28, 33, 40, 42} and periods.most_common(1)[0][0] == 33


def test_mirai_retries_alternate_3_and_7_seconds(stream: Stream) -> None:
    for events in campaigns(stream, "beaconing-retries-"):
        g = gaps(events)
        assert all(2.5 <= x <= 3.5 or 6.5 <= x <= 7.5 for x in g)
        assert all((x < 5) != (y < 5) for x, y in itertools.pairwise(g))
        assert sum(map(failed, events)) >= 0.8 * len(events)


# -- brute force, spam, floods ----------------------------------------------------------------
def test_brute_force(stream: Stream) -> None:
    for events in campaigns(stream, "brute_force-"):
        assert len({(e["src_ip"], e["dst_ip"], e["dst_port"]) for e in events}) == 1
        assert events[0]["dst_port"] in {22, 3389, 21, 445, 23}
        assert len(events) >= 100
        assert events[-1]["_ts"] - events[0]["_ts"] <= 45 * 60
        assert statistics.median(e["duration_ms"] for e in events) < 5_000
        tried = [e["bytes_out"] for e in events if e["bytes_out"] > 60]
        assert max(tried) < 3 * min(tried)  # one tool repeating one failed login


def test_spam(stream: Stream) -> None:
    for events in campaigns(stream, "spam-"):
        assert {e["dst_port"] for e in events} == {25}
        assert len({e["src_ip"] for e in events}) == 1
        assert len({e["dst_ip"] for e in events}) >= 100
        assert sum(map(failed, events)) >= 0.2 * len(events)


def test_flood(stream: Stream) -> None:
    shapes = set()
    for events in campaigns(stream, "flood-"):
        assert len({e["dst_ip"] for e in events}) == 1
        assert len(events) >= 150
        assert events[-1]["_ts"] - events[0]["_ts"] <= 600
        sources = {e["src_ip"] for e in events}
        shapes.add("one source" if len(sources) == 1 else "many sources")
        assert len(sources) == 1 or len(sources) >= 12
    assert shapes == {"one source", "many sources"}


# -- benign look-alikes -----------------------------------------------------------------------
def test_p2p_client_is_not_a_scanner(stream: Stream) -> None:
    by_host: dict[str, list[Event]] = defaultdict(list)
    for e in lookalike(stream, "p2p_client"):
        by_host[e["src_ip"]].append(e)
    for events in by_host.values():
        peers = {e["dst_ip"] for e in events}
        assert len(peers) >= 1_000
        ports_per_peer = defaultdict(set)
        for e in events:
            ports_per_peer[e["dst_ip"]].add(e["dst_port"])
        assert max(len(p) for p in ports_per_peer.values()) <= 2
        assert all(e["dst_port"] >= 1024 for e in events)
        assert sum(map(failed, events)) >= 0.15 * len(events)  # peers come and go
        assert sum(e["bytes_in"] > 100_000 for e in events) >= 0.05 * len(events)


def test_nat_gateway(stream: Stream) -> None:
    events = lookalike(stream, "nat_gateway")
    sources = Counter(e["src_ip"] for e in events)
    assert sources.most_common(1)[0] == (NAT_GATEWAY_IP, max(sources.values()))
    assert sources[NAT_GATEWAY_IP] > 0.5 * len(events)  # one address, many users
    assert len(sources) > 50 and all(ip.startswith("10.") for ip in sources)  # VPN clients
    assert len({e["dst_ip"] for e in events if e["src_ip"] == NAT_GATEWAY_IP}) >= 1_000
    assert len({e["dst_port"] for e in events}) >= 8
    assert sum(e["conn_state"] == "SF" for e in events) >= 0.85 * len(events)


def test_backscatter_is_answers_not_attempts(stream: Stream) -> None:
    events = lookalike(stream, "backscatter")
    for e in events:
        answer = (e.get("src_port", 65535) < 1024 <= e["dst_port"]
                  or e.get("conn_state") in {"OTH", "RSTRH"}
                  or e.get("tcp_flags") in {"R", "RA", "SA"})  # fmt: skip
        assert answer and e["bytes_out"] <= 60
    per_src = Counter(e["src_ip"] for e in events)
    remote = [ip for ip in per_src if not ip.startswith("10.")]
    local = [ip for ip in per_src if ip.startswith("10.")]
    assert remote and local  # both directions a flow exporter may guess
    assert max(len({e["dst_ip"] for e in events if e["src_ip"] == ip}) for ip in local) >= 100


@pytest.mark.parametrize(
    ("name", "period", "port"),
    [("av_update", 302.0, 443), ("cdn_poll", 900.0, 443), ("ntp_poll", 1024.0, 123)],
)
def test_pollers_are_regular_and_shared(stream: Stream, name: str, period: float,
                                        port: int) -> None:  # fmt: skip
    events = lookalike(stream, name)
    assert {e["dst_port"] for e in events} == {port}
    by_host: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_host[e["src_ip"]].append(e)
    assert len(by_host) >= 2
    hosts_per_dst = Counter(e["dst_ip"] for e in {e["src_ip"]: e for e in events}.values())
    assert max(hosts_per_dst.values()) >= 2  # a destination many internal hosts poll
    for host_events in by_host.values():
        g = [x for x in gaps(host_events) if x < 2 * period]  # not the nights
        assert abs(statistics.median(g) - period) < 0.01 * period
        assert max(abs(x - period) for x in g) < 0.02 * period + 0.01


def test_dns_poll_and_multicast(stream: Stream) -> None:
    dns = lookalike(stream, "dns_poll")
    assert {(e["protocol"], e["dst_port"]) for e in dns} == {("udp", 53)}
    assert all(e["bytes_out"] < 512 for e in dns)
    multi = lookalike(stream, "multicast")
    dsts = {e["dst_ip"] for e in multi}
    assert {"239.255.255.250", "224.0.0.251"} <= dsts
    assert all(d in {"239.255.255.250", "224.0.0.251"} or d.endswith(".255") for d in dsts)
    assert all(e["bytes_in"] == 0 and e["protocol"] == "udp" for e in multi)
    ssdp = [e for e in multi if e["dst_port"] == 1900]
    assert sum(x < 1.0 for x in gaps(ssdp)) > len(ssdp) / 3  # bursts of two or three


def test_ssh_automation_mail_relay_and_rollout(stream: Stream) -> None:
    ssh = lookalike(stream, "ssh_automation")
    assert {e["dst_port"] for e in ssh} == {22}
    # All logins succeed (a banner check closes with a reset): data both ways.
    assert all(e.get("conn_state", "SF") in {"SF", "RSTO"} and "P" in e.get("tcp_flags", "P")
               for e in ssh)  # fmt: skip
    assert max(len({e["dst_ip"] for e in ssh if e["src_ip"] == s}) for s in
               {e["src_ip"] for e in ssh}) >= 15  # fmt: skip
    mail = lookalike(stream, "mail_relay")
    assert {e["dst_port"] for e in mail} == {25} and len({e["src_ip"] for e in mail}) == 1
    assert len({e["dst_ip"] for e in mail}) >= 200
    assert sum(map(failed, mail)) <= 0.1 * len(mail)
    rollout = lookalike(stream, "update_rollout")
    assert len({e["dst_ip"] for e in rollout}) == 1
    per_day = Counter(int(e["_ts"] // 86_400) for e in rollout)
    assert all(n >= 40 for n in per_day.values())
    assert len({e["src_ip"] for e in rollout}) >= 20


# -- the original world -------------------------------------------------------------------------
def test_real_network_leaves_the_original_campaigns_as_they_were() -> None:
    def shapes(real: bool) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = defaultdict(list)
        for _, e in Simulator(seed=4, real_network=real).events(60_000):
            cid = e["sim"]["campaign"]
            if cid and re.fullmatch(r"[a-z_]+-\d+", cid) and not cid.startswith(
                ("brute_force", "spam", "flood")
            ):
                out[cid].append(tuple(v for k, v in e.items() if k != "event_id"))
        return out

    plain, real = shapes(False), shapes(True)
    assert len(plain) >= 36 and plain == {k: v for k, v in real.items() if k in plain}
    lookalikes = {e["sim"]["lookalike"] for _, e in Simulator(seed=4, real_network=False)
                  .events(20_000)}  # fmt: skip
    assert not lookalikes & set(REAL_LOOKALIKES)
