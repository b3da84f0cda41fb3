"""An example watchfloor detector plugin: connections to ports a source rarely uses."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from watchfloor.detectors import NORMAL, Detector, EntityTable, Score
from watchfloor.detectors.calibration import logistic

__all__ = ["RarePort"]
__version__ = "0.1.0"


class RarePort(Detector):
    """A source connecting to a destination port it (almost) never uses, or a watched one.

    Per ``src_ip``, counts flows and flows per ``dst_port``. After ``min_history`` flows,
    a flow scores by ``log10((flows + 1) / (flows to this port + 1))``: a port never used
    in 300 earlier flows is 2.5 orders of magnitude rare, the default alarm point. Ports
    in ``watch_ports`` (e.g. common reverse-shell ports) score at least ``watch_score``
    whatever the history.

    Parameters
    ----------
    mid
        Rarity (log10) scoring 0.5.
    alarm
        Rarity (log10) scoring 0.9.
    min_history
        Flows a source must have made before rarity is judged.
    watch_ports
        Ports always flagged.
    watch_score
        Score given to a flow to a watched port.
    max_ports
        Most distinct ports remembered per source.
    max_entities
        Most sources tracked at once.
    ttl_seconds
        A source idle this long (event time) is forgotten.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = RarePort()
    >>> usual = [make_event("network", src_ip="10.1.0.5", dst_port=443, _ts=START + i)
    ...          for i in range(400)]
    >>> _ = feed(det, usual)
    >>> s = det.score_one(make_event("network", src_ip="10.1.0.5", dst_port=3389,
    ...                              _ts=START + 500))
    >>> round(s.score, 3), s.reason
    (0.919, '10.1.0.5 used port 3389 for the first time in 400 flows')
    >>> det.score_one(make_event("network", src_ip="10.1.0.5", dst_port=443,
    ...                          _ts=START + 500)).score < 0.1
    True
    """

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "src_ip")
    kind: ClassVar[str] = "rare_port"

    def __init__(
        self,
        mid: float = 1.5,
        alarm: float = 2.5,
        min_history: int = 50,
        watch_ports: tuple[int, ...] = (4444, 31337),
        watch_score: float = 0.95,
        max_ports: int = 256,
        max_entities: int = 100_000,
        ttl_seconds: float = 7 * 86_400.0,
    ) -> None:
        if not alarm > mid:
            raise ValueError(f"alarm ({alarm}) must be greater than mid ({mid})")
        if not 0.0 <= watch_score <= 1.0:
            raise ValueError("watch_score must be in [0, 1]")
        self.mid = mid
        self.alarm = alarm
        self.min_history = min_history
        # topics.yaml gives lists; keep a tuple so the parameter stays immutable.
        self.watch_ports = tuple(watch_ports)
        self.watch_score = watch_score
        self.max_ports = max_ports
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._watched = frozenset(self.watch_ports)
        # src_ip -> (flows seen, {port: flows to it})
        self.sources: EntityTable[list[Any]] = EntityTable(max_entities, ttl_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        st = self.sources.setdefault(event["src_ip"], event["_ts"], lambda: [0, {}])
        st[0] += 1
        ports: dict[int, int] = st[1]
        port = event["dst_port"]
        if port in ports:
            ports[port] += 1
        elif len(ports) < self.max_ports:  # beyond the bound, a new port stays "rare"
            ports[port] = 1

    def score_one(self, event: Mapping[str, Any]) -> Score:
        src, port = event["src_ip"], event["dst_port"]
        st = self.sources.get(src)
        watched = port in self._watched
        if st is None or st[0] < self.min_history:
            if watched:
                return Score(self.watch_score, f"{src} connected to watched port {port}", 0.0)
            return NORMAL
        n, seen = st[0], st[1].get(port, 0)
        raw = math.log10((n + 1) / (seen + 1))
        score = logistic(raw, self.mid, self.alarm)
        if watched and score < self.watch_score:
            return Score(self.watch_score, f"{src} connected to watched port {port}", raw)
        if score < 0.5:
            return Score(score, "", raw)
        usage = "for the first time" if seen == 0 else f"{seen} times"
        return Score(score, f"{src} used port {port} {usage} in {n} flows", raw)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"min_history": 10, "max_ports": 8, "watch_ports": ()}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Four busy web clients; then one opens RDP, which it never used in 400 flows."""
        from watchfloor.detectors.testkit import START, make_event

        rng = random.Random(seed)
        normal = [
            make_event("network", _ts=START + i, src_ip=f"10.1.0.{i % 4}",
                       dst_port=rng.choice((443, 443, 80, 53)))
            for i in range(1_600)
        ]
        attack = [make_event("network", _ts=START + 1_700, src_ip="10.1.0.2", dst_port=3389)]
        return normal, attack
