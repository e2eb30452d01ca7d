"""Task-level intervals and Holm's correction against hand computations."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from stingy.simulations.statistics import holm, nested_interval


def test_nested_interval_averages_seeds_within_each_task_first():
    values = {(0, 0): 1.0, (0, 1): 3.0, (1, 0): 4.0, (1, 1): 4.0, (2, 0): 6.0}
    result = nested_interval(values)
    task_means = [2.0, 4.0, 6.0]  # not the 5 raw values: the task is the unit
    mean = sum(task_means) / 3
    error = stats.tstd(task_means) / math.sqrt(3)
    assert result["mean"] == pytest.approx(mean)
    assert result["high"] - result["mean"] == pytest.approx(stats.t.ppf(0.975, 2) * error)
    assert result["p_value_greater"] == pytest.approx(stats.t.sf(mean / error, 2))
    assert (result["groups"], result["units"]) == (3, 5)


def test_nested_interval_needs_two_tasks():
    result = nested_interval({(0, 0): 1.0, (0, 1): 2.0})
    assert math.isnan(result["low"]) and math.isnan(result["p_value_greater"])


def test_holm_adjusts_step_down_and_keeps_order():
    # hand-computed: sorted p 0.005, 0.01, 0.03, 0.04 -> 4*0.005=0.02, 3*0.01=0.03,
    # max(0.03, 2*0.03)=0.06, max(0.06, 0.04)=0.06
    results = [{"p_value": p} for p in (0.03, 0.005, 0.04, 0.01)]
    out = holm(results)
    assert [r["p_holm"] for r in out] == pytest.approx([0.06, 0.02, 0.06, 0.03])
    assert [r["verdict_raw"] for r in out] == ["fail", "pass", "fail", "pass"]
    assert [r["verdict_holm"] for r in out] == ["fail", "pass", "fail", "fail"]


def test_holm_leaves_nan_out_of_the_family():
    out = holm([{"p_value": float("nan")}, {"p_value": 0.02}])
    assert math.isnan(out[0]["p_holm"]) and out[0]["verdict_holm"] == "fail"
    assert out[1]["p_holm"] == pytest.approx(0.02)


def test_checks_the_rows_cannot_give_are_left_out_with_a_reason():
    from stingy.simulations.verdicts import all_verdicts, left_out_checks

    assert left_out_checks({"normal_kd", "stingy_kd"}, [0.1], 0.1) == {
        "a": "needs scratch", "d": "needs within_m_kd", "e": "needs scratch",
        "b": "needs a stingy ratio on each side of r=0.1, got [0.1]"}
    assert left_out_checks({"scratch", "normal_kd", "stingy_kd", "within_m_kd"},
                           [0.05, 0.1, 0.2], 0.1) == {}
    rows = [{"method": method, "ratio": ratio, "seed": seed, "accuracy": 0.5 + 0.01 * seed,
             "noise": 0.0, "noise_kind": "symmetric"}
            for seed in range(3)
            for method, ratio in (("normal_kd", float("nan")), ("stingy_kd", 0.1))]
    assert all_verdicts(rows, [], 0.1) == []  # no scratch, no within-M, one ratio: nothing
