"""Shared pieces of the financial detectors: amounts, reason formatting, reference
lists and the benign look-alikes their planted scenarios use."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

__all__ = ["HIGH_RISK_COUNTRIES_PATH", "load_countries", "payroll_runs"]

HIGH_RISK_COUNTRIES_PATH = str(files("watchfloor") / "data" / "high_risk_countries.txt")

_DAY = 86_400.0


def _window_text(seconds: float) -> str:
    """``86400`` -> ``"24h"``, ``5400`` -> ``"90min"``: how reasons name a window."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 60:.0f}min"


def _money(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _amount(event: Mapping[str, Any], field: str = "amount") -> float:
    """The payment amount, or 0.0 when absent, not a number or not a usable amount.

    Decoding refuses negative, denormal and absurd amounts; this is the second line for
    events that reach a detector another way (replays, tests, plugins' own feeds):
    anything below the smallest normal float or not finite is "nothing to judge".
    """
    a = event.get(field)
    if type(a) is not float and type(a) is not int:
        return 0.0
    a = float(a)
    return a if _MIN_AMOUNT <= a <= _MAX_AMOUNT else 0.0


def _log_amount(event: Mapping[str, Any], field: str = "amount") -> float | None:
    """``log(amount)`` for a usable amount, else None (zero, absent or hostile)."""
    a = _amount(event, field)
    return math.log(a) if a > 0.0 else None


_MIN_AMOUNT = 2.2250738585072014e-308  # the smallest normal float
_MAX_AMOUNT = 1e15


def payroll_runs(
    rng: random.Random, start: float, days: int, account: str = "ACC-PAYROLL", staff: int = 40
) -> list[dict[str, Any]]:
    """A company paying the same ``staff`` employees 2,000-6,000 every day at 17:00.

    The benign look-alike of structuring and fan-out (``docs/threats.md``).
    """
    from watchfloor.detectors.testkit import make_event

    salaries = [round(rng.uniform(2_000, 6_000), 2) for _ in range(staff)]
    return [
        make_event("financial", _ts=start + d * _DAY + 17 * 3600 + 5 * i, account_id=account,
                   counterparty_id=f"EMP-{i:03d}", amount=salaries[i], country="NL")
        for d in range(days)
        for i in range(staff)
    ]


def load_countries(path: str) -> tuple[str, ...]:
    """ISO country codes from a text file, one per line; ``#`` starts a comment."""
    with open(path, encoding="utf-8") as fh:
        codes = (line.split("#", 1)[0].strip().upper() for line in fh)
        return tuple(c for c in codes if c)


