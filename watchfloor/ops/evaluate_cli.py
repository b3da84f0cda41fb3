"""``watchfloor evaluate``: the command around :mod:`watchfloor.evaluation.evaluate`
(starts a local broker when none is configured, prints the table, writes the JSON)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from watchfloor.evaluation import evaluate as evaluation
from watchfloor.evaluation.evaluate import (
    DEFAULT_DAYS,
    DEFAULT_EVENTS,
    DEFAULT_SEED,
    evaluate_broker,
    evaluate_offline,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the ``watchfloor`` command's subparsers."""
    p = subparsers.add_parser(
        "evaluate",
        help="detector precision/recall/delay on the simulator's labelled scenario",
        description=(evaluation.__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="simulator seed: the same seed gives the same scenario")
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events in the scenario")
    p.add_argument("--days", type=float, default=DEFAULT_DAYS, help="simulated days to span")
    p.add_argument(
        "--offline", action="store_true", help="score in process instead of through the broker"
    )
    p.add_argument(
        "--output", type=Path, default=None, help="JSON result (default evaluation-<seed>.json)"
    )
    p.add_argument(
        "--keep-topics", action="store_true", help="keep the temporary topics (broker mode)"
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the worker (broker)"
    )
    p.add_argument(
        "--dataset",
        metavar="KIND:PATH",
        help="score a labelled dataset instead of the simulator, offline: a capture "
        "(argus, zeek, cicflowmeter, paysim, amlsim: docs/formats.md) or nab:DIR "
        "(default: the simulator's scenario)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON result (--dataset)")
    p.add_argument("--quiet", action="store_true", help="no stage or progress lines on stderr")
    p.add_argument(
        "--limit", type=int, default=None, help="read at most N events (--dataset; default: all)"
    )
    p.add_argument(
        "--detector", default=None,
        help="with --dataset nab:DIR: the registered detector to score (default value_anomaly)",
    )
    p.add_argument(
        "--window", type=int, default=None,
        help="sort window in records, 0 = in memory (--dataset; default: the format's)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``watchfloor evaluate``: print the tables, write the JSON; exit 0 if the targets
    are met, 1 if not."""
    from watchfloor.config import load_config
    from watchfloor.settings import Settings

    topics_file = Path(getattr(args, "topics_file", None) or Settings.from_env().topics_file)
    load_config(topics_file)  # a bad file fails here, before anything is started
    topics_file = topics_file.resolve()
    if getattr(args, "dataset", None):
        return run_dataset_command(args, topics_file)
    quiet = getattr(args, "quiet", False)
    log = None if quiet else sys.stderr  # the stages and progress lines; --quiet: none
    if args.offline:
        from watchfloor.ops.progress import Progress

        if log is not None:
            print(f"simulating {args.events:,} events (seed {args.seed}) …", file=log)
        progress = Progress("scored", "events", quiet=quiet)
        try:
            result = evaluate_offline(args.seed, args.events, args.days, topics_file, progress)
        finally:
            progress.close()
    else:
        from watchfloor.ops.kafka_local import LocalKafka

        broker = None
        started: LocalKafka | None = None
        if "WATCHFLOOR_BROKER" not in os.environ:
            local = LocalKafka()
            line = local.start()
            if log is not None:
                print(line, file=log, flush=True)
            started = None if "already running" in line else local
            broker = f"kafka://{local.bootstrap}"
        try:
            result = evaluate_broker(
                args.seed,
                args.events,
                args.days,
                topics_file,
                broker=broker,
                keep_topics=args.keep_topics,
                timeout=args.timeout,
                log=log,
            )
        finally:
            if started is not None:
                line = started.stop()
                if log is not None:
                    print(line, file=log)
    output = args.output or Path(f"evaluation-{args.seed}.json")
    output.write_bytes(result.to_json() + b"\n")
    print(result.table())
    print(f"\nwritten: {output}")
    return 0 if result.meets_targets else 1


def run_dataset_command(args: argparse.Namespace, topics_file: Path) -> int:
    """``watchfloor evaluate --dataset KIND:PATH``: exit 0 if the issue's targets are met,
    1 if not, 2 on a dataset that cannot be read (one-line error)."""
    import orjson

    from watchfloor.evaluation.formats import FormatError, run_dataset

    options = {k: v for k, v in (("limit", args.limit), ("window", args.window)) if v is not None}
    if getattr(args, "detector", None) and args.dataset.lower().startswith("nab:"):
        options["detector"] = args.detector
    try:
        result = run_dataset(args.dataset, topics_file, **options)
    except (FormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    to_json = getattr(result, "to_json", None)
    data = to_json() if to_json else orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2)
    if args.output:
        args.output.write_bytes(data + b"\n")
    if args.json:
        sys.stdout.write(data.decode() + "\n")
    else:
        print(result.table())
        if args.output:
            print(f"\nwritten: {args.output}")
    return 0 if getattr(result, "meets_targets", True) else 1
