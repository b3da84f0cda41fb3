"""`watchfloor tail` through the real command, on an agency topic of its own: a
deconfliction line names the other agencies' incidents, and says when another agency
holds this very alert rather than repeating its id as if it were theirs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import ROOT
from tests.kafka_helpers import produce, run
from watchfloor.config import load_config
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


def _notice(own: str, *others: tuple[str, str]) -> bytes:
    return orjson.dumps({
        "kind": "deconfliction", "notice_id": "dc-1", "alert_id": own, "agency": "cert",
        "agreement": "CERT-NET-2026", "created_at": "2026-11-24T21:04:05.000Z",
        "others": [{"agency": a, "alert_id": i} for a, i in others],
    })  # fmt: skip


def test_deconfliction_lines_name_the_other_agencies_incidents(
    broker: str, tmp_path: Path
) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    topic = f"alerts.cert.{uuid.uuid4().hex[:8]}"
    spec["topics"][topic] = spec["topics"].pop("alerts.cert")
    spec["agencies"]["cert"]["topic"] = topic
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    run(apply_topics(load_config(path), broker))
    run(produce(broker, topic, [
        (b"wf-a", _notice("wf-a", ("fiu", "wf-b"))),
        (b"wf-a", _notice("wf-a", ("ctpu", "wf-a"), ("liaison", "wf-a"))),
        (b"wf-a", _notice("wf-a", ("ctpu", "wf-a"), ("fiu", "wf-b"))),
    ]))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    env.update(WATCHFLOOR_BROKER=f"kafka://{broker}", WATCHFLOOR_TOPICS_FILE=str(path))
    r = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "tail", "cert", "--from-beginning",
         "--max", "3", "--timeout", "30"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "[DECONFLICT] wf-a: fiu holds wf-b on the same entity",
        "[DECONFLICT] wf-a: ctpu and liaison also received this alert",
        "[DECONFLICT] wf-a: fiu holds wf-b on the same entity; ctpu also received this alert",
    ]
