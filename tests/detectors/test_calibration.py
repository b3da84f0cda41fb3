"""The calibration rule every detector relies on: 0.5 at mid, 0.9 at alarm, monotone."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.detectors.calibration import StreamingQuantile, logistic, tail_score

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


# mid is kept small enough that mid + width is a different float.
@given(
    mid=st.floats(min_value=-1e6, max_value=1e6),
    width=st.floats(min_value=1e-3, max_value=1e9),
    a=finite,
    b=finite,
)
def test_logistic_is_monotone_and_bounded(mid: float, width: float, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    x, y = logistic(lo, mid, mid + width), logistic(hi, mid, mid + width)
    assert 0.0 <= x <= y <= 1.0


@pytest.mark.parametrize(("mid", "alarm"), [(20, 40), (1.0, 2.0), (6, 12), (-3.0, 0.5)])
def test_logistic_hits_the_documented_anchor_points(mid: float, alarm: float) -> None:
    assert logistic(mid, mid, alarm) == 0.5
    assert logistic(alarm, mid, alarm) >= 0.9  # so a 0.9 threshold fires at the alarm
    assert logistic(alarm, mid, alarm) == pytest.approx(0.9)


def test_logistic_rejects_alarm_not_above_mid() -> None:
    with pytest.raises(ValueError):
        logistic(1.0, 5.0, 5.0)


def test_tail_score_maps_rarity_on_a_log_scale() -> None:
    assert tail_score(1e-2) == pytest.approx(0.5)
    assert tail_score(1e-3) == pytest.approx(0.9)
    assert tail_score(0.5) < tail_score(1e-2) < tail_score(1e-4) < 1.0


def test_streaming_quantile_ranks_like_the_true_distribution() -> None:
    rng = random.Random(0)
    q = StreamingQuantile(capacity=2_048, seed=1)
    for _ in range(50_000):
        q.update(rng.gauss(0.0, 1.0))
    assert len(q) == 2_048 and q.n == 50_000
    assert q.rank(0.0) == pytest.approx(0.5, abs=0.03)
    assert q.rank(1.645) == pytest.approx(0.95, abs=0.02)
    assert q.quantile(0.5) == pytest.approx(0.0, abs=0.1)
    # Beyond the sample the tail keeps shrinking instead of stopping at 0.5 / capacity.
    assert q.tail(6.0) < q.tail(4.5) < 0.5 / 2_048


def test_streaming_quantile_is_deterministic_and_pickles_its_generator() -> None:
    values = [random.Random(2).random() for _ in range(5_000)]
    a, b = StreamingQuantile(256, seed=3), StreamingQuantile(256, seed=3)
    for v in values[:2_500]:
        a.update(v)
        b.update(v)
    c = pickle.loads(pickle.dumps(a))
    for v in values[2_500:]:
        a.update(v)
        c.update(v)
    assert a._sorted == c._sorted
    assert a.n == c.n == 5_000
    # A second instance fed the same values with the same seed agrees exactly.
    for v in values[2_500:]:
        b.update(v)
    assert b._sorted == a._sorted


def test_streaming_quantile_empty_never_makes_anything_look_rare() -> None:
    q = StreamingQuantile()
    assert q.tail(1e9) == 1.0
    assert q.rank(1.0) == 0.0
    q.update(float("nan"))
    assert q.n == 0
