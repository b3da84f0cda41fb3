"""Agents take a new assignment's records only once its state is restored.

Faust resumes the flow as soon as it sought the committed offsets, while the
``on_partitions_assigned`` handlers (our restore) still run: the agents scored the new
partitions' first records with an empty engine, which the restored one then replaced
without having learnt them, and alert stages started afresh (CI logs, session 7: "Resuming
flow" 33 ms before "state ready").
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types.tuples import TP

from tests.streams.offline import border_message, offline_keeper
from watchfloor.streams import agents
from watchfloor.streams.lanes import lanes_of


def assign(
    monkeypatch: pytest.MonkeyPatch,
    app: Any,
    keeper: agents.StateKeeper,
    tps: set[TP],
    commits: dict[tuple[str, int], int] | Exception,
) -> None:
    """Run the keeper's assignment handler with no checkpoint to restore and the group
    committed at ``commits`` (an exception: unreadable)."""

    async def load(wanted: set[str]) -> dict[str, Any]:
        return {}

    async def committed() -> dict[tuple[str, int], int]:
        if isinstance(commits, Exception):
            raise commits
        return commits

    monkeypatch.setattr(keeper, "load", load)
    monkeypatch.setattr(keeper, "committed", committed)
    app.loop.run_until_complete(keeper.on_assigned(tps))


def kept_border(name: str, processed_to: int) -> tuple[Any, Any, agents.StateKeeper, str]:
    """An offline keeper whose worker holds border partition 0, processed up to there."""
    rt, app, keeper = offline_keeper(name)
    rt.processor.engine("border", 0)
    rt.processor.next_offset[("border", 0)] = processed_to
    return rt, app, keeper, rt.config.input_topics["border"].name


def test_records_wait_until_the_assigned_state_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, app, keeper = offline_keeper("gate")
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
        lane.put([border_message(topic, 0), border_message(topic, 1)])
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
    rt, app, keeper, topic = kept_border("kept", 100)
    detections = rt.config.topic("detections").name
    rt.stage(0)
    rt.stage_next[0] = 30

    commits = {(topic, 0): 40, (detections, 0): 30}
    assign(monkeypatch, app, keeper, {TP(topic, 0), TP(detections, 0)}, commits)
    assert rt.processor.skip_until.get(("border", 0)) == 100
    assert 0 not in rt.stage_skip  # committed up to what it processed: nothing to skip


def test_unreadable_commits_do_not_stop_a_worker_that_restores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reading them is only to skip what kept partitions processed: a broker blip during a
    # rebalance must not crash the worker for that (nor leave its agents waiting).
    rt, app, keeper, topic = kept_border("blip", 100)

    assign(monkeypatch, app, keeper, {TP(topic, 0)}, ConnectionError("no broker answer"))
    assert keeper.ready.is_set() and not keeper.rebalancing
    assert ("border", 0) not in rt.processor.skip_until


def test_a_skip_point_from_a_restore_survives_the_next_rebalance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Restored with next 1000 while the group had committed 600: re-reading 600..799
    # (skipped) set next_offset back to 800, so the next rebalance skipped only to 800 and
    # the checkpoint said 800: 800..999 were learnt twice and alerted on again (review).
    rt, app, keeper, topic = kept_border("again", 1000)
    rt.processor.skip_until[("border", 0)] = 1000
    records = [
        (border_message(topic, o).value, b"k", topic, 0, o, 0.0) for o in range(600, 800)
    ]
    rt.processor.process("border", records)
    assert rt.processor.next_offset[("border", 0)] == 1000

    assign(monkeypatch, app, keeper, {TP(topic, 0)}, {(topic, 0): 600})
    assert rt.processor.skip_until[("border", 0)] == 1000


def test_a_failed_restore_keeps_the_agents_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust crashes the app on it; meanwhile agents must not score on a half-restored
    # state (fresh engines, no skip points: the previous owner's alerts again).
    rt, app, keeper = offline_keeper("broken")
    topic = rt.config.input_topics["border"].name

    async def load(wanted: set[str]) -> dict[str, Any]:
        raise ConnectionError("the checkpoints topic could not be read")

    monkeypatch.setattr(keeper, "load", load)
    with pytest.raises(ConnectionError):
        app.loop.run_until_complete(keeper.on_assigned({TP(topic, 0)}))
    assert not keeper.ready.is_set()
