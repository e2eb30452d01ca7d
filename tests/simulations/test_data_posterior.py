"""The generator's Bayes posterior is exact and its label noise has the requested rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from stingy.simulations import data


def small_task(classes=10, seed=0):
    return data.make_task(classes, classes // 5, 16, 8, 1.0, 0.6, seed)


def binned_calibration_pvalue(probs: torch.Tensor, hits: torch.Tensor, bins: int = 10) -> float:
    """Chi-square test that events with predicted probability p happen with frequency p."""
    edges = torch.linspace(0, 1, bins + 1)
    index = torch.bucketize(probs, edges[1:-1])
    chi2, dof = 0.0, 0
    for b in range(bins):
        chosen = index == b
        n = int(chosen.sum())
        if n < 50:
            continue
        expected = float(probs[chosen].sum())
        observed = float(hits[chosen].sum())
        variance = float((probs[chosen] * (1 - probs[chosen])).sum())
        chi2 += (observed - expected) ** 2 / variance
        dof += 1
    return float(stats.chi2.sf(chi2, dof))


def test_clean_posterior_matches_label_frequencies():
    task = small_task()
    x, y = data.sample(task, 40000, torch.Generator().manual_seed(1))
    probs = data.clean_log_posterior(task, x).exp()
    hits = torch.nn.functional.one_hot(y, task.num_classes).double()
    assert binned_calibration_pvalue(probs.flatten(), hits.flatten()) > 0.001


def test_wrong_posterior_is_detected_by_the_calibration_test():
    task = small_task()
    x, y = data.sample(task, 40000, torch.Generator().manual_seed(1))
    tempered = torch.softmax(data.clean_log_posterior(task, x) / 2, dim=-1)
    hits = torch.nn.functional.one_hot(y, task.num_classes).double()
    assert binned_calibration_pvalue(tempered.flatten(), hits.flatten()) < 1e-6


@pytest.mark.parametrize("kind", data.NOISE_KINDS)
def test_noisy_posterior_matches_noisy_label_frequencies(kind):
    task = small_task()
    generator = torch.Generator().manual_seed(2)
    x, y = data.sample(task, 40000, generator)
    transition = data.noise_transition(task, 0.3, kind)
    noisy = data.noisy_labels(y, transition, generator)
    probs = data.noisy_log_posterior(data.clean_log_posterior(task, x), transition).exp()
    hits = torch.nn.functional.one_hot(noisy, task.num_classes).double()
    assert binned_calibration_pvalue(probs.flatten(), hits.flatten()) > 0.001


@pytest.mark.parametrize("kind", data.NOISE_KINDS)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.45])
def test_noise_rate_is_what_was_asked(kind, rate):
    task = small_task(classes=20)
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(20, (50000,), generator=generator)
    transition = data.noise_transition(task, rate, kind)
    noisy = data.noisy_labels(labels, transition, generator)
    flipped = (noisy != labels).double().mean().item()
    assert abs(flipped - rate) < 4 * np.sqrt(rate * (1 - rate) / 50000) + 1e-12
    if kind == "superclass":
        assert bool((task.superclass[noisy] == task.superclass[labels]).all())


def test_transition_rows_are_distributions():
    task = small_task(classes=20)
    for kind in data.NOISE_KINDS:
        transition = data.noise_transition(task, 0.3, kind)
        assert torch.allclose(transition.sum(1), torch.ones(20, dtype=torch.float64))
        assert torch.allclose(transition.diagonal(), torch.full((20,), 0.7, dtype=torch.float64))


def test_generator_is_reproducible():
    a = data.sample(small_task(), 100, torch.Generator().manual_seed(5))
    b = data.sample(small_task(), 100, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_noise_arguments_name_the_argument():
    with pytest.raises(ValueError, match="noise rate"):
        data.noise_transition(small_task(), 1.0, "symmetric")
    with pytest.raises(ValueError, match="noise_kind"):
        data.noise_transition(small_task(), 0.1, "pairwise")


@pytest.mark.parametrize("kind", data.NOISE_KINDS)
@pytest.mark.parametrize("rate, sharpen", [(0.0, 1.0), (0.3, 1.0), (0.0, 30.0), (0.2, 30.0)])
def test_noisy_posterior_equals_the_log_sum_exp_definition(kind, rate, sharpen):
    """Also when the clean logits span thousands (sharpen=30), where exp underflows."""
    task = small_task()
    x, _ = data.sample(task, 500, torch.Generator().manual_seed(3))
    clean = data.clean_log_posterior(task, x) * sharpen
    transition = data.noise_transition(task, rate, kind)
    expected = torch.logsumexp(clean[:, :, None] + transition.log()[None], dim=1)
    assert torch.allclose(data.noisy_log_posterior(clean, transition), expected, atol=1e-9)
