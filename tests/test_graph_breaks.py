"""The training objectives trace into one graph: ``torch._dynamo.explain`` finds no graph
break (no data-dependent Python branch, no host-device sync such as a validation check)."""

import functools

import pytest
import torch

from stingy.empirical.objectives import method_losses
from stingy.methods import names
from stingy.simulations.training import TargetBank, build_specs, per_model_losses
from stingy.theory.operators import kd_loss, kd_loss_unchecked


def graph_breaks(function, *args) -> list[str]:
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(function)(*args)
    return [str(reason.reason) for reason in explanation.break_reasons]


@pytest.mark.parametrize("name", names("cifar", data_free=False))
def test_every_cifar_method_loss_has_no_graph_break(name):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(8, 10, generator=generator, requires_grad=True)
    teacher = torch.randn(8, 10, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    method = {"name": name, "temperature": 4.0, "alpha": 0.9, "k": 2, "ratio": 0.2,
              "nasty_weight": 0.04}
    assert graph_breaks(functools.partial(method_losses, method), student, teacher, labels) == []


def test_simulation_per_model_losses_have_no_graph_break():
    specs = build_specs(["scratch", "normal_kd", "stingy_kd", "within_m_kd", "reversed_kd",
                         "label_smoothing"], [0.2], [4.0], 0.9, 2, 10)
    generator = torch.Generator().manual_seed(0)
    bank = TargetBank(torch.randn(2, 32, 10, generator=generator), specs)
    batch = torch.randint(0, 32, (len(specs), 8), generator=generator)
    student = torch.randn(len(specs), 8, 10, generator=generator, requires_grad=True)
    labels = torch.randint(0, 10, (len(specs), 8), generator=generator)
    assert graph_breaks(per_model_losses, student, labels, bank.targets(batch),
                        bank.within_index, specs.temperature, specs.alpha) == []


def test_the_validated_loss_does_break_the_graph():
    """The check above can fail: kd_loss's argument checks read tensor values on the host."""
    student, teacher = torch.randn(2, 8, 10)
    labels = torch.randint(0, 10, (8,))
    assert graph_breaks(kd_loss, student, teacher, labels, 4.0, 0.9, 2)
    assert graph_breaks(kd_loss_unchecked, student, teacher, labels, 4.0, 0.9, 2) == []
