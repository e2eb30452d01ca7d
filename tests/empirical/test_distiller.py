"""The distiller keeps its teacher frozen, in eval mode, and out of the optimised parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stingy.empirical.distill import Distiller


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8),
                                  nn.Dropout(0.5), nn.Linear(8, 10))

    def forward(self, x):
        return self.body(x)


METHOD = {"name": "stingy_kd", "temperature": 20.0, "alpha": 0.9, "ratio": 0.2, "k": 0,
          "nasty_weight": 0.0}


def test_teacher_stays_in_eval_mode_and_is_not_a_parameter():
    student, teacher = Tiny(), Tiny()
    distiller = Distiller(student, teacher, METHOD)
    distiller.train()
    assert student.training and not teacher.training
    ids = {id(p) for p in distiller.parameters()}
    assert ids == {id(p) for p in student.parameters()}
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not any(key.startswith("_teacher") for key in distiller.state_dict())


def test_forward_returns_logits_and_losses_and_leaves_teacher_untouched():
    torch.manual_seed(0)
    student, teacher = Tiny(), Tiny()
    stats_before = teacher.body[2].running_mean.clone()
    distiller = Distiller(student, teacher, METHOD).train()
    logits, losses = distiller(torch.randn(8, 3, 2, 2), torch.randint(0, 10, (8,)))
    assert logits.shape == (8, 10)
    assert set(losses) == {"loss", "ce", "distill"}
    losses["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.body[1].weight.grad is not None
    torch.testing.assert_close(teacher.body[2].running_mean, stats_before)


def test_a_distilling_method_without_teacher_is_refused():
    with pytest.raises(ValueError, match="teacher"):
        Distiller(Tiny(), None, METHOD)
