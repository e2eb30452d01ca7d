"""Mechanism sweep: its metrics on a hand-made case, its predictions on synthetic rows (pass
and fail), and the quick profile end to end (slow)."""

from __future__ import annotations

import math

import pytest
import torch

from stingy.simulations import mechanism


def test_student_metrics_on_a_hand_made_case():
    teacher = torch.tensor([[5., 4., 0., -1.], [0., 5., 4., -1.]])  # M = {0,1}, {1,2}
    labels = torch.tensor([0, 2])  # example 0: label = teacher top; example 1: ranked 2nd
    logits = torch.tensor([[1., 3., 9., 0.],   # argmax 2 (outside M), over M: 1 (not top)
                           [0., 1., 2., 0.]])  # argmax 2 = label (inside M, not the top)
    metrics = mechanism.student_metrics(logits, teacher, labels, k=2)
    assert metrics["accuracy"] == 0.5
    assert metrics["within_m_agreement"] == 0.0
    assert metrics["top1_in_kept"] == 0.5
    assert metrics["logit_gap"] == pytest.approx(((2 - 4.5) + (1.5 - 0)) / 2)
    assert metrics["accuracy_label_top"] == 0.0 and metrics["accuracy_label_inside"] == 1.0


def _rows(stingy_gap_growth, tasks=(0, 1, 2)):
    rows = []
    for task in tasks:
        for seed in (0, 1):
            wiggle = 0.01 * (task + seed)
            for case in ("short", "long", "long_wide", "long_linear", "long_small_data"):
                long_run = case != "short"
                for method, accuracy in (("normal_kd", 0.9), ("stingy_kd", 0.6),
                                         ("stingy_kd_alpha1", 0.5 if long_run else 0.7)):
                    growth = stingy_gap_growth if method.startswith("stingy") else 1.5
                    rows.append({"case": case, "task_seed": task, "seed": seed,
                                 "method": method, "accuracy": accuracy + wiggle,
                                 "logit_gap": (growth if long_run else 1.0) + wiggle,
                                 "within_m_agreement": 0.9 - 0.2 * long_run + wiggle,
                                 "top1_in_kept": 0.99 - 0.01 * seed,
                                 "accuracy_label_top": 0.8 + wiggle,
                                 "accuracy_label_inside": (0.6 if method == "normal_kd"
                                                           else 0.2) + wiggle})
    return rows


def test_predictions_pass_and_fail_with_the_data():
    results = {r["check"]: r for r in mechanism.predictions(_rows(6.0))}
    assert results["P1"]["verdict"] == "pass"  # stingy gap x6 vs normal x1.5
    assert results["P1"]["measured"] == pytest.approx(math.log(6) - math.log(1.5), abs=0.02)
    assert results["P3"]["verdict"] == "pass"
    assert results["P8"]["measured"] == pytest.approx(0.6 - 0.2)  # stingy 0.6, normal 0.2
    assert results["P8"]["verdict"] == "pass"
    assert results["P4"]["measured"] == pytest.approx(0.985)  # against 0.95
    assert results["P4"]["verdict"] == "pass"
    assert results["P2"]["verdict"] == "fail"  # labels add nothing over alpha = 1 short
    assert results["P6"]["verdict"] == "fail"  # equal harm at both widths
    assert all("p_holm" in r for r in results.values())
    flipped = {r["check"]: r for r in mechanism.predictions(_rows(1.1))}
    assert flipped["P1"]["verdict"] == "fail"


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="profile"):
        mechanism.run_mechanism("huge")


@pytest.mark.slow
def test_quick_profile_runs_end_to_end(tmp_path):
    result = mechanism.run_mechanism("quick")
    assert {r["check"] for r in result["verdicts"]} == {f"P{i}" for i in range(1, 9)}
    mechanism.write_mechanism(result, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"rows.csv", "verdicts.json", "run.json"}
