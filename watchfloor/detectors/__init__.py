"""Detectors: the contract, the registry, bounded per-entity state and the built-ins."""

from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.state import EntityTable

__all__ = ["NORMAL", "Detector", "EntityTable", "Score"]
