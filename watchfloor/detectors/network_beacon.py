"""Command-and-control beaconing that survives real timing: retries, jitter, missed beats."""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Mapping
from operator import sub
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, ReusesScore, Score
from watchfloor.detectors.calibration import logistic
from watchfloor.detectors.netflow import WindowSet, check_mid_alarm
from watchfloor.detectors.sites import (
    DEFAULT_INTERNAL,
    check_networks,
    is_internal,
    is_multicast_or_broadcast,
)

__all__ = ["Beaconing"]

_E_HALF = math.e / 2.0  # an exponential gap is within j of its mean with chance ~2j/e


def _new_pair() -> list[Any]:
    """A pair's state: [attempt start times (oldest first), time alerted or -inf]."""
    return [array("d"), float("-inf")]


class Beaconing(ReusesScore, Detector):
    """A source contacting one external address at a steady period (command-and-control).

    Per (``src_ip``, ``dst_ip``) pair, flows starting within ``merge_seconds`` of the
    current attempt's first flow are one *attempt* (retries, paired request/response
    flows, Mirai-style 3 s / 7 s retry bursts). Over the last ``intervals`` gaps between
    attempts, the period is the median gap; a gap *fits* when it is within ``tolerance``
    of the period (jitter) or of two or three periods (missed beats). The evidence is the
    number of fitting gaps, gated by regularity (at least ``min_regular`` of the gaps
    within one period, and a median absolute deviation of at most ``max_mad`` of it:
    irregular browsing, whose gaps are exponential, has about a fifth and 0.7) and a
    minimum span of ``min_duration`` seconds.

    Popular destinations are down-weighted (prevalence, as RITA calls it): a destination
    that ``popular_sources`` sources contact, or ``popular_fraction`` of the sources seen
    in ``popularity_seconds``, is an update server, a CDN or a cloud service, and its
    evidence is divided by 5 (``1 + 4 u**2`` for popularity index ``u``), more for more
    sources. A C2 shared by several bots of one network is down-weighted too: a known
    limit, the price of silence on update fleets. Its state is keyed by destination
    (``keyed_by``: the worker runs it in the re-keyed ``dst_ip`` stage), so popularity
    counts every source of a destination, not those of one input partition.
    Internal destinations (the site's ranges, multicast and broadcast included) and
    ``ignore_ports`` (DNS, NTP, mDNS, SSDP, NetBIOS) are not considered.

    Clockwork timers are down-weighted 5x too: a period of a minute or more kept to
    within ``clockwork_jitter`` (0.25 %: under a second at 5 minutes) is a scheduler's
    (antivirus update checks every 302 s, CDN keep-alives every 900 s, on the benign
    captures the first detector flagged), while the bots there jitter by seconds. A bot
    on an exact timer of a minute or more is the price; short exact periods (Mirai's
    retries) are untouched.

    One detection per pair and ``realert_seconds`` (a week: an analyst who dismissed a
    poller does not want it back every morning): after the alarm, further beats of the
    same pair score 0.5 ("continuing"). Pairs are remembered ``ttl_seconds`` after their
    last contact, so a workstation switched off overnight keeps its pairs.

    Parameters
    ----------
    mid
        Fitting gaps scoring 0.5.
    alarm
        Fitting gaps scoring 0.9.
    tolerance
        Largest relative deviation of a gap from the period (or a multiple of it) that
        still fits; 0.3 tolerates 30 % jitter.
    min_regular
        Share of gaps within one period below which the series is not periodic.
    max_mad
        Median absolute deviation of the gaps from the period (relative) above which the
        series is not periodic.
    merge_seconds
        Flows starting this soon after an attempt's first flow belong to that attempt.
    min_period
        Shortest period (seconds) considered.
    max_period
        Longest period (seconds) considered.
    min_duration
        Shortest span (seconds) from the first remembered attempt before any score.
    intervals
        Gaps remembered per pair.
    max_flow_bytes
        Larger flows (``bytes_out``) are not beacons and are ignored.
    ignore_ports
        Destination ports whose periodic traffic is infrastructure.
    internal_networks
        CIDRs counted as internal (the site's ranges); periodic traffic to them is ignored.
    popular_fraction
        Share of active sources contacting a destination that makes it popular.
    popular_sources
        Number of sources contacting a destination that makes it popular (at least 2).
    popularity_seconds
        Window over which sources per destination, and active sources, are counted.
    clockwork_period
        Shortest period of a clockwork poller.
    clockwork_jitter
        Mean relative jitter below which a series of at least ``clockwork_period`` is a
        scheduler's timer; its evidence is divided by 5.
    steady_gain
        Most a fitting gap counts when the fit is tight: a gap counts
        ``log(e / 2j) / log(e / 2 tolerance)`` for mean jitter ``j`` (1 at ``tolerance``),
        (``j``: the fitting gaps' mean jitter or the window's median deviation, whichever
        is larger), capped here: irregular traffic lands that close to a period less often.
    realert_seconds
        A pair already detected is not detected again for this long.
    max_entities
        Most (source, destination) pairs, destinations and sources tracked, each.
    ttl_seconds
        A pair idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Beaconing()
    >>> beats = [make_event("network", src_ip="10.1.0.9", dst_ip="203.0.113.7",
    ...                     bytes_out=300, _ts=START + 33 * i + (7 * i) % 9)
    ...          for i in range(16)]
    >>> got = feed(det, beats)
    >>> [i for i, s in enumerate(got) if s.score >= 0.9], got[4].reason
    ([4], '10.1.0.9 contacted 203.0.113.7 5 times every 31 s (jitter 7.3%)')
    >>> got[-1].score
    0.5
    >>> ntp = [make_event("network", src_ip="10.1.0.9", dst_ip="10.0.0.123", dst_port=123,
    ...                   protocol="udp", bytes_out=76, _ts=START + 64 * i)
    ...        for i in range(30)]
    >>> max(s.score for s in feed(det, ntp))
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "beaconing"
    # Every source of a destination in one engine: popularity is whole (update servers
    # polled by hosts of different input partitions are popular).
    keyed_by: ClassVar[str | None] = "dst_ip"

    def __init__(
        self,
        mid: float = 3.5,
        alarm: float = 7.0,
        tolerance: float = 0.3,
        min_regular: float = 0.8,
        max_mad: float = 0.2,
        merge_seconds: float = 5.0,
        min_period: float = 5.0,
        max_period: float = 3_600.0,
        min_duration: float = 120.0,
        intervals: int = 24,
        max_flow_bytes: int = 100_000,
        ignore_ports: tuple[int, ...] = (53, 123, 137, 138, 1900, 5353, 5355),
        internal_networks: tuple[str, ...] = DEFAULT_INTERNAL,
        popular_fraction: float = 0.2,
        popular_sources: int = 2,
        popularity_seconds: float = 86_400.0,
        clockwork_period: float = 60.0,
        clockwork_jitter: float = 0.0025,
        steady_gain: float = 2.0,
        realert_seconds: float = 7 * 86_400.0,
        max_entities: int = 100_000,
        ttl_seconds: float = 26 * 3_600.0,
    ) -> None:
        check_mid_alarm(mid, alarm)
        if not 0 < tolerance < 0.5 or not 0 < min_period < max_period:
            raise ValueError("need 0 < tolerance < 0.5 and 0 < min_period < max_period")
        if not 0 < min_regular <= 1 or intervals < 3 or merge_seconds < 0 or max_mad <= 0:
            raise ValueError("need 0 < min_regular <= 1, intervals >= 3, merge_seconds >= 0")
        if not 0 < popular_fraction <= 1 or popular_sources < 2:
            raise ValueError("need 0 < popular_fraction <= 1 and popular_sources >= 2")
        self.mid = mid
        self.alarm = alarm
        self.tolerance = tolerance
        self.min_regular = min_regular
        self.max_mad = max_mad
        self.merge_seconds = merge_seconds
        self.min_period = min_period
        self.max_period = max_period
        self.min_duration = min_duration
        self.intervals = intervals
        self.max_flow_bytes = max_flow_bytes
        self.ignore_ports = tuple(ignore_ports)
        self._ignore = frozenset(self.ignore_ports)
        self.internal_networks = check_networks(tuple(internal_networks))
        self.popular_fraction = popular_fraction
        self.popular_sources = popular_sources
        self.popularity_seconds = popularity_seconds
        self.clockwork_period = clockwork_period
        self.clockwork_jitter = clockwork_jitter
        if steady_gain < 1.0:
            raise ValueError("steady_gain must be >= 1")
        self.steady_gain = steady_gain
        self._steady_log = math.log(_E_HALF / tolerance)
        self.realert_seconds = realert_seconds
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # "src>dst" -> [attempt start times (array, oldest first), time alerted or -inf]
        self.pairs: EntityTable[list[Any]] = EntityTable(max_entities, ttl_seconds)
        # dst -> distinct sources in the popularity window (capped: beyond popular_sources
        # the exact number no longer matters); src -> None, to count active sources.
        self.dst_sources: EntityTable[WindowSet] = EntityTable(max_entities, popularity_seconds)
        self.sources: EntityTable[bool] = EntityTable(max_entities, popularity_seconds)
        # The engine scores an event and then learns it: learn_one reuses score_one's
        # verdict for that same event object (not state: left out of pickles).
        # (event, verdict, relevant?)
        self._last: tuple[Mapping[str, Any], Score, bool] | None = None

    def _relevant(self, event: Mapping[str, Any]) -> bool:
        dst = event["dst_ip"]
        return (
            event["bytes_out"] <= self.max_flow_bytes
            and event["dst_port"] not in self._ignore
            and not is_internal(dst, self.internal_networks)
            and not is_multicast_or_broadcast(dst)
        )

    def _popularity_weight(self, dst: str, src: str, now: float) -> tuple[float, int]:
        ws = self.dst_sources.get(dst)
        if ws is None:
            return 1.0, 1
        n_src = sum(ws.preview(src, False, now))
        if n_src < 2:
            return 1.0, n_src
        active = len(self.sources)
        if n_src > active:  # max(len(self.sources), n_src)
            active = n_src
        u = n_src / active / self.popular_fraction
        u2 = (n_src - 1) / (self.popular_sources - 1)
        if u2 > u:  # max(u, u2)
            u = u2
        return 1.0 / (1.0 + 4.0 * u * u), n_src

    def score_one(self, event: Mapping[str, Any]) -> Score:
        relevant = self._relevant(event)
        verdict = self._score(event) if relevant else NORMAL
        self._last = (event, verdict, relevant)
        return verdict

    def _score(self, event: Mapping[str, Any]) -> Score:
        """The verdict on a relevant event (see ``_relevant``)."""
        src, dst, now = event["src_ip"], event["dst_ip"], event["_ts"]
        st = self.pairs.get(f"{src}>{dst}")
        if st is None:
            return NORMAL
        times = st[0]
        latest = times[-1]
        if now - latest < self.merge_seconds or len(times) < 3:
            return NORMAL  # part of the current attempt, or too few attempts yet
        if now - times[0] < self.min_duration:
            return NORMAL
        gaps = list(map(sub, times[1:], times))  # b - a for consecutive a, b
        gaps.append(now - latest)
        if len(gaps) > self.intervals:
            gaps = gaps[-self.intervals:]
        ordered = sorted(gaps)
        n = len(ordered)
        period = 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
        lo = 1.5 * self.merge_seconds
        if self.min_period >= lo:  # max(self.min_period, 1.5 * self.merge_seconds)
            lo = self.min_period
        if not lo <= period <= self.max_period:
            return NORMAL
        tol = self.tolerance * period
        # Deviations from the period, in gap order; those within tolerance are the gaps
        # of one period (their count, and their sum for the jitter).
        devs = [abs(g - period) for g in gaps]
        one = [d for d in devs if d <= tol]
        n_one = len(one)
        p2, p3 = 2 * period, 3 * period
        missed = 0
        for g in gaps:
            if abs(g - p2) <= tol or abs(g - p3) <= tol:
                missed += 1
        regular = n_one / n
        # Two views of "the gaps cluster at the period": the share within tolerance, and
        # the median absolute deviation (30 % uniform jitter: 0.15; exponential gaps of
        # irregular traffic: about 0.7). Either alone lets a few lucky gaps through.
        # Relative to the period less the merge window: merging makes every gap at least
        # merge_seconds, which squeezes irregular gaps toward a fake period near it.
        devs.sort()
        mad = 0.5 * (devs[(n - 1) // 2] + devs[n // 2]) / (period - 0.8 * self.merge_seconds)
        share = regular / self.min_regular
        if not share < 1.0:  # min(1.0, share)
            share = 1.0
        if mad > 0:
            spread = self.max_mad / mad
            if not spread < 1.0:  # min(1.0, spread)
                spread = 1.0
            gate = share ** 4 * spread ** 4
        else:
            gate = share ** 4
        weight, n_src = self._popularity_weight(dst, src, now)
        jitter = sum(one) / (period * n_one) if one else 0.0
        # Clockwork: a scheduler's timer (antivirus update check, CDN keep-alive) keeps a
        # minutes-long period to a fraction of a second; bots on real captures jitter by
        # seconds, or retry at short periods (Mirai), which this does not touch.
        clockwork = period >= self.clockwork_period and jitter < self.clockwork_jitter
        # How unlikely the fit is by chance: an exponential gap (irregular traffic of the
        # same mean) lands within j of the period with probability ~2j/e, so a gap that
        # fits to 5 % is stronger evidence than one that fits to 30 %. Each fitting gap
        # counts log(e / 2j) / log(e / 2 tolerance), between 1 and steady_gain.
        # The looser of the fitting gaps' mean jitter and the whole window's MAD, so a
        # few lucky fits among irregular gaps gain nothing. (Not for clockwork: there
        # tight timing is the scheduler's, not the evidence.)
        j = mad if mad > jitter else jitter
        steady = math.log(_E_HALF / (j if j > 0.01 else 0.01)) / self._steady_log
        if steady < 1.0 or clockwork:
            steady = 1.0
        elif steady > self.steady_gain:
            steady = self.steady_gain
        # A gap of two or three periods fits random traffic easily: half weight.
        raw = (n_one * steady + 0.5 * missed) * gate * weight * (0.2 if clockwork else 1.0)
        score = logistic(raw, self.mid, self.alarm)
        if score < 0.1:
            return NORMAL
        if now - st[1] < self.realert_seconds:
            return Score(min(score, 0.5), f"{src} continuing beacon to {dst}", raw)
        reason = (f"{src} contacted {dst} {n_one + missed + 1} times every {period:.0f} s"
                  f" (jitter {100 * jitter:.1f}%")
        reason += f", {missed} missed beats)" if missed else ")"
        if weight < 0.9:
            reason += f"; {n_src} sources contact it"
        return Score(score, reason, raw)

    def _new_window_set(self) -> WindowSet:
        return WindowSet(self.popularity_seconds, self.popular_sources * 4)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        src, dst, now = event["src_ip"], event["dst_ip"], event["_ts"]
        self.sources.setdefault(src, now, bool)
        last = self._last
        if last is not None and last[0] is event:
            if not last[2]:
                return
        elif not self._relevant(event):
            return
        pop = self.dst_sources.setdefault(dst, now, self._new_window_set)
        pop.add(src, False, now)
        key = f"{src}>{dst}"
        st = self.pairs.get(key)
        if st is not None and now - st[0][-1] < self.merge_seconds:
            return  # same attempt
        self._last = None
        if st is None:
            verdict = NORMAL
        elif last is not None and last[0] is event:
            verdict = last[1]
        else:
            verdict = self._score(event)
        st = self.pairs.setdefault(key, now, _new_pair)
        times = st[0]
        if times and now <= times[-1]:
            return  # late or duplicate event: the attempt order is kept
        times.append(now)
        if len(times) > self.intervals + 1:
            del times[0]
        if verdict.score >= 0.9:
            st[1] = now

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"tolerance": 0.1, "max_entities": 50}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import START, make_event, merge, network_traffic

        rng = random.Random(seed)
        normal = network_traffic(seed, n=6_000, rate=2.0)  # 50 minutes
        period = rng.uniform(30, 300)
        t, attack = START + 3_000 + 5, []
        for _ in range(16):
            # Each interval is the period with up to 25 % jitter, and retried at once.
            t += period * rng.uniform(0.75, 1.25)
            for dt in (0.0, rng.uniform(0.1, 3.0)):
                attack.append(
                    make_event("network", _ts=t + dt, src_ip="10.1.0.13",
                               dst_ip="203.0.113.99", dst_port=8443, protocol="tcp",
                               bytes_out=420, bytes_in=180, duration_ms=40)
                )
        # Mixed with the same hosts' ordinary browsing, which must not break the run.
        tail = network_traffic(seed + 1, n=int(t - START - 3_000) * 2, start=START + 3_000,
                               rate=2.0)
        return normal, merge(attack, tail)
