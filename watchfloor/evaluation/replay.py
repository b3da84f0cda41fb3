"""``watchfloor replay FORMAT PATH``: publish a capture to its domain's input topic.

Events go out in event-time order, keyed by the domain's entity field
(``ENTITY_FIELDS``: ``src_ip``, ``account_id``) so one entity's events stay in order on one
partition, as the simulator keys them. Labels are not published: the input topic carries
what a sensor would send. Records get the publish time as their Kafka timestamp, not the
capture's: a capture from 2011 would otherwise be past the topic's retention at once (the
worker judges events by their own ``ts``, so old captures replay as they happened).

Order: flow exporters write a record when its flow ends, so files are only nearly sorted
by start time. Records pass through a sort window (:func:`~watchfloor.evaluation.formats.
base.time_ordered`, default 50,000 records, constant memory) that repairs any disorder
shorter than the window; ``--window 0`` sorts the whole file in memory (small files).
A record older than one already published is published at once and counted as late.

Pacing: ``--speed X`` keeps the capture's spacing scaled by ``X`` (1 = real time, 60 = an
hour a minute); ``0`` publishes as fast as the broker takes it. Progress goes to stderr
about every two seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import orjson

from watchfloor.core.events import ENTITY_FIELDS
from watchfloor.evaluation.captures import DEFAULT_WINDOW, labelled_stream
from watchfloor.evaluation.formats import ReadStats, get_format
from watchfloor.evaluation.formats.registry import check_path

PROGRESS_SECONDS = 2.0


async def replay(
    fmt: str,
    path: Path,
    target: Any,
    topic: str,
    speed: float = 0.0,
    limit: int | None = None,
    window: int = DEFAULT_WINDOW,
    progress: TextIO | str | None = "stderr",
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> dict[str, Any]:
    """Publish the capture at ``path`` to ``topic``; return counts and the read summary.

    ``target`` is what :func:`watchfloor.kafka.clients.producer` takes (Settings, or a
    Connection of bootstrap servers and security kwargs).
    """
    from watchfloor.kafka.clients import producer as build_producer

    if speed < 0:
        raise ValueError("--speed must be >= 0")
    if progress == "stderr":  # resolved per call: sys.stderr may be replaced meanwhile
        progress = sys.stderr
    assert not isinstance(progress, str)
    spec = get_format(fmt)
    check_path(path)
    key_field = ENTITY_FIELDS[spec.domain][1]
    stats = ReadStats()
    producer = build_producer(target, linger_ms=20, acks="all", enable_idempotence=True)
    await producer.start()
    sent = 0
    first_ts = last_ts = None
    started = last_report = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        for rec in labelled_stream(spec.name, path, stats, window, limit):
            ev = rec.event
            ts = ev["ts"]
            if first_ts is None:
                first_ts = ts
            if speed > 0:
                due = started + (ts - first_ts) / 1000.0 / speed
                wait = due - time.monotonic()
                if wait > 0.001:
                    await sleep(wait)
            pending.append(
                await producer.send(topic, orjson.dumps(ev), key=str(ev[key_field]).encode())
            )
            sent += 1
            last_ts = ts
            if len(pending) >= 10_000:
                await _delivered(pending)
            now = time.monotonic()
            if progress is not None and now - last_report >= PROGRESS_SECONDS:
                last_report = now
                print(f"replay: {sent} events to {topic} ({sent / (now - started):.0f}/s), "
                      f"event time {_iso(ts)}", file=progress, flush=True)
        await _delivered(pending)
    finally:
        await producer.stop()
    elapsed = time.monotonic() - started
    result = {
        "format": spec.name,
        "path": str(path),
        "topic": topic,
        "sent": sent,
        "seconds": round(elapsed, 2),
        "first_ts": first_ts,
        "last_ts": last_ts,
        "read": stats.to_dict(),
    }
    if progress is not None:
        print(f"replay: done, {sent} events to {topic} in {elapsed:.1f} s; read: "
              f"{stats.summary()}", file=progress, flush=True)
    return result


async def _delivered(pending: list[asyncio.Future[Any]]) -> None:
    if pending:
        await asyncio.wait(pending)
        for fut in pending:
            fut.result()  # re-raises a failed delivery
        pending.clear()


def _iso(ts_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["replay"]
