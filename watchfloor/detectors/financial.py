"""Financial detectors: payments and transfers.

The detectors live in modules by what they judge; this module re-exports them so
``watchfloor.detectors.financial:AmountAnomaly`` (entry points, plugins' imports) keeps
working:

* :mod:`~watchfloor.detectors.financial_amount`: one payment's size against the account,
  its peers and the population (``amount_anomaly``, ``account_drain``);
* :mod:`~watchfloor.detectors.financial_rules`: rules of ``docs/threats.md``
  (``structuring``, ``fan_out``, ``high_risk_jurisdiction``);
* :mod:`~watchfloor.detectors.financial_typologies`: laundering typologies over recent
  money flows (``fan_in``, ``pass_through``, ``cycle``, ``velocity``).
"""

from __future__ import annotations

from watchfloor.detectors.financial_amount import AccountDrain, AmountAnomaly
from watchfloor.detectors.financial_common import (
    HIGH_RISK_COUNTRIES_PATH,
    load_countries,
    payroll_runs,
)
from watchfloor.detectors.financial_rules import FanOut, HighRiskJurisdiction, Structuring
from watchfloor.detectors.financial_typologies import Cycle, FanIn, PassThrough, Velocity

__all__ = [
    "HIGH_RISK_COUNTRIES_PATH",
    "AccountDrain",
    "AmountAnomaly",
    "Cycle",
    "FanIn",
    "FanOut",
    "HighRiskJurisdiction",
    "PassThrough",
    "Structuring",
    "Velocity",
    "load_countries",
    "payroll_runs",
]
