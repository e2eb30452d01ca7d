"""The harm model: its design split, its fit on known data, its checks passing and failing
with the data, and its CIFAR predictions from a sweep's files."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from stingy.simulations import harm_model as hm


def _cells(noise_sd: float, seed: int = 0) -> list[dict]:
    """Every design cell with harm = 10 - 4 log(ratio) + 5 noise + error."""
    generator = np.random.default_rng(seed)
    cells = []
    for ratio, spread, noise, steps in itertools.product(hm.RATIOS, hm.SPREADS, hm.NOISES,
                                                         hm.STEPS):
        signal = ratio * spread + 0.01 * math.log10(steps)
        harm = 10 - 4 * math.log(signal) + 5 * noise + noise_sd * generator.normal()
        cells.append({"ratio": ratio, "spread": spread, "noise": noise, "steps": steps,
                      "half": "fit" if hm.in_fitted_half(ratio, spread, noise, steps)
                      else "held_out", "harm": harm, "signal_to_drive": signal,
                      "kept_mass": 0.3 + ratio + 0.01 * generator.normal(),
                      "final_logit_gap": 50 + 10 * generator.random()})
    return cells


def test_the_design_split_puts_every_level_of_every_factor_in_both_halves():
    cells = _cells(0.0)
    assert sum(c["half"] == "fit" for c in cells) == len(cells) // 2
    for factor in ("ratio", "spread", "noise", "steps"):
        for half in ("fit", "held_out"):
            levels = {c[factor] for c in cells if c["half"] == half}
            assert levels == {c[factor] for c in cells}


def test_the_fit_recovers_a_known_linear_harm():
    model = hm.fit([c for c in _cells(0.0) if c["half"] == "fit"])
    coefficients = dict(zip(model["names"], model["coefficients"]))
    assert coefficients["log_ratio"] == pytest.approx(-4.0, abs=1e-6)
    assert coefficients["noise"] == pytest.approx(5.0, abs=1e-6)


def test_the_checks_pass_on_a_harm_the_ratio_explains_and_fail_on_noise():
    passing = {v["check"]: v for v in hm.verdicts(_cells(0.5))[0]}
    assert all(passing[c]["verdict"] == "pass" for c in ("H-model-rank", "H-model-error",
                                                         "H-model-ratio", "H-model-gap"))
    noise_only = _cells(0.0)
    generator = np.random.default_rng(3)
    for cell in noise_only:
        cell["harm"] = generator.normal()
    failing = {v["check"]: v for v in hm.verdicts(noise_only)[0]}
    assert failing["H-model-rank"]["verdict"] == "fail"
    assert failing["H-model-ratio"]["verdict"] == "fail"
    assert all(v["prediction_held"] == (v["verdict"] == "pass") for v in failing.values())


def test_cifar_cells_are_predicted_from_a_sweeps_files(tmp_path):
    model = hm.fit([c for c in _cells(0.0) if c["half"] == "fit"])
    prediction = {"cells": [
        {"k": 1, "temperature": 20.0, "kept_mass": 0.14, "signal_to_drive": 0.0},
        {"k": 2, "temperature": 20.0, "kept_mass": 0.26, "signal_to_drive": 0.09},
        {"k": 5, "temperature": 20.0, "kept_mass": 0.57, "signal_to_drive": 0.19},
        {"k": 2, "temperature": 4.0, "kept_mass": 0.55, "signal_to_drive": 0.41}]}
    (tmp_path / "prediction.json").write_text(json.dumps(prediction))
    (tmp_path / "plan.json").write_text(json.dumps({"profile": {
        "student_epochs": 5, "train_subset": 5000, "student_batch_size": 128,
        "ratios": [0.1, 0.2, 0.5]}}))
    (tmp_path / "summary.csv").write_text(
        "label,method,ratio,temperature,accuracy_mean\n"
        "kd-T4.0,normal_kd,,4.0,0.61\nkd-from-nasty-T4.0,normal_kd,,4.0,0.65\n"
        "stingy-r0.1-T20.0,stingy_kd,0.1,20.0,0.50\nstingy-r0.2-T20.0,stingy_kd,0.2,20.0,0.48\n"
        "stingy-r0.5-T20.0,stingy_kd,0.5,20.0,0.44\nstingy-r0.2-T4.0,stingy_kd,0.2,4.0,0.56\n")
    cifar = hm.cifar_predictions(model, tmp_path)
    by_cell = {(c["k"], c["temperature"]): c for c in cifar["cells"]}
    assert cifar["student_steps"] == 200 and cifar["scored_cells"] == 3
    assert by_cell[(1, 20.0)]["predicted_harm"] is None  # ratio 0: outside the model
    assert by_cell[(2, 20.0)]["measured_harm"] == pytest.approx(13.0)  # against kd-T4.0
    assert "T = 4" in by_cell[(2, 4.0)]["outside"] and "200 steps" in by_cell[(2, 20.0)]["outside"]
    assert hm.cifar_predictions(model, tmp_path / "absent") is None


def test_the_prediction_is_written_once(tmp_path):
    first = hm.write_prediction(tmp_path)
    (tmp_path / "prediction.json").write_text(json.dumps({**first, "checks": []}))
    assert hm.write_prediction(tmp_path)["checks"] == []
    assert [c["check"] for c in first["checks"]] == list(hm.PREDICTED)


def test_the_checks_print_without_a_noise_setting():
    from stingy.simulations.runner import format_verdicts

    text = format_verdicts(hm.verdicts(_cells(0.5))[0])
    assert "(H-model-rank) [PASS]: the model ranks" in text
