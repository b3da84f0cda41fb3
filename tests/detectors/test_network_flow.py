"""The flow-shape model (FlowHalfSpace): DNS tunnels found, large downloads not; an
ongoing flood is not learnt as normal; long conversations merged by the exporter's
aggregation timeout are not outliers (issue 10)."""

from __future__ import annotations

import pickle
import random

import pytest

from tests.detectors import network_cases as cases
from watchfloor.detectors.network import FlowHalfSpace
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


def flow(t: float, **kw: object) -> dict[str, object]:
    return make_event("network", _ts=t, **kw)


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


def test_an_ongoing_flood_is_not_learnt_as_normal() -> None:
    det = FlowHalfSpace()
    background = network_traffic(seed=1, n=6_000)
    feed(det, background)
    flood = cases.flood(dst="10.0.0.80", t0=background[-1]["_ts"] + 1, n=3_000)
    got = [s.score for s in feed(det, flood)]
    first, last = sum(s >= THRESHOLD for s in got[:500]), sum(s >= THRESHOLD for s in got[-500:])
    assert first > 400, "the flood's flows are outliers"
    assert last >= first, "thousands of flood flows later they still are"


def udp_conversations(seed: int, until: float) -> list[dict[str, object]]:
    rng, t, out = random.Random(seed), START, []
    while t < until:
        t += rng.expovariate(0.5)
        secs, rate = rng.uniform(20, 120), rng.lognormvariate(9, 0.5)
        out.append(flow(t, src_ip=f"10.1.0.{rng.randrange(10, 50)}", dst_ip="203.0.113.40",
                        dst_port=rng.choice((3478, 19302)), protocol="udp",
                        bytes_out=int(rate * secs), bytes_in=int(rate * secs * 1.1),
                        duration_ms=secs * 1000, packets_out=int(secs * 50),
                        packets_in=int(secs * 50)))
    return out


def test_a_long_conversation_merged_into_one_record_is_not_an_outlier() -> None:
    rng = random.Random(3)
    background = network_traffic(seed=2, n=8_000)
    det = FlowHalfSpace()
    feed(det, merge(background, udp_conversations(3, background[-1]["_ts"])))
    t = background[-1]["_ts"]
    merged = []
    for i in range(20):  # one hour of the same call, as one record
        rate = rng.lognormvariate(9, 0.5)
        merged.append(flow(t + i, src_ip="10.1.0.20", dst_ip="203.0.113.40", dst_port=3478,
                           protocol="udp", bytes_out=int(rate * 3_600),
                           bytes_in=int(rate * 3_960), duration_ms=3_600_000,
                           packets_out=180_000, packets_in=180_000))
    assert max(det.score_one(e).score for e in merged) < 0.5
