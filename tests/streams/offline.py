"""A worker's runtime, Faust app and state keeper that never contact a broker, and
border records for its agents: for tests that drive agents and the keeper by hand."""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path

import faust
import orjson
from faust.types.tuples import TP, ConsumerMessage
from prometheus_client import CollectorRegistry

from watchfloor.config import load_config
from watchfloor.core.events import EXAMPLES
from watchfloor.settings import Settings
from watchfloor.streams import agents
from watchfloor.streams.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]


def offline_keeper(name: str) -> tuple[Runtime, faust.App, agents.StateKeeper]:
    rt = Runtime.build(Settings(master_key=secrets.token_hex(32)),
                       load_config(ROOT / "topics.yaml"), CollectorRegistry())  # fmt: skip
    app = faust.App(f"{name}-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                    store="memory://", web_enabled=False)  # fmt: skip  # never contacted
    return rt, app, agents.StateKeeper(app, rt)


def border_message(topic: str, offset: int) -> ConsumerMessage:
    event = dict(EXAMPLES["border"], event_id=f"b{offset}", ts=int(time.time() * 1000))
    return ConsumerMessage(topic, 0, offset, time.time() * 1000, 0, [], b"k",
                           orjson.dumps(event), None, tp=TP(topic, 0), generation_id=0)  # fmt: skip
