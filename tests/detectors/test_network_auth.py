"""Password guessing and spam (issue 10: an FTP/SSH guessing run went unnoticed)."""

from __future__ import annotations

import random

import pytest

from tests.detectors import network_cases as cases
from watchfloor.detectors.network import BruteForce, Spam
from watchfloor.detectors.testkit import START, feed, merge, network_traffic

THRESHOLD = 0.9


def hits(det: object, events: list[dict]) -> list[tuple[dict, object]]:
    return [(e, s) for e, s in zip(events, feed(det, events), strict=True)
            if s.score >= THRESHOLD]


@pytest.mark.parametrize(("port", "zeek"), [(22, True), (21, True), (22, False), (21, False)])
def test_ssh_and_ftp_guessing_is_one_detection_within_a_minute(port: int, zeek: bool) -> None:
    run = cases.password_guessing(port=port, zeek=zeek)
    got = hits(BruteForce(), merge(network_traffic(seed=1, n=3_000), run))
    assert len(got) == 1
    event, score = got[0]
    assert event["src_ip"] == "10.5.3.50"
    assert event["_ts"] - run[0]["_ts"] < 60
    assert score.reason.startswith(f"10.5.3.50 made 21 short connections to port {port}")


def test_refused_rdp_attempts_count_half() -> None:
    def refused(n: int) -> list[dict]:
        return [cases.flow(START + 2 * i, src_ip="10.5.3.51", dst_ip="10.9.0.40",
                           dst_port=3389, bytes_out=0, bytes_in=0, conn_state="REJ")
                for i in range(n)]

    assert hits(BruteForce(), refused(30)) == []
    assert len(hits(BruteForce(), refused(100))) == 1


def test_an_administrator_running_scripted_ssh_sessions_is_not_guessing() -> None:
    rng = random.Random(2)
    # Ansible-style: 200 short SSH connections in ten minutes to 20 hosts, sizes varying.
    admin = [cases.flow(START + 3 * i, src_ip="10.5.3.10", dst_ip=f"10.9.1.{i % 20}",
                        dst_port=22, bytes_out=int(rng.lognormvariate(8.5, 0.8)),
                        bytes_in=int(rng.lognormvariate(9, 0.9)),
                        duration_ms=rng.uniform(800, 20_000), conn_state="SF")
             for i in range(200)]
    assert hits(BruteForce(), admin) == []


def test_benign_background_ssh_is_not_guessing() -> None:
    assert hits(BruteForce(), network_traffic(seed=3, n=40_000, hosts=60)) == []


def test_brute_force_state_is_bounded() -> None:
    det = BruteForce(max_entities=500)
    for i in range(20_000):
        det.learn_one(cases.flow(START + i * 0.1, src_ip=f"10.{i >> 16}.{(i >> 8) & 255}."
                                 f"{i & 255}", dst_port=22, bytes_out=100, bytes_in=100))
    assert len(det.pairs) <= 500


def test_spam_bot_is_one_detection_and_a_mail_server_is_none() -> None:
    events = merge(cases.mail_server(n=6_000, seconds=4 * 3_600.0),
                   cases.spam_run(t0=START + 7_200),
                   network_traffic(seed=4, n=20_000, rate=1.5))
    det = Spam()
    got = hits(det, events)
    # The MTA may alert once on a fresh deployment (it has no history yet); the bot once.
    bot = [e for e, _ in got if e["src_ip"] == "10.5.4.61"]
    mta = [e for e, _ in got if e["src_ip"] == "10.5.0.25"]
    assert len(bot) == 1 and len(mta) <= 1
    assert bot[0]["_ts"] - (START + 7_200) < 300
    assert {e["src_ip"] for e, _ in got} <= {"10.5.4.61", "10.5.0.25"}


def test_an_established_mail_server_does_not_alert_on_the_second_day() -> None:
    day = 86_400.0
    mta = cases.mail_server(n=12_000, seconds=2 * day)
    got = hits(Spam(), mta)
    assert all(e["_ts"] < START + day for e, _ in got)


def test_spam_state_is_bounded() -> None:
    det = Spam(max_entities=300, max_hosts=32)
    rng = random.Random(5)
    for i in range(20_000):
        det.learn_one(cases.flow(START + i * 0.1, src_ip=f"10.0.{(i >> 8) & 255}.{i & 255}",
                                 dst_ip=f"203.0.{rng.randrange(256)}.{rng.randrange(256)}",
                                 dst_port=25, bytes_out=100))
    assert len(det.sources) <= 300
    assert max(len(st[0]) for _, st in det.sources.items()) <= 32
