"""Exfiltration from the first hour of a deployment, and floods (issue 10)."""

from __future__ import annotations

import random

from tests.detectors import network_cases as cases
from watchfloor.detectors.network import Exfiltration, Flood
from watchfloor.detectors.testkit import START, feed, merge, network_traffic

THRESHOLD = 0.9
DAY = 86_400.0


def hits(det: object, events: list[dict]) -> list[tuple[dict, object]]:
    return [(e, s) for e, s in zip(events, feed(det, events), strict=True)
            if s.score >= THRESHOLD]


# -- exfiltration ----------------------------------------------------------------------


def test_kilobytes_then_gigabytes_alerts_in_the_first_hour_of_a_fresh_deployment() -> None:
    background = network_traffic(seed=1, n=10_000, rate=4.0)  # 42 minutes, 40 hosts
    t = background[-1]["_ts"]
    victim = [cases.flow(t + 10 * i, src_ip="10.1.0.31", dst_ip="198.51.100.9",
                         bytes_out=3_000 + 100 * i) for i in range(5)]
    dump = cases.flow(t + 120, src_ip="10.1.0.31", dst_ip="203.0.113.66",
                      bytes_out=2_500_000_000, bytes_in=40_000, duration_ms=600_000)
    got = hits(Exfiltration(), [*background, *victim, dump])
    assert [e["event_id"] for e, _ in got] == [dump["event_id"]]
    assert got[0][1].reason.startswith("10.1.0.31 sent 2.5 GB to 203.0.113.66")


def test_a_source_never_seen_before_is_judged_against_its_subnet() -> None:
    background = network_traffic(seed=2, n=6_000, rate=4.0)
    t = background[-1]["_ts"]
    hello = cases.flow(t + 1, src_ip="10.1.0.250", dst_ip="198.51.100.3", bytes_out=2_000)
    newcomer = cases.flow(t + 5, src_ip="10.1.0.250", dst_ip="203.0.113.70",
                          bytes_out=900_000_000)
    s = Exfiltration()
    feed(s, [*background, hello])
    verdict = s.score_one(newcomer)
    assert verdict.score >= THRESHOLD
    assert "(peer group 10.1.0.0/24)" in verdict.reason


def test_the_first_flow_ever_seen_from_a_source_is_not_judged() -> None:
    det = Exfiltration()
    feed(det, network_traffic(seed=8, n=3_000))
    server = cases.flow(START + 700, src_ip="10.3.0.9", dst_ip="203.0.113.200",
                        bytes_out=3_000_000_000)
    assert det.score_one(server).score == 0.0  # switched on for its nightly job
    det.learn_one(server)
    again = cases.flow(START + 800, src_ip="10.3.0.9", dst_ip="203.0.113.201",
                       bytes_out=3_000_000_000)
    assert det.score_one(again).score < THRESHOLD  # its own peak now


def test_a_fresh_backup_server_among_backup_servers_is_not_exfiltration() -> None:
    rng = random.Random(3)
    # Four backup servers in one subnet, one nightly upload of 1-5 GB each, day after day;
    # a fifth joins on day 3 and does the same on its first night.
    backups = [
        cases.flow(START + d * DAY + rng.uniform(1, 3) * 3600, src_ip=f"10.3.0.{h}",
                   dst_ip="203.0.113.200", dst_port=22,
                   bytes_out=rng.randint(1_000_000_000, 5_000_000_000))
        for d in range(4) for h in range(2, 6)
    ]
    backups.sort(key=lambda e: e["_ts"])
    new = cases.flow(START + 3 * DAY + 4 * 3600, src_ip="10.3.0.9", dst_ip="203.0.113.200",
                     dst_port=22, bytes_out=3_000_000_000)
    chatter = network_traffic(seed=3, n=8_000, rate=8_000 / (4 * DAY))
    det = Exfiltration()
    got = hits(det, merge(chatter, backups))
    # The first night of a fresh deployment knows no uploads like these yet: only then.
    assert all(e["_ts"] < START + DAY for e, _ in got)
    assert det.score_one(new).score < THRESHOLD


def test_exfiltration_is_not_learnt_into_the_peer_group() -> None:
    background = network_traffic(seed=4, n=6_000, rate=4.0)
    t = background[-1]["_ts"]
    first = cases.flow(t + 5, src_ip="10.1.0.240", dst_ip="203.0.113.71", bytes_out=1_500_000_000)
    second = cases.flow(t + 900, src_ip="10.1.0.241", dst_ip="203.0.113.72",
                        bytes_out=1_200_000_000)
    hellos = [cases.flow(t + 1, src_ip=f"10.1.0.{h}", dst_ip="198.51.100.3", bytes_out=2_000)
              for h in (240, 241)]
    got = hits(Exfiltration(), [*background, *hellos, first, second])
    assert [e["src_ip"] for e, _ in got] == ["10.1.0.240", "10.1.0.241"]


def test_internal_destinations_and_site_ranges_are_never_exfiltration() -> None:
    det = Exfiltration(internal_networks=("10.0.0.0/8", "147.32.0.0/16"))
    feed(det, network_traffic(seed=5, n=3_000))
    huge = {"src_ip": "10.1.0.17", "bytes_out": 900_000_000}
    assert det.score_one(cases.flow(START + 900, dst_ip="10.9.9.9", **huge)).score == 0.0
    assert det.score_one(cases.flow(START + 900, dst_ip="147.32.80.9", **huge)).score == 0.0
    assert det.score_one(cases.flow(START + 900, dst_ip="203.0.113.1", **huge)).score > 0.99


def test_exfiltration_state_is_bounded_for_200k_sources() -> None:
    det = Exfiltration(max_entities=10_000)
    for i in range(200_000):
        det.learn_one(cases.flow(START + i * 0.01,
                                 src_ip=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"))
    assert len(det.peaks) == 10_000
    assert len(det.groups) <= 10_000
    assert len(det.population) <= 1_024


# -- flood ---------------------------------------------------------------------------------


def test_a_14k_flow_syn_flood_is_one_detection_about_the_victim() -> None:
    background = network_traffic(seed=6, n=9_000, rate=5.0)  # 30 minutes
    attack = cases.flood(dst="10.0.0.25", t0=background[-1]["_ts"] + 1)
    det = Flood()
    got = hits(det, [*background, *attack])
    assert len(got) == 1
    event, score = got[0]
    assert event["dst_ip"] == "10.0.0.25" and Flood.entity == ("ip", "dst_ip")
    assert score.reason.startswith("10.0.0.25 received ")
    assert event["_ts"] - attack[0]["_ts"] < 60


def test_a_busy_server_at_its_usual_rate_is_not_flooded() -> None:
    rng = random.Random(7)
    t, busy = START, []
    for _ in range(60_000):  # ~3,000 flows a minute, for 20 minutes
        t += rng.expovariate(50.0)
        busy.append(cases.flow(t, src_ip=f"10.1.{rng.randrange(50)}.{rng.randrange(250)}",
                               dst_ip="10.0.0.53", dst_port=53, protocol="udp", bytes_out=80,
                               bytes_in=200))
    assert hits(Flood(), busy) == []


def test_flood_is_silent_during_warm_up_and_state_is_bounded() -> None:
    det = Flood(max_entities=1_000)
    early = cases.flood(dst="10.0.0.99", t0=START, n=3_000, seconds=60)
    assert hits(det, early) == []
    for i in range(50_000):
        det.learn_one(cases.flow(START + 60 + i * 0.01, dst_ip=f"10.{i >> 16}.{(i >> 8) & 255}."
                                 f"{i & 255}"))
    assert len(det.dsts) <= 1_000


def test_a_single_source_dos_names_its_source_and_a_ddos_a_bounded_few() -> None:
    """Workstation capture (CIC-IDS style): a DoS from one host was reported about the
    victim alone, so its source, the attacker, was named by no alert."""
    background = network_traffic(seed=6, n=9_000, rate=5.0)
    t0 = background[-1]["_ts"] + 1
    dos = [cases.flow(t0 + i * 0.01, src_ip="205.174.165.90", dst_ip="10.0.0.25",
                      dst_port=80, bytes_out=400) for i in range(2_000)]
    ddos = [cases.flow(t0 + 300 + i * 0.01, src_ip=f"198.51.{i % 40}.{i % 7}",
                       dst_ip="10.0.0.26", dst_port=443, bytes_out=60) for i in range(4_000)]
    det = Flood(name_sources=4)
    got = hits(det, [*background, *dos, *ddos])
    assert [e["dst_ip"] for e, _ in got] == ["10.0.0.25", "10.0.0.26"]
    assert got[0][1].entities == ("205.174.165.90",)
    named = got[1][1].entities
    assert 0 < len(named) <= 4 and all(ip.startswith("198.51.") for ip in named)
    # Quiet destinations never hold a source list.
    quiet = {e["dst_ip"] for e in background}
    assert len(quiet) > 50 and len(det.heavy) <= 10


def test_blatant_exfiltrations_alert_within_two_minutes_of_a_fresh_deployment() -> None:
    # Issue 11's fresh-deployment target, with every network detector topics.yaml enables:
    # no state, workstations browsing at 4 flows/s, and in the first two minutes five of
    # them each upload 2.5 GB to an address nobody used before.
    from tests.detectors.financial_sets import configured_engine

    background = network_traffic(seed=5, n=30_000, rate=4.0)  # ~2 h of benign flows
    rng = random.Random(5)
    dumps = [cases.flow(START + 20 + 20 * k, src_ip=f"10.1.0.{11 + 7 * k}",
                        dst_ip=f"203.0.113.{80 + k}", dst_port=443, protocol="tcp",
                        bytes_out=2_500_000_000 + rng.randrange(10**6), bytes_in=30_000,
                        duration_ms=90_000) for k in range(5)]
    engine = configured_engine("network")
    bad = {e["event_id"] for e in dumps}
    alerted: dict[str, dict] = {}
    false_alerts = 0
    for e in merge(background, dumps):
        for d in engine.process(e, e["_ts"]):
            if e["event_id"] in bad:
                alerted.setdefault(e["event_id"], d)
            else:
                false_alerts += 1
    assert len(alerted) >= 4, f"only {len(alerted)} of 5 blatant exfiltrations alerted"
    assert all(e["_ts"] - START <= 120 for e in dumps)
    assert 1e4 * false_alerts / len(background) <= 1.0, f"{false_alerts} false alerts"
