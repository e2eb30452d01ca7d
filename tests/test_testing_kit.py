"""stingy.testing: the checkers pass the toolkit's own functions and catch deliberately wrong
ones with a shrunk counterexample (the documented example of the module docstring)."""

import numpy as np
import pytest

from stingy.testing import CheckResult, check_sparsify, check_topk_loss
from stingy.theory.operators import sparsify_logits
from stingy.theory.topk import kd_loss_topk


def off_by_one_sparsify(logits, k):
    """The documented wrong implementation: keeps the k classes below the largest."""
    out = np.full_like(logits, -np.inf)
    keep = np.argsort(logits)[-k - 1:-1]
    out[keep] = logits[keep]
    return out


def keeps_the_smallest(logits, k):
    out = np.full_like(logits, -np.inf)
    keep = np.argsort(logits)[:k]
    out[keep] = logits[keep]
    return out


def test_the_toolkit_sparsify_passes_every_invariant():
    result = check_sparsify(sparsify_logits)
    assert result.passed and str(result) == "check_sparsify: passed"


def test_documented_wrong_sparsify_fails_with_a_shrunk_counterexample():
    result = check_sparsify(off_by_one_sparsify)
    assert not result.passed and result.invariant == "T1 support"
    example = result.counterexample
    assert example["logits"].size == 2  # shrunk to the smallest row
    assert off_by_one_sparsify(example["logits"], example["k"]).shape == (2,)
    assert "counterexample: logits=" in str(result)
    with pytest.raises(AssertionError, match="T1 support"):
        result.raise_if_failed()


def test_a_sparsify_keeping_the_wrong_classes_is_caught():
    result = check_sparsify(keeps_the_smallest)
    assert not result.passed and result.invariant == "T1 support"
    row = result.counterexample["logits"]
    assert row.size == 2 and result.counterexample["k"] == 1 and row[0] != row[1]


def test_a_crashing_function_is_reported_not_raised():
    def crashes(logits, k):
        raise RuntimeError("boom")

    result = check_sparsify(crashes)
    assert result.invariant == "runs" and "RuntimeError: boom" in result.message


def test_rescaled_kept_logits_are_caught():
    def wrong_target(logits, k):  # right support, wrong values: softmax is not p/m
        return np.asarray(sparsify_logits(logits, k)) * 2.0

    result = check_sparsify(wrong_target)
    assert not result.passed and result.invariant == "T1 support"


def test_topk_loss_identity_passes_ours_and_catches_a_missing_T_squared():
    def ours(student, indices, values, temperature):
        return kd_loss_topk(student, indices, values, temperature=temperature, alpha=1.0)

    def without_t_squared(student, indices, values, temperature):
        return ours(student, indices, values, temperature) / temperature**2

    assert check_topk_loss(ours).passed
    result = check_topk_loss(without_t_squared)
    assert not result.passed and result.invariant == "top-k-loss identity"
    assert result.counterexample["student"].shape[0] == 1  # shrunk to one row


def test_result_type_is_plain_data():
    result = CheckResult("check_x", False, "T2 kept mass", "m too small", {"k": 1})
    assert str(result) == "check_x: FAILED (T2 kept mass) m too small; counterexample: k=1"
