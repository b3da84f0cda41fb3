"""Ordinary mistakes get one line naming the problem and the fix, through the real
command, with the documented exit codes (2 usage or configuration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from watchfloor.evaluation.scoring import score_run
from watchfloor.settings import PACKAGED_TOPICS

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    return subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", *args],
        env={**base, **env},
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("abc", "error: WATCHFLOOR_METRICS_PORT='abc' is not a valid int (default 9464)"),
        ("70000", "error: WATCHFLOOR_METRICS_PORT=70000 is not a TCP port: use 1-65535 "
                  "(0: any free one)"),
    ],
)  # fmt: skip
def test_a_bad_metrics_port_is_one_line_for_any_command(value: str, line: str) -> None:
    # `tail` does not even use the port: the settings are read (and checked) first.
    r = cli("tail", "cert", "--max", "1", WATCHFLOOR_METRICS_PORT=value)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [line]


def test_a_metrics_port_in_use_stops_the_worker_with_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("worker", WATCHFLOOR_METRICS_PORT=str(port),
                WATCHFLOOR_MASTER_KEY="5c" + os.urandom(31).hex())  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"error: metrics port {port}: Address already in use; set WATCHFLOOR_METRICS_PORT to "
        "a free port"
    ]


def test_simulate_refuses_a_rate_of_zero() -> None:
    r = cli("simulate", "--rate", "0")
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == (
        "watchfloor simulate: error: argument --rate: must be > 0, got 0"
    )


def test_version() -> None:
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("watchfloor ")


def test_outside_the_repository_the_packaged_topology_is_used(tmp_path: Path) -> None:
    r = cli("detectors", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    enabled = {d["name"]: d["enabled"] for d in json.loads(r.stdout)}
    assert enabled["port_scan"] == "network@0.9"
    # The packaged default is the repository's topics.yaml itself.
    assert (ROOT / "topics.yaml").resolve() == PACKAGED_TOPICS


def test_topics_file_lookup_order(tmp_path: Path) -> None:
    spec = yaml.safe_load(PACKAGED_TOPICS.read_text())
    spec["detectors"]["network"] = [{"name": "port_scan", "threshold": 0.5}]
    (tmp_path / "topics.yaml").write_text(yaml.safe_dump(spec))
    other = tmp_path / "other.yaml"
    spec["detectors"]["network"] = [{"name": "port_scan", "threshold": 0.7}]
    other.write_text(yaml.safe_dump(spec))

    def port_scan(r: subprocess.CompletedProcess[str]) -> str:
        assert r.returncode == 0, r.stderr
        return {d["name"]: d["enabled"] for d in json.loads(r.stdout)}["port_scan"]

    # ./topics.yaml wins over the packaged default...
    assert port_scan(cli("detectors", "list", "--json", cwd=tmp_path)) == "network@0.5"
    # ...WATCHFLOOR_TOPICS_FILE over ./topics.yaml...
    env = {"WATCHFLOOR_TOPICS_FILE": str(PACKAGED_TOPICS)}
    assert port_scan(cli("detectors", "list", "--json", cwd=tmp_path, **env)) == "network@0.9"
    # ...and --topics-file, before or after the sub-command, over everything.
    for args in (("--topics-file", str(other), "detectors", "list", "--json"),
                 ("detectors", "list", "--json", "--topics-file", str(other))):  # fmt: skip
        assert port_scan(cli(*args, cwd=tmp_path, **env)) == "network@0.7"


def test_a_missing_topics_file_says_how_to_choose_one(tmp_path: Path) -> None:
    r = cli("detectors", "list", "--topics-file", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"error: {tmp_path / 'nope.yaml'}: cannot read (No such file or directory); give "
        "--topics-file or WATCHFLOOR_TOPICS_FILE, or unset it to use ./topics.yaml or the "
        "packaged default"
    ]


def test_a_run_without_threat_campaigns_does_not_meet_the_targets() -> None:
    # `evaluate --events 10`: nothing was measured, so nothing was met.
    stream = [("network", {"event_id": "e1", "ts": 1_700_000_000_000,
                           "sim": {"threat": None, "campaign": None}})]  # fmt: skip
    r = score_run(stream, [])
    assert not r.meets_targets
    assert r.failures()[0].startswith("no threat campaign in the run")


def test_a_worker_started_before_its_broker_waits_and_says_so() -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}
    env = {
        **base,
        "WATCHFLOOR_BROKER": f"kafka://127.0.0.1:{port}",
        "WATCHFLOOR_MASTER_KEY": os.urandom(32).hex(),
        "WATCHFLOOR_METRICS_PORT": "0",
    }
    proc = subprocess.Popen([sys.executable, "-m", "watchfloor.ops.cli", "worker"], env=env,
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(8)
        assert proc.poll() is None, "the worker gave up instead of waiting"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0] == (f"waiting for Kafka at 127.0.0.1:{port} (0 s so far; retrying every 2 s; "
                        "WATCHFLOOR_BROKER names it)")  # fmt: skip
    assert not any("Traceback" in line or "Unable connect" in line for line in lines), err


def test_shell_completion_completes_commands_and_options() -> None:
    script = cli("completion", "bash")
    assert script.returncode == 0 and "complete " in script.stdout
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHFLOOR_")}

    def complete(line: str) -> list[str]:
        env = {**base, "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE": "1"}
        # argcomplete answers on file descriptor 8, as the shell function expects.
        cmd = f"{sys.executable} -m watchfloor.ops.cli 8>&1 9>/dev/null"
        r = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=60)
        return r.stdout.split()

    assert complete("watchfloor ev") == ["evaluate"]
    assert complete("watchfloor topics apply --ch") == ["--check"]


def test_demo_refuses_an_unknown_agency_before_starting_anything() -> None:
    r = cli("demo", "--agency", "fui")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "error: --agency 'fui' is not an agency of topics.yaml; did you mean 'fiu'?"
    ]


def test_kafka_status_finds_the_data_dir_a_broker_was_started_with(tmp_path: Path) -> None:
    from watchfloor.ops.kafka_local import LocalKafka, _where_file

    state, custom = tmp_path / "state", tmp_path / "my-kafka"
    custom.mkdir()
    env = {"XDG_STATE_HOME": str(state)}
    os.environ.update(env)
    try:
        # What `kafka start --port 19392 --data-dir my-kafka` leaves behind.
        _where_file(19392).parent.mkdir(parents=True)
        _where_file(19392).write_text(f"{custom}\n")
        assert LocalKafka(port=19392).dir == custom
    finally:
        os.environ.pop("XDG_STATE_HOME")
    r = cli("kafka", "status", "--port", "19392", "--json", **env)
    assert r.returncode == 3  # not running: exit code 3, like a refused Kafka
    state_json = json.loads(r.stdout)
    assert state_json["running"] is False and state_json["data_dir"] == str(custom)
