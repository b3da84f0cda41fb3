"""Agents take a new assignment's records only once its state is restored.

Faust resumes the flow as soon as it sought the committed offsets, while the
``on_partitions_assigned`` handlers (our restore) still run: the agents scored the new
partitions' first records with an empty engine, which the restored one then replaced
without having learnt them, and alert stages started afresh (CI logs, session 7: "Resuming
flow" 33 ms before "state ready").
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types.tuples import TP, ConsumerMessage
from prometheus_client import CollectorRegistry

from watchfloor.config import load_config
from watchfloor.core.events import EXAMPLES
from watchfloor.settings import Settings
from watchfloor.streams import agents
from watchfloor.streams.lanes import lanes_of
from watchfloor.streams.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


def _message(topic: str, offset: int) -> ConsumerMessage:
    event = dict(EXAMPLES["border"], event_id=f"b{offset}", ts=int(time.time() * 1000))
    return ConsumerMessage(topic, 0, offset, time.time() * 1000, 0, [], b"k",
                           orjson.dumps(event), None, tp=TP(topic, 0), generation_id=0)  # fmt: skip


def test_records_wait_until_the_assigned_state_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = Runtime.build(Settings(master_key=secrets.token_hex(32)),
                       load_config(ROOT / "topics.yaml"), CollectorRegistry())  # fmt: skip
    app = faust.App(f"gate-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                    store="memory://", web_enabled=False)  # fmt: skip  # never contacted
    keeper = agents.StateKeeper(app, rt)
    topic = rt.config.input_topics["border"].name
    body = agents.scoring_agent(app, rt, keeper, "border")
    lane = lanes_of(app)[topic]

    async def publish(app: Any, out: list[Any]) -> list[Any]:
        return []

    restoring = asyncio.Event()

    async def load(wanted: set[str]) -> dict[str, Any]:
        await restoring.wait()  # reading the checkpoints topic
        return {}

    async def committed() -> dict[tuple[str, int], int]:
        return {}

    monkeypatch.setattr(agents, "publish", publish)
    monkeypatch.setattr(keeper, "load", load)
    monkeypatch.setattr(keeper, "committed", committed)
    monkeypatch.setattr(app.consumer, "highwater", lambda tp: None)

    async def run() -> tuple[int | None, int | None]:
        app.flow_control.resume()  # as Faust's recovery does before the restore ends
        app.topics._acking_topics.add(topic)
        task = asyncio.ensure_future(body(None))  # type: ignore[arg-type]
        await keeper.on_revoked(set())
        assigned = asyncio.ensure_future(keeper.on_assigned({TP(topic, 0)}))
        lane.put([_message(topic, 0), _message(topic, 1)])
        await asyncio.sleep(0.2)
        during = rt.processor.next_offset.get(("border", 0))
        restoring.set()
        await assigned
        await asyncio.sleep(0.2)
        after = rt.processor.next_offset.get(("border", 0))
        task.cancel()
        return during, after

    during, after = app.loop.run_until_complete(run())
    assert during is None, "records were scored before the partition's state was restored"
    assert after == 2


def test_a_kept_partition_resumes_after_what_it_processed_not_at_the_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The group resumes from the commit, which trails what this worker processed (and
    # published) before the rebalance: those records are not learnt or alerted on twice.
    rt = Runtime.build(Settings(master_key=secrets.token_hex(32)),
                       load_config(ROOT / "topics.yaml"), CollectorRegistry())  # fmt: skip
    app = faust.App(f"kept-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                    store="memory://", web_enabled=False)  # fmt: skip  # never contacted
    keeper = agents.StateKeeper(app, rt)
    topic = rt.config.input_topics["border"].name
    detections = rt.config.topic("detections").name
    rt.processor.engine("border", 0)
    rt.processor.next_offset[("border", 0)] = 100
    rt.stage(0)
    rt.stage_next[0] = 30

    async def load(wanted: set[str]) -> dict[str, Any]:
        return {}

    async def committed() -> dict[tuple[str, int], int]:
        return {(topic, 0): 40, (detections, 0): 30}

    monkeypatch.setattr(keeper, "load", load)
    monkeypatch.setattr(keeper, "committed", committed)
    app.loop.run_until_complete(keeper.on_assigned({TP(topic, 0), TP(detections, 0)}))
    assert rt.processor.skip_until.get(("border", 0)) == 100
    assert 0 not in rt.stage_skip  # committed up to what it processed: nothing to skip


def test_unreadable_commits_do_not_stop_a_worker_that_restores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reading them is only to skip what kept partitions processed: a broker blip during a
    # rebalance must not crash the worker for that (nor leave its agents waiting).
    rt = Runtime.build(Settings(master_key=secrets.token_hex(32)),
                       load_config(ROOT / "topics.yaml"), CollectorRegistry())  # fmt: skip
    app = faust.App(f"blip-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                    store="memory://", web_enabled=False)  # fmt: skip  # never contacted
    keeper = agents.StateKeeper(app, rt)
    topic = rt.config.input_topics["border"].name
    rt.processor.engine("border", 0)
    rt.processor.next_offset[("border", 0)] = 100

    async def load(wanted: set[str]) -> dict[str, Any]:
        return {}

    async def committed() -> dict[tuple[str, int], int]:
        raise ConnectionError("the broker did not answer")

    monkeypatch.setattr(keeper, "load", load)
    monkeypatch.setattr(keeper, "committed", committed)
    app.loop.run_until_complete(keeper.on_assigned({TP(topic, 0)}))
    assert keeper.ready.is_set() and not keeper.rebalancing
    assert ("border", 0) not in rt.processor.skip_until
