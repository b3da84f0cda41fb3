"""Commands that read their topology use the file given (--topics-file, before or after
the sub-command, or WATCHFLOOR_TOPICS_FILE) for everything they do, through the real
command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.kafka_helpers import end_offsets


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    cmd = [sys.executable, "-m", "watchfloor.ops.cli", *args]
    return subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_demo_uses_the_topics_file_given_after_the_sub_command(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["agencies"]["certnl"] = spec["agencies"].pop("cert")
    spec["topics"]["feedback.cert"]["agency"] = "certnl"
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    # An unreachable broker named: the demo never starts a local one here.
    r = _cli("demo", "--agency", "cert", "--topics-file", str(path),
             WATCHFLOOR_BROKER="kafka://127.0.0.1:9")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"error: --agency 'cert' is not an agency of {path}; did you mean 'certnl'?"
    ]


@pytest.mark.broker
def test_simulate_publishes_to_the_input_topics_of_its_topics_file(
    broker: str, tmp_path: Path
) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    suffix = uuid.uuid4().hex[:8]
    renamed = {}
    for name, topic in list(spec["topics"].items()):
        if topic["role"] == "input":
            renamed[topic["domain"]] = f"{name}.{suffix}"
            spec["topics"][f"{name}.{suffix}"] = spec["topics"].pop(name)
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    args = ("simulate", "--rate", "200", "--duration", "1", "--quiet", "--topics-file", str(path))
    r = _cli(*args, WATCHFLOOR_BROKER=f"kafka://{broker}")  # before `topics apply`
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"error: the broker at {broker} has no topic {', '.join(sorted(renamed.values()))} "
        f"(input of {path}); run `watchfloor topics apply`"
    ]
    r = _cli("topics", "apply", "--topics-file", str(path), WATCHFLOOR_BROKER=f"kafka://{broker}")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"topology from {path}"]  # which file it applied
    r = _cli("simulate", "--rate", "200", "--duration", "1", "--quiet", "--topics-file",
             str(path), WATCHFLOOR_BROKER=f"kafka://{broker}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    published = {d: sum(asyncio.run(end_offsets(broker, t)).values()) for d, t in renamed.items()}
    assert sum(published.values()) == 200, published
