"""Shared helpers for the alerts-stage tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from watchfloor.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_790_000_000.0  # 2026-09-21, inside the decoder's accepted range

Det = Callable[..., dict[str, Any]]


def make_detection(
    entity: str = "ip:10.0.0.1",
    detector: str = "port_scan",
    domain: str = "network",
    t: float = T0,
    score: float = 0.92,
    event_id: str | None = None,
    links: tuple[str, ...] = (),
    jurisdiction: str | None = "NL",
    arrival: float | None = None,
) -> dict[str, Any]:
    """A detection shaped like ``DomainEngine._detection``; links as "type:id" strings."""
    etype, eid = entity.split(":", 1)
    return {
        "detector": detector,
        "kind": detector,
        "domain": domain,
        "event_id": event_id or f"{domain[:3]}-{detector}-{t:.3f}",
        "score": score,
        "raw": score * 10,
        "reason": f"{detector} fired on {eid}",
        "ts": int(t * 1000),
        "event_time": t,
        "arrival": t + 0.5 if arrival is None else arrival,
        "entity": {"type": etype, "id": eid},
        "links": [
            {"type": lt, "id": lid, "via": f"{lt}_id"}
            for lt, lid in (link.split(":", 1) for link in links)
        ],
        "jurisdiction": jurisdiction,
    }


@pytest.fixture
def det() -> Det:
    return make_detection


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(ROOT / "topics.yaml")


KEY = b"test-master-key-0123456789abcdef"


@pytest.fixture
def key() -> bytes:
    return KEY
