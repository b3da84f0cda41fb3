"""deploy/compose parses and renders with Compose (`docker-compose config`: no engine is
needed), the key check included. Debian ships Compose v1, which predates the top-level
``name:`` of the Compose specification: the file is rendered without that one line, and
its value is checked apart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy/compose/compose.yaml"


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing: `make compose` installs it")
        pytest.skip("docker-compose is missing (make compose)")
    text = COMPOSE.read_text()
    assert "\nname: watchfloor\n" in text
    copy = tmp_path / "compose.yaml"
    copy.write_text(text.replace("\nname: watchfloor\n", "\n"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHFLOOR_", "COMPOSE"))}
    return subprocess.run(
        [exe, "--project-directory", str(COMPOSE.parent), "-f", str(copy), "config"],
        env={**base, **env}, capture_output=True, text=True, timeout=120,
    )


def test_compose_renders_every_service_with_the_key(tmp_path: Path) -> None:
    r = compose_config(tmp_path, WATCHFLOOR_PSEUDONYM_KEY="ab" * 32)
    assert r.returncode == 0, r.stderr
    rendered = yaml.safe_load(r.stdout)
    services = rendered["services"]
    assert {"kafka", "topics", "worker", "prometheus", "grafana"} <= set(services)
    worker = services["worker"]
    assert worker["environment"]["WATCHFLOOR_PSEUDONYM_KEY"] == "ab" * 32
    assert worker["environment"]["WATCHFLOOR_BROKER"] == "kafka://kafka:9092"
    # The topology mounted is the packaged one (the repository's topics.yaml).
    mounts = [v["source"] if isinstance(v, dict) else v.split(":")[0]
              for v in worker.get("volumes", [])]  # fmt: skip
    assert any(Path(m).resolve() == (ROOT / "watchfloor/data/topics.yaml") for m in mounts)


def test_compose_refuses_to_render_without_the_key(tmp_path: Path) -> None:
    r = compose_config(tmp_path)
    assert r.returncode != 0
    assert "set WATCHFLOOR_PSEUDONYM_KEY" in r.stderr
