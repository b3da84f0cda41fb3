"""Network detectors: port scans, exfiltration, beaconing and a flow-shape outlier model.

All work on decoded network flow events (``src_ip``, ``dst_ip``, ``dst_port``,
``protocol``, ``bytes_out``, ``bytes_in``, ``duration_ms``, ``_ts``) and are about the
source IP. Scores follow :mod:`watchfloor.detectors.calibration`: 0.9 is the alarm point
described in ``docs/threats.md``.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

from river import anomaly

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import StreamingQuantile, logistic, tail_score

__all__ = ["INTERNAL_NETWORKS", "Beaconing", "Exfiltration", "FlowHalfSpace", "PortScan"]

#: Address ranges treated as internal by default: RFC 1918, loopback, link-local,
#: carrier-grade NAT, IPv6 unique-local/link-local/loopback. Documentation ranges
#: (198.51.100.0/24, 203.0.113.0/24) count as external, unlike ``ip.is_private``.
INTERNAL_NETWORKS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)


@lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Module-level and bounded: the cache is not detector state (it never changes a verdict),
# and keeping it out of the instance keeps pickles small and score_one state-free.
@lru_cache(maxsize=1 << 16)
def _is_internal(ip: str, cidrs: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in _networks(cidrs) if net.version == addr.version)


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000.0:
            return f"{n:.0f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def _check_mid_alarm(mid: float, alarm: float) -> None:
    if not alarm > mid:
        raise ValueError(f"alarm ({alarm}) must be greater than mid ({mid})")


class PortScan(Detector):
    """Many distinct destination ports probed by one source within a short window.

    Counts the distinct ``dst_port`` values a ``src_ip`` reached with *probe-sized*
    flows (``bytes_out + bytes_in <= probe_max_bytes``) in the last ``window_seconds``.
    Web proxies and NAT gateways reach hundreds of hosts, but on a handful of ports and
    with real payloads, so they stay low.

    Parameters
    ----------
    window_seconds
        Sliding event-time window in which distinct ports are counted.
    mid
        Distinct ports scoring 0.5.
    alarm
        Distinct ports scoring 0.9 (the port-scan threshold of ``docs/threats.md``).
    probe_max_bytes
        Flows moving more bytes (both directions) are real connections, not probes, and
        are ignored.
    max_ports
        Most ports remembered per source (the oldest is forgotten first).
    max_entities
        Most sources tracked at once.
    ttl_seconds
        A source idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = PortScan()
    >>> probes = [make_event("network", src_ip="10.0.0.5", dst_ip="10.2.0.9",
    ...                      dst_port=1000 + i, bytes_out=60, bytes_in=0, duration_ms=2,
    ...                      _ts=START + i) for i in range(47)]
    >>> scan = feed(det, probes)[-1]
    >>> round(scan.score, 3), scan.reason, scan.raw
    (0.951, '10.0.0.5 probed 47 distinct ports in 60 s', 47.0)
    >>> web = make_event("network", src_ip="10.0.0.6", dst_port=443, _ts=START + 50)
    >>> det.score_one(web).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "port_scan"

    def __init__(
        self,
        window_seconds: float = 60.0,
        mid: float = 20.0,
        alarm: float = 40.0,
        probe_max_bytes: int = 1_000,
        max_ports: int = 1_024,
        max_entities: int = 100_000,
        ttl_seconds: float = 3_600.0,
    ) -> None:
        _check_mid_alarm(mid, alarm)
        if window_seconds <= 0 or max_ports < 1:
            raise ValueError("window_seconds and max_ports must be positive")
        self.window_seconds = window_seconds
        self.mid = mid
        self.alarm = alarm
        self.probe_max_bytes = probe_max_bytes
        self.max_ports = max_ports
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # src_ip -> {dst_port: last time probed}, oldest first.
        self.ports: EntityTable[OrderedDict[int, float]] = EntityTable(max_entities, ttl_seconds)

    def _is_probe(self, event: Mapping[str, Any]) -> bool:
        return event["bytes_out"] + event["bytes_in"] <= self.probe_max_bytes

    def _distinct(self, seen: OrderedDict[int, float] | None, port: int, now: float) -> int:
        if not seen:
            return 1
        cutoff = now - self.window_seconds
        # Entries are in last-probed order, so stale ones form a prefix; learn_one drops
        # them, so this loop is short except after a long pause.
        stale = 0
        for t in seen.values():
            if t >= cutoff:
                break
            stale += 1
        fresh = len(seen) - stale
        t = seen.get(port)
        return fresh + (1 if t is None or t < cutoff else 0)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        if not self._is_probe(event):
            return
        now = event["_ts"]
        seen = self.ports.setdefault(event["src_ip"], now, OrderedDict)
        port = event["dst_port"]
        if seen.get(port, -math.inf) <= now:
            seen[port] = now
            seen.move_to_end(port)
        cutoff = now - self.window_seconds
        while seen and (next(iter(seen.values())) < cutoff or len(seen) > self.max_ports):
            seen.popitem(last=False)

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if not self._is_probe(event):
            return NORMAL
        src = event["src_ip"]
        n = self._distinct(self.ports.get(src), event["dst_port"], event["_ts"])
        if n < 2:
            return NORMAL
        return Score(
            logistic(n, self.mid, self.alarm),
            f"{src} probed {n} distinct ports in {self.window_seconds:g} s",
            float(n),
        )

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"window_seconds": 30.0, "max_entities": 50, "max_ports": 64}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import START, make_event, network_traffic

        normal = network_traffic(seed, n=3_000)
        rng = random.Random(seed)
        t0 = START + 3_000 / 5.0 + 10
        ports = rng.sample(range(1, 10_000), 60)
        attack = [
            make_event("network", _ts=t0 + i * 0.5, src_ip="10.1.0.66", dst_ip="10.2.0.9",
                       dst_port=p, protocol="tcp", bytes_out=60, bytes_in=0, duration_ms=3)
            for i, p in enumerate(ports)
        ]
        return normal, attack


class Exfiltration(Detector):
    """A source sending far more than its own recent peak to an external address.

    Keeps, per ``src_ip``, the largest ``bytes_out`` of one flow, decaying with a
    ``half_life_seconds`` half-life. A flow of at least ``min_bytes`` to an external
    ``dst_ip`` scores by ``log10(bytes_out / peak)``: a workstation that normally sends
    ≤ 100 kB and now sends 500 MB is 3.7 orders of magnitude over its peak; a backup
    server sending its nightly 1-5 GB is within one order of its own peak.

    Parameters
    ----------
    min_bytes
        Flows sending less are never scored (too small to matter as exfiltration).
    mid
        Orders of magnitude (log10) above the source's peak scoring 0.5.
    alarm
        Orders of magnitude above the source's peak scoring 0.9.
    half_life_seconds
        Half-life of the remembered peak: one week by default, so a nightly or weekly
        job keeps its own baseline.
    min_history
        Flows a source must have been seen with before it is scored (no baseline, no
        verdict).
    warmup_seconds
        Event time after the first flow during which nothing is scored, so jobs that run
        once a day (nightly backups) are learnt before they can be judged.
    peak_floor
        Smallest peak used, so a source that only ever sent tiny packets is not judged
        against a few bytes.
    internal_networks
        CIDRs counted as internal; flows to them are never exfiltration.
    max_entities
        Most sources tracked at once.
    ttl_seconds
        A source idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Exfiltration()
    >>> _ = feed(det, [make_event("network", src_ip="10.1.0.7", bytes_out=40_000,
    ...                           _ts=START + 3_600 * i) for i in range(30)])
    >>> big = make_event("network", src_ip="10.1.0.7", dst_ip="203.0.113.50",
    ...                  bytes_out=800_000_000, _ts=START + 30 * 3_600)
    >>> s = det.score_one(big)
    >>> round(s.score, 3), s.reason
    (0.998, '10.1.0.7 sent 800 MB to 203.0.113.50, 8000x its recent peak of 100 kB')
    >>> usual = make_event("network", src_ip="10.1.0.7", bytes_out=30_000_000,
    ...                    dst_ip="10.9.9.9", _ts=START + 30 * 3_600)
    >>> det.score_one(usual).score   # internal destination
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "exfiltration"

    def __init__(
        self,
        min_bytes: int = 20_000_000,
        mid: float = 1.0,
        alarm: float = 2.0,
        half_life_seconds: float = 7 * 86_400.0,
        min_history: int = 20,
        warmup_seconds: float = 86_400.0,
        peak_floor: float = 100_000.0,
        internal_networks: tuple[str, ...] = INTERNAL_NETWORKS,
        max_entities: int = 100_000,
        ttl_seconds: float = 14 * 86_400.0,
    ) -> None:
        _check_mid_alarm(mid, alarm)
        if half_life_seconds <= 0 or peak_floor <= 0:
            raise ValueError("half_life_seconds and peak_floor must be positive")
        self.min_bytes = min_bytes
        self.mid = mid
        self.alarm = alarm
        self.half_life_seconds = half_life_seconds
        self.min_history = min_history
        self.warmup_seconds = warmup_seconds
        self.first_ts = math.inf  # event time of the first flow learnt
        self.peak_floor = peak_floor
        self.internal_networks = tuple(internal_networks)
        _networks(self.internal_networks)  # fail at configuration time on a bad CIDR
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # src_ip -> [peak bytes_out, time of peak, flows seen]
        self.peaks: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)

    def _peak(self, st: list[float], now: float) -> float:
        return st[0] * 0.5 ** (max(now - st[1], 0.0) / self.half_life_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now = event["_ts"]
        if now < self.first_ts:
            self.first_ts = now
        st = self.peaks.setdefault(event["src_ip"], now, lambda: [0.0, now, 0])
        b = event["bytes_out"]
        if b >= self._peak(st, now):
            st[0], st[1] = float(b), now
        st[2] += 1

    def score_one(self, event: Mapping[str, Any]) -> Score:
        b = event["bytes_out"]
        if b < self.min_bytes:
            return NORMAL
        now = event["_ts"]
        if now < self.first_ts + self.warmup_seconds:
            return NORMAL
        src = event["src_ip"]
        st = self.peaks.get(src)
        if st is None or st[2] < self.min_history:
            return NORMAL
        dst = event["dst_ip"]
        if _is_internal(dst, self.internal_networks):
            return NORMAL
        peak = max(self._peak(st, now), self.peak_floor)
        raw = math.log10(b / peak)
        return Score(
            logistic(raw, self.mid, self.alarm),
            f"{src} sent {_human_bytes(b)} to {dst}, {b / peak:.0f}x its recent peak of "
            f"{_human_bytes(peak)}",
            raw,
        )

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"min_history": 5, "warmup_seconds": 0.0, "max_entities": 50}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import make_event, network_traffic

        normal = network_traffic(seed, n=4_000, rate=4_000 / 100_000)  # ~28 hours
        t0 = normal[-1]["_ts"] + 10
        attack = [
            make_event("network", _ts=t0 + i * 30, src_ip="10.1.0.12", dst_ip="203.0.113.66",
                       dst_port=443, protocol="tcp", bytes_out=400_000_000 + i,
                       bytes_in=20_000, duration_ms=90_000)
            for i in range(3)
        ]
        return normal, attack


class Beaconing(Detector):
    """A source contacting one external address at a steady period (command-and-control).

    For each (``src_ip``, ``dst_ip``) pair, counts consecutive small flows whose spacing
    stays within ``tolerance`` of the run's mean interval, for intervals between
    ``min_period`` and ``max_period`` seconds. Irregular browsing breaks the run at once;
    infrastructure sync (internal destinations, ``ignore_ports`` such as NTP and DNS) is
    not considered.

    Parameters
    ----------
    mid
        Regularly spaced contacts scoring 0.5.
    alarm
        Regularly spaced contacts scoring 0.9.
    tolerance
        Largest relative deviation of an interval from the run's mean that still
        continues the run.
    min_period
        Shortest interval (seconds) considered beacon-like.
    max_period
        Longest interval (seconds) considered beacon-like.
    max_flow_bytes
        Larger flows (``bytes_out``) are not beacons and are ignored.
    ignore_ports
        Destination ports whose periodic traffic is infrastructure (NTP, DNS).
    internal_networks
        CIDRs counted as internal; periodic traffic to them is ignored.
    max_entities
        Most (source, destination) pairs tracked at once.
    ttl_seconds
        A pair idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Beaconing()
    >>> beats = [make_event("network", src_ip="10.1.0.9", dst_ip="203.0.113.7",
    ...                     bytes_out=300, _ts=START + 120 * i + (i % 3))
    ...          for i in range(14)]
    >>> s = feed(det, beats)[-1]
    >>> round(s.score, 3), s.reason
    (0.949, '10.1.0.9 contacted 203.0.113.7 14 times every 120 s (jitter 2.5%)')
    >>> ntp = [make_event("network", src_ip="10.1.0.9", dst_ip="10.0.0.123", dst_port=123,
    ...                   protocol="udp", bytes_out=76, _ts=START + 64 * i)
    ...        for i in range(30)]
    >>> max(s.score for s in feed(det, ntp))
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "beaconing"

    def __init__(
        self,
        mid: float = 6.0,
        alarm: float = 12.0,
        tolerance: float = 0.1,
        min_period: float = 10.0,
        max_period: float = 3_600.0,
        max_flow_bytes: int = 100_000,
        ignore_ports: tuple[int, ...] = (53, 123),
        internal_networks: tuple[str, ...] = INTERNAL_NETWORKS,
        max_entities: int = 200_000,
        ttl_seconds: float = 2 * 3_600.0,
    ) -> None:
        _check_mid_alarm(mid, alarm)
        if not 0 < tolerance < 1 or not 0 < min_period < max_period:
            raise ValueError("need 0 < tolerance < 1 and 0 < min_period < max_period")
        self.mid = mid
        self.alarm = alarm
        self.tolerance = tolerance
        self.min_period = min_period
        self.max_period = max_period
        self.max_flow_bytes = max_flow_bytes
        self.ignore_ports = tuple(ignore_ports)
        self._ignore = frozenset(self.ignore_ports)
        self.internal_networks = tuple(internal_networks)
        _networks(self.internal_networks)
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # "src>dst" -> [last contact, mean interval of the run, intervals in run, max dev]
        self.pairs: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)

    def _relevant(self, event: Mapping[str, Any]) -> bool:
        return (
            event["bytes_out"] <= self.max_flow_bytes
            and event["dst_port"] not in self._ignore
            and not _is_internal(event["dst_ip"], self.internal_networks)
        )

    def _advance(self, st: list[float] | None, now: float) -> list[float] | None:
        """The pair's state after a contact at ``now`` (a new list; ``st`` is untouched).

        None when the contact leaves the state as it is (a duplicate or late event).
        """
        if st is None:
            return [now, 0.0, 0, 0.0]
        last, ref, run, dev_max = st
        dt = now - last
        if dt <= 0.0:
            return None
        if not self.min_period <= dt <= self.max_period:
            return [now, 0.0, 0, 0.0]
        if run == 0:
            return [now, dt, 1, 0.0]
        dev = abs(dt - ref) / ref
        if dev > self.tolerance:
            return [now, dt, 1, 0.0]  # this interval starts a new run
        run += 1
        return [now, ref + (dt - ref) / run, run, max(dev_max, dev)]

    def learn_one(self, event: Mapping[str, Any]) -> None:
        if not self._relevant(event):
            return
        key = f"{event['src_ip']}>{event['dst_ip']}"
        now = event["_ts"]
        new = self._advance(self.pairs.get(key), now)
        st = self.pairs.setdefault(key, now, list)
        if new is not None:
            st[:] = new

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if not self._relevant(event):
            return NORMAL
        src, dst = event["src_ip"], event["dst_ip"]
        new = self._advance(self.pairs.get(f"{src}>{dst}"), event["_ts"])
        if new is None or new[2] < 2:
            return NORMAL
        contacts = new[2] + 1
        return Score(
            logistic(contacts, self.mid, self.alarm),
            f"{src} contacted {dst} {contacts:.0f} times every {new[1]:.0f} s "
            f"(jitter {100 * new[3]:.1f}%)",
            float(contacts),
        )

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"tolerance": 0.05, "max_entities": 50}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import START, make_event, merge, network_traffic

        rng = random.Random(seed)
        normal = network_traffic(seed, n=6_000, rate=2.0)  # 50 minutes
        period = rng.uniform(60, 300)
        t, attack = START + 3_000 + 5, []
        for _ in range(16):
            # Each interval is the period with up to 3 % jitter (docs/threats.md).
            t += period * rng.uniform(0.97, 1.03)
            attack.append(
                make_event("network", _ts=t, src_ip="10.1.0.13", dst_ip="203.0.113.99",
                           dst_port=8443, protocol="tcp", bytes_out=420, bytes_in=180,
                           duration_ms=40)
            )
        # Mixed with the same hosts' ordinary browsing, which must not break the run.
        tail = network_traffic(seed + 1, n=int(t - START - 3_000) * 2, start=START + 3_000,
                               rate=2.0)
        return normal, merge(attack, tail)


class FlowHalfSpace(Detector):
    """Flows whose shape is rare among all flows (river ``HalfSpaceTrees``).

    Each flow becomes features in [0, 1]: how far its log bytes out, log bytes in and
    log duration sit from the usual for its *service* (protocol and port class: DNS, NTP,
    web, other well-known, registered, ephemeral), squashed with ``tanh``; plus its
    global log bytes out, log duration and protocol. Half-space trees score how empty
    the region around the flow is. Trees saturate (every rare region scores about the
    same), so flows deviating from their service by more than ``deviation_cap``
    standard deviations add ``0.1`` per extra deviation to the raw score: DNS
    tunnelling (UDP 53 moving hundreds of kB over a minute, 20+ deviations from normal
    DNS) stands far above a rare-but-benign flow, while a large HTTPS download is large
    but ordinary for web traffic.

    The raw score has no fixed scale, so it is ranked among the raw scores of recent
    flows (:class:`~watchfloor.detectors.calibration.StreamingQuantile`) and mapped
    with :func:`~watchfloor.detectors.calibration.tail_score`: 0.9 means about one flow
    in ``1 / alarm_tail`` is as unusual. Scores are 0 until ``warmup`` flows were
    learnt. Flows scoring at or above the alarm point are not added to the calibration
    sample, so an ongoing attack does not calibrate itself away. State is global (a few
    dozen service statistics, the trees, the calibration sample), not per entity, so it
    is bounded by construction.

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
        self.model = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self.calibration = StreamingQuantile(calibration_size, seed)
        # service key -> [flows, mean, var] x (log out, log in, log duration); at most
        # 4 protocols x 6 port classes = 24 keys, whatever the traffic.
        self.services: dict[str, list[float]] = {}
        self.n = 0
        # The engine scores an event and then learns it: learn_one reuses score_one's
        # features and tree score for that same event object instead of recomputing them
        # (the trees are most of this detector's cost). Not part of the state.
        self._last: tuple[Mapping[str, Any], dict[str, float], float, float] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_last", None)

    # log1p scales: 1e11 bytes and 1e7 ms (~3 h) map to 1.0.
    _LB = 1.0 / math.log1p(1e11)
    _LD = 1.0 / math.log1p(1e7)
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

    @staticmethod
    def _logs(event: Mapping[str, Any]) -> tuple[float, float, float]:
        dur = max(float(event["duration_ms"]), 0.0)
        return math.log1p(event["bytes_out"]), math.log1p(event["bytes_in"]), math.log1p(dur)

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
            "z_dur": 0.5 + 0.5 * math.tanh(zs[2] / 8.0),
            "out": min(logs[0] * self._LB, 1.0),
            "dur": min(logs[2] * self._LD, 1.0),
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
