"""kd_loss against an independent reference in the public code's pattern, a stored float64
NumPy fixture, within-M KD at k = K, the tie rule, reductions, the closed-form gradient
(gradcheck and plain autograd), numerical stability in every float dtype, labels of any integer
dtype, and bad-input errors."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stingy.theory.operators import kd_loss, kd_loss_unchecked, sparsify_logits

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


def autograd_kd_loss(student, teacher, labels, temperature, alpha, k=None, within_kept=False):
    """The loss per example by plain autograd from the public operators: the target from
    sparsify_logits, the student's softmax masked to M for within-M KD (an independent form)."""
    sparse = teacher if k is None else sparsify_logits(teacher, k)
    log_target = torch.log_softmax(sparse / temperature, dim=-1)
    student_part = student.masked_fill(~torch.isfinite(sparse), float("-inf")) if within_kept \
        else student
    log_q = torch.log_softmax(student_part / temperature, dim=-1)
    terms = torch.where(torch.isfinite(log_target), log_target.exp() * (log_target - log_q), 0.0)
    hard = F.cross_entropy(student.reshape(-1, student.shape[-1]), labels.reshape(-1),
                           reduction="none").reshape(labels.shape)
    return alpha * temperature**2 * terms.sum(-1) + (1 - alpha) * hard


VARIANTS = [  # (k, within_kept, alpha)
    (None, False, 0.9), (None, False, 1.0), (None, False, 0.0), (3, False, 0.9), (1, False, 0.5),
    (3, True, 0.9), (7, True, 1.0), (7, False, 0.3)]


@pytest.mark.parametrize("k,within_kept,alpha", VARIANTS)
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_closed_form_gradient_passes_gradcheck_in_float64(k, within_kept, alpha, reduction):
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    teacher = 2 * torch.randn(2, 3, 7, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 7, (2, 3), generator=generator)
    assert torch.autograd.gradcheck(
        lambda s: kd_loss(s, teacher, labels, 3.0, alpha, k, within_kept, reduction=reduction),
        (student,))


@pytest.mark.parametrize("k,within_kept,alpha", VARIANTS)
def test_value_and_gradient_equal_plain_autograd_on_the_sparsified_target(k, within_kept,
                                                                          alpha):
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(16, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    teacher = 3 * torch.randn(16, 7, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 7, (16,), generator=generator)
    ours = kd_loss(student, teacher, labels, 4.0, alpha, k, within_kept, reduction="none")
    plain = autograd_kd_loss(student, teacher, labels, 4.0, alpha, k, within_kept)
    weights = torch.rand(16, generator=generator, dtype=torch.float64)
    (our_grad,) = torch.autograd.grad((ours * weights).sum(), student)
    (plain_grad,) = torch.autograd.grad((plain * weights).sum(), student)
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, plain_grad, rtol=1e-10, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(-2, 2), min_size=6, max_size=6), min_size=1, max_size=5),
       st.integers(1, 6), st.booleans(), st.sampled_from([torch.float32, torch.float64]))
def test_ties_follow_the_sparsify_logits_rule(rows, k, within_kept, dtype):
    teacher = torch.tensor(rows, dtype=dtype)
    student = torch.linspace(-2, 3, 6, dtype=dtype).expand_as(teacher)  # distinct per class
    labels = torch.zeros(len(rows), dtype=torch.long)
    ours = kd_loss(student, teacher, labels, 2.0, 0.8, k, within_kept, reduction="none")
    plain = autograd_kd_loss(student, teacher, labels, 2.0, 0.8, k, within_kept)
    torch.testing.assert_close(ours, plain)


def test_reductions_mean_batchmean_sum_none_agree():
    generator = torch.Generator().manual_seed(2)
    student = torch.randn(2, 5, 10, generator=generator)
    teacher = torch.randn(2, 5, 10, generator=generator)
    labels = torch.randint(0, 10, (2, 5), generator=generator)
    per_example = kd_loss(student, teacher, labels, 4.0, 0.9, 3, reduction="none")
    assert per_example.shape == (2, 5)
    torch.testing.assert_close(kd_loss(student, teacher, labels, 4.0, 0.9, 3, reduction="sum"),
                               per_example.sum())
    for reduction in ("mean", "batchmean"):
        torch.testing.assert_close(kd_loss(student, teacher, labels, 4.0, 0.9, 3,
                                           reduction=reduction), per_example.mean())


def test_labels_are_optional_when_alpha_is_one():
    generator = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(2, 4, 10, generator=generator)
    labels = torch.randint(0, 10, (4,), generator=generator)
    torch.testing.assert_close(kd_loss(student, teacher, None, 4.0, 1.0, 2),
                               kd_loss(student, teacher, labels, 4.0, 1.0, 2))


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int16, torch.int32,
                                   torch.int64])
def test_any_integer_label_dtype_gives_the_int64_result(dtype):
    generator = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(2, 6, 10, generator=generator)
    labels = torch.randint(0, 10, (6,), generator=generator)
    expected = kd_loss(student, teacher, labels, 4.0, 0.5, 3)
    torch.testing.assert_close(kd_loss(student, teacher, labels.to(dtype), 4.0, 0.5, 3), expected)
    torch.testing.assert_close(kd_loss(student.numpy(), teacher.numpy(),
                                       labels.to(dtype).numpy(), 4.0, 0.5, 3), expected.numpy())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("temperature,scale", [(0.01, 1e4), (1.0, 1e4), (1000.0, 1e4),
                                               (1000.0, 1.0), (1.0, 1.0)])
@pytest.mark.parametrize("within_kept", [False, True])
def test_extreme_logits_and_temperatures_give_finite_loss_and_gradients_in_every_dtype(
        dtype, temperature, scale, within_kept):
    """|logits| up to 1e4 (inside float16's range, 65504), T from 0.01 to 1000: loss and
    gradient are finite, and close to float64 on the same (rounded) logits.

    Tolerances (checked on these instances, not a proved bound): the arithmetic runs in float32,
    so the loss a T^2 KL carries an absolute error of order T^2 eps_32 (rounding of the log
    probabilities times T^2) and the gradient one of order T eps_32, plus its rounding to the
    input dtype (eps of that dtype times its size)."""
    generator = torch.Generator().manual_seed(0)
    teacher = (scale * (2 * torch.rand(6, 10, generator=generator) - 1)).to(dtype)
    student = (scale * (2 * torch.rand(6, 10, generator=generator) - 1)).to(dtype)
    student.requires_grad_(True)
    labels = torch.randint(0, 10, (6,), generator=generator)
    loss = kd_loss(student, teacher, labels, temperature, 0.9, k=3, within_kept=within_kept)
    loss.backward()
    assert torch.isfinite(loss) and bool(torch.isfinite(student.grad).all())
    assert student.grad.dtype == dtype
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    exact_student = student.detach().double().requires_grad_(True)
    exact = kd_loss(exact_student, teacher.double(), labels, temperature, 0.9, k=3,
                    within_kept=within_kept)
    exact.backward()
    eps32, eps = 2.0**-24, torch.finfo(dtype).eps
    assert abs(loss.item() - exact.item()) <= 4 * temperature**2 * eps32 + 1e-6 * abs(exact.item())
    grad_error = (student.grad.double() - exact_student.grad).abs().max().item()
    assert grad_error <= 2 * eps * exact_student.grad.abs().max().item() + 4 * temperature * eps32


def test_float16_logits_that_overflowed_before_now_give_a_finite_loss():
    """The case of the review: float16 logits of +-1e4 at T = 1000 (the old code computed
    T^2 KL in float16 and overflowed to inf, with nan gradients)."""
    student = torch.tensor([[1e4, -1e4, 0.0, 5e3]], dtype=torch.float16, requires_grad=True)
    teacher = torch.tensor([[-1e4, 1e4, 2e3, 0.0]], dtype=torch.float16)
    loss = kd_loss(student, teacher, torch.tensor([0]), 1000.0, 0.9, k=2)
    loss.backward()
    assert torch.isfinite(loss) and bool(torch.isfinite(student.grad).all())
    assert loss.item() > 65504  # above float16's largest value: why the loss comes back in float32


def test_teacher_gets_no_gradient():
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5, requires_grad=True)
    kd_loss(student, teacher, torch.tensor([0, 1, 2]), 4.0, 0.9, 2).backward()
    assert teacher.grad is None and student.grad is not None


def test_unchecked_core_has_the_same_value_as_kd_loss():
    generator = torch.Generator().manual_seed(5)
    student, teacher = torch.randn(2, 8, 10, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    assert torch.equal(kd_loss_unchecked(student, teacher, labels, 4.0, 0.9, 3, True),
                       kd_loss(student, teacher, labels, 4.0, 0.9, 3, True))


GOOD = {"student_logits": torch.zeros(2, 10), "teacher_logits": torch.zeros(2, 10),
        "labels": torch.tensor([0, 1]), "temperature": 4.0, "alpha": 0.9, "k": 2}
INVALID_ARGUMENTS = [  # (change to GOOD, the argument the error must name)
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": float("inf")}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
    ({"k": 0}, "k"),
    ({"k": 11}, "k"),
    ({"k": 2.5}, "k"),
    ({"labels": torch.tensor([0, 10])}, "labels"),
    ({"labels": torch.tensor([0, -1])}, "labels"),
    ({"labels": torch.tensor([0.0, 1.0])}, "labels"),
    ({"labels": torch.tensor([0, 1, 2])}, "labels"),
    ({"labels": None}, "labels"),
    ({"student_logits": torch.zeros(2, 9)}, "student_logits"),
    ({"student_logits": torch.zeros(2, 10, dtype=torch.long)}, "student_logits"),
    ({"student_logits": torch.zeros(0, 10), "teacher_logits": torch.zeros(0, 10),
      "labels": torch.zeros(0, dtype=torch.long)}, "student_logits"),
    ({"teacher_logits": torch.tensor([[float("nan")] * 10] * 2)}, "teacher_logits"),
    ({"reduction": "elementwise"}, "reduction"),
    ({"within_kept": 1}, "within_kept"),
    ({"within_kept": True, "k": None}, "within_kept"),
]


@pytest.mark.parametrize("change,name", INVALID_ARGUMENTS)
def test_bad_input_error_names_the_argument(change, name):
    arguments = dict(GOOD, **change)
    with pytest.raises(ValueError, match=name):
        kd_loss(**arguments)
