"""The training objectives trace into one graph: ``torch._dynamo.explain`` finds no graph
break (no data-dependent Python branch, no host-device sync such as a validation check)."""

import pytest
import torch

from stingy.methods import METHODS, MethodSettings, names
from stingy.objective import TopKRows
from stingy.simulations.training import TargetBank, build_specs, per_model_losses
from stingy.theory.operators import kd_loss, kd_loss_unchecked


def graph_breaks(function, *args) -> list[str]:
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(function)(*args)
    return [str(reason.reason) for reason in explanation.break_reasons]


def inputs():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(8, 10, generator=generator, requires_grad=True),
            torch.randn(8, 10, generator=generator),
            torch.randint(0, 10, (8,), generator=generator))


@pytest.mark.parametrize("name", names())
def test_every_methods_objective_has_no_graph_break(name):
    student, teacher, labels = inputs()
    objective = METHODS[name].objective(MethodSettings(name, alpha=1.0, k=2), 10)
    assert graph_breaks(objective, student, teacher, labels) == []


@pytest.mark.parametrize("name", ["stingy_kd", "within_m_kd"])
def test_objectives_from_stored_rows_have_no_graph_break(name):
    student, teacher, labels = inputs()
    values, indices = teacher.sort(dim=-1, descending=True, stable=True)
    objective = METHODS[name].objective(MethodSettings(name, k=2), 10)
    assert graph_breaks(objective, student, TopKRows(indices[:, :3], values[:, :3]),
                        labels) == []


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
