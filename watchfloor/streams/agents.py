"""Faust agents: thin adapters that feed batches into the plain-Python stages.

Each agent takes a batch with ``take_events``, runs the core on it, publishes everything
the batch produced and waits for the broker's acknowledgements; only then does the loop
continue and Faust acknowledge (commit) the batch's offsets. A crash before that point
replays the batch: delivery is at least once, and alert ids and versions are
deterministic so consumers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson

from watchfloor.alerts.feedback import parse_feedback
from watchfloor.streams.decoding import InvalidEvent
from watchfloor.streams.pipeline import deadletter
from watchfloor.streams.runtime import Runtime

Agent = Callable[[faust.StreamT], Awaitable[None]]


async def publish(app: faust.App, messages: Sequence[tuple[str, bytes | None, bytes]]) -> list[Any]:
    """Send all messages, then wait until the broker acknowledged every one."""
    send = app.producer.send
    futures = [await send(topic, key, value, None, None, None) for topic, key, value in messages]
    return await asyncio.gather(*futures)


def scoring_agent(app: faust.App, rt: Runtime, domain: str) -> Agent:
    detections_topic = rt.config.topic("detections").name
    deadletter_topic = rt.config.topic("deadletter").name
    process = rt.processor.process
    batch_seconds = rt.metrics.batch_seconds.labels(f"score.{domain}")
    size, within = rt.settings.batch_size, rt.settings.batch_within

    async def score(stream: faust.StreamT) -> None:
        async for events in stream.take_events(size, within=within):
            started = time.perf_counter()
            records = [
                (m.value, m.key, m.topic, m.partition, m.offset, m.timestamp)
                for m in (e.message for e in events)
            ]
            detections, deadletters = process(domain, records)
            out = [(deadletter_topic, None, d) for d in deadletters]
            for det in detections:
                ent = det["entity"]
                out.append(
                    (detections_topic, f"{ent['type']}:{ent['id']}".encode(), orjson.dumps(det))
                )
            if out:
                await publish(app, out)
            batch_seconds.observe(time.perf_counter() - started)

    return score


def alert_agent(app: faust.App, rt: Runtime) -> Agent:
    stage = rt.alerts
    metrics = rt.metrics
    deadletter_topic = rt.config.topic("deadletter").name
    batch_seconds = metrics.batch_seconds.labels("alerts")
    size, within = rt.settings.batch_size, rt.settings.batch_within

    async def correlate(stream: faust.StreamT) -> None:
        # Counters are cumulative in the correlator; metrics get the increments.
        seen = dict(stage.correlator.counters)
        async for events in stream.take_events(size, within=within):
            started = time.perf_counter()
            outgoing = []
            bad = []
            for e in events:
                m = e.message
                try:
                    outgoing.extend(stage.process(orjson.loads(m.value)))
                except (orjson.JSONDecodeError, InvalidEvent, KeyError, TypeError) as exc:
                    # Only our workers write this topic, but a bad record must not stop us.
                    code = exc.code if isinstance(exc, InvalidEvent) else "bad_value"
                    bad.append(
                        (
                            deadletter_topic,
                            None,
                            deadletter(
                                m.value,
                                m.topic,
                                m.partition,
                                m.offset,
                                code,
                                str(exc)[:200],
                                key=m.key,
                            ),
                        )
                    )
            if outgoing or bad:
                await publish(app, [(o.topic, o.key, o.value) for o in outgoing] + bad)
                acked = time.time()
                for o in outgoing:
                    if o.kind == "alert":
                        metrics.alerts[(o.agency, o.severity)].inc()
                        metrics.alert_latency[o.agency].observe(max(0.0, acked - o.arrival))
                    elif o.kind == "audit":
                        metrics.audit_records.inc()
            counters = stage.correlator.counters
            metrics.suppressed.inc(counters["suppressed"] - seen["suppressed"])
            metrics.incidents.inc(counters["incidents_opened"] - seen["incidents_opened"])
            seen.update(counters)
            batch_seconds.observe(time.perf_counter() - started)

    return correlate


def feedback_agent(app: faust.App, rt: Runtime) -> Agent:
    stage = rt.alerts
    metrics = rt.metrics
    deadletter_topic = rt.config.topic("deadletter").name

    async def feedback(stream: faust.StreamT) -> None:
        async for events in stream.take_events(rt.settings.batch_size, within=0.2):
            bad = []
            now = time.time()
            for e in events:
                m = e.message
                try:
                    result = stage.feedback(m.value, now)
                except InvalidEvent as exc:
                    metrics.invalid_counter("feedback", exc.code).inc()
                    bad.append(
                        (
                            deadletter_topic,
                            None,
                            deadletter(
                                m.value,
                                m.topic,
                                m.partition,
                                m.offset,
                                exc.code,
                                exc.detail,
                                key=m.key,
                            ),
                        )
                    )
                    continue
                if result is None:
                    continue
                latency, severity, detectors = result
                fb = parse_feedback(m.value)
                child = metrics.response_latency.get((fb["agency"], severity))
                if child is not None:
                    child.observe(latency)
                verdict = fb.get("verdict") or "none"
                for det in detectors:
                    metrics.feedback_counter(det, verdict).inc()
            if bad:
                metrics.deadletters.labels("feedback").inc(len(bad))
                await publish(app, bad)

    return feedback
