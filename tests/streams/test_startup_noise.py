"""The two start-up log lines nobody could act on are demoted; real errors are not."""

from __future__ import annotations

import logging

import pytest
from aiokafka import errors

from watchfloor.streams.app import StartupNoise


def record(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("x", level, __file__, 1, msg, args, None)


@pytest.mark.parametrize("verbose", [False, True])
def test_retriable_coordinator_errors_and_sensor_bookkeeping_are_info(
    verbose: bool,
) -> None:
    root = logging.getLogger()
    was = root.level
    root.setLevel(logging.INFO if verbose else logging.WARNING)  # (setLevel clears caches)
    try:
        f = StartupNoise()
        for r in (
            record("Group Coordinator Request failed: %s", errors.CoordinatorNotAvailableError()),
            record("[^-App]: Missing sensor state for rebalance #%s", 1, level=logging.WARNING),
        ):
            assert f.filter(r) is verbose  # shown only when INFO is
            assert r.levelname == "INFO"
    finally:
        root.setLevel(was)


def test_other_errors_stay_errors() -> None:
    f = StartupNoise()
    fatal = record("Group Coordinator Request failed: %s", errors.GroupAuthorizationFailedError())
    other = record("Unable connect to %s", "127.0.0.1:1")
    assert f.filter(fatal) and fatal.levelname == "ERROR"
    assert f.filter(other) and other.levelname == "ERROR"
