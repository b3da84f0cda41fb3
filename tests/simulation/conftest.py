"""The stream every simulator test reads, built once per session."""

from __future__ import annotations

from typing import Any

import pytest

from watchfloor.core.decoding import decode
from watchfloor.simulation import Simulator, encode

N = 200_000


@pytest.fixture(scope="session")
def raw_stream() -> list[tuple[str, dict[str, Any]]]:
    """The default configuration's 200k-event stream as the simulator writes it."""
    return list(Simulator(seed=11).events(N))


@pytest.fixture(scope="session")
def stream(raw_stream: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The same stream, each event decoded as the worker sees it (with ``_ts``)."""
    return [(d, decode(d, encode(e))) for d, e in raw_stream]
