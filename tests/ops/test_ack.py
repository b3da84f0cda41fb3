"""`watchfloor ack` mistakes answered in one line, through the real command (no broker
needed for these; the broker cases are in tests/integration/test_feedback_trust.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ack(*args: str, broker: str = "kafka://127.0.0.1:9") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WATCHFLOOR_BROKER=broker,
               WATCHFLOOR_TOPICS_FILE=str(ROOT / "topics.yaml"))
    return subprocess.run([sys.executable, "-m", "watchfloor.ops.cli", "ack", *args],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["wf-1", "--agency", "nsa"],
         "error: unknown agency 'nsa'; agencies: border, cert, ctpu, fiu, liaison"),
        (["wf-1", "--agency", "cert", "--action", "escalate"],
         "error: --action escalate needs --verdict true_positive or false_positive (the "
         "worker refuses an escalate without one)"),
        (["wf-1", "--agency", "cert", "--action", "close"],
         "error: --action close needs --verdict true_positive or false_positive (the "
         "worker refuses a close without one)"),
        (["", "--agency", "cert"],
         "error: the feedback would be refused: bad_value: 'alert_id' must be 1..512 "
         "characters"),
    ],
)
def test_usage_mistakes_exit_2_with_one_line_and_send_nothing(args: list[str], line: str) -> None:
    proc = ack(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [line]
    assert proc.stdout == ""


def test_no_broker_is_one_line_exit_3() -> None:
    proc = ack("wf-1", "--agency", "cert", "--timeout", "3")
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [
        "error: Kafka: cannot reach the broker at 127.0.0.1:9 (KafkaConnectionError); "
        "nothing recorded. Is it running? (`watchfloor kafka status`)"
    ]
