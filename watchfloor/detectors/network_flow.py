"""A flow-shape outlier model: river half-space trees over per-service deviations."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from watchfloor.detectors.base import NORMAL, Detector, ReusesScore, Score
from watchfloor.detectors.calibration import StreamingQuantile, tail_score
from watchfloor.detectors.hst import FastHalfSpaceTrees
from watchfloor.detectors.netflow import human_bytes as _human_bytes

__all__ = ["FlowHalfSpace"]


class FlowHalfSpace(ReusesScore, Detector):
    """Flows whose shape is rare among all flows (river ``HalfSpaceTrees``).

    Each flow becomes features in [0, 1]: how far its log bytes out and log bytes in sit
    from the usual for its *service* (protocol and port class: DNS, NTP, web, other
    well-known, registered, ephemeral), squashed with ``tanh``; plus its global log bytes
    out, log upload rate, log bytes per packet (when the record has packet counts) and
    protocol. Sizes are per ``active_timeout_seconds`` of the flow's duration and the
    service deviation also covers the upload rate (bytes out per second), never raw
    duration, so a long UDP conversation that the exporter's aggregation timeout merged
    into one record looks like the same traffic (the rate is of bytes out: a large
    download is fast, not odd). Half-space trees score how empty the region around the
    flow is. Trees saturate (every rare region scores about the
    same), so flows deviating from their service by more than ``deviation_cap``
    standard deviations add ``0.1`` per extra deviation to the raw score: DNS
    tunnelling (UDP 53 moving hundreds of kB over a minute, 20+ deviations from normal
    DNS) stands far above a rare-but-benign flow, while a large HTTPS download is large
    but ordinary for web traffic.

    The raw score has no fixed scale, so it is ranked among the raw scores of recent
    flows (:class:`~watchfloor.detectors.calibration.StreamingQuantile`) and mapped
    with :func:`~watchfloor.detectors.calibration.tail_score`: 0.9 means about one flow
    in ``1 / alarm_tail`` is as unusual. Scores are 0 until ``warmup`` flows were
    learnt. Flows scoring at or above the alarm point (``alarm_tail``) are learnt
    neither by the trees and service statistics nor by the calibration sample, so an
    ongoing attack (a flood of thousands of identical flows) does not become normal.
    State is global (a few dozen service statistics, the trees, the calibration sample),
    not per entity, so it is bounded by construction.

    Parameters
    ----------
    n_trees
        Number of half-space trees.
    height
        Height of each tree.
    window_size
        Flows per reference window of the trees.
    warmup
        Flows learnt before any score is given.
    mid_tail
        Rarity (fraction of flows at least as unusual) scoring 0.5.
    alarm_tail
        Rarity scoring 0.9.
    deviation_cap
        Service deviation (in standard deviations) above which each extra deviation
        adds 0.1 to the raw score.
    service_memory
        Effective number of recent flows each service's mean and spread follow.
    calibration_size
        Recent raw scores kept to rank against.
    seed
        Seed of the trees and of the calibration sample.
    active_timeout_seconds
        Flows longer than this have their byte counts divided by how many such
        timeouts they span (the exporters' usual active timeout is 60-300 s), so long
        conversations merged into one record are sized like their parts.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import make_event, network_traffic
    >>> det = FlowHalfSpace(seed=7)
    >>> flows = network_traffic(seed=7, n=4_000)
    >>> _ = [det.learn_one(e) for e in flows]
    >>> t = flows[-1]["_ts"]
    >>> tunnel = make_event("network", protocol="udp", dst_port=53, dst_ip="10.0.0.53",
    ...                     src_ip="10.1.0.14", bytes_out=300_000, bytes_in=40_000,
    ...                     duration_ms=60_000, _ts=t)
    >>> s = det.score_one(tunnel)
    >>> round(s.score, 3)
    1.0
    >>> print(s.reason)  # doctest: +NORMALIZE_WHITESPACE
    udp/53 flow of 300 kB out in 60.0 s from 10.1.0.14: 17 std devs from usual udp/dns
    flows, more unusual than all 2,048 recent flows ranked
    >>> dns = make_event("network", protocol="udp", dst_port=53, dst_ip="10.0.0.53",
    ...                  bytes_out=80, bytes_in=200, duration_ms=20, _ts=t)
    >>> det.score_one(dns).score < 0.5
    True
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "dns_tunnel"

    def __init__(
        self,
        n_trees: int = 15,
        height: int = 8,
        window_size: int = 250,
        warmup: int = 1_000,
        mid_tail: float = 1e-3,
        alarm_tail: float = 1e-4,
        deviation_cap: float = 6.0,
        service_memory: int = 2_000,
        calibration_size: int = 2_048,
        seed: int = 42,
        active_timeout_seconds: float = 120.0,
    ) -> None:
        if not 0.0 < alarm_tail < mid_tail < 1.0:
            raise ValueError("need 0 < alarm_tail < mid_tail < 1")
        if warmup < window_size:
            raise ValueError("warmup must be at least window_size (the trees need one window)")
        if deviation_cap <= 0 or service_memory < 1:
            raise ValueError("deviation_cap and service_memory must be positive")
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.warmup = warmup
        self.mid_tail = mid_tail
        self.alarm_tail = alarm_tail
        self.deviation_cap = deviation_cap
        self.service_memory = service_memory
        self.calibration_size = calibration_size
        self.seed = seed
        if active_timeout_seconds <= 0:
            raise ValueError("active_timeout_seconds must be positive")
        self.active_timeout_seconds = active_timeout_seconds
        self.model = FastHalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self.calibration = StreamingQuantile(calibration_size, seed)
        # service key -> [flows, mean, var] x (log out, log in, log out rate); at most
        # 4 protocols x 6 port classes = 24 keys, whatever the traffic.
        self.services: dict[str, list[float]] = {}
        self.n = 0
        # The engine scores an event and then learns it: learn_one reuses score_one's
        # features and tree score for that same event object instead of recomputing them
        # (the trees are most of this detector's cost). Not part of the state.
        self._last: tuple[Mapping[str, Any], dict[str, float], float, float] | None = None

    # log1p scales: 1e11 bytes and 1e5 bytes per packet map to 1.0.
    _LB = 1.0 / math.log1p(1e11)
    _LR = 1.0 / math.log1p(1e10)
    _LP = 1.0 / math.log1p(1e5)
    _PROTO: ClassVar[dict[str, float]] = {"tcp": 0.0, "udp": 1.0, "icmp": 0.5}
    # Spread floor (log units): services with near-constant sizes (NTP) must not turn a
    # few bytes of difference into many deviations.
    _MIN_STD = 0.5
    _MIN_FLOWS = 20

    @staticmethod
    def _service(event: Mapping[str, Any]) -> str:
        proto = str(event["protocol"]).lower()
        if proto not in ("tcp", "udp", "icmp"):
            proto = "other"
        port = event["dst_port"]
        if port == 53:
            cls = "dns"
        elif port == 123:
            cls = "ntp"
        elif port in (80, 443, 8080, 8443):
            cls = "web"
        elif port < 1024:
            cls = "wk"
        else:
            cls = "reg" if port < 49152 else "eph"
        return f"{proto}/{cls}"

    def _logs(self, event: Mapping[str, Any]) -> tuple[float, float, float]:
        # A floor of 1 ms: a single-packet flow has no duration, and its "rate" is its size.
        seconds = max(float(event["duration_ms"]), 1.0) / 1000.0
        # Sizes per active timeout: an exporter that merged an hour of one conversation
        # into one record reports 30 timeouts' worth of bytes, not one 30x larger flow.
        per = max(1.0, seconds / self.active_timeout_seconds)
        return (math.log1p(event["bytes_out"] / per), math.log1p(event["bytes_in"] / per),
                math.log1p(event["bytes_out"] / seconds))

    @staticmethod
    def _per_packet(event: Mapping[str, Any]) -> float:
        po, pi = event.get("packets_out"), event.get("packets_in")
        packets = (po if isinstance(po, int) else 0) + (pi if isinstance(pi, int) else 0)
        if packets <= 0:
            return -1.0
        return math.log1p((event["bytes_out"] + event["bytes_in"]) / packets)

    def _features(self, event: Mapping[str, Any]) -> tuple[dict[str, float], float]:
        """Tree features and the largest service deviation (in standard deviations)."""
        logs = self._logs(event)
        st = self.services.get(self._service(event))
        known = st is not None and st[0] >= self._MIN_FLOWS
        zs = [0.0, 0.0, 0.0]
        if known:
            for i, x in enumerate(logs):
                zs[i] = (x - st[1 + 2 * i]) / max(math.sqrt(st[2 + 2 * i]), self._MIN_STD)
        x = {
            "z_out": 0.5 + 0.5 * math.tanh(zs[0] / 8.0),
            "z_in": 0.5 + 0.5 * math.tanh(zs[1] / 8.0),
            "out": min(logs[0] * self._LB, 1.0),
            "rate": min(logs[2] * self._LR, 1.0),
            "bpp": 0.5 if (bpp := self._per_packet(event)) < 0 else min(bpp * self._LP, 1.0),
            "proto": self._PROTO.get(str(event["protocol"]).lower(), 0.7),
        }
        return x, max(abs(z) for z in zs)

    def _raw(self, x: dict[str, float], zmax: float) -> float:
        return self.model.score_one(x) + 0.1 * max(0.0, zmax - self.deviation_cap)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        last = self._last
        self._last = None
        if last is not None and last[0] is event:
            _, x, zmax, raw = last
        else:
            x, zmax = self._features(event)
            raw = self._raw(x, zmax) if self.n >= self.window_size else 0.0
        if self.n >= self.window_size:
            # Calibrate on what score_one would have said (the trees are meaningless
            # before their first full window), but only on flows below the alarm point:
            # one tunnel flow in the sample would make the next ones look ordinary.
            if self.n < self.warmup or self.calibration.tail(raw) > self.alarm_tail:
                self.calibration.update(raw)
            else:
                # At or above the alarm point: learning it into the trees and the service
                # statistics would make the next thousand flows of a flood look ordinary.
                self.n += 1
                return
        self.model.learn_one(x)
        st = self.services.setdefault(self._service(event), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        st[0] += 1
        n = min(st[0], self.service_memory)  # exact mean first, then exponential forgetting
        for i, v in enumerate(self._logs(event)):
            m, var = st[1 + 2 * i], st[2 + 2 * i]
            d = v - m
            m += d / n
            st[1 + 2 * i], st[2 + 2 * i] = m, var + (d * (v - m) - var) / n
        self.n += 1

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if self.n < self.warmup:
            return NORMAL
        x, zmax = self._features(event)
        raw = self._raw(x, zmax)
        self._last = (event, x, zmax, raw)
        tail = self.calibration.tail(raw)
        score = tail_score(tail, self.mid_tail, self.alarm_tail)
        if score < 0.5:
            return Score(score, "", raw)
        kept = len(self.calibration)
        # Below the sample's resolution the tail is extrapolated: say so, not "1 in 10^9".
        rarity = (
            f"more unusual than all {kept:,} recent flows ranked"
            if tail * kept < 0.5
            else f"about 1 in {1 / tail:,.0f} flows is as unusual"
        )
        return Score(
            score,
            f"{event['protocol']}/{event['dst_port']} flow of {_human_bytes(event['bytes_out'])}"
            f" out in {float(event['duration_ms']) / 1000:.1f} s from {event['src_ip']}: "
            f"{zmax:.0f} std devs from usual {self._service(event)} flows, {rarity}",
            raw,
        )

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"n_trees": 5, "height": 6, "window_size": 100, "warmup": 300}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import make_event, network_traffic

        rng = random.Random(seed)
        normal = network_traffic(seed, n=4_000)
        t0 = normal[-1]["_ts"]
        attack = [
            make_event("network", _ts=t0 + 30 * (i + 1), src_ip="10.1.0.14",
                       dst_ip="10.0.0.53", dst_port=53, protocol="udp",
                       bytes_out=rng.randint(50_000, 500_000),
                       bytes_in=rng.randint(5_000, 50_000),
                       duration_ms=rng.uniform(20_000, 120_000))
            for i in range(5)
        ]
        return normal, attack
