"""Per-event cost of every registered detector, and its ratio to references.

Run: .venv/bin/python benchmarks/bench_detectors.py [--events N] [--repeat R]

Each detector is built with its default parameters, warmed up on the first part of a
synthetic stream of its domain (watchfloor.detectors.testkit), then timed on the rest with
the engine's prequential loop (score_one then learn_one). Machines are noisy, so each
cost is also given as a ratio to references timed in the same run, with the same loop:

* ``empty``: a detector whose methods do nothing (the loop and call overhead);
* ``orjson``: ``orjson.loads`` of the same events' JSON (what decoding one event costs).

The best of ``--repeat`` runs is reported (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.registry import discover
from watchfloor.detectors.testkit import border_traffic, financial_traffic, network_traffic

GENERATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "network": network_traffic,
    "financial": financial_traffic,
    "border": border_traffic,
}


class Empty(Detector):
    """Does nothing: the cost of the loop and two method calls."""

    domains = ("network", "financial", "border")
    entity = ("ip", "src_ip")
    kind = "empty"

    def learn_one(self, event: Mapping[str, Any]) -> None:
        return None

    def score_one(self, event: Mapping[str, Any]) -> Score:
        return NORMAL


def time_detector(make: Callable[[], Detector], warm: Sequence[dict[str, Any]],
                  timed: Sequence[dict[str, Any]], repeat: int) -> float:
    """Best µs per event of score_one + learn_one over ``timed`` after learning ``warm``."""
    best = float("inf")
    for _ in range(repeat):
        det = make()
        score, learn = det.score_one, det.learn_one
        for e in warm:
            score(e)
            learn(e)
        gc.collect()
        gc.disable()  # keep collector pauses out of a few-µs measurement
        t0 = time.perf_counter()
        for e in timed:
            score(e)
            learn(e)
        elapsed = time.perf_counter() - t0
        gc.enable()
        best = min(best, elapsed / len(timed) * 1e6)
    return best


def time_orjson(raw: Sequence[bytes], repeat: int) -> float:
    loads = orjson.loads
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for b in raw:
            loads(b)
        best = min(best, (time.perf_counter() - t0) / len(raw) * 1e6)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000, help="timed events per detector")
    ap.add_argument("--warmup", type=int, default=5_000, help="events learnt before timing")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    registry = discover()
    streams: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for domain, gen in GENERATORS.items():
        events = gen(args.seed, n=args.warmup + args.events)
        streams[domain] = (events[: args.warmup], events[args.warmup :])

    # References on the network stream (the busiest domain).
    warm, timed = streams["network"]
    raw = [orjson.dumps({k: v for k, v in e.items() if k != "_ts"}) for e in timed]
    empty = time_detector(Empty, warm, timed, args.repeat)
    loads = time_orjson(raw, args.repeat)
    print(f"references: empty detector {empty:.3f} µs/event, orjson.loads {loads:.3f} µs/event")
    print(f"{'detector':<24} {'domain':<10} {'package':<26} {'µs/event':>9} "
          f"{'x empty':>8} {'x orjson':>9}")
    for name in sorted(registry, key=lambda n: (registry[n].cls.domains[0], n)):
        entry = registry[name]
        domain = entry.cls.domains[0]
        warm, timed = streams[domain]
        cost = time_detector(entry.cls, warm, timed, args.repeat)
        print(f"{name:<24} {domain:<10} {entry.package:<26} {cost:9.2f} "
              f"{cost / empty:8.1f} {cost / loads:9.1f}")


if __name__ == "__main__":
    main()
