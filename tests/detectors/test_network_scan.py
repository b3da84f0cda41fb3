"""Port scans of every shape on traffic modelled on real captures (issue 10): the scans the
first detector missed are found once per episode, the look-alikes it flagged are not."""

from __future__ import annotations

import random

import pytest

from tests.detectors import network_cases as cases
from watchfloor.detectors.network import PortScan
from watchfloor.detectors.testkit import START, feed, merge, network_traffic

THRESHOLD = 0.9


def alerts(det: PortScan, events: list[dict]) -> list[tuple[dict, object]]:
    return [(e, s) for e, s in zip(events, feed(det, events), strict=True)
            if s.score >= THRESHOLD]


@pytest.mark.parametrize("zeek", [True, False])
def test_horizontal_scan_of_122_hosts_on_one_port_is_one_detection_within_the_minute(
    zeek: bool,
) -> None:
    scan = cases.horizontal_scan(hosts=122, port=445, zeek=zeek)
    got = alerts(PortScan(), scan)
    assert len(got) == 1, "one detection per scan episode, not one per probe"
    event, score = got[0]
    assert event["_ts"] - START < 60
    assert score.reason == "10.5.1.66 probed port 445 on 25 hosts in 300 s (horizontal scan)"


def test_nmap_vertical_scan_of_45_hosts_is_caught_in_its_first_seconds_and_reported_once() -> None:
    scan = cases.nmap_vertical()
    got = alerts(PortScan(), scan)
    assert len(got) == 1
    event, score = got[0]
    assert event["_ts"] - START < 5
    assert "25 ports on 10.8.0.1" in score.reason


def test_a_second_scan_after_a_pause_is_a_new_episode() -> None:
    first = cases.horizontal_scan(t0=START, port=23)
    second = cases.horizontal_scan(t0=START + 3_600, port=3389, seed=9)
    assert len(alerts(PortScan(), first + second)) == 2


def test_p2p_client_with_20k_peers_is_not_a_scanner() -> None:
    for zeek in (True, False):
        assert alerts(PortScan(), cases.p2p_client(peers=20_000, zeek=zeek)) == []


def test_nat_gateway_for_a_campus_is_not_a_scanner() -> None:
    for zeek in (True, False):
        assert alerts(PortScan(), cases.nat_gateway(zeek=zeek)) == []


def test_syn_ack_and_rst_backscatter_is_not_a_scan_by_anyone() -> None:
    assert alerts(PortScan(), cases.backscatter(n=5_000)) == []


def test_multicast_and_broadcast_discovery_is_not_a_scan() -> None:
    assert alerts(PortScan(), cases.multicast()) == []


def test_scanner_hidden_among_look_alikes_is_the_only_source_detected() -> None:
    events = merge(
        network_traffic(seed=3, n=20_000, rate=6.0),
        cases.p2p_client(peers=8_000, seconds=3_000),
        cases.nat_gateway(n=12_000, seconds=3_000),
        cases.backscatter(t0=START + 600),
        cases.horizontal_scan(t0=START + 1_500, port=23),
    )
    got = alerts(PortScan(), events)
    assert {e["src_ip"] for e, _ in got} == {"10.5.1.66"}


def test_real_connections_are_not_probes() -> None:
    busy = [cases.flow(START + i, src_ip="10.0.0.8", dst_ip="10.2.0.3", dst_port=2000 + i,
                       bytes_out=50_000, bytes_in=80_000, conn_state="SF")
            for i in range(80)]
    assert max(s.score for s in feed(PortScan(), busy)) == 0.0


def test_slow_walk_beyond_the_window_stays_quiet() -> None:
    walk = [cases.flow(START + 300.5 * i, src_ip="10.0.0.7", dst_ip="10.2.0.9",
                       dst_port=1000 + i, bytes_out=60, bytes_in=0) for i in range(60)]
    assert max(s.score for s in feed(PortScan(), walk)) < 0.5


def test_state_is_bounded_for_200k_sources_and_members() -> None:
    det = PortScan(max_entities=5_000, max_members=64)
    rng = random.Random(1)
    for i in range(200_000):
        e = cases.flow(START + i * 0.001, src_ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                       dst_ip=f"10.9.{rng.randrange(256)}.1", dst_port=i % 1000, bytes_out=60,
                       bytes_in=0)
        det.score_one(e)
        det.learn_one(e)
    one = [cases.flow(START + 300 + i * 0.01, src_ip="10.99.0.1", dst_ip=f"10.9.{i % 256}.1",
                      dst_port=445, bytes_out=0, bytes_in=0) for i in range(1_000)]
    feed(det, one)
    for table in (det.by_dst, det.by_port, det.by_src, det.episodes):
        assert len(table) <= 5_000
    assert max(len(w) for _, w in det.by_port.items()) <= 64
