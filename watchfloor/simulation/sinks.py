"""Where simulated events go: JSON-lines files (:func:`write_jsonl`, read back by
:func:`read_jsonl`) and Kafka, paced in wall-clock time (:func:`publish`)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from watchfloor.core.events import DOMAINS, ENTITY_FIELDS
from watchfloor.simulation.common import encode
from watchfloor.simulation.simulator import Simulator

log = logging.getLogger(__name__)

def _tally(counts: Counter[str], domain: str, event: dict[str, Any]) -> None:
    counts[domain] += 1
    threat = event["sim"]["threat"]
    if threat is not None:
        counts[threat] += 1


def write_jsonl(path: str | Path, n: int, seed: int = 0, **sim_kwargs: Any) -> dict[str, int]:
    """Write ``n`` simulated events to ``path`` for offline replay.

    Each line is ``{"domain": ..., "event": {...}}``; :func:`read_jsonl` reads it back.

    Returns
    -------
    dict[str, int]
        Events per domain and per threat type.
    """
    counts: Counter[str] = Counter()
    with open(path, "wb") as fh:
        for domain, event in Simulator(seed=seed, **sim_kwargs).events(n):
            fh.write(orjson.dumps({"domain": domain, "event": event}))
            fh.write(b"\n")
            _tally(counts, domain, event)
    return dict(counts)


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Read back a file written by :func:`write_jsonl`."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                rec = orjson.loads(line)
                yield rec["domain"], rec["event"]


async def _delivered(pending: list[asyncio.Future[Any]]) -> None:
    # asyncio.wait, unlike gather, does not cancel the producer's delivery futures if this
    # task is cancelled meanwhile; result() re-raises a failed delivery.
    if pending:
        await asyncio.wait(pending)
        for fut in pending:
            fut.result()
        pending.clear()


async def publish(
    bootstrap_servers: str,
    rate: float,
    duration: float,
    seed: int,
    topics: dict[str, str] | None = None,
    security: dict[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    **sim_kwargs: Any,
) -> dict[str, int]:
    """Publish ``rate * duration`` simulated events to Kafka, paced in wall-clock time.

    The simulated span (``days``, default 3) is compressed into ``duration`` seconds.
    Messages are keyed by the domain's primary entity (``ENTITY_FIELDS``), so one entity's
    events stay in order on one partition. Pacing is a token bucket refilled at ``rate``
    whose bucket holds about 20 ms of events: sends go out in small bursts, and the task
    sleeps only when the bucket is empty.

    On cancellation the producer is flushed and stopped before ``CancelledError``
    propagates; the counts so far are logged.

    Parameters
    ----------
    bootstrap_servers
        Kafka bootstrap servers, ``host:port[,host:port]``.
    rate
        Events per second (wall clock).
    duration
        Seconds (wall clock).
    seed
        Simulator seed.
    topics
        Domain -> topic; defaults to ``events.<domain>``.
    security
        Authentication kwargs for the producer
        (``watchfloor.kafka.security.client_kwargs``); default PLAINTEXT.
    progress
        Called as ``progress(sent, total, seconds)`` about once a second (and at the
        end), for a progress line.
    **sim_kwargs
        Further :class:`Simulator` parameters.

    Returns
    -------
    dict[str, int]
        Events sent per domain and per threat type.
    """
    from watchfloor.kafka import clients

    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    topic_of = {d: f"events.{d}" for d in DOMAINS}
    topic_of.update(topics or {})
    n = max(1, round(rate * duration))
    simulator = Simulator(seed=seed, **sim_kwargs)
    producer = clients.producer(
        clients.Connection(bootstrap_servers, dict(security or {})),
        linger_ms=5,
        acks="all",
        enable_idempotence=True,
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # a producer that never started still holds its client
        raise
    counts: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    burst = max(1.0, rate * 0.02)
    tokens, last = burst, loop.time()
    pending: list[asyncio.Future[Any]] = []
    started = next_report = loop.time()
    sent = 0
    try:
        for domain, event in simulator.events(n):
            if progress is not None and sent % 256 == 0 and loop.time() >= next_report:
                progress(sent, n, loop.time() - started)
                next_report = loop.time() + 1.0
            sent += 1
            if tokens < 1.0:
                now = loop.time()
                tokens = min(burst, tokens + (now - last) * rate)
                last = now
                if tokens < 1.0:
                    # Sleep until a burst's worth has accumulated, not one event's.
                    await asyncio.sleep((burst - tokens) / rate)
                    now = loop.time()
                    tokens = min(burst, tokens + (now - last) * rate)
                    last = now
            tokens -= 1.0
            key = event[ENTITY_FIELDS[domain][1]].encode()
            pending.append(await producer.send(topic_of[domain], encode(event), key=key))
            _tally(counts, domain, event)
            if len(pending) >= 10_000:
                # Surface delivery errors early and bound memory held by futures.
                await _delivered(pending)
        await _delivered(pending)
        if progress is not None:
            progress(sent, n, loop.time() - started)
    except asyncio.CancelledError:
        log.info("publish cancelled after %d events: %s", counts.total(), dict(counts))
        raise
    finally:
        # stop() flushes what is buffered, then closes the connections.
        await producer.stop()
    return dict(counts)
