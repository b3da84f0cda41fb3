"""value_anomaly on the signals the issue names: rises, drops, flat-lines, level shifts
(onset flagged, then adapted), hour-of-day context, volumes per bucket, different units,
hostile values, warm-up and bounded state."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from watchfloor.detectors.testkit import START, make_event
from watchfloor.detectors.value import ValueAnomaly

STEP = 300.0  # one value every 5 minutes, as many NAB series
# 0.9 is "1 in 1,000" (an ordinary 500-value stretch may hold one); deployments use 0.99
# (~1 in 300,000, topics.yaml), so "quiet" means below that.
QUIET = 0.99


def run(det: ValueAnomaly, values: list[float], entity: str = "ACC-1", start: float = START,
        step: float = STEP) -> list[float]:
    out = []
    for i, v in enumerate(values):
        e = make_event("financial", _ts=start + i * step, account_id=entity, amount=v)
        out.append(det.score_one(e).score)
        det.learn_one(e)
    return out


def noise(n: int, seed: int = 1, mean: float = 100.0, sd: float = 5.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_quiet_on_noise_then_flags_a_spike_and_a_drop() -> None:
    det = ValueAnomaly()
    base = run(det, noise(600))
    assert max(base[100:]) < QUIET  # 500 ordinary values judged, none alarming
    assert run(det, [160.0])[0] > 0.95  # +12 sd
    det2 = ValueAnomaly()
    run(det2, noise(600))
    assert run(det2, [40.0])[0] > 0.95  # -12 sd: drops count, no "amounts > 0" gate


def test_a_level_shift_is_flagged_at_onset_and_absorbed_in_bounded_time() -> None:
    det = ValueAnomaly()
    run(det, noise(600, seed=2))
    after = run(det, noise(600, seed=3, mean=140.0), start=START + 600 * STEP)
    assert max(after[:10]) > 0.95, "the shift's onset must alarm"
    # one episode, not a stream of alerts: few alarms in the first 100 shifted values
    assert sum(s >= 0.9 for s in after[:100]) <= 10
    # the new level is normal within a few hundred values (calibration does not lock in)
    assert max(after[300:]) < QUIET


def test_a_stuck_sensor_is_flagged() -> None:
    det = ValueAnomaly()
    run(det, noise(600, seed=4))
    stuck = run(det, [101.3] * 40, start=START + 600 * STEP)
    assert max(stuck) > 0.9


def test_hour_of_day_context() -> None:
    # A daily cycle 50 -> 150: 150 at 15:00 is normal, 150 at 03:00 is not.
    rng = random.Random(5)

    def daily(i: int) -> float:
        hour = (i * STEP % 86_400) / 3600
        return 100 + 50 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.gauss(0, 3)

    det = ValueAnomaly()
    n = 14 * 288 + 36  # two weeks, then up to 03:00
    scores = run(det, [daily(i) for i in range(n)])
    assert max(scores[288:]) < QUIET
    at = lambda i, v: det.score_one(make_event(  # noqa: E731
        "financial", _ts=START + i * STEP, account_id="ACC-1", amount=v)).score
    assert at(n, 150.0) > QUIET  # 03:00: usually ~50
    for i in range(n, n + 144):  # on to 15:00
        run(det, [daily(i)], start=START + i * STEP)
    assert at(n + 144, 150.0) < 0.5  # 15:00: the daily peak


def test_scores_are_comparable_across_units_and_do_not_saturate() -> None:
    # The same relative anomaly in bytes (1e9) and in cents (1e-2) scores alike.
    big, small = ValueAnomaly(), ValueAnomaly()
    run(big, [v * 1e7 for v in noise(400, seed=6)], "A")
    run(small, [v * 1e-4 for v in noise(400, seed=6)], "B")
    e_big = make_event("financial", _ts=START + 400 * STEP, account_id="A", amount=1.4e9)
    e_small = make_event("financial", _ts=START + 400 * STEP, account_id="B", amount=1.4e-2)
    assert big.score_one(e_big).score == pytest.approx(small.score_one(e_small).score, abs=1e-6)
    # farther out scores higher, and nothing reaches exactly 1.0
    ladder = [big.score_one(make_event("financial", _ts=START + 400 * STEP, account_id="A",
                                       amount=x * 1e9)).score for x in (1.3, 2, 10, 1e6)]
    assert ladder == sorted(ladder) and ladder[-1] < 1.0 and ladder[0] < ladder[-1]


def test_warms_up_within_150_observations() -> None:
    det = ValueAnomaly()
    run(det, noise(100, seed=7))
    assert run(det, [170.0], start=START + 100 * STEP)[0] > 0.9


def test_hostile_values_never_break_it() -> None:
    det = ValueAnomaly()
    run(det, noise(200, seed=8))
    for v in (float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 5e-324, 0, -5.0,
              True, "12", None):
        e = make_event("financial", _ts=START + 200 * STEP, account_id="ACC-1", amount=v)
        s = det.score_one(e)
        assert 0.0 <= s.score <= 1.0 and math.isfinite(s.raw)
        det.learn_one(e)
    # and it still works afterwards
    after = run(det, noise(300, seed=9), start=START + 300 * STEP)
    assert max(after[-100:]) < QUIET


def test_volumes_per_bucket_surge_and_silence() -> None:
    # Border crossings per crossing point per hour: ~20 an hour, then a surge of 120.
    det = ValueAnomaly(field="document_id", entity_field="crossing_point",
                       entity_type="device", domains=("border",), aggregate="count",
                       bucket_seconds=3600.0, kind="crossing_surge")
    rng = random.Random(10)
    t, got = START, []
    for hour in range(24 * 12):
        for _ in range(rng.randint(15, 25)):
            e = make_event("border", _ts=t + hour * 3600 + rng.uniform(0, 3599),
                           crossing_point="ZZ-1")
            got.append(det.score_one(e))
            det.learn_one(e)
    assert max(s.score for s in got[500:]) < QUIET
    surge_hour = 24 * 12
    surge = []
    for k in range(120):
        e = make_event("border", _ts=t + surge_hour * 3600 + k * 25, crossing_point="ZZ-1")
        surge.append(det.score_one(e))
        det.learn_one(e)
    first = next(i for i, s in enumerate(surge) if s.score >= 0.9)
    assert first < 60, "a surge alerts before its hour closes"
    assert "events per hour" in surge[first].reason
    assert det.entity == ("device", "crossing_point")


def test_entities_are_bounded_and_state_is_small() -> None:
    det = ValueAnomaly(max_entities=10)
    for k in range(50):
        run(det, noise(40, seed=k), entity=f"E{k}")
    assert len(det._table) == 10
    one = ValueAnomaly()
    run(one, noise(1000, seed=11))
    # bytes per entity after a full history: two scales of ~19 kB each
    assert len(pickle.dumps(one)) < 40_000
    few = ValueAnomaly()
    run(few, noise(3, seed=12))
    assert few._table.get("ACC-1").coarse is None  # allocated at the first full block


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        ValueAnomaly(aggregate="mean")
    with pytest.raises(ValueError, match="dim"):
        ValueAnomaly(dim=1)
    with pytest.raises(ValueError, match="entity_type"):
        ValueAnomaly(entity_type="crossing")
    with pytest.raises(ValueError, match="domains"):
        ValueAnomaly(domains=("finance",))
    with pytest.raises(ValueError, match="coarse"):
        ValueAnomaly(coarse=1)


def _missing_peak(seed: int) -> tuple[list[float], int, int]:
    """Ten days of a noisy daily cycle; on day 8 the midday peak does not come."""
    rng = random.Random(seed)
    vals = [500 * (1 + 0.4 * math.sin(2 * math.pi * ((i * STEP % 86_400) / 3600 - 9) / 24))
            + rng.gauss(0, 30) for i in range(288 * 10)]
    noon = 288 * 8 + 144
    for i in range(noon - 36, noon + 36):
        vals[i] = 400 + rng.gauss(0, 30)
    return vals, noon - 36, noon + 36


def test_the_coarse_scale_sees_what_no_single_value_shows() -> None:
    # A missing daily peak is ~2 deviations per value: the means of 4 values (half the
    # noise) make it stand out above everything the ordinary days scored.
    def separated(coarse: int) -> int:
        won = 0
        for seed in range(6):
            vals, a, b = _missing_peak(seed)
            got = run(ValueAnomaly(coarse=coarse), vals)
            won += max(got[a:b]) > max(got[300:a])
        return won

    with_coarse, without = separated(4), separated(0)
    assert with_coarse >= 5 and with_coarse > without


def test_coarse_reasons_name_the_mean() -> None:
    det = ValueAnomaly()
    vals, a, b = _missing_peak(0)
    got = []
    for i, v in enumerate(vals[:b]):
        e = make_event("financial", _ts=START + i * STEP, account_id="ACC-1", amount=v)
        got.append(det.score_one(e))
        det.learn_one(e)
    best = max(got[a:b], key=lambda s: s.score)
    assert best.score > 0.9 and "the mean of the last 4 values" in best.reason
    assert "below the expected" in best.reason and "for this hour" in best.reason


def test_state_from_before_the_coarse_scale_still_loads() -> None:
    from watchfloor.detectors.base import _MISSING
    from watchfloor.detectors.value import _Entity

    det = ValueAnomaly()
    run(det, noise(300, seed=13))
    ent = det._table.get("ACC-1")
    old = _Entity.__new__(_Entity)
    old.__setstate__((ent.model, ent.bucket, ent.total))  # an older release's 3 fields
    assert old.coarse is None and old.blocks == 0
    restored = pickle.loads(pickle.dumps(det))
    restored._table.get("ACC-1").__setstate__((ent.model, ent.bucket, ent.total))
    after = run(restored, noise(200, seed=14), start=START + 300 * STEP)
    assert max(after) < QUIET and restored._table.get("ACC-1").coarse is not None
    # A detector pickled before the parameter existed lacks it: the engine's restore
    # sees the mismatch and starts it fresh (watchfloor.detectors.engine).
    del restored.coarse
    assert restored._get_params()["coarse"] is _MISSING
