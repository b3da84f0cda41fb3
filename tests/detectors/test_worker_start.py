"""Configuration errors stop the worker at start, with a message that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_worker(topics: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WATCHFLOOR_TOPICS_FILE=str(topics),
               WATCHFLOOR_BROKER="kafka://127.0.0.1:1",  # never reached: it fails before
               WATCHFLOOR_PSEUDONYM_KEY="k" * 32)
    return subprocess.run([sys.executable, "-m", "watchfloor.ops.cli", "worker"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_unknown_detector_stops_the_worker_and_lists_valid_names(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["detectors"]["border"].append({"name": "crystal_ball", "threshold": 0.9})
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_worker(path)
    assert proc.returncode == 2
    k = len(spec["detectors"]["border"]) - 1
    assert f"error: detectors.border[{k}].name: 'crystal_ball' is not installed; " in proc.stderr
    assert "watchlist" in proc.stderr and "port_scan" in proc.stderr  # the valid names
    assert "Traceback" not in proc.stderr


def test_bad_detector_parameters_name_the_detector(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["detectors"]["financial"][0]["params"] = {"no_such_param": 3}
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_worker(path)
    assert proc.returncode == 2
    assert "detector 'structuring'" in proc.stderr and "no_such_param" in proc.stderr


def test_invalid_topology_names_the_place(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["agencies"]["fiu"]["agreement"]["fields"]["entities.idd"] = "full"
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_worker(path)
    assert proc.returncode == 2
    assert "agencies.fiu.agreement.fields.entities.idd: unknown alert field" in proc.stderr


def test_a_misspelt_detector_names_its_place_and_the_nearest_name(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["detectors"]["network"][0]["name"] = "port_scna"
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    for cmd in (["worker"], ["detectors", "list"]):  # `detectors list` checks the file too
        env = dict(os.environ, WATCHFLOOR_TOPICS_FILE=str(path),
                   WATCHFLOOR_BROKER="kafka://127.0.0.1:1", WATCHFLOOR_PSEUDONYM_KEY="k" * 32)
        proc = subprocess.run([sys.executable, "-m", "watchfloor.ops.cli", *cmd], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, cmd
        (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
        assert "detectors.network[0].name: 'port_scna' is not installed; did you mean " \
               "'port_scan'? installed: " in line, line
