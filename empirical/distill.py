"""A distiller: a student, an optional frozen teacher and a method's objective (mdistiller style).

``Distiller(images, labels) -> (student_logits, loss)`` where ``loss`` is the method's
:class:`stingy.objective.Objective` on the batch. The teacher stays in eval mode whatever
``.train()`` is called with, and runs under ``torch.inference_mode``; its parameters are
frozen and never reach the optimizer (``Distiller.parameters`` is the student's).
"""

from __future__ import annotations

import torch
from torch import nn

from stingy.objective import Objective


class Distiller(nn.Module):
    def __init__(self, student: nn.Module, teacher: nn.Module | None, objective: Objective):
        super().__init__()
        self.student = student
        self.objective = objective
        # Kept outside the module tree: not in state_dict, parameters() or DDP's buckets.
        self._teacher = [teacher.eval().requires_grad_(False)] if teacher is not None else []

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def train(self, mode: bool = True):
        self.student.train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        self.training = mode
        return self

    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor | None:
        """The teacher's logits as an ordinary (non-inference) float tensor, or None."""
        if self.teacher is None:
            return None
        with torch.inference_mode():
            logits = self.teacher(images)
        return logits.float().clone()

    def forward(self, images: torch.Tensor, labels: torch.Tensor,
                teacher_logits: torch.Tensor | None = None):
        """``teacher_logits``: precomputed rows for this batch; else the teacher's forward."""
        if teacher_logits is None:
            teacher_logits = self.teacher_logits(images)
        student_logits = self.student(images)
        return student_logits, self.objective(student_logits, teacher_logits, labels)
