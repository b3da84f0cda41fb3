"""The NAB scorer against rewards computed by hand from NAB's published rules, the NAB
layout reader/writer, and the plugin-API runner on a generated corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from watchfloor.evaluation.nab import (
    PROFILES,
    Series,
    corpus_score,
    evaluate_nab,
    probation_length,
    read_corpus,
    scaled_sigmoid,
    sweep_points,
    threshold_scores,
    write_corpus,
)
from watchfloor.evaluation.nab_synth import CorpusSpec, generate

STANDARD = PROFILES["standard"]
T0 = 1_400_000_000.0


def sig(y: float) -> float:
    """NAB's scaled sigmoid written out again, independently of the module."""
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def series(n: int = 20, windows: list[tuple[int, int]] | None = None, name: str = "a/x.csv"):
    return Series(name, [T0 + 300 * i for i in range(n)], [0.0] * n,
                  [(10, 13)] if windows is None else windows)


def scores(n: int, hits: dict[int, float]) -> list[float]:
    return [hits.get(i, 0.0) for i in range(n)]


def test_the_reward_curve_and_probation_are_nabs() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == scaled_sigmoid(7.0) == -1.0
    assert probation_length(20) == 3
    assert probation_length(1000) == 150
    assert probation_length(100_000) == 750  # capped at 15 % of 5,000 rows


def test_rewards_of_single_points_by_position() -> None:
    s = series()  # window rows 10..13 (width 4), probation rows 0..2
    pts = sweep_points(s, scores(20, {}), STANDARD)
    assert len(pts) == 17  # probation rows are not scorable
    by_row = {i + 3: p for i, p in enumerate(pts)}
    # earliest row of the window: the full A_TP
    assert by_row[10].reward == pytest.approx(1.0)
    # row 12: position -(13 - 12 + 1) / 4 = -0.5, scaled by 1 / sigma(-1)
    assert by_row[12].reward == pytest.approx(sig(-0.5) / sig(-1.0))
    # before any window: the full A_FP cost
    assert by_row[5].reward == pytest.approx(-0.11)
    # after the window: A_FP * sigma(|13 - 15| / (4 - 1))
    assert by_row[15].reward == pytest.approx(0.11 * sig(2 / 3))
    assert by_row[15].window is None and by_row[11].window == "a/x.csv|10"


def test_threshold_sweep_totals_and_only_the_first_detection_counts() -> None:
    s = series()
    hits = {12: 0.9, 11: 0.6, 5: 0.8, 15: 0.7}
    table = {round(t.threshold, 6): t for t in threshold_scores(
        sweep_points(s, scores(20, hits), STANDARD), STANDARD)}
    assert table[1.1].score == pytest.approx(-1.0)  # nothing detected: one missed window
    at_09 = sig(-0.5) / sig(-1.0)
    assert table[0.9].score == pytest.approx(at_09)
    assert table[0.8].score == pytest.approx(at_09 - 0.11)
    assert table[0.7].score == pytest.approx(at_09 - 0.11 + 0.11 * sig(2 / 3))
    # row 11 is earlier in the window than row 12: it replaces row 12's reward
    at_06 = sig(-0.75) / sig(-1.0) - 0.11 + 0.11 * sig(2 / 3)
    assert table[0.6].score == pytest.approx(at_06)
    assert table[0.6].detected_windows == 1 and table[0.6].false_positives == 2


def test_corpus_score_normalises_against_the_optimised_null_detector() -> None:
    s = series()
    result = corpus_score([s], {s.name: scores(20, {12: 0.9, 5: 0.8, 15: 0.7})}, "t")
    best = sig(-0.5) / sig(-1.0)
    # NAB's null detector scores every row alike; optimised, it either detects nothing
    # (-1) or everything: the window's first row (+1), 7 rows before it (-0.11 each) and
    # rows 14..19 after it. Here detecting everything is the better of the two.
    after = sum(0.11 * sig(abs(13 - i) / 3) for i in range(14, 20))
    null = max(-1.0, 1.0 - 7 * 0.11 + after)
    st = result.profiles["standard"]
    assert st.raw == pytest.approx(best) and st.threshold == 0.9
    assert st.score == pytest.approx(100 * (best - null) / (1.0 - null))
    assert (st.detected_windows, st.missed_windows, st.false_positives) == (1, 0, 0)


def test_profiles_weigh_misses_and_false_positives() -> None:
    s = series(200, [(100, 109)])  # long enough that detecting everything is worst
    only_fps = scores(200, {50: 0.9, 60: 0.9})
    r = corpus_score([s], {s.name: only_fps}).profiles
    # the best threshold detects nothing: one missed window, weighted per profile
    assert r["standard"].raw == pytest.approx(-1.0)
    assert r["reward_low_FN_rate"].raw == pytest.approx(-2.0)
    # the two false positives cost the low-FP profile twice as much each
    t_std = {t.threshold: t.score for t in threshold_scores(
        sweep_points(s, only_fps, PROFILES["standard"]), PROFILES["standard"])}
    t_fp = {t.threshold: t.score for t in threshold_scores(
        sweep_points(s, only_fps, PROFILES["reward_low_FP_rate"]),
        PROFILES["reward_low_FP_rate"])}
    assert t_std[0.9] == pytest.approx(-1.0 - 0.22)
    assert t_fp[0.9] == pytest.approx(-1.0 - 0.44)


def test_one_threshold_serves_every_series() -> None:
    # Series a is best at 0.9, b at 0.5: the corpus threshold maximises the sum.
    a, b = series(name="a/a.csv"), series(name="b/b.csv")
    sa = scores(20, {10: 0.9, 5: 0.5, 6: 0.5, 7: 0.5})
    sb = scores(20, {10: 0.5})
    st = corpus_score([a, b], {a.name: sa, b.name: sb}).profiles["standard"]
    # at 0.5: both windows at their first row (+2) and three FPs (-0.33): 1.67
    # at 0.9: a's window (+1), b missed (-1): 0.0
    assert st.threshold == 0.5 and st.raw == pytest.approx(2.0 - 0.33)


def test_detections_in_the_probation_period_do_not_count() -> None:
    s = series(200, [(100, 109)])  # probation: rows 0..29
    r = corpus_score([s], {s.name: scores(200, dict.fromkeys(range(30), 1.0))}).profiles
    assert r["standard"].false_positives == 0 and r["standard"].raw == pytest.approx(-1.0)


def test_read_corpus_reads_nabs_layout(tmp_path: Path) -> None:
    (tmp_path / "data" / "realKnownCause").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    rows = ["timestamp,value"] + [
        f"2014-02-19 {h:02d}:{m:02d}:00,{h * 60 + m}"
        for h in range(10, 12)
        for m in range(0, 60, 5)
    ]
    (tmp_path / "data" / "realKnownCause" / "cpu.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({
        "realKnownCause/cpu.csv": [["2014-02-19 10:50:00.000000", "2014-02-19 11:10:00.000000"]]
    }))
    (s,) = read_corpus(tmp_path)
    assert s.name == "realKnownCause/cpu.csv" and len(s.values) == 24
    assert s.windows == [(10, 14)] and s.values[10] == 650.0


def test_read_corpus_names_what_is_missing_or_bad(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no data/ directory"):
        read_corpus(tmp_path)
    (tmp_path / "data" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"combined_windows\.json"):
        read_corpus(tmp_path)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text("{}")
    (tmp_path / "data" / "x" / "bad.csv").write_text("timestamp,value\n2014-01-01 00:00:00,abc\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        read_corpus(tmp_path)


def test_generated_corpus_round_trips_through_the_layout(tmp_path: Path) -> None:
    corpus = generate(CorpusSpec(seed=3, series_per_kind=1, min_rows=1000, max_rows=1100))
    back = read_corpus(write_corpus(tmp_path, corpus))
    assert [s.name for s in back] == sorted(s.name for s in corpus)
    original = {s.name: s for s in corpus}
    for s in back:
        assert s.windows == original[s.name].windows
        assert s.values == pytest.approx(original[s.name].values)


def test_value_anomaly_through_the_plugin_api_beats_detecting_nothing(tmp_path: Path) -> None:
    corpus = generate(CorpusSpec(seed=5, series_per_kind=1, min_rows=1200, max_rows=1400))
    write_corpus(tmp_path, corpus)
    result = evaluate_nab(tmp_path)  # default: value_anomaly with default parameters
    st = result.profiles["standard"]
    assert result.detector == "value_anomaly" and result.windows == st.detected_windows + \
        st.missed_windows
    # generated anomalies are plain to see: most windows found, score well above null
    assert st.score > 50.0 and st.detected_windows >= 0.7 * result.windows
    assert "standard" in result.table() and json.dumps(result.to_dict())


def test_unknown_detector_is_named() -> None:
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        from watchfloor.evaluation.nab import detector_scores

        detector_scores([series()], "nope")


def test_watchfloor_evaluate_dataset_nab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchfloor.ops.cli import main

    corpus = generate(CorpusSpec(seed=5, series_per_kind=1, min_rows=1200, max_rows=1300))
    write_corpus(tmp_path, corpus)
    assert main(["evaluate", "--dataset", f"nab:{tmp_path}"]) == 0  # >= 55 standard
    out = capsys.readouterr().out
    assert "NAB score of value_anomaly" in out and "reward_low_FN_rate" in out
    # another registered detector through the same plugin API, as JSON
    code = main(["evaluate", "--dataset", f"nab:{tmp_path}", "--detector", "amount_anomaly",
                 "--json"])
    got = json.loads(capsys.readouterr().out)
    assert got["detector"] == "amount_anomaly" and set(got["profiles"]) == set(PROFILES)
    assert code == (0 if got["profiles"]["standard"]["score"] >= 55 else 1)
    # a detector that is not installed: one line naming it, exit 2
    assert main(["evaluate", "--dataset", f"nab:{tmp_path}", "--detector", "nope"]) == 2
    assert "unknown detector 'nope'" in capsys.readouterr().err
