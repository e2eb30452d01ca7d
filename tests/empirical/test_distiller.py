"""The distiller keeps its teacher frozen, in eval mode, and out of the optimised parameters."""

from __future__ import annotations

import torch
from torch import nn

from stingy.empirical.distill import Distiller
from stingy.methods import METHODS, MethodSettings


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8),
                                  nn.Dropout(0.5), nn.Linear(8, 10))

    def forward(self, x):
        return self.body(x)


METHOD = METHODS["stingy_kd"].objective(MethodSettings("stingy_kd", 20.0, 0.9, ratio=0.2), 10)


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
    images, labels = torch.randn(8, 3, 2, 2), torch.randint(0, 10, (8,))
    logits, loss = distiller(images, labels)
    assert logits.shape == (8, 10)
    teacher.eval()
    torch.testing.assert_close(loss, METHOD(logits, teacher(images), labels))
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.body[1].weight.grad is not None
    torch.testing.assert_close(teacher.body[2].running_mean, stats_before)


def test_precomputed_teacher_rows_replace_the_teacher():
    torch.manual_seed(1)
    student = Tiny().eval()
    images, labels, rows = torch.randn(4, 3, 2, 2), torch.randint(0, 10, (4,)), torch.randn(4, 10)
    _, loss = Distiller(student, None, METHOD)(images, labels, rows)
    torch.testing.assert_close(loss, METHOD(student(images), rows, labels))
