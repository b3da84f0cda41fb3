"""`watchfloor audit` through the real command, on its own audit topic of the broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import ROOT
from tests.kafka_helpers import produce, run
from watchfloor.alerts.audit import AuditChain
from watchfloor.config import load_config
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


def test_audit_counts_deliveries_and_prints_json(broker: str, tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    topic = f"audit.sharing.{uuid.uuid4().hex[:8]}"
    spec["topics"][topic] = spec["topics"].pop("audit.sharing")
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    run(apply_topics(load_config(path), broker))
    chain, now = AuditChain("w0"), time.time()
    records = [
        chain.append(alert_id=f"wf-{i}", version=1, agency="cert", agreement="CERT-NET-2026",
                     shared=["severity", "entities.id[ip]"], pseudonymised=["entities.id"],
                     redacted=[], time=now)
        for i in range(2)
    ]
    run(produce(broker, topic, [(b"w0", orjson.dumps(r)) for r in records]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    env.update(WATCHFLOOR_BROKER=f"kafka://{broker}", WATCHFLOOR_TOPICS_FILE=str(path))

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "watchfloor.ops.cli", "audit", *args],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip

    r = audit("--agency", "cert")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    (line,) = r.stderr.splitlines()
    assert line.startswith("2 deliveries to cert since "), line
    r = audit("--agency", "cert", "--json")
    assert [json.loads(x) for x in r.stdout.splitlines()] == records
