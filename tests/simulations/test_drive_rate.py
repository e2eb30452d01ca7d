"""First-step drive rate: the diagonal eNTK against autograd, the overlap prediction's limits,
and the measured rate against the linearised (first-order) step."""

from __future__ import annotations

import pytest
import torch

from stingy.simulations.drive_rate import (
    diagonal_ntk,
    measured_rate,
    overlap_prediction,
    stingy_objective,
)
from stingy.simulations.students import init_mlp, mlp_forward
from stingy.theory.operators import top_k_mask


def _model(hidden=16, inputs=5, classes=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [p.detach().double() for p in init_mlp(1, inputs, hidden, classes, generator)]


def _jacobian(params, x):
    """d logits(x) / d params, flattened, [C, n_params] (autograd, independent of the formula)."""
    flat = torch.cat([p.reshape(-1) for p in params])
    shapes = [p.shape for p in params]

    def logits(vector):
        pieces, start = [], 0
        for shape in shapes:
            size = int(torch.tensor(shape).prod())
            pieces.append(vector[start:start + size].reshape(shape))
            start += size
        return mlp_forward(pieces, x[None, None])[0, 0]

    return torch.autograd.functional.jacobian(logits, flat)


def test_diagonal_ntk_matches_autograd_jacobians():
    params = _model()
    generator = torch.Generator().manual_seed(1)
    probe = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    batch = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    kappa = diagonal_ntk(params, probe, batch)
    for i in range(3):
        for j in range(4):
            left, right = _jacobian(params, probe[i]), _jacobian(params, batch[j])
            expected = (left * right).sum(1).mean()  # (1/C) sum_c <d s_c(x'), d s_c(x)>
            assert float(kappa[i, j]) == pytest.approx(float(expected), rel=1e-10)


def test_overlap_prediction_limits():
    kappa = torch.full((2, 3), 2.0, dtype=torch.float64)
    kept = torch.tensor([[True, True, False, False, False]] * 3)
    uniform_on_kept = kept.double() / 2
    same = overlap_prediction(kappa, kept[:2], uniform_on_kept, alpha=1.0, temperature=10.0)
    # identical kept sets: o = k, rate = a T / k * mean_x' sum_x kappa / B = 10/2 * 2
    assert same["predicted_rate"] == pytest.approx(same["free_logit_rate"])
    assert same["predicted_rate"] == pytest.approx(10.0)
    assert same["signal_rate"] == pytest.approx(0.0)  # target mass on M(x') = o/k = 1
    disjoint = torch.tensor([[False, False, True, True, False]] * 3).double() / 2
    apart = overlap_prediction(kappa, kept[:2], disjoint, alpha=1.0, temperature=10.0)
    # o = 0: (0 - r)/(k(1 - r)) a T = -(0.4)/(2*0.6) * 10 * 2
    assert apart["predicted_rate"] == pytest.approx(-0.4 / 1.2 * 10 * 2)
    assert apart["mean_overlap"] == 0.0
    assert apart["signal_rate"] == pytest.approx(0.0)  # no mass on M(x'), no overlap


def test_signal_rate_on_a_hand_made_case():
    # target 0.8 / 0.2 on {0, 1}; probe kept set {0, 2}: overlap 1 of k = 2, target mass 0.8
    kappa = torch.full((2, 3), 2.0, dtype=torch.float64)
    probe_kept = torch.tensor([[True, False, True, False, False]] * 2)
    target = torch.tensor([[0.8, 0.2, 0.0, 0.0, 0.0]] * 3, dtype=torch.float64)
    rates = overlap_prediction(kappa, probe_kept, target, alpha=1.0, temperature=10.0)
    # a T / (k (1 - r)) / B * sum_x kappa (0.8 - 0.5) = 10 / 1.2 / 3 * 3 * 2 * 0.3
    assert rates["signal_rate"] == pytest.approx(5.0)
    assert rates["predicted_rate"] == pytest.approx(10 / 1.2 / 3 * 3 * 2 * (0.5 - 0.4))


def test_measured_rate_is_the_first_order_directional_derivative():
    params = _model(classes=6)
    generator = torch.Generator().manual_seed(2)
    batch = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 6, (8,), generator=generator)
    teacher = 3 * torch.randn(8, 6, generator=generator, dtype=torch.float64)
    probe = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    probe_kept = top_k_mask(3 * torch.randn(5, 6, generator=generator, dtype=torch.float64), 2)
    objective = stingy_objective(k=2, alpha=0.9, temperature=4.0, num_classes=6)
    rates = [measured_rate(params, batch, labels, teacher, probe, probe_kept, objective, lr)
             for lr in (1e-3, 1e-5)]
    assert rates[0] == pytest.approx(rates[1], rel=1e-2)  # linear in lr: a derivative
    assert abs(rates[1]) > 1e-3
