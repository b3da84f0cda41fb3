"""An agent that raises on a batch after processing it (issue 12 review of the lanes).

With lanes, a batch is tracked as pending acknowledgement when the agent takes it. Before
the fix, an agent that raised (a publish refused after the producer's retries) left its
batch tracked for ever: ``Consumer.wait_empty``, which every rebalance and shutdown awaits,
never returned, and the supervisor's restarted agent went on acknowledging later records,
so commits could pass the failed batch. Now the keeper untracks the batch, checkpoints
nothing more (its state is ahead of its published outputs) and crashes the app, so the
worker restarts from its last checkpoint and committed offsets: nothing lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.streams.offline import border_message, offline_keeper
from watchfloor.streams import agents
from watchfloor.streams.lanes import lanes_of


def test_a_failed_batch_is_untracked_no_state_is_saved_and_the_worker_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, app, keeper = offline_keeper("fail")
    keeper.rebalancing = False
    keeper.ready.set()  # as once an assignment's state is restored
    topic = rt.config.input_topics["border"].name
    body = agents.scoring_agent(app, rt, keeper, "border")
    lane = lanes_of(app)[topic]
    crashed: list[BaseException] = []
    written: list[Any] = []

    async def publish(app: Any, out: list[Any]) -> list[Any]:
        if any(m[0] == keeper.topic for m in out):
            written.extend(out)
            return []
        raise RuntimeError("KafkaTimeoutError: the broker did not acknowledge")

    async def crash(reason: BaseException) -> None:
        crashed.append(reason)

    monkeypatch.setattr(agents, "publish", publish)
    monkeypatch.setattr(app, "crash", crash)

    async def run() -> tuple[list[int], bool]:
        app.flow_control.resume()
        app.topics._acking_topics.add(topic)
        consumer = app.consumer
        task = asyncio.ensure_future(body(None))  # type: ignore[arg-type]
        lane.put([border_message(topic, 0), border_message(topic, 1)])
        for _ in range(100):
            await asyncio.sleep(0.02)
            if crashed:
                break
        lane.put([border_message(topic, 2)])  # the agent takes nothing more
        await asyncio.sleep(0.1)
        tracked = sorted(m.offset for m in consumer._unacked_messages)
        acked = [m for m in consumer._acked.values()]
        waiting = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(1.5)
        finished = waiting.done()
        consumer._stopped.set()
        await asyncio.wait_for(waiting, 5)
        await keeper.save()  # the timer's checkpoint
        await keeper.save({agents.score_name("border", 0)})  # a revocation's
        task.cancel()
        assert acked == [] or all(not a for a in acked)
        return tracked, finished

    tracked, finished = app.loop.run_until_complete(run())
    assert crashed and "did not acknowledge" in str(crashed[0])
    assert tracked == [], f"offsets still tracked after the failed batch: {tracked}"
    assert finished, "Consumer.wait_empty() would hang the next rebalance or shutdown"
    assert written == [], "a checkpoint ahead of the unpublished outputs was written"
    assert len(lane) == 1  # the next batch stays unprocessed until the restart
