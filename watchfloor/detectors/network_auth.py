"""Many short connections to one service: password guessing (brute force) and spam."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import logistic
from watchfloor.detectors.netflow import (
    ANSWER,
    PROBE,
    WindowSet,
    check_mid_alarm,
    flow_kind,
    is_failed,
)

__all__ = ["BruteForce", "Spam"]


class BruteForce(Detector):
    """Many short, alike connections from one source to an authentication port.

    A password-guessing run (SSH, RDP, SMB, FTP, Telnet, VNC) is a stream of short
    connections, each one guess or a few, of nearly identical size. Per (``src_ip``,
    ``dst_port``) for ``auth_ports``, a short connection (at most ``short_max_bytes``
    both ways and ``short_max_ms`` long) is one attempt, a refused or unanswered one half
    an attempt (no password was sent). Attempts are counted with an exponential decay of
    time constant ``window_seconds``, and the count is discounted by how much the sizes
    of the attempts that exchanged data vary (standard deviation of ``log(bytes_out)``;
    ``1 / (1 + (sd / 0.4) ** 6)``; a tool's guesses have 0.1-0.35, an administrator's
    scripted sessions 0.6 and more). One detection per episode:
    after the alarm, attempts score 0.5 until the source pauses ``episode_gap_seconds``.

    Parameters
    ----------
    mid
        Uniform attempts in the window scoring 0.5.
    alarm
        Uniform attempts in the window scoring 0.9.
    window_seconds
        Time constant of the attempt count's decay.
    auth_ports
        Destination ports of authentication services.
    short_max_bytes
        Largest attempt (both directions, bytes).
    short_max_ms
        Longest attempt (milliseconds).
    episode_gap_seconds
        Pause after which a new guessing run is detected again.
    max_entities
        Most (source, port) pairs tracked at once.
    ttl_seconds
        A pair idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = BruteForce()
    >>> hydra = [make_event("network", src_ip="10.1.0.50", dst_ip="10.2.0.22", dst_port=22,
    ...                     bytes_out=2_100 + i % 7, bytes_in=2_900, duration_ms=1_800,
    ...                     conn_state="SF", _ts=START + 4 * i) for i in range(60)]
    >>> got = feed(det, hydra)
    >>> [i for i, s in enumerate(got) if s.score >= 0.9], got[20].reason
    ([20], '10.1.0.50 made 20 short connections to port 22 (1 host) in ~900 s')
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "brute_force"

    def __init__(
        self,
        mid: float = 10.0,
        alarm: float = 20.0,
        window_seconds: float = 900.0,
        auth_ports: tuple[int, ...] = (21, 22, 23, 445, 3389, 5900),
        short_max_bytes: int = 20_000,
        short_max_ms: float = 30_000.0,
        episode_gap_seconds: float = 900.0,
        max_entities: int = 100_000,
        ttl_seconds: float = 3_600.0,
    ) -> None:
        check_mid_alarm(mid, alarm)
        if window_seconds <= 0 or short_max_bytes < 0 or short_max_ms <= 0:
            raise ValueError("window_seconds and short_max_ms must be positive")
        self.mid = mid
        self.alarm = alarm
        self.window_seconds = window_seconds
        self.auth_ports = tuple(int(p) for p in auth_ports)
        self._ports = frozenset(self.auth_ports)
        self.short_max_bytes = short_max_bytes
        self.short_max_ms = short_max_ms
        self.episode_gap_seconds = episode_gap_seconds
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # "src|port" -> [last attempt, decayed count, n, mean log size, var, episode end,
        #               distinct hosts]
        self.pairs: EntityTable[list[Any]] = EntityTable(max_entities, ttl_seconds)

    def _attempt(self, event: Mapping[str, Any]) -> float:
        """What the flow counts as an attempt: 1 (a short connection that exchanged
        data: a login tried), 0.5 (refused or unanswered: no password sent), 0 (none)."""
        if event["dst_port"] not in self._ports:
            return 0.0
        kind = flow_kind(event)
        if kind == ANSWER:
            return 0.0
        if kind == PROBE or is_failed(event):
            return 0.5
        short = (event["bytes_out"] + event["bytes_in"] <= self.short_max_bytes
                 and float(event["duration_ms"]) <= self.short_max_ms)
        return 1.0 if short else 0.0

    def _next(self, st: list[Any] | None, event: Mapping[str, Any], w: float) -> list[Any]:
        now, x = event["_ts"], math.log1p(event["bytes_out"])
        if st is None:
            st = [now, 0.0, 0, 0.0, 0.0, -math.inf, WindowSet(self.window_seconds, 64)]
        last, count, n, m, var, ep, hosts = st
        count = count * math.exp(-max(now - last, 0.0) / self.window_seconds) + w
        if w == 1.0:  # only logins that exchanged data say how uniform the tool is
            n = min(n + 1, 30)  # exact mean and variance first, then exponential forgetting
            d = x - m
            m += d / n
            var += (d * (x - m) - var) / n
        return [max(now, last), count, n, m, var, ep, hosts]

    def _score(self, st: list[Any]) -> float:
        spread = math.sqrt(max(st[4], 0.0)) if st[2] >= 3 else 0.0
        return logistic(st[1] / (1.0 + (spread / 0.4) ** 6), self.mid, self.alarm)

    def score_one(self, event: Mapping[str, Any]) -> Score:
        w = self._attempt(event)
        if not w:
            return NORMAL
        src, port = event["src_ip"], event["dst_port"]
        st = self.pairs.get(f"{src}|{port}")
        if st is None:
            return NORMAL
        new = self._next(st, event, w)
        score = self._score(new)
        if score < 0.1:
            return NORMAL
        if event["_ts"] <= st[5]:
            return Score(min(score, 0.5), f"{src} continuing guessing on port {port}", new[1])
        hosts = sum(st[6].preview(event["dst_ip"], False, event["_ts"]))
        return Score(
            score,
            f"{src} made {new[1]:.0f} short connections to port {port} "
            f"({hosts} host{'s' if hosts > 1 else ''}) in ~{self.window_seconds:g} s",
            new[1],
        )

    def learn_one(self, event: Mapping[str, Any]) -> None:
        w = self._attempt(event)
        if not w:
            return
        key, now = f"{event['src_ip']}|{event['dst_port']}", event["_ts"]
        st = self.pairs.get(key)
        new = self._next(st, event, w)
        if st is not None and now <= st[5]:
            new[5] = now + self.episode_gap_seconds  # still guessing: extend the episode
        elif st is not None and self._score(new) >= 0.9:
            new[5] = now + self.episode_gap_seconds
        new[6].add(event["dst_ip"], False, now)
        self.pairs.put(key, now, new)

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"window_seconds": 60.0, "max_entities": 50}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import make_event, network_traffic

        rng = random.Random(seed)
        normal = network_traffic(seed, n=4_000)
        t0 = normal[-1]["_ts"] + 5
        attack = [
            make_event("network", _ts=t0 + i * rng.uniform(1, 3), src_ip="10.1.0.44",
                       dst_ip="10.2.0.3", dst_port=21, protocol="tcp",
                       bytes_out=rng.randint(180, 190), bytes_in=rng.randint(400, 420),
                       duration_ms=rng.uniform(300, 900))
            for i in range(40)
        ]
        return normal, attack


class Spam(Detector):
    """A source opening short or failed mail connections to many hosts (a spam bot).

    Per ``src_ip``, the distinct hosts reached on ``mail_ports`` in ``window_seconds``:
    hosts reached only by short or failed attempts (at most ``short_max_bytes`` out, or
    a failed state) count 1, hosts that received a real delivery count
    ``delivery_weight``. A workstation has no business talking SMTP to dozens of hosts;
    a mail server does it every day, so the count is judged against the source's own
    peak of earlier windows (decaying with ``half_life_seconds``): ``raw = count -
    peak``. A new mail server alerts once on a fresh deployment and then is its own
    baseline; a spam run alerts once, when it crosses the alarm, and again only if it
    grows beyond what it already did.

    Parameters
    ----------
    mid
        Counted hosts (beyond the source's peak) scoring 0.5.
    alarm
        Counted hosts (beyond the source's peak) scoring 0.9.
    window_seconds
        Sliding window of the distinct-host count; also the length of the epochs whose
        peak becomes the baseline.
    mail_ports
        SMTP, SMTPS and submission.
    short_max_bytes
        Largest ``bytes_out`` of an attempt that delivered nothing.
    delivery_weight
        What a host that received a real delivery counts.
    half_life_seconds
        Half-life of the source's remembered peak.
    max_hosts
        Most hosts remembered per source.
    max_entities
        Most sources tracked at once.
    ttl_seconds
        A source idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = Spam()
    >>> bot = [make_event("network", src_ip="10.1.0.61", dst_ip=f"198.51.100.{i}",
    ...                   dst_port=25, conn_state="REJ" if i % 3 else "SF",
    ...                   bytes_out=0 if i % 3 else 3_000, bytes_in=0 if i % 3 else 400,
    ...                   _ts=START + 5 * i) for i in range(1, 80)]
    >>> got = feed(det, bot)
    >>> i = next(i for i, s in enumerate(got) if s.score >= 0.9); got[i].reason
    '10.1.0.61 reached 20 hosts on mail ports in 900 s, 14 of them with failed or empty attempts'
    >>> sum(s.score >= 0.9 for s in got)
    1
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "spam"

    def __init__(
        self,
        mid: float = 6.0,
        alarm: float = 15.0,
        window_seconds: float = 900.0,
        mail_ports: tuple[int, ...] = (25, 465, 587),
        short_max_bytes: int = 1_500,
        delivery_weight: float = 0.25,
        half_life_seconds: float = 7 * 86_400.0,
        max_hosts: int = 512,
        max_entities: int = 100_000,
        ttl_seconds: float = 86_400.0,
    ) -> None:
        check_mid_alarm(mid, alarm)
        if window_seconds <= 0 or max_hosts < 1 or not 0 <= delivery_weight <= 1:
            raise ValueError("need window_seconds, max_hosts > 0 and delivery_weight in [0, 1]")
        self.mid = mid
        self.alarm = alarm
        self.window_seconds = window_seconds
        self.mail_ports = tuple(int(p) for p in mail_ports)
        self._ports = frozenset(self.mail_ports)
        self.short_max_bytes = short_max_bytes
        self.delivery_weight = delivery_weight
        self.half_life_seconds = half_life_seconds
        self.max_hosts = max_hosts
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        # src -> [hosts, epoch start, peak of this epoch, peak of earlier ones, its time,
        #         start of the epoch in which it was detected]
        self.sources: EntityTable[list[Any]] = EntityTable(max_entities, ttl_seconds)

    def _real(self, event: Mapping[str, Any]) -> bool:
        return not (is_failed(event) or event["bytes_out"] <= self.short_max_bytes)

    def _baseline(self, st: list[Any], now: float) -> float:
        prev = st[3] * 0.5 ** (max(now - st[4], 0.0) / self.half_life_seconds)
        if now - st[1] >= self.window_seconds:
            prev = max(prev, st[2])  # this epoch is over: its peak is history now
        return prev

    def score_one(self, event: Mapping[str, Any]) -> Score:
        if event["dst_port"] not in self._ports or flow_kind(event) == ANSWER:
            return NORMAL
        src, now = event["src_ip"], event["_ts"]
        st = self.sources.get(src)
        if st is None:
            return NORMAL
        n_short, n_real = st[0].preview(event["dst_ip"], self._real(event), now)
        count = n_short + self.delivery_weight * n_real
        raw = count - self._baseline(st, now)
        score = logistic(raw, self.mid, self.alarm)
        if score < 0.1:
            return NORMAL
        if st[5] == st[1] and now - st[1] < self.window_seconds:
            return Score(min(score, 0.5), f"{src} continuing mail run", raw)
        return Score(
            score,
            f"{src} reached {n_short + n_real} hosts on mail ports in "
            f"{self.window_seconds:g} s, {n_short} of them with failed or empty attempts",
            raw,
        )

    def learn_one(self, event: Mapping[str, Any]) -> None:
        if event["dst_port"] not in self._ports or flow_kind(event) == ANSWER:
            return
        src, now = event["src_ip"], event["_ts"]
        st = self.sources.setdefault(src, now, lambda: [
            WindowSet(self.window_seconds, self.max_hosts), now, 0.0, 0.0, now, -1.0])
        verdict = self.score_one(event)
        if now - st[1] >= self.window_seconds:
            st[3], st[4] = self._baseline(st, now), now
            st[1], st[2] = now, 0.0
        hosts = st[0]
        hosts.add(event["dst_ip"], self._real(event), now)
        count = (len(hosts) - hosts.n_real) + self.delivery_weight * hosts.n_real
        st[2] = max(st[2], count)
        if verdict.score >= 0.9:
            st[5] = st[1]

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {}
        yield {"window_seconds": 120.0, "max_entities": 50, "max_hosts": 64}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from watchfloor.detectors.testkit import make_event, network_traffic

        rng = random.Random(seed)
        normal = network_traffic(seed, n=4_000)
        t0 = normal[-1]["_ts"] + 5
        attack = [
            make_event("network", _ts=t0 + i * rng.uniform(0.5, 4), src_ip="10.1.0.45",
                       dst_ip=f"203.0.113.{i + 1}", dst_port=25, protocol="tcp",
                       bytes_out=rng.choice((0, 60, 2_500)), bytes_in=rng.choice((0, 300)),
                       duration_ms=rng.uniform(5, 900))
            for i in range(60)
        ]
        return normal, attack
