"""Network detectors on crafted streams: the threats of docs/threats.md score at or above
0.9, their benign look-alikes stay below it, and per-entity state stays bounded."""

from __future__ import annotations

import pickle
import random

import pytest

from watchfloor.detectors.network import Beaconing, Exfiltration, FlowHalfSpace, PortScan
from watchfloor.detectors.testkit import (
    START,
    assert_separates,
    feed,
    make_event,
    merge,
    network_traffic,
    scores,
)

THRESHOLD = 0.9
DAY = 86_400.0


def flow(t: float, **kw: object) -> dict[str, object]:
    return make_event("network", _ts=t, **kw)


# -- port scan -------------------------------------------------------------------------


def probes(src: str, t0: float, ports: list[int], gap: float = 0.5) -> list[dict[str, object]]:
    return [
        flow(t0 + i * gap, src_ip=src, dst_ip="10.2.0.9", dst_port=p, protocol="tcp",
             bytes_out=60, bytes_in=0, duration_ms=3)
        for i, p in enumerate(ports)
    ]


def test_port_scan_flags_40_ports_in_a_minute_with_a_readable_reason() -> None:
    det = PortScan()
    got = feed(det, probes("10.0.0.5", START, random.Random(1).sample(range(1, 65535), 47)))
    assert got[38].score < THRESHOLD <= got[39].score  # the 40th distinct port is the alarm
    assert got[-1].reason == "10.0.0.5 probed 47 distinct ports in 60 s"
    assert got[-1].raw == 47.0


def test_port_scan_ignores_a_shared_proxy_reaching_hundreds_of_hosts_on_web_ports() -> None:
    rng = random.Random(2)
    proxy = [
        flow(START + i * 0.1, src_ip="10.0.0.1", dst_ip=f"198.51.100.{i % 250}",
             dst_port=rng.choice((80, 443)), bytes_out=rng.randint(60, 5_000),
             bytes_in=rng.randint(0, 900_000), duration_ms=rng.uniform(1, 3_000))
        for i in range(3_000)
    ]
    assert max(scores(PortScan(), proxy)) < THRESHOLD


def test_port_scan_ignores_a_slow_walk_spread_beyond_the_window() -> None:
    # 60 ports, one every 5 minutes: never more than one in a 60 s window.
    got = scores(PortScan(), probes("10.0.0.7", START, list(range(1000, 1060)), gap=300))
    assert max(got) == 0.0


def test_port_scan_does_not_count_real_connections_as_probes() -> None:
    # A server talking to many services with real payloads is not probing them.
    busy = [
        flow(START + i, src_ip="10.0.0.8", dst_port=2000 + i, bytes_out=50_000,
             bytes_in=80_000)
        for i in range(50)
    ]
    assert max(scores(PortScan(), busy)) == 0.0


def test_port_scan_state_is_bounded_for_200k_sources() -> None:
    det = PortScan(max_entities=5_000)
    for i in range(200_000):
        e = flow(START + i * 0.001, src_ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                 dst_port=i % 1000, bytes_out=60, bytes_in=0)
        det.score_one(e)
        det.learn_one(e)
    assert len(det.ports) <= 5_000
    assert det.ports.evicted + det.ports.expired == 200_000 - len(det.ports)


# -- exfiltration ----------------------------------------------------------------------


def workstation(src: str, days: float, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    n = int(days * 200)
    return [
        flow(START + i * days * DAY / n, src_ip=src, dst_ip="198.51.100.20",
             bytes_out=min(int(rng.lognormvariate(8, 1.2)), 100_000))
        for i in range(n)
    ]


def test_exfiltration_flags_a_workstation_sending_hundreds_of_mb_out() -> None:
    det = Exfiltration()
    feed(det, workstation("10.1.0.7", days=1.5))
    big = flow(START + 1.5 * DAY + 60, src_ip="10.1.0.7", dst_ip="203.0.113.66",
               bytes_out=200_000_000)
    s = det.score_one(big)
    assert s.score >= THRESHOLD
    assert s.reason.startswith("10.1.0.7 sent 200 MB to 203.0.113.66")


def test_exfiltration_ignores_nightly_backups_to_the_same_target() -> None:
    rng = random.Random(3)
    backups = [
        flow(START + d * DAY + rng.uniform(1, 3) * 3600, src_ip="10.3.0.2",
             dst_ip="203.0.113.200", dst_port=22,
             bytes_out=rng.randint(1_000_000_000, 5_000_000_000))
        for d in range(4)
    ]
    chatter = [
        flow(START + i * 600.0, src_ip="10.3.0.2", dst_ip="10.0.0.53", dst_port=53,
             protocol="udp", bytes_out=80, bytes_in=200)
        for i in range(4 * 144)
    ]
    got = feed(Exfiltration(), merge(chatter, backups))
    # Night one is learnt during the warm-up day; nights two to four are its own normal.
    backup_scores = [s.score for e, s in zip(merge(chatter, backups), got, strict=True)
                     if e["bytes_out"] > 1e8]
    assert len(backup_scores) == 4
    assert max(backup_scores) < THRESHOLD


def test_exfiltration_is_silent_during_warm_up_and_for_internal_destinations() -> None:
    det = Exfiltration()
    feed(det, workstation("10.1.0.7", days=0.5))
    huge = {"src_ip": "10.1.0.7", "bytes_out": 900_000_000}
    assert det.score_one(flow(START + 0.5 * DAY, dst_ip="203.0.113.1", **huge)).score == 0.0
    feed(det, workstation("10.1.0.7", days=1.5))
    assert det.score_one(flow(START + 1.6 * DAY, dst_ip="10.9.9.9", **huge)).score == 0.0
    assert det.score_one(flow(START + 1.6 * DAY, dst_ip="203.0.113.1", **huge)).score > 0.99


def test_exfiltration_state_is_bounded_for_200k_sources() -> None:
    det = Exfiltration(max_entities=10_000)
    for i in range(200_000):
        det.learn_one(flow(START + i * 0.01, src_ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"))
    assert len(det.peaks) == 10_000


# -- beaconing -------------------------------------------------------------------------


def beacon(src: str, dst: str, period: float, n: int, jitter: float, seed: int = 0,
           **kw: object) -> list[dict[str, object]]:
    rng, t, out = random.Random(seed), START, []
    for _ in range(n):
        t += period * rng.uniform(1 - jitter, 1 + jitter)
        out.append(flow(t, src_ip=src, dst_ip=dst, bytes_out=400, bytes_in=200, **kw))
    return out


@pytest.mark.parametrize("period", [60.0, 137.0, 300.0])
def test_beaconing_flags_a_regular_c2_callback_by_the_12th_contact(period: float) -> None:
    got = feed(Beaconing(), beacon("10.1.0.9", "203.0.113.7", period, 14, jitter=0.03))
    assert got[10].score < THRESHOLD <= got[11].score
    assert got[-1].reason.startswith("10.1.0.9 contacted 203.0.113.7 14 times every")


def test_beaconing_survives_interleaved_browsing_from_the_same_host() -> None:
    c2 = beacon("10.1.0.10", "203.0.113.8", 120.0, 15, jitter=0.03, dst_port=8443)
    noise = network_traffic(seed=4, n=3_600, rate=2.0, hosts=3)  # includes 10.1.0.10
    got = feed(Beaconing(), merge(c2, noise))
    flagged = {e["dst_ip"] for e, s in zip(merge(c2, noise), got, strict=True)
               if s.score >= THRESHOLD}
    assert flagged == {"203.0.113.8"}


def test_beaconing_ignores_ntp_sync_to_internal_servers() -> None:
    ntp = beacon("10.0.0.2", "10.0.0.123", 64.0, 200, jitter=0.0, dst_port=123,
                 protocol="udp")
    dns = beacon("10.0.0.2", "10.0.0.53", 30.0, 400, jitter=0.01, dst_port=53,
                 protocol="udp")
    assert max(scores(Beaconing(), merge(ntp, dns))) == 0.0


def test_beaconing_ignores_busy_irregular_browsing_to_one_cdn() -> None:
    rng, t, cdn = random.Random(5), START, []
    for _ in range(2_000):
        t += rng.expovariate(1 / 90.0)
        cdn.append(flow(t, src_ip="10.1.0.11", dst_ip="203.0.113.80", dst_port=443,
                        bytes_out=rng.randint(300, 3_000), bytes_in=rng.randint(1_000, 90_000)))
    assert max(scores(Beaconing(), cdn)) < THRESHOLD


def test_beaconing_state_is_bounded_for_200k_pairs() -> None:
    det = Beaconing(max_entities=8_000)
    for i in range(200_000):
        det.learn_one(flow(START + i * 0.01, src_ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                           dst_ip="203.0.113.7"))
    assert len(det.pairs) == 8_000


# -- flow half-space (DNS tunnelling) -----------------------------------------------------


def background_with_downloads(seed: int, n: int) -> list[dict[str, object]]:
    """Benign traffic where 1 % of flows are large HTTPS downloads (the look-alike)."""
    rng, out = random.Random(seed), []
    for e in network_traffic(seed, n=n):
        out.append(e)
        if rng.random() < 0.01:
            out.append(large_download(rng, e["_ts"]))
    return out


def large_download(rng: random.Random, t: float) -> dict[str, object]:
    return flow(t, protocol="tcp", dst_port=443, bytes_out=rng.randint(5_000, 60_000),
                bytes_in=rng.randint(100_000_000, 2_000_000_000),
                duration_ms=rng.uniform(30_000, 600_000))


def dns_tunnel(rng: random.Random, t: float) -> dict[str, object]:
    return flow(t, src_ip="10.1.0.14", dst_ip="10.0.0.53", dst_port=53, protocol="udp",
                bytes_out=rng.randint(50_000, 500_000), bytes_in=rng.randint(5_000, 50_000),
                duration_ms=rng.uniform(20_000, 120_000))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flow_halfspace_flags_dns_tunnels_but_not_large_downloads(seed: int) -> None:
    rng = random.Random(seed + 100)
    det = FlowHalfSpace(seed=seed)
    normal = background_with_downloads(seed, 6_000)
    t = normal[-1]["_ts"]
    downloads = [large_download(rng, t + i) for i in range(30)]
    tunnels = [dns_tunnel(rng, t + 100 + i) for i in range(10)]
    normal_scores, tunnel_scores = assert_separates(
        det, normal + downloads, tunnels, threshold=0.97, min_detected=10
    )
    assert max(s.score for s in normal_scores[-30:]) < THRESHOLD  # the downloads
    assert "udp/dns" in tunnel_scores[0].reason


def test_flow_halfspace_never_scores_during_warm_up() -> None:
    rng = random.Random(6)
    det = FlowHalfSpace(warmup=500)
    early = [*network_traffic(seed=6, n=499), dns_tunnel(rng, START + 1_000)]
    assert max(scores(det, early)) == 0.0
    assert det.score_one(dns_tunnel(rng, START + 1_001)).score > 0.0


def test_flow_halfspace_state_does_not_grow_with_traffic() -> None:
    det = FlowHalfSpace(calibration_size=512)
    feed(det, network_traffic(seed=7, n=3_000))
    size = len(pickle.dumps(det))
    feed(det, network_traffic(seed=8, n=6_000, start=START + 10_000))
    assert len(det.calibration) == 512
    assert len(det.services) <= 24
    assert len(pickle.dumps(det)) < 1.2 * size


# -- configuration errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (PortScan, {"mid": 40.0, "alarm": 20.0}),
        (Exfiltration, {"internal_networks": ("10.0.0.0/33",)}),
        (Beaconing, {"tolerance": 1.5}),
        (FlowHalfSpace, {"warmup": 10, "window_size": 250}),
    ],
)
def test_invalid_parameters_are_rejected_at_construction(cls: type, params: dict) -> None:
    with pytest.raises(ValueError):
        cls(**params)
