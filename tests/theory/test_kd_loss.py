"""kd_loss against an independent reference in the public code's pattern, a stored float64
NumPy fixture, within-M KD at k = K, numerical stability, and bad-input errors."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stingy.theory.operators import kd_loss

FIXTURE = Path(__file__).with_name("fixtures") / "kd_loss_fixture.json"


def reference_kd_loss(outputs, teacher_outputs, labels, temperature, alpha, kept):
    """The stingy-teacher code's pattern: topk, a row index from a list comprehension,
    fancy-index assignment into a -inf tensor, KLDivLoss(batchmean) * alpha T^2 + (1-a) CE."""
    batch_size = teacher_outputs.size(0)
    top_classes = torch.topk(teacher_outputs, kept, dim=1)[1]
    rows = torch.tensor([[i] * kept for i in range(batch_size)])
    sparse = torch.ones_like(teacher_outputs) * float("-inf")
    sparse[rows, top_classes] = teacher_outputs[rows, top_classes]
    distill = nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(outputs / temperature, dim=1), F.softmax(sparse / temperature, dim=1))
    return distill * (alpha * temperature * temperature) + F.cross_entropy(outputs, labels) * (
        1.0 - alpha)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k,temperature,alpha", [(1, 1.0, 0.9), (2, 4.0, 0.9), (10, 20.0, 0.9),
                                                 (5, 0.5, 0.3), (100, 20.0, 1.0)])
def test_kd_loss_matches_reference_pattern(dtype, k, temperature, alpha):
    generator = torch.Generator().manual_seed(k)
    num_classes = 100 if k > 10 else 10 if k != 5 else 20
    student = (2 * torch.randn(16, num_classes, generator=generator)).to(dtype)
    teacher = (3 * torch.randn(16, num_classes, generator=generator)).to(dtype)
    labels = torch.randint(0, num_classes, (16,), generator=generator)
    ours = kd_loss(student, teacher, labels, temperature, alpha, k=k)
    theirs = reference_kd_loss(student, teacher, labels, temperature, alpha, k)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    assert torch.allclose(ours, theirs, rtol=tolerance, atol=tolerance)


def test_kd_loss_matches_stored_numpy_fixture():
    cases = json.loads(FIXTURE.read_text())["cases"]
    assert len(cases) >= 4
    for case in cases:
        loss = kd_loss(torch.tensor(case["student_logits"], dtype=torch.float64),
                       torch.tensor(case["teacher_logits"], dtype=torch.float64),
                       torch.tensor(case["labels"]), case["temperature"], case["alpha"],
                       k=case["k"])
        assert abs(float(loss) - case["loss"]) < 1e-10


def test_within_kept_equals_plain_loss_at_k_equals_K():
    generator = torch.Generator().manual_seed(3)
    student = torch.randn(8, 10, generator=generator)
    teacher = torch.randn(8, 10, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    within = kd_loss(student, teacher, labels, 4.0, 0.9, k=10, within_kept=True)
    assert torch.allclose(within, kd_loss(student, teacher, labels, 4.0, 0.9, k=10))
    assert torch.allclose(within, kd_loss(student, teacher, labels, 4.0, 0.9))


@pytest.mark.parametrize("temperature", [0.01, 1.0, 1000.0])
@pytest.mark.parametrize("within_kept", [False, True])
def test_extreme_logits_and_temperatures_give_finite_loss_and_gradients(temperature, within_kept):
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        teacher = (1e4 * (2 * torch.rand(6, 10, generator=generator) - 1)).to(dtype)
        student = (1e4 * (2 * torch.rand(6, 10, generator=generator) - 1)).to(dtype)
        student.requires_grad_(True)
        labels = torch.randint(0, 10, (6,), generator=generator)
        loss = kd_loss(student, teacher, labels, temperature, 0.9, k=3, within_kept=within_kept)
        loss.backward()
        assert torch.isfinite(loss) and bool(torch.isfinite(student.grad).all())


@pytest.mark.parametrize("change,name", [
    ({"temperature": 0.0}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
    ({"k": 0}, "k"),
    ({"k": 11}, "k"),
    ({"labels": torch.tensor([0, 10])}, "labels"),
    ({"student_logits": torch.zeros(2, 9)}, "student_logits"),
    ({"teacher_logits": torch.tensor([[float("nan")] * 10] * 2)}, "teacher_logits"),
])
def test_bad_input_error_names_the_argument(change, name):
    arguments = {"student_logits": torch.zeros(2, 10), "teacher_logits": torch.zeros(2, 10),
                 "labels": torch.tensor([0, 1]), "temperature": 4.0, "alpha": 0.9, "k": 2}
    arguments.update(change)
    with pytest.raises(ValueError, match=name):
        kd_loss(**arguments)
