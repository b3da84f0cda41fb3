"""Financial detectors on crafted streams: each threat of docs/threats.md is caught, each
benign look-alike stays quiet, and per-account state stays bounded."""

from __future__ import annotations

import pickle
import random

import pytest

from watchfloor.detectors.financial import (
    AmountAnomaly,
    FanOut,
    HighRiskJurisdiction,
    Structuring,
    payroll_runs,
)
from watchfloor.detectors.testkit import START, feed, make_event, scores

DAY = 86_400.0
ALARM = 0.9


def pay(t: float, amount: float = 100.0, **kw: object) -> dict:
    return make_event("financial", _ts=START + t, amount=amount, **kw)


# -- structuring ------------------------------------------------------------------------


def test_structuring_three_payments_under_threshold_in_a_day() -> None:
    det = Structuring()
    got = feed(det, [pay(h * 3600, a, account_id="SMURF")
                     for h, a in ((1, 9_400.0), (7, 9_990.0), (20, 9_001.0))])
    assert [s.score >= ALARM for s in got] == [False, False, True]
    assert got[-1].reason == "3 payments of 9,000-9,999 within 24h"
    assert got[-1].raw == 3


def test_structuring_ignores_payments_spread_over_more_than_the_window() -> None:
    det = Structuring()
    got = scores(det, [pay(d * 1.1 * DAY, 9_500.0, account_id="A") for d in range(5)])
    assert max(got) < ALARM


def test_structuring_single_large_payment_and_payroll_are_benign() -> None:
    rng = random.Random(1)
    det = Structuring()
    events = payroll_runs(rng, START, days=5) + [pay(3600.0 * k, 9_500.0, account_id=f"B{k}")
                                                  for k in range(50)]
    events.sort(key=lambda e: e["_ts"])
    assert max(scores(det, events)) < ALARM


def test_structuring_threshold_and_window_are_configurable() -> None:
    det = Structuring(threshold=3_000.0, margin=0.1, window_seconds=3600.0, min_count=4)
    got = feed(det, [pay(600.0 * i, 2_950.0, account_id="A") for i in range(4)])
    assert got[-1].score >= ALARM
    assert got[-1].reason == "4 payments of 2,700-2,999 within 1h"
    assert det.score_one(pay(10_000.0, 3_000.0, account_id="A")).score == 0.0


# -- fan-out ----------------------------------------------------------------------------


def test_fan_out_mule_paying_many_new_counterparties_is_flagged() -> None:
    det = FanOut()
    habits = [pay(i * 7_200.0, account_id="MULE", counterparty_id=("RENT", "SHOP")[i % 2])
              for i in range(24)]
    mule = [pay(2 * DAY + 300 * i, account_id="MULE", counterparty_id=f"NEW-{i}",
                country=("NL", "LT", "CY")[i % 3]) for i in range(8)]
    got = feed(det, habits + mule)
    assert max(s.score for s in got[:-1]) < ALARM
    assert got[-1].score >= ALARM
    assert got[-1].reason == "8 never-seen counterparties within 1h (3 countries)"


def test_fan_out_payroll_paying_known_staff_every_day_is_benign() -> None:
    det = FanOut()
    got = scores(det, payroll_runs(random.Random(2), START, days=5, staff=60))
    assert max(got) < ALARM


def test_fan_out_known_counterparties_are_bounded_per_account() -> None:
    det = FanOut(max_counterparties=16, warmup_seconds=0.0)
    feed(det, [pay(60.0 * i, account_id="A", counterparty_id=f"C{i}") for i in range(1_000)])
    assert len(det._table.get("A").known) == 16


# -- amount anomaly ---------------------------------------------------------------------


def steady_history(rng: random.Random, n: int = 60) -> list[dict]:
    """Payments of 80-120, every tenth a 3-5x payday spike or month-end rent."""
    return [pay(3_600.0 * i, round(rng.uniform(80, 120) * (rng.uniform(3, 5) if i % 10 == 9
                                                          else 1), 2), account_id="S")
            for i in range(n)]


def test_account_takeover_30x_median_is_flagged() -> None:
    rng = random.Random(5)
    det = AmountAnomaly()
    history = steady_history(rng)
    got = feed(det, history)
    assert max(s.score for s in got) < ALARM  # payday spikes are normal
    s = det.score_one(pay(61 * 3_600.0, 3_000.0, account_id="S"))
    assert s.score >= 0.95  # the threshold topics.yaml sets for amount_anomaly
    assert 25 <= s.raw <= 35 and "x the median" in s.reason


def test_amount_anomaly_an_account_that_paid_as_much_before_is_not_taken_over() -> None:
    """Issue 11 (AMLSim-style export): an account whose history holds a large one-off
    purchase (40x its median) is not alarmed by another of that size; far beyond its
    record it still is."""
    rng = random.Random(8)
    history = steady_history(rng)
    history[30] = pay(3_600.0 * 30, 4_000.0, account_id="S")  # a car, once
    det = AmountAnomaly()
    feed(det, history)
    again = det.score_one(pay(61 * 3_600.0, 4_500.0, account_id="S"))
    assert again.score < 0.5, again
    beyond = det.score_one(pay(61 * 3_600.0, 40_000.0, account_id="S"))
    assert beyond.score >= 0.95 and "10.0x the largest" in beyond.reason, beyond


def test_amount_anomaly_heavy_tailed_business_accounts_are_benign() -> None:
    for seed in range(5):
        normal, _ = AmountAnomaly._conformance_stream(seed)
        assert max(scores(AmountAnomaly(), normal)) < ALARM


def test_amount_anomaly_waits_for_a_history() -> None:
    det = AmountAnomaly(warm_up=15)
    feed(det, [pay(60.0 * i, 100.0, account_id="N") for i in range(14)])
    assert det.score_one(pay(3_600.0, 10_000.0, account_id="N")).score == 0.0


# -- high-risk jurisdiction -------------------------------------------------------------


def test_first_sizeable_transfer_to_high_risk_country_is_flagged() -> None:
    det = HighRiskJurisdiction()
    feed(det, [pay(3_600.0 * i, 500.0, account_id="CO", country="DE") for i in range(20)])
    s = det.score_one(pay(DAY, 1_000.0, account_id="CO", country="IR"))
    assert s.score >= ALARM
    assert s.reason == "first transfer to high-risk IR: 1,000" and s.raw == 1_000.0


def test_regular_small_remittances_are_benign() -> None:
    rng = random.Random(3)
    det = HighRiskJurisdiction()
    got = scores(det, [pay(7 * DAY * w, round(rng.uniform(100, 400), 2), account_id="FAM",
                           country="AF") for w in range(20)])
    assert max(got) < ALARM
    # Once the account has a history there, even a larger gift home is its normal.
    assert det.score_one(pay(200 * DAY, 1_500.0, account_id="FAM", country="AF")).score == 0.0


def test_high_risk_countries_can_be_given_as_a_tuple() -> None:
    det = HighRiskJurisdiction(countries=("VU",))
    assert det.score_one(pay(0.0, 5_000.0, country="VU")).score >= ALARM
    assert det.score_one(pay(0.0, 5_000.0, country="IR")).score == 0.0


# -- all financial detectors ------------------------------------------------------------

DETECTORS = (AmountAnomaly, Structuring, FanOut, HighRiskJurisdiction)


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_state_stays_bounded_with_200k_accounts(cls: type) -> None:
    kw = {"warmup_seconds": 0.0} if cls is FanOut else {}
    det = cls(max_entities=1_000, **kw)
    for i in range(200_000):
        e = pay(i * 0.5, (9_500.0, 100.0, 2_000.0)[i % 3], account_id=f"A{i:06d}",
                counterparty_id=f"C{i}", country=("IR", "NL")[i % 2])
        det.score_one(e)
        det.learn_one(e)
    assert len(det._table) <= 1_000


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_planted_threat_survives_a_restart(cls: type) -> None:
    normal, anomalous = cls._conformance_stream(7)
    det = cls()
    feed(det, normal)
    restarted = pickle.loads(pickle.dumps(det))
    assert max(scores(restarted, anomalous)) >= ALARM
