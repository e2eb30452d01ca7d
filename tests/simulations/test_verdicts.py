"""Each verdict's computation on synthetic rows where the answer is known (pass and fail)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stingy.intervals import t_interval
from stingy.simulations import verdicts
from stingy.simulations.summary import summarize

SEEDS = range(5)


def rows_from(accuracy: dict, noise=0.3, kind="symmetric", mass=None, jitter=0.005):
    """accuracy {(method, ratio or None): mean}; per-seed values mean +- jitter."""
    rows = []
    for (method, ratio), mean in accuracy.items():
        for seed in SEEDS:
            rows.append({"noise": noise, "noise_kind": kind, "method": method,
                         "ratio": float("nan") if ratio is None else ratio, "k": 1, "seed": seed,
                         "temperature": 20.0, "accuracy": mean + jitter * (seed - 2),
                         "log_loss": 1.0, "excess_log_loss": 0.5, "teacher_agreement": 0.9,
                         "accuracy_within_m": 0.8, "kept_mass": (mass or {}).get(ratio, 0.5),
                         "signal_to_drive": 0.1, "final_logit_gap": 1.0,
                         "bayes_accuracy": 0.95, "teacher_accuracy": 0.94})
    return rows


def curve(stingy: dict, scratch=0.7, normal=0.9, within=None):
    accuracy = {("scratch", None): scratch, ("normal_kd", None): normal}
    accuracy.update({("stingy_kd", r): a for r, a in stingy.items()})
    accuracy.update({("within_m_kd", r): a for r, a in (within or {}).items()})
    return accuracy


U_SHAPE = {0.01: 0.85, 0.1: 0.4, 0.7: 0.8}


def test_check_a_passes_when_stingy_is_below_both_baselines():
    assert verdicts.check_a(rows_from(curve(U_SHAPE)), 0.1)["verdict"] == "pass"


def test_check_a_fails_when_stingy_beats_labels_only():
    result = verdicts.check_a(rows_from(curve(U_SHAPE, scratch=0.3)), 0.1)
    assert result["verdict"] == "fail" and result["measured"] == pytest.approx(0.1)


def test_check_b_passes_on_a_u_shaped_curve():
    assert verdicts.check_b(rows_from(curve(U_SHAPE)), 0.1)["verdict"] == "pass"


def test_check_b_fails_without_recovery_at_large_r_and_reports_numbers_only():
    rows = rows_from(curve({0.01: 0.85, 0.1: 0.4, 0.7: 0.38}))
    result = verdicts.check_b(rows, 0.1)
    assert result["verdict"] == "fail"
    assert result["measured"] == pytest.approx(-0.02)
    # the detail is built from the rows: change a measured value and the detail changes with it
    for row in rows:
        row["kept_mass"] = 0.123
    assert "0.123" in verdicts.check_b(rows, 0.1)["detail"]
    assert "0.123" not in result["detail"]


def drive_rows(exponent_t=1.0, measured_over_predicted=1.0, shuffle_effect=1.0):
    """First-step rate rows: measured = c * T^exponent * shape(r); predictions chosen so that
    measured / predicted and the shuffle drop ratio are the given constants (+- 1% jitter)."""
    rows = []
    for temperature in (5.0, 10.0, 20.0, 40.0):
        for ratio in (0.01, 0.1, 0.5):
            for seed in SEEDS:
                jitter = 1 + 0.01 * np.sin(seed + 10 * ratio + temperature)
                measured = 0.01 * temperature**exponent_t * (1 + ratio) * jitter
                predicted = measured / measured_over_predicted
                shuffled_measured = 0.3 * measured
                drop = (measured - shuffled_measured) / shuffle_effect
                common = {"noise": 0.3, "noise_kind": "symmetric", "temperature": temperature,
                          "ratio": ratio, "seed": seed, "free_logit_rate": 10 * measured}
                rows.append({**common, "kept_sets": "true", "measured_rate": measured,
                             "predicted_rate": predicted, "signal_rate": 0.0})
                # the predicted drop is split between the drive (0.6) and the signal (0.4):
                # a check that ignored the signal would see 1/0.6 and fail
                rows.append({**common, "kept_sets": "shuffled",
                             "measured_rate": shuffled_measured,
                             "predicted_rate": predicted - 0.6 * drop,
                             "signal_rate": -0.4 * drop})
    return rows


def _by_name(results):
    return {r["check"]: r for r in results}


def test_check_c_passes_when_rate_is_linear_in_t_and_matches_the_prediction():
    results = _by_name(verdicts.check_c(drive_rows()))
    assert all(r["verdict"] == "pass" for r in results.values())
    assert results["c-T"]["measured"] == pytest.approx(1.0, abs=0.01)


def test_check_c_fails_when_the_rate_grows_like_t_squared():
    results = _by_name(verdicts.check_c(drive_rows(exponent_t=2.0)))
    assert results["c-T"]["verdict"] == "fail"
    assert results["c-T"]["measured"] == pytest.approx(2.0, abs=0.01)


def test_check_c_fails_when_prediction_or_overlap_effect_is_off_by_half():
    assert _by_name(verdicts.check_c(drive_rows(measured_over_predicted=0.5)))[
        "c-eNTK"]["verdict"] == "fail"
    assert _by_name(verdicts.check_c(drive_rows(shuffle_effect=0.5)))[
        "c-overlap"]["verdict"] == "fail"
    # one step inside the band passes
    assert _by_name(verdicts.check_c(drive_rows(measured_over_predicted=1.2)))[
        "c-eNTK"]["verdict"] == "pass"


def test_check_d_passes_when_within_m_recovers_most_of_the_loss():
    rows = rows_from(curve(U_SHAPE, within={0.1: 0.85}))
    result = verdicts.check_d(rows, 0.1)
    assert result["verdict"] == "pass" and result["measured"] == pytest.approx(0.9, abs=0.01)


def test_check_d_fails_when_within_m_recovers_little():
    result = verdicts.check_d(rows_from(curve(U_SHAPE, within={0.1: 0.5})), 0.1)
    assert result["verdict"] == "fail" and result["measured"] == pytest.approx(0.2, abs=0.01)


def scaled_rows(noise, scale, mass, stingy, scratch=0.7, normal=0.9):
    rows = rows_from(curve({0.1: stingy}, scratch=scratch, normal=normal), noise=noise,
                     mass={0.1: mass})
    for row in rows:
        row["teacher_logit_range"] = scale
    return rows


def test_check_e_mass_passes_when_lower_mass_is_harmed_more():
    rows = scaled_rows(0.3, 20.0, 0.15, 0.5) + scaled_rows(0.3, 60.0, 0.3, 0.8)
    results = verdicts.check_e(rows, 0.1)
    assert [r["check"] for r in results] == ["e-mass", "e-mass"]  # vs normal, vs labels
    assert all(r["verdict"] == "pass" for r in results)
    assert results[0]["measured"] == pytest.approx(0.3)
    flipped = scaled_rows(0.3, 20.0, 0.15, 0.8) + scaled_rows(0.3, 60.0, 0.3, 0.5)
    assert all(r["verdict"] == "fail" for r in verdicts.check_e(flipped, 0.1))


def test_check_e_noise_tests_only_pairs_at_the_same_kept_mass():
    same = scaled_rows(0.0, 20.0, 0.15, 0.5) + scaled_rows(0.3, 35.0, 0.152, 0.505)
    results = verdicts.check_e(same, 0.1)
    assert [r["check"] for r in results] == ["e-noise", "e-noise"]
    assert all(r["verdict"] == "pass" for r in results)  # harm differs by 0.005 < 0.02
    apart = scaled_rows(0.0, 20.0, 0.15, 0.5) + scaled_rows(0.3, 35.0, 0.15, 0.8)
    assert all(r["verdict"] == "fail" for r in verdicts.check_e(apart, 0.1))
    different_mass = scaled_rows(0.0, 20.0, 0.15, 0.5) + scaled_rows(0.3, 35.0, 0.3, 0.5)
    assert verdicts.check_e(different_mass, 0.1) == []


def test_all_verdicts_adds_holm_to_every_check():
    rows = []
    for scale, mass, stingy in ((20.0, 0.15, 0.5), (60.0, 0.3, 0.8)):
        setting = rows_from(curve({0.01: 0.85, 0.1: stingy, 0.7: 0.8}, within={0.1: 0.85}),
                            noise=0.3, mass={0.1: mass})
        for row in setting:
            row["teacher_logit_range"] = scale
        rows += setting
    results = verdicts.all_verdicts(rows, [], 0.1)
    assert {r["check"] for r in results} == {"a", "b", "d", "e-mass"}
    assert all({"p_value", "p_holm", "verdict_raw", "verdict_holm"} <= set(r) for r in results)
    assert all(r["p_holm"] >= r["p_value"] for r in results)


def test_t_interval_matches_scipy():
    values = [0.1, 0.3, 0.2, 0.5]
    mean, low, high = t_interval(values)
    from scipy import stats
    expected = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected)


def test_summary_has_one_row_per_method_and_ratio():
    summary = summarize(rows_from(curve(U_SHAPE)))
    assert len(summary) == 5
    stingy = [s for s in summary if s["method"] == "stingy_kd" and s["ratio"] == 0.1][0]
    assert stingy["n_seeds"] == 5 and stingy["accuracy_mean"] == pytest.approx(0.4)
    assert stingy["accuracy_ci95_low"] < 0.4 < stingy["accuracy_ci95_high"]
    assert math.isnan(float([s for s in summary if s["method"] == "scratch"][0]["ratio"]))
