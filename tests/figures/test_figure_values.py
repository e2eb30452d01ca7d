"""The numbers figures compute and print in captions, checked against independent
expressions: the mechanism diagram's drive and signal, paired differences to scratch, and the
early-drive factor of F7."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.figures.accuracy_figures import differences_to_scratch
from stingy.figures.logit_figures import early_ratio, mechanism_terms


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), num_classes=st.integers(3, 20), data=st.data(),
       temperature=st.floats(0.5, 50.0))
def test_mechanism_drive_and_signal_split_the_descent_direction(seed, num_classes, data,
                                                                temperature):
    k = data.draw(st.integers(1, num_classes - 1))
    logits = np.random.default_rng(seed).normal(0, 3, num_classes)
    terms = mechanism_terms(logits, k, temperature)
    # descent direction of T^2 KL(p~ || softmax(s/T)) at s = 0 is T (p~ - 1/K)
    assert np.allclose(terms["drive"] + terms["signal"], temperature * (terms["sparse"]
                                                                        - 1 / num_classes))
    assert abs(terms["drive"] @ terms["signal"]) < 1e-9 * temperature ** 2
    # ||drive|| = T sqrt(1/k - 1/K); the ratio is the exact ||p~ - U_M|| / sqrt(1/k - 1/K)
    assert np.linalg.norm(terms["drive"]) == pytest.approx(
        temperature * math.sqrt(1 / k - 1 / num_classes))
    kept = np.sort(np.argsort(-logits)[:k])
    assert np.array_equal(np.sort(terms["kept"]), kept)
    assert terms["sparse"][np.setdiff1d(np.arange(num_classes), kept)].sum() == 0


def test_mechanism_signal_vanishes_with_one_kept_class():
    terms = mechanism_terms(np.array([3.0, 1.0, 0.0, -2.0]), 1, 20.0)
    assert np.allclose(terms["signal"], 0)


def test_differences_to_scratch_pair_seeds_and_ignore_unpaired_ones():
    rows = [{"method": "scratch", "ratio": math.nan, "seed": s, "accuracy": a}
            for s, a in ((0, 0.80), (1, 0.82), (2, 0.84))]
    rows += [{"method": "stingy_kd", "ratio": 0.1, "seed": s, "accuracy": a}
             for s, a in ((0, 0.70), (1, 0.73), (2, 0.74), (9, 0.10))]
    (result,) = differences_to_scratch(rows)
    # paired differences -10, -9, -10 points; seed 9 has no scratch run
    assert result["seeds"] == 3 and result["mean"] == pytest.approx(-29 / 3)
    assert result["low"] < result["mean"] < result["high"] < -8


def test_early_ratio_is_measured_over_predicted_growth():
    rows = [{"step": s, "seed": seed, "logit_gap": 1 + 0.5 * s, "predicted_gap": 1 + 0.1 * s}
            for s in range(6) for seed in (0, 1)]
    rows += [{"step": 50, "seed": 0, "logit_gap": 99.0, "predicted_gap": math.nan}]
    assert early_ratio(rows) == pytest.approx(5.0)


def test_the_logit_gap_caption_states_the_measured_factor(drawn_results):
    _, drawn, _ = drawn_results
    caption = next(r for r in drawn if r["figure_id"] == "F7_logit_gap")["caption"]
    # the fixture's probe: measured 0.011 T per step against predicted 0.01 T
    assert "T=5: 1.1x" in caption and "T=20: 1.1x" in caption


def test_f5_draws_the_sweep_means_and_paired_differences(tmp_path):
    """The k-curve's points are the seed means of the rows (in %), its bands the baselines'
    means, and the right panel's points stingy minus labels only, paired by seed."""
    import matplotlib.pyplot as plt

    from stingy.figures.cifar_sweep_figure import draw_cifar_k_curve
    from stingy.io import write_csv
    from figures_synthetic import sweep_summary_rows

    _, rows = sweep_summary_rows()
    write_csv(tmp_path / "rows.csv", rows)
    record = draw_cifar_k_curve(tmp_path / "rows.csv", tmp_path / "F5")
    left, right = record["figure"].axes
    # preresnet20 is the first model: stingy T=20 at k is 0.80 + 0.01 k + 0.003 seed
    curve = next(c.lines[0] for c in left.containers if c.get_label() == "stingy KD T=20")
    assert list(curve.get_xdata()) == [1, 2, 5, 7]
    assert np.allclose(curve.get_ydata(), [100 * (0.803 + 0.01 * k) for k in (1, 2, 5, 7)])
    labels = [line.get_label() for line in left.get_lines()]
    assert "labels only 90.3%" in labels and "normal KD T=4 91.3%" in labels
    assert "normal KD T=20 90.8%" in labels and "KD from the Nasty Teacher T=4 87.3%" in labels
    ours = next(c.lines[0] for c in right.containers if c.get_label().startswith("ours"))
    assert np.allclose(ours.get_xdata(), [0.1, 0.2, 0.5, 0.7])
    assert np.allclose(ours.get_ydata(), [100 * (0.01 * k - 0.10) for k in (1, 2, 5, 7)])
    assert "CIFAR-100 only" in record["caption"] and "3 seeds" in record["caption"]
    plt.close(record["figure"])
