"""Learning-rate schedules: the reference's step decay and the fast one-cycle."""

from __future__ import annotations

import itertools

import pytest

from stingy.empirical.engine import lr_factor
from stingy.empirical.recipes import ScheduleSettings

MULTISTEP = ScheduleSettings("multistep", 160, (80, 120), 0.1, 0.25, 0.0)


def test_multistep_decays_by_gamma_at_each_milestone_epoch():
    steps = 391  # CIFAR-10 at batch 128
    assert lr_factor(0, steps, MULTISTEP) == 1.0
    assert lr_factor(80 * steps - 1, steps, MULTISTEP) == 1.0
    assert lr_factor(80 * steps, steps, MULTISTEP) == pytest.approx(0.1)
    assert lr_factor(120 * steps, steps, MULTISTEP) == pytest.approx(0.01)


def test_onecycle_rises_linearly_to_one_then_falls_to_the_final_fraction():
    schedule = MULTISTEP.replace(name="onecycle", epochs=10, warmup_fraction=0.2,
                final_lr_fraction=0.05)
    factors = [lr_factor(step, 100, schedule) for step in range(1000)]
    peak = factors.index(max(factors))
    assert max(factors) == pytest.approx(1.0) and peak == 199
    assert all(a < b for a, b in itertools.pairwise(factors[:peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(factors[peak:]))
    assert factors[-1] == pytest.approx(0.05, abs=1e-2)
    assert factors[0] > 0


def test_constant_is_one():
    assert lr_factor(12345, 10, MULTISTEP.replace(name="constant")) == 1.0
