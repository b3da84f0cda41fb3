"""A joint exercise end to end on the broker: `watchfloor exercise run` injects a shipped
scenario into a running worker, the agencies receive alerts labelled EXERCISE, an agency
acknowledges one, and `watchfloor report --exercise` scores detection, recipients,
acknowledgement and verdict, while the real report and metrics leave the exercise out."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import (
    metric_value,
    namespace,
    start_worker,
    stop_worker,
    worker_env,
)
from tests.kafka_helpers import run
from watchfloor.streams.topics import apply_topics

pytestmark = pytest.mark.broker


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "watchfloor.ops.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_an_exercise_is_injected_labelled_and_scored(broker: str, tmp_path: Path) -> None:
    prefix = f"ex{uuid.uuid4().hex[:6]}"
    path, config = namespace(tmp_path, prefix)
    run(apply_topics(config, broker))
    env = worker_env(broker, WATCHFLOOR_TOPICS_FILE=str(path))
    worker = start_worker(broker, config, tmp_path, WATCHFLOOR_TOPICS_FILE=str(path))
    exercise_id = f"EX-{uuid.uuid4().hex[:8]}"
    try:
        done = cli(env, "exercise", "run", "cross-border-financing", "--id", exercise_id,
                   "--speed", "10", "--follow", "12", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr + worker.log_tail()
        assert "inject 1-stolen_document" in done.stderr  # progress while injecting
        card = orjson.loads(done.stdout)
        rows = card["injects"]
        for name in ("1-stolen_document", "2-structuring", "3-high_risk_transfer",
                     "4-watchlist"):  # fmt: skip
            assert rows[name]["detected"], (name, rows[name], worker.log_tail())
            assert rows[name]["missing_recipients"] == [], orjson.dumps(card).decode()
        # Agencies see the label on every alert of the exercise.
        tail = cli(env, "tail", "fiu", "--from-beginning", "--timeout", "5")
        assert f"[EXERCISE {exercise_id}]" in tail.stdout
        # Exercise alerts are not counted as real ones.
        assert metric_value(worker.metrics(), "watchfloor_alerts_total") == 0
        assert metric_value(worker.metrics(), "watchfloor_incidents_total") == 0
        # The FIU acknowledges its alert about the structured deposits, as a threat.
        fiu_alert = next(
            a for a in (orjson.loads(line) for line in cli(
                env, "tail", "fiu", "--from-beginning", "--json", "--timeout", "5"
            ).stdout.splitlines())
            if a.get("exercise") == exercise_id and a.get("kind", "alert") == "alert"
        )
        ack = cli(env, "ack", fiu_alert["alert_id"], "--agency", "fiu", "--action", "close",
                  "--verdict", "true_positive")  # fmt: skip
        assert ack.returncode == 0, ack.stderr
        time.sleep(2)
        # Accepted by the worker (not dead-lettered as an alert it never delivered).
        assert metric_value(worker.metrics(), "watchfloor_deadletters_total",
                            source="feedback") == 0  # fmt: skip
    finally:
        stop_worker(worker)

    out = tmp_path / "scored"
    done = cli(env, "report", "--since", "1h", "--exercise", exercise_id, "--scenario",
               "cross-border-financing", "--out", str(out), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    card = orjson.loads((out / "exercise.json").read_bytes())
    s = card["summary"]
    assert s["injects"] == 4 and s["detected"] == 4
    assert s["expected_delivered"] == s["expected_deliveries"] == 6
    # One incident joined the person's crossing, deposits and wire (linked by person id):
    # the FIU's acknowledgement of it answers each of those injects it received.
    rows = card["injects"]
    assert "fiu" in rows["2-structuring"]["acknowledged_by"]
    assert rows["2-structuring"]["verdicts"] == {"fiu": "true_positive"}
    assert rows["4-watchlist"]["acknowledged_by"] == {}  # another incident
    assert s["verdicts"] == s["verdicts_right"] == s["acknowledged"] >= 1
    assert "detected 4/4 injects" in done.stdout
    # The real report of the same period leaves the exercise out.
    real = tmp_path / "real"
    done = cli(env, "report", "--since", "1h", "--out", str(real), "--quiet")
    assert done.returncode == 0, done.stderr
    figures = orjson.loads((real / "report.json").read_bytes())
    assert figures["alerts"]["incidents"] == 0 and figures["alerts"]["total_deliveries"] == 0
