"""Detectors: the contract (``base``), entry-point discovery (``registry``), the engine that
runs a domain's detectors, calibration helpers, the conformance suite (``checks``), the test
kit and the built-in detectors. May import ``watchfloor.core`` and ``watchfloor.config``;
never ``alerts``, ``streams``, ``kafka`` or ``ops``.
"""

from watchfloor.core.entity_table import EntityTable
from watchfloor.detectors.base import NORMAL, Detector, Score

__all__ = ["NORMAL", "Detector", "EntityTable", "Score"]
