"""Each verdict's computation on synthetic rows where the answer is known (pass and fail)."""

from __future__ import annotations

import math

import numpy as np
import pytest

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


def test_check_b_fails_without_recovery_at_large_r_and_explains():
    result = verdicts.check_b(rows_from(curve({0.01: 0.85, 0.1: 0.4, 0.7: 0.38})), 0.1)
    assert result["verdict"] == "fail"
    assert result["measured"] == pytest.approx(-0.02)
    assert "signal-to-drive" in result["detail"]


def drive_rows(exponent_t, shape):
    rows = []
    for temperature in (5.0, 10.0, 20.0, 40.0):
        for ratio in (0.01, 0.1, 0.5, 0.7):
            for seed in SEEDS:
                noise = np.exp(0.01 * np.sin(seed + 10 * ratio + temperature))
                rows.append({"noise": 0.3, "noise_kind": "symmetric", "temperature": temperature,
                             "ratio": ratio, "seed": seed,
                             "early_rate": 0.01 * temperature**exponent_t * shape(ratio) * noise})
    return rows


def test_check_c_passes_for_a_rate_proportional_to_t_one_minus_r():
    rows = drive_rows(1.0, lambda r: 1 - r)
    assert verdicts.check_c(rows, "t_one_minus_r")["verdict"] == "pass"
    assert verdicts.check_c(rows, "t_over_k")["verdict"] == "fail"


def test_check_c_passes_for_a_rate_proportional_to_t_over_k():
    rows = drive_rows(1.0, lambda r: 1 / r)
    assert verdicts.check_c(rows, "t_over_k")["verdict"] == "pass"
    assert verdicts.check_c(rows, "t_one_minus_r")["verdict"] == "fail"


def test_check_c_fails_when_the_rate_grows_like_t_squared():
    rows = drive_rows(2.0, lambda r: 1 - r)
    result = verdicts.check_c(rows, "t_one_minus_r")
    coef, ci, *_ = verdicts.fit_exponents(rows, "t_one_minus_r")
    assert result["verdict"] == "fail" and coef[1] == pytest.approx(2.0, abs=0.01)


def test_check_d_passes_when_within_m_recovers_most_of_the_loss():
    rows = rows_from(curve(U_SHAPE, within={0.1: 0.85}))
    result = verdicts.check_d(rows, 0.1)
    assert result["verdict"] == "pass" and result["measured"] == pytest.approx(0.9, abs=0.01)


def test_check_d_fails_when_within_m_recovers_little():
    result = verdicts.check_d(rows_from(curve(U_SHAPE, within={0.1: 0.5})), 0.1)
    assert result["verdict"] == "fail" and result["measured"] == pytest.approx(0.2, abs=0.01)


def test_check_e_compares_harm_across_noise_levels():
    low = rows_from(curve({0.1: 0.88}, within={0.1: 0.9}), noise=0.0, mass={0.1: 0.9})
    high = rows_from(curve({0.1: 0.4}, within={0.1: 0.85}), noise=0.3, mass={0.1: 0.1})
    results = verdicts.check_e(low + high, 0.1, [])
    assert len(results) == 1 and results[0]["verdict"] == "pass"
    reversed_harm = rows_from(curve({0.1: 0.3}), noise=0.0, mass={0.1: 0.9}) + rows_from(
        curve({0.1: 0.85}), noise=0.3, mass={0.1: 0.1})
    assert verdicts.check_e(reversed_harm, 0.1, [])[0]["verdict"] == "fail"


def test_t_interval_matches_scipy():
    values = [0.1, 0.3, 0.2, 0.5]
    mean, low, high = verdicts.t_interval(values)
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
