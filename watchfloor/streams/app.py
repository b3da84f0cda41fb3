"""The Faust app: one scoring agent per domain, one alert agent, one feedback agent."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import faust

from watchfloor.kafka.clients import faust_credentials
from watchfloor.kafka.partitioner import CachedPartitioner
from watchfloor.streams import agents
from watchfloor.streams.drain import BatchedConsumer
from watchfloor.streams.runtime import Runtime


class StartupNoise(logging.Filter):
    """Two log lines every start printed and nobody could act on, demoted to INFO:

    - aiokafka's ``[ERROR] Group Coordinator Request failed`` for a *retriable* error
      (the broker is still creating ``__consumer_offsets`` for a new group; it retries);
    - Faust's ``[WARNING] Missing sensor state for rebalance`` (its sensor bookkeeping
      when no sensor recorded the rebalance's start; the rebalance itself is fine).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        err = (record.args or (None,))[0] if isinstance(record.args, tuple) else None
        retriable = msg.startswith("Group Coordinator Request failed") and bool(
            getattr(err, "retriable", False)
        )
        # (Faust prefixes its service, "[^-App]: ...".)
        if retriable or "Missing sensor state for rebalance" in msg:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


LOOP_TICK = 0.05  # seconds between the loop watcher's wake-ups

_NOISE = StartupNoise()
for _name in ("aiokafka.consumer.group_coordinator", "faust.app.base"):
    logging.getLogger(_name).addFilter(_NOISE)


def create_app(rt: Runtime, on_ready: Callable[[int], None] | None = None) -> faust.App:
    """The worker's Faust app; ``on_ready(partitions)`` after each assignment's state is
    restored (the worker prints its ready line from it)."""
    s, cfg = rt.settings, rt.config
    app = faust.App(
        s.app_id,
        broker=s.broker,
        broker_credentials=faust_credentials(s),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset=s.start_from,
        producer_acks=-1,
        producer_linger=0.002,
        producer_partitioner=CachedPartitioner(),
        broker_max_poll_records=s.batch_size,
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=max(0.5, s.session_timeout / 10),
        web_enabled=False,
    )

    # Records reach the agents without Faust's per-message flow-control wait (drain.py).
    app.transport.Consumer = BatchedConsumer  # type: ignore[misc]

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes)

    keeper = agents.StateKeeper(app, rt)
    # One scoring agent per input topic, and one for the re-keyed second stage.
    for domain, spec in agents.scored_topics(rt).items():
        app.agent(topic(spec.name), name=f"score-{domain}")(
            agents.scoring_agent(app, rt, keeper, domain)
        )
    app.agent(topic(cfg.topic("detections").name), name="alerts")(
        agents.alert_agent(app, rt, keeper)
    )
    # Feedback (one topic per agency) and publications are co-partitioned by alert id:
    # one agent reads them all, and takes each feedback's agency from its topic.
    app.agent(
        app.topic(
            *sorted(t.name for t in cfg.feedback_topics.values()),
            cfg.topic("published").name,
            key_type=bytes,
            value_type=bytes,
        ),
        name="feedback",
    )(agents.feedback_agent(app, rt, keeper))

    @app.timer(interval=max(0.25, rt.settings.checkpoint_interval / 2))
    async def _checkpoint_when_idle() -> None:
        await keeper.idle_save()

    @app.task
    async def _watch_the_loop() -> None:
        # A timer's lateness is the loop's stall (issue 12: checkpoints must not stall it).
        stall, worst = rt.metrics.loop_stall, rt.metrics.loop_stall_max
        longest = 0.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(LOOP_TICK)
            late = max(0.0, time.monotonic() - before - LOOP_TICK)
            stall.observe(late)
            if late > longest:
                longest = late
                worst.set(late)

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object, assigned: set, **kwargs: object) -> None:
        # Restore before the gauge says ready. Faust resumes the flow meanwhile: the
        # agents' lanes wait for the keeper's gate (set when this returns).
        await keeper.on_assigned(assigned)
        rt.metrics.assigned_partitions.set(len(assigned))
        if on_ready is not None:
            on_ready(len(assigned))

    @app.on_partitions_revoked.connect
    async def _revoked(sender: object, revoked: set, **kwargs: object) -> None:
        rt.metrics.assigned_partitions.set(0)
        rt.metrics.reset_lag()
        await keeper.on_revoked(revoked)

    return app
