"""The linear student's gap growth: the log fit on known data, the checks passing and failing
with the data, and a short run end to end."""

from __future__ import annotations

import math

import pytest

from stingy.simulations import gap_growth as gg


def _trajectory(slope: float, wobble: float = 0.0):
    return [(s, slope * math.log(s) + 3.0 + wobble * math.sin(s)) for s in gg.logged_steps(1000)]


def test_the_late_fit_recovers_a_known_log_slope():
    fit = gg.late_fit(_trajectory(25.0), 1000)
    assert fit["slope"] == pytest.approx(25.0) and fit["r2"] == pytest.approx(1.0)


def test_the_checks_pass_and_fail_with_the_data():
    passing = {v["check"]: v for v in gg.checks([gg.late_fit(_trajectory(s), 1000)
                                                   for s in (24.0, 25.0, 26.0)])}
    assert passing["G-log"]["verdict"] == "pass" and passing["G-slope"]["verdict"] == "pass"
    failing = {v["check"]: v for v in gg.checks([gg.late_fit(_trajectory(s, wobble=8.0), 1000)
                                                   for s in (10.0, 11.0, 12.0)])}
    assert failing["G-log"]["verdict"] == "fail" and failing["G-slope"]["verdict"] == "fail"
    assert all(not v["prediction_held"] for v in failing.values())


def test_a_short_run_writes_its_prediction_first_and_its_files(tmp_path):
    result = gg.run_gap_growth(tmp_path, seeds=2, log=lambda *_: None, steps=200, examples=200)
    gg.write_gap_growth(result, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"prediction.json", "runs.csv",
                                                    "verdicts.json", "run.json"}
    gaps = [r["gap"] for r in result["runs"] if r["seed"] == 0]
    assert gaps[-1] > gaps[0]  # the gap grows
