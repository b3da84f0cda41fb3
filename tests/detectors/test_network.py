"""What the network detectors share: the site's address ranges (topics.yaml ``site:``)
reach every detector that takes them, flow records are read the same way by all, and
bad parameters are refused at start."""

from __future__ import annotations

import pytest

from watchfloor.config import ConfigError, load_config, parse_config
from watchfloor.detectors.engine import build_engines, build_rekeyed_engine, rekeyed_stages
from watchfloor.detectors.netflow import ANSWER, PROBE, REAL, flow_kind
from watchfloor.detectors.network import (
    INTERNAL_NETWORKS,
    Beaconing,
    BruteForce,
    Exfiltration,
    Flood,
    FlowHalfSpace,
    PortScan,
    Spam,
)
from watchfloor.detectors.registry import discover
from watchfloor.detectors.sites import is_internal
from watchfloor.detectors.testkit import START, make_event

ROOT_TOPICS = "topics.yaml"


def flow(**kw: object) -> dict[str, object]:
    return make_event("network", _ts=START, **kw)


def with_site(internal: object) -> dict:
    import yaml

    with open(ROOT_TOPICS, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    data["site"] = {"internal": internal}
    return data


def test_default_site_ranges_are_rfc1918_multicast_link_local_broadcast_loopback() -> None:
    for ip in ("10.1.2.3", "172.20.0.1", "192.168.1.195", "224.0.0.251", "239.255.255.250",
               "169.254.3.4", "255.255.255.255", "127.0.0.1", "ff02::fb", "fe80::1"):
        assert is_internal(ip, INTERNAL_NETWORKS), ip
    for ip in ("147.32.84.165", "203.0.113.9", "8.8.8.8", "2001:db8::1"):
        assert not is_internal(ip, INTERNAL_NETWORKS), ip


def test_topics_yaml_site_ranges_reach_every_detector_that_takes_them() -> None:
    config = parse_config(with_site(["10.0.0.0/8", "147.32.0.0/16"]))
    registry = discover()
    first = build_engines(config)["network"]
    # Beaconing and flood run in the re-keyed stage (keyed by destination).
    second = build_rekeyed_engine(config, rekeyed_stages(config, registry), registry)
    slots = [*first.slots, *second.engines["network/dst_ip"].slots]
    site = {s.name: getattr(s.detector, "internal_networks", None) for s in slots}
    assert site["exfiltration"] == site["beaconing"] == ("10.0.0.0/8", "147.32.0.0/16")
    beacon = next(s.detector for s in slots if s.name == "beaconing")
    # A campus on public addresses: its own hosts are not a C2's external destination.
    assert not beacon._relevant(flow(src_ip="147.32.84.165", dst_ip="147.32.80.9"))
    assert beacon._relevant(flow(src_ip="147.32.84.165", dst_ip="203.0.113.9"))


def test_the_shipped_topics_yaml_names_the_default_ranges() -> None:
    assert load_config(ROOT_TOPICS).site.internal == INTERNAL_NETWORKS


@pytest.mark.parametrize("bad", [[], ["10.0.0.0/33"], "10.0.0.0/8"])
def test_a_bad_site_range_is_refused_naming_the_place(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"site\.internal"):
        parse_config(with_site(bad))


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        ({"conn_state": "S0", "bytes_out": 0, "bytes_in": 0}, PROBE),
        ({"conn_state": "REJ", "bytes_out": 0, "bytes_in": 0}, PROBE),
        ({"conn_state": "RSTOS0", "bytes_out": 0, "bytes_in": 0}, PROBE),
        ({"conn_state": "S_RA", "bytes_out": 124, "bytes_in": 60}, PROBE),  # Argus
        ({"conn_state": "SF", "bytes_out": 900, "bytes_in": 90_000}, REAL),
        ({"conn_state": "SPA_SPA", "bytes_out": 900, "bytes_in": 90_000}, REAL),  # Argus
        ({"conn_state": "RSTO", "bytes_out": 50_000, "bytes_in": 9_000}, REAL),
        ({"conn_state": "SH", "bytes_out": 0, "bytes_in": 0}, ANSWER),
        ({"conn_state": "OTH", "bytes_out": 0, "bytes_in": 0}, ANSWER),
        ({"src_port": 80, "dst_port": 51_000, "bytes_out": 0, "bytes_in": 0}, ANSWER),
        ({"tcp_flags": "R", "bytes_out": 40, "bytes_in": 0}, ANSWER),
        ({"tcp_flags": "....S.", "bytes_out": 40, "bytes_in": 0}, PROBE),  # nfdump style
        ({"packets_out": 40, "bytes_out": 900, "bytes_in": 0}, REAL),
        ({"bytes_out": 60, "bytes_in": 0}, PROBE),  # size only
        ({"bytes_out": 5_000, "bytes_in": 80_000}, REAL),
    ],
)
def test_flow_records_of_every_format_are_read_alike(record: dict, kind: int) -> None:
    assert flow_kind(flow(**record)) == kind


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (PortScan, {"mid": 40.0, "alarm": 20.0}),
        (PortScan, {"window_seconds": 0}),
        (Exfiltration, {"internal_networks": ("10.0.0.0/33",)}),
        (Exfiltration, {"population_quantile": 1.0}),
        (Beaconing, {"tolerance": 0.6}),
        (Beaconing, {"popular_sources": 1}),
        (FlowHalfSpace, {"warmup": 10, "window_size": 250}),
        (FlowHalfSpace, {"active_timeout_seconds": 0}),
        (Flood, {"floor_flows": 0}),
        (BruteForce, {"window_seconds": -1}),
        (Spam, {"delivery_weight": 2.0}),
    ],
)
def test_invalid_parameters_are_rejected_at_construction(cls: type, params: dict) -> None:
    with pytest.raises(ValueError):
        cls(**params)
