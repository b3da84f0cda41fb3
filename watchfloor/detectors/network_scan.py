"""Port scans of every shape: vertical, horizontal and block, one detection per episode."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import logistic
from watchfloor.detectors.netflow import ANSWER, PROBE, WindowSet, check_mid_alarm, flow_kind
from watchfloor.detectors.sites import is_multicast_or_broadcast

__all__ = ["PortScan"]


class PortScan(Detector):
    """A source probing many ports on a host (vertical) or one port on many hosts
    (horizontal), or both (block).

    Each flow is classified by :func:`~watchfloor.detectors.netflow.flow_kind` from its
    connection state, TCP flags or packet counts when the record has them, and by size
    otherwise: a *probe* moved no real data (unanswered, rejected, reset, handshake only),
    an *answer* is the record's source responding (SYN-ACK or RST backscatter, a server
    port replying to a client port) and is ignored. Within ``window_seconds`` the detector
    counts, per (source, destination), the distinct ports probed (vertical) and, per
    (source, port), the distinct hosts probed (horizontal). Counting per destination keeps
    a P2P client or a NAT gateway, reaching thousands of peers but a port or two on each,
    low on the vertical count; their horizontal count is discounted by the share of the
    hosts they reached with real data (``(1 - share) ** 4``, the larger of that port's
    share and the source's overall share), so a scanner's probes count fully and a client
    whose peers mostly answer with payloads counts for little. A block scan (a few ports
    on each of a block of hosts) is counted as probed (host, port) pairs, scoring 0.5 at
    ``2 * mid`` and 0.9 at ``2 * alarm`` pairs, when ports repeat across hosts: the pairs
    over ``sqrt(hosts * ports)`` is about 1 for a P2P client (each peer on its own port)
    and counts from 2 to 5 upward.

    One detection per scan episode: once a source reaches the alarm point it is in an
    episode, and its further probes score at most ``mid``'s 0.5 (reason "continuing")
    until it has sent no probe for ``episode_gap_seconds``. The reason gives the scan's
    size when it is detected.

    Parameters
    ----------
    window_seconds
        Sliding event-time window in which distinct ports and hosts are counted.
    mid
        Distinct ports on one host, or hosts on one port, scoring 0.5.
    alarm
        Distinct ports on one host, or hosts on one port, scoring 0.9.
    probe_max_bytes
        Without a connection state, flows moving more bytes (both directions) are real
        connections, not probes.
    episode_gap_seconds
        A source that sent no probe for this long has ended its scan episode; its next
        scan is detected again.
    max_members
        Most ports (per source and host) or hosts (per source and port) remembered.
    max_entities
        Most (source, host), (source, port) and source entries tracked, each.
    ttl_seconds
        An entry idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = PortScan()
    >>> nmap = [make_event("network", src_ip="10.0.0.5", dst_ip="10.2.0.9",
    ...                    dst_port=1000 + i, bytes_out=60, bytes_in=0, duration_ms=2,
    ...                    _ts=START + i) for i in range(47)]
    >>> got = feed(det, nmap)
    >>> [i for i, s in enumerate(got) if s.score >= 0.9], got[24].reason
    ([24], '10.0.0.5 probed 25 ports on 10.2.0.9 in 300 s (vertical scan)')
    >>> got[-1].score, got[-1].reason
    (0.5, '10.0.0.5 continuing scan episode (47 probes so far)')
    >>> sweep = [make_event("network", src_ip="10.0.0.6", dst_ip=f"10.3.0.{i}", dst_port=23,
    ...                     conn_state="S0", bytes_out=0, bytes_in=0, _ts=START + i / 2)
    ...          for i in range(1, 123)]
    >>> hit = next(s for s in feed(det, sweep) if s.score >= 0.9)
    >>> hit.reason
    '10.0.0.6 probed port 23 on 25 hosts in 300 s (horizontal scan)'
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "port_scan"

    _ALARM_SCORE = 0.9

    def __init__(
        self,
        window_seconds: float = 300.0,
        mid: float = 10.0,
        alarm: float = 25.0,
        probe_max_bytes: int = 1_000,
        episode_gap_seconds: float = 900.0,
        max_members: int = 512,
        max_entities: int = 50_000,
        ttl_seconds: float = 3_600.0,
    ) -> None:
        check_mid_alarm(mid, alarm)
        if window_seconds <= 0 or max_members < 1 or episode_gap_seconds < 0:
            raise ValueError("window_seconds and max_members must be positive")
        self.window_seconds = window_seconds
        self.mid = mid
        self.alarm = alarm
        self.probe_max_bytes = probe_max_bytes
        self.episode_gap_seconds = episode_gap_seconds
        self.max_members = max_members
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # "src>dst" -> ports; "src|port" -> hosts; src -> hosts (any port, for the share
        # of real connections); src -> [episode start, last probe, probes in episode].
        self.by_dst: EntityTable[WindowSet] = EntityTable(max_entities, ttl_seconds)
        self.by_port: EntityTable[WindowSet] = EntityTable(max_entities, ttl_seconds)
        self.by_src: EntityTable[WindowSet] = EntityTable(max_entities, ttl_seconds)
        self.episodes: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)
        # src -> probed (host, port) pairs; src -> probed ports (block scans).
        self.block_pairs: EntityTable[WindowSet] = EntityTable(max_entities, ttl_seconds)
        self.block_ports: EntityTable[WindowSet] = EntityTable(max_entities, ttl_seconds)

    def _kind(self, event: Mapping[str, Any]) -> int:
        if is_multicast_or_broadcast(event["dst_ip"]):
            return ANSWER  # discovery protocols: not aimed at a host, never a scan
        return flow_kind(event, self.probe_max_bytes)

    @staticmethod
    def _discount(n_probe: int, n_real: int) -> float:
        total = n_probe + n_real
        return (n_probe / total) ** 4 if total else 1.0

    def _verdict(
        self, event: Mapping[str, Any], v: tuple[int, int], h: tuple[int, int],
        s: tuple[int, int], bp: tuple[int, int], ports: int,
    ) -> tuple[float, float, str]:
        """(score, raw count, reason) from the vertical, horizontal, source and block
        counts."""
        src_share = self._discount(*s)
        eff_v = v[0] * self._discount(*v)
        eff_h = h[0] * min(self._discount(*h), src_share)
        sv = logistic(eff_v, self.mid, self.alarm)
        sh = logistic(eff_h, self.mid, self.alarm)
        # Block: the probed (host, port) pairs, when ports repeat across hosts and hosts
        # across ports (pairs / sqrt(hosts * ports) is about 1 for a P2P client, whose
        # every peer has its own port, and sqrt(pairs) for a dense block).
        # Discounted by the share of pairs (not hosts) that moved data: a block scan finds
        # an open port on many of its hosts, but only one of their ports.
        pairs, hosts = bp[0], max(s[0] + s[1], 1)
        density = pairs / math.sqrt(hosts * max(ports, 1))
        eff_b = pairs * min(max((density - 2.0) / 3.0, 0.0), 1.0) * self._discount(*bp)
        sb = logistic(eff_b, 2 * self.mid, 2 * self.alarm)
        src, w = event["src_ip"], f"{self.window_seconds:g}"
        if sb > max(sv, sh):
            return sb, float(pairs), (
                f"{src} probed {pairs} (host, port) pairs: {ports} ports on {hosts} hosts "
                f"in {w} s (block scan)"
            )
        if sv >= 0.5 and sh >= 0.5:
            shape = "block scan"
        else:
            shape = "vertical scan" if sv >= sh else "horizontal scan"
        if sv >= sh:
            return sv, float(v[0]), (
                f"{src} probed {v[0]} ports on {event['dst_ip']} in {w} s ({shape})"
            )
        return sh, float(h[0]), (
            f"{src} probed port {event['dst_port']} on {h[0]} hosts in {w} s ({shape})"
        )

    def _in_episode(self, src: str, now: float) -> list[float] | None:
        ep = self.episodes.get(src)
        if ep is not None and now - ep[1] <= self.episode_gap_seconds:
            return ep
        return None

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if self._kind(event) != PROBE:
            return NORMAL
        src, dst, port, now = event["src_ip"], event["dst_ip"], event["dst_port"], event["_ts"]
        ep = self._in_episode(src, now)
        if ep is not None:
            return Score(0.5, f"{src} continuing scan episode ({ep[2] + 1:.0f} probes so far)",
                         ep[2] + 1)
        vd, hd, sd = (self.by_dst.get(f"{src}>{dst}"), self.by_port.get(f"{src}|{port}"),
                      self.by_src.get(src))
        v = vd.preview(port, False, now) if vd is not None else (1, 0)
        if v[0] < 2 and hd is None:
            return NORMAL  # the common case: a first probe, nothing to count yet
        h = hd.preview(dst, False, now) if hd is not None else (1, 0)
        s = sd.preview(dst, False, now) if sd is not None else (1, 0)
        pd, qd = self.block_pairs.get(src), self.block_ports.get(src)
        bp = pd.preview((dst, port), False, now) if pd is not None else (1, 0)
        ports = qd.preview(port, False, now)[0] if qd is not None else 1
        score, raw, reason = self._verdict(event, v, h, s, bp, ports)
        if score < 0.1:
            return NORMAL
        return Score(score, reason, raw)

    def _set(self, table: EntityTable[WindowSet], key: str, now: float) -> WindowSet:
        return table.setdefault(key, now, lambda: WindowSet(self.window_seconds, self.max_members))

    def learn_one(self, event: Mapping[str, Any]) -> None:
        kind = self._kind(event)
        if kind == ANSWER:
            return
        src, dst, port, now = event["src_ip"], event["dst_ip"], event["dst_port"], event["_ts"]
        real = kind != PROBE
        if real:
            # Real connections only matter as the share of a prober's traffic: update the
            # sets of a source that probed, create nothing (most flows end here, cheaply).
            for table, key, member in ((self.by_dst, f"{src}>{dst}", port),
                                       (self.by_src, src, dst),
                                       (self.by_port, f"{src}|{port}", dst),
                                       (self.block_pairs, src, (dst, port))):
                w = table.get(key)
                if w is not None:
                    w.add(member, True, now)
                    table.setdefault(key, now, list)  # mark it seen
            return
        vd = self._set(self.by_dst, f"{src}>{dst}", now)
        vd.add(port, real, now)
        sd = self._set(self.by_src, src, now)
        sd.add(dst, real, now)
        hd = self._set(self.by_port, f"{src}|{port}", now)
        hd.add(dst, real, now)
        ep = self._in_episode(src, now)
        if ep is not None:
            ep[1] = max(ep[1], now)
            ep[2] += 1
            self.episodes.setdefault(src, now, list)
            return

        pd = self._set(self.block_pairs, src, now)
        pd.add((dst, port), False, now)
        qd = self._set(self.block_ports, src, now)
        qd.add(port, False, now)

        def counts(w: WindowSet) -> tuple[int, int]:
            return len(w) - w.n_real, w.n_real

        score, raw, _ = self._verdict(event, counts(vd), counts(hd), counts(sd), counts(pd),
                                      len(qd))
        if score >= self._ALARM_SCORE:
            self.episodes.put(src, now, [now, now, raw])

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"window_seconds": 30.0, "max_entities": 50, "max_members": 64}

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
