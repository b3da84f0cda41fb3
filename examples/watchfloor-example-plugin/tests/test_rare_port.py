"""Tests for the example plugin, written with watchfloor's testkit and conformance suite."""

from __future__ import annotations

import pytest
from watchfloor_example_plugin import RarePort

from watchfloor.detectors.checks import yield_checks
from watchfloor.detectors.testkit import START, assert_separates, feed, make_event


def web_client(src: str, n: int) -> list[dict]:
    return [make_event("network", src_ip=src, dst_port=443, _ts=START + i) for i in range(n)]


def test_first_use_of_a_port_after_long_history_is_flagged() -> None:
    normal = web_client("10.1.0.5", 400)
    rdp = [make_event("network", src_ip="10.1.0.5", dst_port=3389, _ts=START + 500)]
    assert_separates(RarePort(), normal, rdp, threshold=0.9)


def test_a_port_the_source_uses_often_is_not_flagged() -> None:
    det = RarePort()
    events = web_client("10.1.0.5", 400)
    assert max(s.score for s in feed(det, events)) < 0.5


def test_watched_ports_are_flagged_even_without_history() -> None:
    s = RarePort(watch_ports=(4444,)).score_one(make_event("network", dst_port=4444))
    assert s.score == 0.95 and "watched port 4444" in s.reason


def test_new_sources_are_not_judged_before_min_history() -> None:
    det = RarePort(min_history=50)
    feed(det, web_client("10.1.0.6", 49))
    assert det.score_one(make_event("network", src_ip="10.1.0.6", dst_port=22)).score == 0.0


@pytest.mark.parametrize("check", list(yield_checks(RarePort)), ids=lambda c: c.__name__)
def test_conformance(check) -> None:
    check(RarePort, 0)
