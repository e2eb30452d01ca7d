"""Check (e) separation: the logit range found for a target kept mass gives that mass."""

from __future__ import annotations

import pytest
import torch

from stingy.simulations.separation import kept_mass_at_range, logit_range_for_mass
from stingy.theory.operators import kept_mass


def test_logit_range_for_mass_hits_the_target_and_matches_rescaling_by_hand():
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(3, 50, 20, generator=generator, dtype=torch.float64)
    found = logit_range_for_mass(teacher, 0.3, 2, 20.0)
    ranges = (teacher.amax(-1) - teacher.amin(-1)).mean(-1)
    by_hand = torch.stack([kept_mass(teacher[s] * found / ranges[s], 2, 20.0).mean()
                           for s in range(3)]).mean()
    assert float(by_hand) == pytest.approx(0.3, abs=1e-6)
    assert kept_mass_at_range(teacher, found * 1.1, 2, 20.0) > 0.3  # one step past: more mass


def test_unreachable_mass_is_refused():
    teacher = torch.randn(1, 10, 20, dtype=torch.float64)
    with pytest.raises(ValueError, match="not reachable"):
        logit_range_for_mass(teacher, 0.05, 2, 20.0)  # below k/K = 0.1
