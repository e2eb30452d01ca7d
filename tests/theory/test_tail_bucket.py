"""Statement TB: T^2 KL(b || q_b) = (1/2) Var_K(P(z - s)) + O(1/T), its gradient T(q - bhat),
and the chain rule normal KD = tail bucket + within-tail KL (<=, tight when the tails match)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.testing import stored_topk_rows
from stingy.theory.expansion import expansion_terms
from stingy.theory.operators import kd_loss, top_k_mask
from stingy.theory.tail_bucket import (
    derive_tail_bucket_expansion,
    tail_bucket_gradient,
    tail_bucket_terms,
)
from stingy.theory.topk import kd_loss_topk
from tests.theory.remainders import logit_pair, remainder_slope_and_spread


@pytest.mark.parametrize("num_classes,k,seed", [(10, 2, 1), (10, 7, 2), (100, 10, 3), (5, 1, 4)])
def test_remainder_shrinks_like_one_over_T(num_classes, k, seed):
    teacher, student = logit_pair(num_classes, seed)
    slope, spread = remainder_slope_and_spread(tail_bucket_terms, teacher, student, k)
    assert abs(slope + 1) < 0.1
    assert spread < 1.5  # remainder * T bounded (converges)


def test_no_order_T2_or_order_T_term_unlike_the_stingy_target():
    teacher, student = logit_pair(100, 5)
    for temperature in (10.0, 100.0, 1000.0, 10000.0):
        bucket = float(tail_bucket_terms(teacher, student, 10, temperature)["exact"])
        stingy = float(expansion_terms(teacher, student, 10, temperature)["exact"])
        assert bucket < 1.2  # O(1): 1.17 at T = 10, tending to (1/2)Var(P u) = 0.98
        assert stingy > temperature**2 * math.log(10) * 0.9


def test_order_one_term_is_normal_kd_minus_within_tail_variance():
    teacher, student = logit_pair(12, 6, rows=5)
    kept = top_k_mask(teacher, 4)
    u = teacher - student
    tail_var = torch.stack([u[i][~kept[i]].var(unbiased=False) for i in range(5)])
    order_1 = tail_bucket_terms(teacher, student, 4, 50.0)["order_1"]
    hinton = 0.5 * u.var(dim=-1, unbiased=False)
    assert torch.allclose(order_1, hinton - 0.5 * (1 - 4 / 12) * tail_var)


@settings(max_examples=80, deadline=None)
@given(stored_topk_rows())
def test_gradient_matches_autograd(case):
    teacher = torch.tensor(case["teacher"])
    student = torch.tensor(case["student"], requires_grad=True)
    k, temperature = case["k"], case["temperature"]
    exact = tail_bucket_terms(teacher, student, k, temperature)["exact"].sum()
    (autograd,) = torch.autograd.grad(exact, student)
    analytic = tail_bucket_gradient(teacher, student.detach(), k, temperature)
    assert torch.allclose(analytic, autograd, rtol=1e-8, atol=1e-10)
    loss = kd_loss_topk(student, torch.tensor(case["indices"]), torch.tensor(case["values"]),
                        temperature=temperature, alpha=1.0, tail="bucket",
                        teacher_logsumexp=torch.tensor(case["logsumexp"]))
    (from_loss,) = torch.autograd.grad(loss * student.shape[0], student)
    assert torch.allclose(from_loss, analytic, rtol=1e-7, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(stored_topk_rows())
def test_chain_rule_and_bound_by_normal_kd(case):
    teacher, student = torch.tensor(case["teacher"]), torch.tensor(case["student"])
    terms = tail_bucket_terms(teacher, student, case["k"], case["temperature"])
    assert torch.allclose(terms["exact"] + terms["within_tail"], terms["normal_kd"],
                          rtol=1e-9, atol=1e-9)
    assert bool((terms["exact"] <= terms["normal_kd"] + 1e-9).all())
    labels = torch.zeros(teacher.shape[0], dtype=torch.long)
    assert torch.isclose(terms["normal_kd"].mean(), kd_loss(student, teacher, labels,
                                                            case["temperature"], 1.0))


@pytest.mark.parametrize("temperature", [0.5, 4.0, 50.0])
def test_bound_by_normal_kd_attained_when_tails_match_and_strict_one_step_past(temperature):
    teacher, student = logit_pair(10, 8)
    kept = top_k_mask(teacher, 3)
    matched = torch.where(kept, student, teacher - 2.0)  # z - s constant on Mc: equality
    terms = tail_bucket_terms(teacher, matched, 3, temperature)
    assert math.isclose(float(terms["exact"]), float(terms["normal_kd"]), rel_tol=1e-10)
    assert abs(float(terms["within_tail"])) < 1e-12
    past = matched.clone()
    past[int(torch.nonzero(~kept)[0])] += 0.1  # one dropped logit off the matching tail
    terms = tail_bucket_terms(teacher, past, 3, temperature)
    assert float(terms["within_tail"]) > 0
    assert float(terms["exact"]) < float(terms["normal_kd"])


@pytest.mark.parametrize("num_classes", [5, 9])
def test_equals_normal_kd_with_one_dropped_class(num_classes):
    teacher, student = logit_pair(num_classes, 9, rows=4)
    terms = tail_bucket_terms(teacher, student, num_classes - 1, 3.0)
    assert torch.allclose(terms["exact"], terms["normal_kd"], rtol=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(0, 1000), st.floats(0.2, 20))
def test_tail_mass_is_one_minus_kept_mass(num_classes, seed, temperature):
    from stingy.theory.operators import kept_mass

    teacher, student = logit_pair(num_classes, seed)
    k = 1 + seed % num_classes
    terms = tail_bucket_terms(teacher, student, k, temperature)
    assert math.isclose(float(terms["tail_mass"]), 1 - float(kept_mass(teacher, k, temperature)),
                        rel_tol=1e-9, abs_tol=1e-12)


def test_symbolic_derivation_is_proved():
    record = derive_tail_bucket_expansion()
    assert record["status"] == "proved for the instance K=4, k=2", record["detail"]
