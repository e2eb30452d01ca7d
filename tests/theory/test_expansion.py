"""T4: T^2 KL(p~||q) = T^2 log(K/k) - T(1-r)(sbar_M - sbar_Mc) + order-1 + O(1/T)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.theory.expansion import expansion_terms, logit_gap
from stingy.theory.operators import kd_loss, top_k_mask
from tests.theory.remainders import logit_pair, remainder_slope_and_spread

KEYS = {"exact", "order_t2", "order_t", "order_1", "remainder", "order_inv_t", "teacher_matching",
        "student_spread", "paper_last_line"}


def test_keys_shapes_and_numpy():
    teacher, student = logit_pair(10, 0, rows=6)
    terms = expansion_terms(teacher.reshape(2, 3, 10), student.reshape(2, 3, 10), 3, 4.0)
    assert set(terms) == KEYS and all(v.shape == (2, 3) for v in terms.values())
    numpy_terms = expansion_terms(teacher.numpy(), student.numpy(), 3, 4.0)
    assert all(isinstance(v, np.ndarray) for v in numpy_terms.values())


@pytest.mark.parametrize("k", [1, 2, 7, 10])
def test_exact_term_is_the_kd_loss_distillation_part(k):
    teacher, student = logit_pair(10, k, rows=8)
    labels = torch.zeros(8, dtype=torch.long)
    exact = expansion_terms(teacher, student, k, 4.0)["exact"].mean()
    assert torch.allclose(exact, kd_loss(student, teacher, labels, 4.0, 1.0, k=k))


@pytest.mark.parametrize("num_classes,k,seed", [(10, 2, 1), (10, 7, 2), (100, 10, 3), (5, 1, 4)])
def test_expansion_remainder_shrinks_like_one_over_T(num_classes, k, seed):
    teacher, student = logit_pair(num_classes, seed)
    slope, spread = remainder_slope_and_spread(expansion_terms, teacher, student, k)
    assert abs(slope + 1) < 0.1
    assert spread < 1.5  # remainder * T bounded (converges)


def _third_coefficient_by_hand(teacher, student, k):
    """k3_M(z)/3 - k_M(z,z,s)/2 + k3_K(s)/6 in NumPy, M = the k largest teacher logits."""
    z, s = np.asarray(teacher, float), np.asarray(student, float)
    kept = np.argsort(-z, kind="stable")[:k]
    dz, ds = z[kept] - z[kept].mean(), s[kept] - s[kept].mean()
    ds_all = s - s.mean()
    return (dz**3).mean() / 3 - (dz**2 * ds).mean() / 2 + (ds_all**3).mean() / 6


@pytest.mark.parametrize("num_classes,k,seed", [(10, 2, 1), (10, 7, 2), (100, 10, 3), (6, 1, 4),
                                                (8, 8, 5)])
def test_remainder_times_T_converges_to_third_coefficient(num_classes, k, seed):
    teacher, student = logit_pair(num_classes, seed)
    student = student + torch.linspace(0, 2, num_classes, dtype=torch.float64) ** 2  # skewed
    coefficient = _third_coefficient_by_hand(teacher.numpy(), student.numpy(), k)
    errors = []
    for temperature in (20.0, 200.0, 2000.0):  # float64 cancellation limits larger T
        terms = expansion_terms(teacher, student, k, temperature)
        assert math.isclose(float(terms["order_inv_t"]) * temperature, coefficient, rel_tol=1e-9,
                            abs_tol=1e-12)
        errors.append(abs(float(terms["remainder"]) * temperature - coefficient))
    assert errors[1] < 0.15 * errors[0] and errors[2] < 0.15 * errors[1]  # O(1/T)
    # one step wrong: a coefficient off by 10% of k3_K(s)/6 is not the limit
    wrong = coefficient + 0.1 * abs((student - student.mean()).pow(3).mean().item()) / 6 + 1e-3
    assert abs(float(terms["remainder"]) * 2000.0 - wrong) > 10 * errors[2]


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000), st.floats(0.5, 50))
def test_hinton_case_at_k_equals_K(num_classes, seed, temperature):
    teacher, student = logit_pair(num_classes, seed)
    terms = expansion_terms(teacher, student, num_classes, temperature)
    assert abs(float(terms["order_t"])) < 1e-12 and float(terms["order_t2"]) == 0.0
    hinton = 0.5 * float((teacher - student).var(unbiased=False))
    assert math.isclose(float(terms["order_1"]), hinton, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000), st.floats(0.01, 1000))
def test_k_equals_one_is_tempered_cross_entropy_on_top_class(num_classes, seed, temperature):
    teacher, student = logit_pair(num_classes, seed)
    exact = float(expansion_terms(teacher, student, 1, temperature)["exact"])
    log_q_top = torch.log_softmax(student / temperature, -1)[teacher.argmax()]
    assert math.isclose(exact, -temperature**2 * float(log_q_top), rel_tol=1e-12, abs_tol=1e-12)


def test_paper_last_line_keeps_drive_and_spread_but_not_teacher_logits():
    teacher, student = logit_pair(10, 7)
    k, previous = 3, math.inf
    for temperature in (10.0, 100.0, 1000.0):
        terms = expansion_terms(teacher, student, k, temperature)
        kept_part = temperature**2 * math.log(10) + terms["order_t"] + terms["student_spread"]
        gap = abs(float(terms["paper_last_line"] - kept_part))
        assert gap < previous
        previous = gap
    assert previous < 0.01
    # the paper's line does not change when the teacher's logits move inside M with M fixed
    moved = teacher.clone()
    kept = top_k_mask(teacher, k)
    moved[kept] = moved[kept].max() + torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    assert bool((top_k_mask(moved, k) == kept).all())
    before = expansion_terms(teacher, student, k, 4.0)
    after = expansion_terms(moved, student, k, 4.0)
    assert torch.allclose(before["paper_last_line"], after["paper_last_line"])
    assert torch.allclose(before["order_t"], after["order_t"])  # the drive ignores z too
    assert not torch.allclose(before["teacher_matching"], after["teacher_matching"])


def test_logit_gap_and_drive():
    teacher, student = logit_pair(10, 9, rows=4)
    kept = top_k_mask(teacher, 2)
    gap = logit_gap(student, kept)
    expected = torch.stack([student[i][kept[i]].mean() - student[i][~kept[i]].mean()
                            for i in range(4)])
    assert torch.allclose(gap, expected)
    order_t = expansion_terms(teacher, student, 2, 5.0)["order_t"]
    assert torch.allclose(order_t, -5.0 * (1 - 0.2) * gap)
    assert bool(torch.isnan(logit_gap(student, torch.ones_like(kept))).all())


def test_logit_gap_rejects_non_boolean_mask_and_bad_shape():
    with pytest.raises(ValueError, match="kept_mask"):
        logit_gap(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="kept_mask"):
        logit_gap(torch.zeros(3, 4), torch.zeros(3, 5, dtype=torch.bool))


def test_mismatched_shapes_name_student_logits():
    with pytest.raises(ValueError, match="student_logits"):
        expansion_terms(torch.zeros(3, 4), torch.zeros(3, 5), 2, 1.0)
