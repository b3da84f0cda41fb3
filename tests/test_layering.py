"""The import layering the folders promise (README "Layout"): lower floors never import
upper ones. Checked on the source with ``ast``, so it holds for imports inside functions
too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "watchfloor"

# package -> watchfloor packages/modules it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": (
        "watchfloor.config", "watchfloor.settings", "watchfloor.detectors", "watchfloor.alerts",
        "watchfloor.streams", "watchfloor.kafka", "watchfloor.simulation",
        "watchfloor.evaluation", "watchfloor.ops",
    ),
    "detectors": ("watchfloor.streams", "watchfloor.alerts", "watchfloor.kafka",
                  "watchfloor.simulation", "watchfloor.evaluation", "watchfloor.ops"),
    "alerts": ("watchfloor.streams", "watchfloor.detectors", "watchfloor.kafka",
               "watchfloor.simulation", "watchfloor.evaluation", "watchfloor.ops"),
    "kafka": ("watchfloor.streams", "watchfloor.detectors", "watchfloor.alerts",
              "watchfloor.simulation", "watchfloor.evaluation", "watchfloor.ops"),
    "streams": ("watchfloor.simulation", "watchfloor.evaluation", "watchfloor.ops"),
    "simulation": ("watchfloor.streams", "watchfloor.evaluation", "watchfloor.ops"),
    "evaluation": ("watchfloor.ops",),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for name in imported_modules(path):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layering(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from watchfloor.streams.runtime import Runtime\n")
    assert "watchfloor.streams.runtime" in imported_modules(bad)
