"""The simulations' vectorised backend (TargetBank + per_model_losses) equals the one objective
of stingy.objective, model by model, for every simulated method: loss and gradient.

Each model is built by build_specs from the requested (T, alpha, ratio) and compared with
``METHODS[name].objective(MethodSettings(name, T, alpha, ratio), C)`` at those same requested
numbers, so the test also holds build_specs' resolution (scratch: labels only; label
smoothing: T = 1; sparse methods: k = keep_count(ratio, C)) equal to the objective's. The
backend runs in float64, the objective in float32 (it casts the logits).
"""

from __future__ import annotations

import math

import pytest
import torch

from stingy.methods import METHODS, MethodSettings, names
from stingy.simulations.training import TargetBank, build_specs, per_model_losses

CLASSES, SEEDS, EXAMPLES = 10, 2, 16
RATIOS = (0.1, 0.3, 1.0)  # k = 1, 3 and K (nothing dropped)
SIMULATED = names("simulations")


def teachers(ties: bool) -> torch.Tensor:
    """Per-seed teacher logits [S, N, C] float64: spread-out floats, or small integers with
    many ties (both sides must keep the same top-k set)."""
    generator = torch.Generator().manual_seed(7)
    if ties:
        return torch.randint(-2, 3, (SEEDS, EXAMPLES, CLASSES), generator=generator).double()
    return 3 * torch.randn(SEEDS, EXAMPLES, CLASSES, generator=generator, dtype=torch.float64)


def backend_losses(teacher, temperature, alpha):
    """Every simulated model at (T, alpha): specs, student logits, labels, the backend's
    total loss [n] and its gradient with respect to the student logits."""
    specs = build_specs(list(SIMULATED), list(RATIOS), [temperature], alpha, SEEDS, CLASSES)
    generator = torch.Generator().manual_seed(11)
    student = 2 * torch.randn(len(specs), EXAMPLES, CLASSES, generator=generator,
                              dtype=torch.float64)
    labels = torch.randint(CLASSES, (SEEDS, EXAMPLES), generator=generator)[specs.seed_index]
    bank = TargetBank(teacher, specs)
    batch = torch.arange(EXAMPLES).expand(len(specs), EXAMPLES)
    student.requires_grad_()
    total = per_model_losses(student, labels, bank.targets(batch), bank.within_index,
                             specs.temperature, specs.alpha, bank.bucket_index)["total"]
    (gradient,) = torch.autograd.grad(total.sum(), student)
    return specs, student.detach(), labels, total.detach(), gradient, bank


def objective_of(name: str, ratio: float, temperature: float, alpha: float):
    ratio = 0.0 if math.isnan(ratio) else ratio
    settings = MethodSettings(name=name, temperature=temperature, alpha=alpha, ratio=ratio)
    return METHODS[name].objective(settings, CLASSES)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "tied"])
@pytest.mark.parametrize("temperature, alpha", [(4.0, 0.9), (20.0, 0.5), (1.0, 1.0)])
def test_every_method_model_by_model_equals_its_objective(temperature, alpha, ties):
    teacher = teachers(ties)
    specs, student, labels, total, gradient, bank = backend_losses(teacher, temperature, alpha)
    checked = set()
    for m, name in enumerate(specs.method):
        objective = objective_of(name, specs.ratio[m], temperature, alpha)
        if objective.k is not None:
            assert objective.k == int(specs.k[m]), name
        logits = student[m].float().requires_grad_()
        given = (bank.sampled_rows(m) if METHODS[name].sampled  # the rows the bank drew
                 else teacher[specs.seed_index[m]].float())
        expected = objective(logits, given, labels[m])
        (expected_gradient,) = torch.autograd.grad(expected, logits)
        where = (name, specs.ratio[m], int(specs.seed_index[m]))
        # float32 objective: at T = 20 its T^2 = 400 leaves ~1e-5 of relative rounding
        assert float(total[m]) == pytest.approx(expected.item(), rel=2e-5, abs=1e-5), where
        assert torch.allclose(gradient[m].float(), expected_gradient, rtol=1e-4, atol=1e-6), where
        checked.add(name)
    assert checked == set(SIMULATED)


def test_the_comparison_can_fail():
    """A model compared with another method's objective disagrees, far beyond the tolerance."""
    teacher = teachers(False)
    specs, student, labels, total, *_ = backend_losses(teacher, 4.0, 0.9)
    m = specs.method.index("stingy_kd")
    wrong = objective_of("normal_kd", float("nan"), 4.0, 0.9)
    other = wrong(student[m].float(), teacher[specs.seed_index[m]].float(), labels[m])
    assert abs(float(total[m]) - float(other)) > 1e-2
