"""Robustness checks: each headline passes and fails with the data, and a headline that
flips away from the default is marked conditional."""

from __future__ import annotations

from stingy.simulations import robustness as rb


def _rows(condition, stingy=0.6, stingy_no_signal=0.3, stingy_sharp=0.8, within=0.88):
    rows = []
    for seed in range(5):
        wiggle = 0.002 * seed
        common = {"seed": seed, "ratio": 0.1, "noise": 0.3, "noise_kind": "symmetric",
                  "condition": condition}
        for method, accuracy, spread in (("normal_kd", 0.9, 1.0), ("stingy_kd", stingy, 1.0),
                                         ("within_m_kd", within, 1.0),
                                         ("stingy_kd", stingy_no_signal, 0.0),
                                         ("stingy_kd", stingy_sharp, 4.0)):
            rows.append({**common, "method": method, "accuracy": accuracy + wiggle * (
                1 + (method == "normal_kd")), "spread": spread})
    return rows


def test_each_headline_passes_and_fails_with_the_data():
    passing = {v["check"]: v for v in rb.condition_checks("default", _rows("default"))}
    assert [passing[c]["verdict"] for c in rb.HEADLINES] == ["pass"] * 3
    failing = {v["check"]: v for v in rb.condition_checks("SGD", _rows(
        "SGD", stingy=0.95, stingy_no_signal=0.8, stingy_sharp=0.7, within=0.5))}
    assert failing["R-harm"]["verdict"] == "fail" and failing["R-ratio"]["verdict"] == "fail"
    assert all(v["condition"] == "SGD" for v in failing.values())


def test_a_headline_that_flips_away_from_the_default_is_conditional(monkeypatch, tmp_path):
    data = {"default": _rows("default"), "SGD": _rows("SGD", stingy_sharp=0.2)}
    monkeypatch.setattr(rb, "CONDITIONS", {name: ({}, "symmetric") for name in data})
    monkeypatch.setattr(rb, "train_condition", lambda name, seeds, log: data[name])
    result = rb.run_robustness(tmp_path, seeds=5, log=lambda *_: None)
    by_key = {(v["check"], v["condition"]): v for v in result["verdicts"]}
    assert by_key[("R-ratio", "SGD")]["conditional"] is True
    assert by_key[("R-harm", "SGD")]["conditional"] is False
    assert (tmp_path / "prediction.json").is_file()
