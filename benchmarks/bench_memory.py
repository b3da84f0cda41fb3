"""Worker memory with many distinct entities (issue 12): RSS of the in-process core
after ``--entities`` events, each from a new entity, spread over the three domains and
partitioned as the worker's producer would.

    .venv/bin/python benchmarks/bench_memory.py [--entities 1000000] [--json FILE]

Prints the RSS before and after, the bytes per entity, and each detector's share (its
pickled state, which tracks its live size). A benchmark: nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import secrets
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watchfloor.config import load_config  # noqa: E402
from watchfloor.core.events import DOMAINS, ENTITY_FIELDS, EXAMPLES  # noqa: E402
from watchfloor.detectors.engine import REKEYED  # noqa: E402
from watchfloor.evaluation.runner import partition_of  # noqa: E402
from watchfloor.settings import Settings  # noqa: E402
from watchfloor.streams.runtime import Runtime  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def event(domain: str, i: int, t: float) -> dict:
    e = dict(EXAMPLES[domain], event_id=f"m-{domain}-{i}", ts=int(t * 1000))
    if domain == "network":
        e["src_ip"] = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        e["dst_ip"] = f"198.51.{(i >> 8) & 255}.{i & 255}"
    elif domain == "financial":
        e["account_id"] = f"ACC-{i:09d}"
        e["counterparty_id"] = f"CP-{i:09d}"
    else:
        e["document_id"] = f"P{i:09d}"
    return e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--topics-file", default=str(ROOT / "topics.yaml"))
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--trace", type=int, default=0, metavar="N",
                    help="also print the N source lines holding most memory (tracemalloc)")
    args = ap.parse_args()
    if args.trace:
        import tracemalloc

        tracemalloc.start(1)

    import orjson

    settings = Settings(topics_file=Path(args.topics_file), master_key=secrets.token_hex(32))
    config = load_config(settings.topics_file)
    rt = Runtime.build(settings, config, CollectorRegistry())
    parts = {d: t.partitions for d, t in config.input_topics.items()}
    rekeyed_parts = next((t.partitions for t in config.topics if t.role == "rekeyed"), 1)
    gc.collect()
    before = rss_mb()
    started = time.monotonic()
    t0 = time.time() - 86_400.0
    batch: dict[tuple[str, int], list] = {}
    per = max(1, args.entities // len(DOMAINS))
    for i in range(per):
        t = t0 + i * 0.05
        for domain in DOMAINS:
            ev = event(domain, i, t)
            key = str(ev[ENTITY_FIELDS[domain][1]]).encode()
            p = partition_of(key, parts[domain])
            batch.setdefault((domain, p), []).append((orjson.dumps(ev), key, domain, p, i, t))
        if (i + 1) % 2000 == 0 or i == per - 1:
            for (domain, _p), records in batch.items():
                out: list[tuple[bytes, bytes]] = []
                rt.processor.process(domain, records, out)
                # The second stage, as the worker runs it (one engine per re-keyed part).
                by_part: dict[int, list] = {}
                for key, value in out:
                    q = partition_of(key, rekeyed_parts)
                    recs = by_part.setdefault(q, [])
                    recs.append((value, key, "rekeyed", q, len(recs), 0.0))
                for recs in by_part.values():
                    rt.processor.process(REKEYED, recs)
            batch.clear()
            if (i + 1) % 50_000 == 0:
                print(f"  {3 * (i + 1):,} entities, RSS {rss_mb():.0f} MB", file=sys.stderr)
    gc.collect()
    after = rss_mb()
    n = per * len(DOMAINS)
    shares: dict[str, int] = {}
    for (domain, _p), engine in rt.processor.engines.items():
        for name, det in engine.snapshot().items():
            key = f"{domain}/{name}"
            shares[key] = shares.get(key, 0) + len(pickle.dumps(det, protocol=5))
    result = {
        "entities": n,
        "seconds": round(time.monotonic() - started, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "bytes_per_entity": round((after - before) * 2**20 / n, 1),
        "pickled_bytes": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
    }
    print(f"{n:,} entities: RSS {before:.0f} -> {after:.0f} MB "
          f"({result['bytes_per_entity']:.0f} B per entity), {result['seconds']} s")
    for k, v in list(result["pickled_bytes"].items())[:12]:
        print(f"  {k:40s} {v / 2**20:8.1f} MB pickled")
    if args.trace:
        import tracemalloc

        print(f"traced {tracemalloc.get_traced_memory()[0] / 2**20:.0f} MB live:")
        for stat in tracemalloc.take_snapshot().statistics("lineno")[: args.trace]:
            print(f"  {stat}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
