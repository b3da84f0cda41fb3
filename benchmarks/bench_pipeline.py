"""Throughput of the scoring core (decode → validate → score) per domain, in-process.

Reports µs/event and the ratio to a reference measured in the same run: ``orjson.loads``
of the same messages (the least any JSON pipeline must do). Ratios travel between
machines; absolute numbers do not.

    .venv/bin/python benchmarks/bench_pipeline.py [--events 30000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from watchfloor.config import load_config
from watchfloor.settings import Settings
from watchfloor.simulation import Simulator
from watchfloor.streams.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
# The master secret (a weak one is refused).
BENCH_KEY = "62f615edd82641213cbe9db62e5454e5be11aa4d38ba106ee7925166f1b8d6ec"


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    sim = Simulator(seed=3)
    by_domain: dict[str, list[bytes]] = {}
    for domain, event in sim.events(args.events):
        by_domain.setdefault(domain, []).append(orjson.dumps(event))
    print(f"{'domain':10} {'events':>7} {'ref µs':>8} {'core µs':>8} {'ratio':>6}")
    for domain, raws in by_domain.items():
        records = [(r, None, f"events.{domain}", 0, i, 0.0) for i, r in enumerate(raws)]
        ref = best_of(lambda raws=raws: [orjson.loads(r) for r in raws]) / len(raws)

        # A fresh runtime per repeat (untrained detectors), built outside the timing.
        timings = []
        for _ in range(3):
            rt = Runtime.build(
                Settings(master_key=BENCH_KEY),
                load_config(ROOT / "topics.yaml"),
                CollectorRegistry(),
            )
            started = time.perf_counter()
            for i in range(0, len(records), 500):
                rt.processor.process(domain, records[i : i + 500])
            timings.append(time.perf_counter() - started)
        t = min(timings) / len(raws)
        print(f"{domain:10} {len(raws):7d} {ref * 1e6:8.2f} {t * 1e6:8.2f} {t / ref:6.1f}")


if __name__ == "__main__":
    main()
