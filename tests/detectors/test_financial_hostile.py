"""Hostile amounts never break a financial detector (issue 9 item 8, issue 11).

Decoding dead-letters them with their own reason; detectors fed them another way
(replays, plugins' own feeds) neither raise nor let them poison an account's baseline."""

from __future__ import annotations

import math
import random
from importlib.metadata import entry_points

import orjson
import pytest

from watchfloor.core.decoding import INVALID_CODES, InvalidEvent, decode
from watchfloor.core.events import EXAMPLES
from watchfloor.detectors.registry import GROUP
from watchfloor.detectors.testkit import START, feed, make_event

HOSTILE = (-5.0, -0.01, 5e-324, 1e-310, 1e16, 1e300, -1e300)


def raw_event(**fields: object) -> bytes:
    e = dict(EXAMPLES["financial"])
    e.update(fields)
    return orjson.dumps(e)


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["amount", "balance_before", "balance_after"])
def test_decoding_dead_letters_hostile_money_with_its_own_reason(field: str, value: float) -> None:
    with pytest.raises(InvalidEvent) as exc:
        decode("financial", raw_event(**{field: value}))
    assert exc.value.code == "bad_amount" and "bad_amount" in INVALID_CODES
    assert field in exc.value.detail


@pytest.mark.parametrize("value", [0, 0.0, 2.2250738585072014e-308, 1e15, 9_500_000.0])
def test_decoding_accepts_zero_and_real_amounts(value: float) -> None:
    assert decode("financial", raw_event(amount=value))["amount"] == value


def test_nan_and_infinity_are_not_json() -> None:
    raw = raw_event(amount=1.0).replace(b'"amount":1.0', b'"amount":NaN')
    with pytest.raises(InvalidEvent) as exc:
        decode("financial", raw)
    assert exc.value.code == "not_json"


FINANCIAL = sorted(
    (ep for ep in entry_points(group=GROUP)
     if ep.value.startswith("watchfloor.detectors.financial")),
    key=lambda ep: ep.name,
)
BYPASS = (*HOSTILE, 0.0, -0.0, math.nan, math.inf, -math.inf, "100", None, True, [1])


def history(rng: random.Random, account: str, n: int = 40) -> list[dict]:
    return [make_event("financial", _ts=START + 3_600 * i, account_id=account,
                       counterparty_id=f"P{i % 4}", amount=round(rng.uniform(60, 140), 2),
                       tx_type="TRANSFER", balance_before=5_000.0, balance_after=4_900.0)
            for i in range(n)]


@pytest.mark.parametrize("ep", FINANCIAL, ids=lambda ep: ep.name)
def test_hostile_amounts_reaching_a_detector_do_not_break_it(ep) -> None:
    cls = ep.load()
    kw = {"warmup_seconds": 0.0} if "warmup_seconds" in cls.__init__.__code__.co_varnames else {}
    det = cls(**kw)
    rng = random.Random(0)
    background = [e for k in range(5) for e in history(rng, f"BG{k}")]
    background.sort(key=lambda e: e["_ts"])
    feed(det, background)
    t = START + 41 * 3_600
    for i, value in enumerate(BYPASS):
        for j, field in enumerate(("amount", "balance_before", "balance_after")):
            # Ten minutes apart: a burst of them would rightly be a velocity alarm.
            e = make_event("financial", _ts=t + 600 * (3 * i + j), account_id="BG1",
                           counterparty_id="X",
                           tx_type="TRANSFER", **{field: value})
            s = det.score_one(e)
            det.learn_one(e)
            assert 0.0 <= s.score <= 1.0 and math.isfinite(s.raw), (field, value, s)
    # The account is still judged on its real payments afterwards.
    after = det.score_one(make_event("financial", _ts=t + 600 * 3 * len(BYPASS),
                                     account_id="BG1",
                                     counterparty_id="P1", amount=100.0))
    assert 0.0 <= after.score < 0.9


def test_a_denormal_amount_does_not_blind_amount_anomaly_to_a_later_takeover() -> None:
    from watchfloor.detectors.financial import AmountAnomaly

    rng = random.Random(1)
    det = AmountAnomaly()
    feed(det, history(rng, "ACC"))
    t = START + 41 * 3_600
    feed(det, [make_event("financial", _ts=t + i, account_id="ACC", amount=v)
               for i, v in enumerate((5e-324, -1.0, 0.0, 1e300))])
    takeover = det.score_one(make_event("financial", _ts=t + 60, account_id="ACC",
                                        amount=8_000.0))
    assert takeover.score >= 0.95 and "the median" in takeover.reason
