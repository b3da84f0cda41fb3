"""The detector tables on the constructed labelled captures (issues 10 and 11).

Writes each constructed capture (``watchfloor.evaluation.formats.constructed``: a campus
in Argus flows, an IoT network in Zeek conn.log, an office day in CICFlowMeter, a
PaySim-style week, an AMLSim-style year) into a temporary directory, replays it through
``watchfloor evaluate --dataset FORMAT:PATH`` (the offline pipeline with the default
``topics.yaml``) and prints the tables.

    .venv/bin/python benchmarks/captures_table.py [--scale 1.0] [--seed K] [--only campus,iot]
        [--keep DIR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchfloor.evaluation.captures import evaluate_capture  # noqa: E402
from watchfloor.evaluation.formats.constructed import CAPTURES, write_capture  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="size of each capture")
    p.add_argument("--seed", type=int, default=None, help="seed (default: each capture's)")
    p.add_argument("--only", default=",".join(CAPTURES), help="captures, comma-separated")
    p.add_argument("--keep", type=Path, default=None, help="write the captures here")
    p.add_argument("--json", type=Path, default=None, help="write all results as JSON")
    p.add_argument("--topics-file", type=Path, default=ROOT / "topics.yaml")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="watchfloor-captures-") as tmp:
        where = args.keep or Path(tmp)
        for name in args.only.split(","):
            t = time.monotonic()
            spec = write_capture(name, where / name, seed=args.seed, scale=args.scale)
            fmt, path = spec.split(":", 1)
            result = evaluate_capture(fmt, path, args.topics_file)
            print(f"== {name} ({time.monotonic() - t:.0f} s): evaluate --dataset {spec}")
            print(result.table())
            print()
            results[name] = result.to_dict()
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
