"""Cost of the alert stage per detection, next to a reference measured in the same run.

    .venv/bin/python benchmarks/bench_alerts.py [--detections 20000]

The reference is ``orjson.dumps`` of each detection (the least publishing it costs). The
stage's cost per detection must not grow with the number of detections seen: the run at
``n`` and at ``n / 10`` are printed side by side (an O(n) step per detection shows as a
ratio near 10). A benchmark, never a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.alerts.conftest import KEY, T0, make_detection  # noqa: E402
from watchfloor.alerts.stage import AlertStage  # noqa: E402
from watchfloor.config import load_config  # noqa: E402


def detections(n: int) -> list[dict]:
    return [
        make_detection(
            f"ip:10.{i >> 8 & 255}.{i & 255}.{i % 5}",
            ["port_scan", "beaconing"][i % 2],
            t=T0 + i * 0.5,
            score=0.9 + (i % 10) / 100,
            links=(f"account:A{i % 997}",),
        )
        for i in range(n)
    ]


def per_detection(n: int) -> tuple[float, float]:
    config = load_config(ROOT / "topics.yaml")
    dets = detections(n)
    start = time.perf_counter()
    for d in dets:
        orjson.dumps(d)
    ref = (time.perf_counter() - start) / n
    stage = AlertStage(config, KEY)
    start = time.perf_counter()
    for d in dets:
        stage.process(d)
    return (time.perf_counter() - start) / n, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detections", type=int, default=20_000)
    n = parser.parse_args().detections
    small, small_ref = per_detection(n // 10)
    large, large_ref = per_detection(n)
    print(f"{'detections':>10} {'stage us':>9} {'ref us':>7} {'ratio':>7}")
    print(f"{n // 10:10d} {small * 1e6:9.1f} {small_ref * 1e6:7.2f} {small / small_ref:7.0f}")
    print(f"{n:10d} {large * 1e6:9.1f} {large_ref * 1e6:7.2f} {large / large_ref:7.0f}")
    print(f"growth per detection from {n // 10} to {n}: {large / small:.2f}x (O(1) is ~1)")


if __name__ == "__main__":
    main()
