"""The example plugin installs like any third-party package and is found and checked.

Installing it is part of the test (the point is that a pip-installed package shows up in
the registry); it stays installed afterwards, so later conformance runs cover it too.
"""

from __future__ import annotations

import importlib
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from watchfloor.detectors.checks import check_detector
from watchfloor.detectors.registry import build, discover

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "watchfloor-example-plugin"


@pytest.fixture(scope="module")
def installed() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "-e", str(PLUGIN)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, (
        "pip could not install the example plugin (with --no-build-isolation the venv "
        f"needs setuptools>=64 and wheel):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )
    # The editable install hooks in through a .pth file, which Python only reads at
    # start; re-reading site-packages activates it in this process.
    site.addsitedir(sysconfig.get_paths()["purelib"])
    importlib.invalidate_caches()


def test_registry_discovers_the_plugin_with_its_package_name(installed: None) -> None:
    found = discover()
    assert "rare_port" in found
    entry = found["rare_port"]
    assert entry.package == "watchfloor-example-plugin"
    assert entry.target == "watchfloor_example_plugin:RarePort"
    assert entry.cls.__name__ == "RarePort"
    # Built-ins are still there next to it.
    assert found["port_scan"].package == "watchfloor"


def test_plugin_is_configured_like_a_builtin(installed: None) -> None:
    det = build("rare_port", "network", {"watch_ports": [4444], "min_history": 10})
    assert det.watch_ports == (4444,)  # topics.yaml lists become immutable tuples
    assert type(det).kind == "rare_port"


def test_plugin_passes_the_conformance_suite(installed: None) -> None:
    check_detector(discover()["rare_port"].cls, seed=0)
