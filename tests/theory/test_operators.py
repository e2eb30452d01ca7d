"""Operators: sparsify tie rule, kept argmax, batched shapes, NumPy in/out, reversed logits,
keep_count."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.theory.operators import (
    keep_count,
    kept_mass,
    reverse_logits,
    sparse_target,
    sparsify_logits,
    top_k_mask,
)

# integer-valued logits in a small range: many ties
tied_rows = st.lists(st.integers(-3, 3), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(tied_rows, st.data())
def test_sparsify_keeps_exactly_k_with_ties_to_lowest_index(row, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    kept = torch.isfinite(sparsify_logits(logits, k))
    assert int(kept.sum()) == k
    kth = torch.sort(logits, descending=True).values[k - 1]
    assert bool(kept[logits > kth].all())
    assert not bool(kept[logits < kth].any())
    tied = (logits == kth).nonzero().flatten().tolist()
    kept_tied = [i for i in tied if kept[i]]
    assert kept_tied == tied[:len(kept_tied)]  # the lowest indices among the ties


def test_sparsify_hand_example_with_ties():
    logits = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
    out = sparsify_logits(logits, 2)
    assert out[:3].tolist() == [float("-inf"), 3.0, 3.0]
    assert out[3:].tolist() == [float("-inf"), float("-inf")]


@settings(max_examples=100, deadline=None)
@given(tied_rows, st.data())
def test_sparse_target_keeps_argmax(row, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    assert int(sparse_target(logits, k, 2.0).argmax()) == int(logits.argmax())


def test_batched_shapes_and_numpy_in_numpy_out():
    logits = np.random.default_rng(0).normal(size=(2, 3, 7))
    out = sparsify_logits(logits, 3)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3, 7)
    assert (np.isfinite(out).sum(-1) == 3).all()
    target = sparse_target(logits, 3, 4.0)
    assert isinstance(target, np.ndarray) and np.allclose(target.sum(-1), 1.0)
    assert top_k_mask(torch.from_numpy(logits), 3).shape == (2, 3, 7)


def test_reverse_logits_hand_example():
    logits = torch.tensor([2.0, 5.0, 1.0, 3.0, 4.0])
    assert reverse_logits(logits).tolist() == [3.0, 5.0, 4.0, 2.0, 1.0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=12))
def test_reverse_logits_keeps_argmax_and_multiset(row):
    logits = torch.tensor(row, dtype=torch.float64)
    out = reverse_logits(logits)
    assert sorted(out.tolist()) == sorted(row)
    assert float(out[logits.argmax()]) == float(logits.max())


def test_keep_count_rounds_away_the_float_artifact():
    assert int(0.29 * 100) == 28
    assert keep_count(0.29, 100) == 29
    assert keep_count(0.57, 100) == 57
    assert keep_count(0.2, 10) == 2 and keep_count(0.1, 100) == 10 and keep_count(1.0, 7) == 7


@pytest.mark.parametrize("ratio", [0.005, 0.0, -0.1, 1.5])
def test_keep_count_refuses_bad_ratio_naming_it(ratio):
    with pytest.raises(ValueError, match="ratio"):
        keep_count(ratio, 100)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_operators_compute_in_float32_and_return_the_input_dtype(dtype):
    """Half-precision logits up to 1e4 at T = 0.01 and T = 1000: the outputs are finite, in the
    input dtype, and equal the float32 result (of the same rounded logits) rounded once."""
    generator = torch.Generator().manual_seed(0)
    logits = (1e4 * (2 * torch.rand(5, 12, generator=generator) - 1)).to(dtype)
    exact = logits.float()
    for temperature in (0.01, 1000.0):
        target = sparse_target(logits, 4, temperature)
        mass = kept_mass(logits, 4, temperature)
        assert target.dtype == dtype and mass.dtype == dtype
        assert bool(torch.isfinite(target).all() and torch.isfinite(mass).all())
        assert torch.equal(target, sparse_target(exact, 4, temperature).to(dtype))
        assert torch.equal(mass, kept_mass(exact, 4, temperature).to(dtype))
    assert torch.equal(sparsify_logits(logits, 4), sparsify_logits(exact, 4).to(dtype))
    assert torch.equal(reverse_logits(logits), reverse_logits(exact).to(dtype))


def test_float16_sparse_target_at_small_temperature_no_longer_overflows():
    """z / T = 1e4 / 0.01 = 1e6 overflows float16; computed in float32 it does not."""
    logits = torch.tensor([1e4, 0.0, -1e4], dtype=torch.float16)
    assert sparse_target(logits, 2, 0.01).tolist() == [1.0, 0.0, 0.0]
    assert kept_mass(logits, 1, 0.01).item() == 1.0


def test_reverse_logits_unchecked_skips_only_the_check():
    with pytest.raises(ValueError, match="logits"):
        reverse_logits(torch.tensor([2.0, float("nan"), 1.0]))
    reverse_logits(torch.tensor([2.0, float("nan"), 1.0]), validate=False)  # no check, no error
    assert reverse_logits(torch.tensor([2.0, 5.0, 1.0]), validate=False).tolist() == [1.0, 5.0, 2.0]
