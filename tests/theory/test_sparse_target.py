"""T1: p~ = p/m on M, 0 off M; delta = p(1/m - 1) on M, -p off M; argmax kept."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.theory.operators import sparse_target, top_k_mask
from stingy.theory.sparse_target import mass_shift, mass_shift_closed_form, sparse_target_from_dense

rows = st.lists(st.floats(-30, 30), min_size=2, max_size=12)
temperatures = st.floats(0.2, 200)


@settings(max_examples=150, deadline=None)
@given(rows, temperatures, st.data())
def test_sparse_target_is_dense_target_renormalised_on_kept_set(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    assert torch.allclose(sparse_target(logits, k, temperature),
                          sparse_target_from_dense(logits, k, temperature), atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(rows, temperatures, st.data())
def test_mass_shift_is_p_times_inverse_mass_minus_one_on_M_and_minus_p_off_M(row, temperature,
                                                                             data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    delta = mass_shift(logits, k, temperature)
    kept = top_k_mask(logits, k)
    p = torch.softmax(logits / temperature, -1)
    assert torch.allclose(delta, mass_shift_closed_form(logits, k, temperature), atol=1e-12)
    assert torch.allclose(delta[~kept], -p[~kept], atol=1e-15)
    assert bool((delta[kept] >= -1e-12).all())
    assert abs(float(delta.sum())) < 1e-12


def test_mass_shift_hand_example():
    logits = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    p = torch.softmax(logits, -1)
    m = p[0] + p[1]
    expected = torch.stack([p[0] / m - p[0], p[1] / m - p[1], -p[2]])
    assert torch.allclose(mass_shift(logits, 2, 1.0), expected)


def test_mass_shift_batched_and_numpy():
    logits = np.random.default_rng(1).normal(size=(4, 3, 6))
    out = mass_shift(logits, 2, 3.0)
    assert isinstance(out, np.ndarray) and out.shape == (4, 3, 6)
    assert np.allclose(out.sum(-1), 0)


@pytest.mark.parametrize("k,name", [(0, "k"), (7, "k")])
def test_bad_k_names_k(k, name):
    with pytest.raises(ValueError, match=name):
        mass_shift(torch.zeros(6), k, 1.0)


def test_bad_temperature_and_logits_name_the_argument():
    with pytest.raises(ValueError, match="temperature"):
        mass_shift(torch.zeros(6), 2, -1.0)
    with pytest.raises(ValueError, match="logits"):
        mass_shift(torch.tensor([0.0, float("inf")]), 1, 1.0)
