"""Volume detectors: exfiltration (one source sending far more than it and its peers do)
and flood (one destination receiving far more flows than it usually does)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import StreamingQuantile, logistic
from watchfloor.detectors.netflow import check_mid_alarm, human_bytes
from watchfloor.detectors.sites import DEFAULT_INTERNAL, check_networks, is_internal, subnet_of

__all__ = ["Exfiltration", "Flood"]


class Exfiltration(Detector):
    """A source sending far more to an external address than it, or its peers, ever do.

    Remembers per source, per peer group (the source's /24, or /64 for IPv6) and for the
    whole population the largest ``bytes_out`` of one flow to an external address: the
    source's and the group's as peaks decaying with a ``half_life_seconds`` half-life,
    the population's as the ``population_quantile`` of recent flows. The reference a
    flow is judged against is the source's own peak once it has ``min_history`` external
    flows; before that a geometric blend of its own peak and its group's (or, for a
    group with fewer than ``min_history`` flows, the population's), weighted by how much
    history it has. So a source without history is judged on its first hour against its
    peers: a workstation that sent kilobytes and now sends gigabytes alerts on a fresh
    deployment, while a backup server whose subnet holds other backup servers does not.
    The reference is never below the source's own peak (what it did before is its
    normal), ``peak_floor``, or a tenth of the group reference (a host may do what its
    peers do). The score is ``log10(bytes_out / reference)``.

    A destination the source already used ``known_flows`` times is a service it relies
    on (its backup target, its cloud drive): the reference is ``known_slack`` times
    larger there; exfiltration goes to an address new to the source. The first flow ever
    seen from a source is not judged (nothing is known of what it did before). A destination a
    peer of the source sent as much to is the group's (a fleet of backup servers
    uploading to one target): the reference is at least a tenth of that. Flows scored at
    or above the alarm point are not learnt into the group and population references
    (one exfiltration must not hide the next one from a neighbour sending elsewhere);
    the source's own peak does learn them, so a new nightly job alerts once.

    Parameters
    ----------
    min_bytes
        Flows sending less are never scored.
    mid
        Orders of magnitude (log10) above the reference scoring 0.5.
    alarm
        Orders of magnitude above the reference scoring 0.9.
    half_life_seconds
        Half-life of the remembered source and group peaks.
    min_history
        External flows after which a source (or group) is judged by its own peak alone.
    peak_floor
        Smallest reference used (bytes).
    population_quantile
        Quantile of recent external flow sizes used as the population reference.
    known_flows
        Earlier flows to a destination that make it one the source uses.
    known_slack
        Factor on the reference for a destination the source uses.
    internal_networks
        CIDRs counted as internal (the site's ranges); flows to them are never scored.
    max_entities
        Most sources (and groups) tracked at once.
    ttl_seconds
        A source idle this long (event time) is forgotten.
    seed
        Seed of the population sample.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Exfiltration()
    >>> web = [make_event("network", src_ip=f"10.1.0.{10 + i % 30}", dst_ip="198.51.100.4",
    ...                   bytes_out=2_000 + 97 * i, _ts=START + 10 * i) for i in range(300)]
    >>> _ = feed(det, web)  # 50 minutes of a fresh deployment: browsing only
    >>> fresh = [make_event("network", src_ip="10.1.0.77", dst_ip="203.0.113.50",
    ...                     bytes_out=b, _ts=START + 3_000 + i)
    ...          for i, b in enumerate((4_000, 9_000, 2_000_000_000))]
    >>> s = feed(det, fresh)[-1]
    >>> round(s.score, 3)
    0.999
    >>> print(s.reason)  # doctest: +NORMALIZE_WHITESPACE
    10.1.0.77 sent 2 GB to 203.0.113.50, 20000x its reference of 100 kB
    (peer group 10.1.0.0/24)
    >>> usual = make_event("network", src_ip="10.1.0.7", bytes_out=30_000_000,
    ...                    dst_ip="10.9.9.9", _ts=START + 3_100)
    >>> det.score_one(usual).score   # internal destination
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "exfiltration"

    def __init__(
        self,
        min_bytes: int = 1_000_000,
        mid: float = 1.0,
        alarm: float = 2.0,
        half_life_seconds: float = 7 * 86_400.0,
        min_history: int = 20,
        peak_floor: float = 100_000.0,
        population_quantile: float = 0.999,
        known_flows: int = 3,
        known_slack: float = 100.0,
        internal_networks: tuple[str, ...] = DEFAULT_INTERNAL,
        max_entities: int = 100_000,
        ttl_seconds: float = 14 * 86_400.0,
        seed: int = 0,
    ) -> None:
        check_mid_alarm(mid, alarm)
        if half_life_seconds <= 0 or peak_floor <= 0 or min_history < 1:
            raise ValueError("half_life_seconds, peak_floor and min_history must be positive")
        if not 0.5 <= population_quantile < 1:
            raise ValueError("population_quantile must be in [0.5, 1)")
        self.min_bytes = min_bytes
        self.mid = mid
        self.alarm = alarm
        self.half_life_seconds = half_life_seconds
        self.min_history = min_history
        self.peak_floor = peak_floor
        self.population_quantile = population_quantile
        if known_flows < 1 or known_slack < 1:
            raise ValueError("known_flows and known_slack must be at least 1")
        self.known_flows = known_flows
        self.known_slack = known_slack
        self.internal_networks = check_networks(tuple(internal_networks))
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self.seed = seed
        # src_ip / "net:<subnet>" -> [peak bytes_out, time of peak, external flows seen]
        self.peaks: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)
        self.groups: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)
        self.population = StreamingQuantile(1_024, seed)
        # "src>dst" -> external flows the source sent there; "subnet>dst" -> [peak, time,
        # flows] of what the source's peers sent there (every flow, alarming or not).
        self.pairs: EntityTable[list[int]] = EntityTable(max_entities, ttl_seconds)
        self.group_dst: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)

    def _peak(self, st: list[float], now: float) -> float:
        return st[0] * 0.5 ** (max(now - st[1], 0.0) / self.half_life_seconds)

    def _reference(self, src: str, now: float) -> tuple[float, str]:
        """(bytes a flow is judged against, what it is)."""
        pop = self.population
        p_ref = pop.quantile(self.population_quantile) if len(pop) >= 50 else self.peak_floor
        net = subnet_of(src)
        g = self.groups.get(net)
        if g is not None and g[2] >= self.min_history:
            g_ref, what = self._peak(g, now), f"peer group {net}"
        else:
            g_ref, what = p_ref, "population"
        g_ref = max(g_ref, self.peak_floor)
        st = self.peaks.get(src)
        own, n = (self._peak(st, now), st[2]) if st is not None else (0.0, 0.0)
        w = min(n / self.min_history, 1.0)
        ref = math.exp(w * math.log(max(own, self.peak_floor)) + (1 - w) * math.log(g_ref))
        if w >= 1.0:
            what = "recent peak"
        if own >= ref:
            return own, "recent peak"  # it did this before: its own normal
        return max(ref, g_ref / 10.0, self.peak_floor), what

    def _score(self, event: Mapping[str, Any]) -> Score:
        b = event["bytes_out"]
        if b < self.min_bytes or is_internal(event["dst_ip"], self.internal_networks):
            return NORMAL
        src, dst, now = event["src_ip"], event["dst_ip"], event["_ts"]
        ref, what = self._reference(src, now)
        seen = self.pairs.get(f"{src}>{dst}")
        if seen is not None and seen[0] >= self.known_flows:
            ref, what = ref * self.known_slack, f"{what}; a destination it uses"
        elif src not in self.peaks:
            # Its first flow ever seen: what it did before the sensor saw it is unknown
            # (a server switched on for its nightly job): no "then" to compare "now" with.
            return NORMAL
        peers = self.group_dst.get(f"{subnet_of(src)}>{dst}")
        if peers is not None and self._peak(peers, now) / 10.0 > ref:
            ref, what = self._peak(peers, now) / 10.0, "what its peers send there"
        raw = math.log10(b / ref)
        score = logistic(raw, self.mid, self.alarm)
        if score < 0.1:
            return NORMAL
        of = "its recent peak" if what == "recent peak" else "its reference"
        suffix = "" if what == "recent peak" else f" ({what})"
        return Score(
            score,
            f"{src} sent {human_bytes(b)} to {dst}, {b / ref:.0f}x {of} of "
            f"{human_bytes(ref)}{suffix}",
            raw,
        )

    def score_one(self, event: Mapping[str, Any]) -> Score:
        return self._score(event)

    def _learn_peak(self, table: EntityTable[list[float]], key: str, b: float,
                    now: float) -> None:
        st = table.setdefault(key, now, lambda: [0.0, now, 0])
        if b >= self._peak(st, now):
            st[0], st[1] = float(b), now
        st[2] += 1

    def learn_one(self, event: Mapping[str, Any]) -> None:
        if is_internal(event["dst_ip"], self.internal_networks):
            return
        now, b, src = event["_ts"], event["bytes_out"], event["src_ip"]
        alarming = b >= self.min_bytes and self._score(event).score >= 0.9
        self._learn_peak(self.peaks, src, b, now)
        dst = event["dst_ip"]
        self.pairs.setdefault(f"{src}>{dst}", now, lambda: [0])[0] += 1
        self._learn_peak(self.group_dst, f"{subnet_of(src)}>{dst}", b, now)
        if alarming:
            return
        self._learn_peak(self.groups, subnet_of(src), b, now)
        self.population.update(float(b))

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"min_history": 5, "max_entities": 50}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import make_event, network_traffic

        normal = network_traffic(seed, n=4_000, rate=4_000 / 3_600)  # one hour, fresh
        t0 = normal[-1]["_ts"] + 10
        attack = [
            make_event("network", _ts=t0 + i * 30, src_ip="10.1.0.12", dst_ip="203.0.113.66",
                       dst_port=443, protocol="tcp", bytes_out=400_000_000 + i,
                       bytes_in=20_000, duration_ms=90_000)
            for i in range(3)
        ]
        return normal, attack


class Flood(Detector):
    """One destination receiving far more flows than it usually does (DoS, DDoS).

    Counts the flows each ``dst_ip`` receives per ``bucket_seconds`` and keeps an
    exponentially weighted mean of its per-bucket counts (empty buckets included). A
    bucket's running count is judged against ``max(mean, floor_flows)``: the score is
    ``log10(count / reference)``, so ``alarm`` = 1.0 means ten times the usual; below
    ``min_flows`` in a bucket, or below ``min_share`` of all the flows a bucket usually
    holds (on a network of 10,000 flows a minute, 2,000 for one destination), it stays
    under 0.5 whatever the ratio. Nothing
    is scored during the first ``warmup_seconds`` of the stream (every destination is new
    then). Buckets at or above the alarm point are learnt as the reference, not as their
    count (a flood must not become the baseline). One detection per flood episode: later
    flows score at most 0.5 until a bucket ends below ``mid``.

    The detection is about the destination (the victim); the reason names the flood's
    rate and the detection links its heaviest sources (up to ``name_sources``, counted
    per bucket once a destination is busy, Misra-Gries style so a DDoS from thousands of
    addresses keeps a bounded list). Flows from one source or many count the same.

    Parameters
    ----------
    bucket_seconds
        Length of a counting bucket (event time).
    mid
        log10 of count over reference scoring 0.5.
    alarm
        log10 of count over reference scoring 0.9.
    floor_flows
        Smallest reference (flows per bucket).
    min_flows
        Fewest flows in a bucket that can be a flood.
    min_share
        Smallest share of the usual flows per bucket (all destinations) that can be a
        flood.
    memory_buckets
        Effective number of buckets the mean follows.
    warmup_seconds
        Event time after the first flow during which nothing is scored.
    name_sources
        Most sources a detection names (0: none).
    max_entities
        Most destinations tracked at once.
    ttl_seconds
        A destination idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event, merge
    >>> from watchfloor.detectors.testkit import network_traffic
    >>> det = Flood()
    >>> _ = feed(det, network_traffic(seed=1, n=6_000, rate=5.0))  # 20 minutes
    >>> t0 = START + 1_300
    >>> syn = [make_event("network", src_ip=f"198.51.100.{i % 200}", dst_ip="10.0.0.80",
    ...                   dst_port=80, bytes_out=60, bytes_in=0, _ts=t0 + i * 0.02)
    ...        for i in range(3_000)]
    >>> got = feed(det, syn)
    >>> [i for i, s in enumerate(got) if s.score >= 0.9], got[54].reason
    ([54], '10.0.0.80 received 55 flows in 60 s, 11x its usual 5')
    >>> named = got[54].entities  # the flood's sources (a bounded few of the 200)
    >>> 0 < len(named) <= 8, all(ip.startswith("198.51.100.") for ip in named)
    (True, True)
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "dst_ip")
    kind: ClassVar[str] = "flood"

    def __init__(
        self,
        bucket_seconds: float = 60.0,
        mid: float = 0.5,
        alarm: float = 1.0,
        floor_flows: float = 5.0,
        min_flows: int = 30,
        min_share: float = 0.2,
        memory_buckets: int = 60,
        warmup_seconds: float = 600.0,
        name_sources: int = 8,
        max_entities: int = 100_000,
        ttl_seconds: float = 86_400.0,
    ) -> None:
        check_mid_alarm(mid, alarm)
        if name_sources < 0:
            raise ValueError("name_sources must be >= 0")
        if bucket_seconds <= 0 or floor_flows < 1 or memory_buckets < 1:
            raise ValueError("bucket_seconds, floor_flows and memory_buckets must be positive")
        self.bucket_seconds = bucket_seconds
        self.mid = mid
        self.alarm = alarm
        self.floor_flows = floor_flows
        self.min_flows = min_flows
        if not 0 <= min_share <= 1:
            raise ValueError("min_share must be in [0, 1]")
        self.min_share = min_share
        # All flows seen per bucket: [bucket, flows in it, mean per bucket, buckets].
        self.total = [0.0, 0.0, 0.0, 0.0]
        self.memory_buckets = memory_buckets
        self.warmup_seconds = warmup_seconds
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self.first_ts = math.inf
        # dst_ip -> [bucket index, flows in it, mean flows per bucket, in episode (0/1),
        #           buckets closed]
        self.dsts: EntityTable[list[float]] = EntityTable(max_entities, ttl_seconds)
        self.name_sources = name_sources
        # Busy destinations only: dst_ip -> (bucket, {src_ip: flows}), at most
        # 2 * name_sources sources each (Misra-Gries: the heavy ones survive).
        self.heavy: EntityTable[tuple[float, dict[str, int]]] = EntityTable(
            max(1, max_entities // 10), ttl_seconds
        )

    def _rolled(self, st: list[float], bucket: float) -> tuple[float, float, float]:
        """(count, mean, episode) once the state is moved to ``bucket``."""
        cur, count, mean, episode, n = st
        if bucket <= cur:
            return count, mean, episode
        # Exact mean of the first buckets, then exponential forgetting.
        a = 1.0 / min(n + 1.0, self.memory_buckets)
        ref = max(mean, self.floor_flows)
        ratio = math.log10(max(count, 1.0) / ref)
        # A bucket that raised the alarm is not the baseline (a flood must not become
        # normal); during warm-up everything is learnt.
        learnt = ref if episode and ratio >= self.mid else count
        mean += a * (learnt - mean)
        gap = min(bucket - cur - 1, 10 * self.memory_buckets)
        mean *= (1.0 - a) ** gap  # empty buckets in between
        if ratio < self.mid:
            episode = 0.0
        return 0.0, mean, episode

    def _verdict(self, event: Mapping[str, Any]) -> tuple[float, float, float, float]:
        """(score, count, reference, episode) after this flow."""
        now = event["_ts"]
        bucket = math.floor(now / self.bucket_seconds)
        st = self.dsts.get(event["dst_ip"])
        count, mean, episode = self._rolled(st, bucket) if st is not None else (0.0, 0.0, 0.0)
        count += 1
        ref = max(mean, self.floor_flows)
        score = logistic(math.log10(count / ref), self.mid, self.alarm)
        if count < max(self.min_flows, self.min_share * self.total[2]):
            score = min(score, 0.49)  # a quiet host's few dozen flows are no flood
        return score, count, ref, episode

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if event["_ts"] < self.first_ts + self.warmup_seconds:
            return NORMAL
        score, count, ref, episode = self._verdict(event)
        if score < 0.5:
            return NORMAL
        dst = event["dst_ip"]
        if episode:
            return Score(0.5, f"{dst} flood continuing ({count:.0f} flows this bucket)",
                         math.log10(count / ref))
        return Score(
            score,
            f"{dst} received {count:.0f} flows in {self.bucket_seconds:g} s, "
            f"{count / ref:.0f}x its usual {ref:.0f}",
            math.log10(count / ref),
            self._sources(dst, math.floor(event["_ts"] / self.bucket_seconds)),
        )

    def _sources(self, dst: str, bucket: float) -> tuple[str, ...]:
        """The heaviest sources of ``dst`` this bucket, heaviest first."""
        h = self.heavy.get(dst)
        if h is None or h[0] != bucket:
            return ()
        ranked = sorted(h[1].items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(src for src, _ in ranked[: self.name_sources])

    def _count_source(self, event: Mapping[str, Any], bucket: float, now: float) -> None:
        dst = event["dst_ip"]
        h = self.heavy.get(dst)
        if h is None or h[0] != bucket:
            h = (bucket, {})
            self.heavy.put(dst, now, h)
        counts, src = h[1], event["src_ip"]
        if src in counts:
            counts[src] += 1
        elif len(counts) < 2 * self.name_sources:
            counts[src] = 1
        else:  # Misra-Gries: every count loses one, the emptied are dropped
            for k in [k for k, n in counts.items() if n <= 1]:
                del counts[k]
            for k in counts:
                counts[k] -= 1

    def learn_one(self, event: Mapping[str, Any]) -> None:
        now = event["_ts"]
        if now < self.first_ts:
            self.first_ts = now
        scored = now >= self.first_ts + self.warmup_seconds
        tot, b = self.total, math.floor(now / self.bucket_seconds)
        if b > tot[0]:
            if tot[3]:  # close the bucket (a gap of empty buckets counts as zeros)
                a = 1.0 / min(tot[3] + 1.0, self.memory_buckets)
                tot[2] += a * (tot[1] - tot[2])
                tot[2] *= (1.0 - a) ** min(b - tot[0] - 1, 10 * self.memory_buckets)
            tot[:] = [b, 0.0, tot[2], tot[3] + 1.0]
        tot[1] += 1.0
        score, count, _, episode = self._verdict(event)
        bucket = math.floor(now / self.bucket_seconds)
        # A destination first seen during warm-up learns its mean exactly from its first
        # buckets (a busy server is busy from the start); one first seen later starts
        # from zero and adapts slowly, so a flood on a new target is not its own baseline.
        n0 = 0.0 if not scored else float(self.memory_buckets)
        st = self.dsts.setdefault(event["dst_ip"], now, lambda: [bucket, 0.0, 0.0, 0.0, n0])
        if bucket < st[0]:
            return  # a late flow of a closed bucket: too late to count
        _, mean, _ = self._rolled(st, bucket)
        alarmed = 1.0 if episode or (scored and score >= 0.9) else 0.0
        n = st[4] + (1.0 if bucket > st[0] else 0.0)
        st[:] = [bucket, count, mean, alarmed, n]
        # Sources are counted from half the smallest flood on: quiet destinations (nearly
        # all of them) never hold a source list.
        if self.name_sources and 2 * count >= self.min_flows:
            self._count_source(event, bucket, now)

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"bucket_seconds": 10.0, "max_entities": 50}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import make_event, network_traffic

        rng = random.Random(seed)
        normal = network_traffic(seed, n=6_000)
        t0 = normal[-1]["_ts"] + 5
        attack = [
            make_event("network", _ts=t0 + i * 0.01, src_ip=f"203.0.113.{rng.randrange(254)}",
                       dst_ip="10.0.0.25", dst_port=587, protocol="tcp", bytes_out=60,
                       bytes_in=0, duration_ms=1)
            for i in range(4_000)
        ]
        return normal, attack
