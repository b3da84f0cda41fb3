"""Every registered detector (built-in or installed plugin) passes the conformance suite."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from watchfloor.detectors.base import Detector
from watchfloor.detectors.checks import yield_checks
from watchfloor.detectors.registry import GROUP

# Parametrize over entry points, not over discover(): a plugin that fails to import then
# fails its own tests instead of hiding every other detector's.
ENTRY_POINTS = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
CHECKS = list(yield_checks(Detector))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("ep", ENTRY_POINTS, ids=lambda ep: ep.name)
def test_conformance(ep, check) -> None:
    cls = ep.load()
    assert isinstance(cls, type) and issubclass(cls, Detector), f"{ep.value} is not a Detector"
    check(cls, 0)


def test_builtin_network_detectors_are_registered() -> None:
    names = {ep.name for ep in ENTRY_POINTS}
    assert {"port_scan", "exfiltration", "beaconing", "flow_halfspace", "flood", "brute_force",
            "spam"} <= names
