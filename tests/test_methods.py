"""The method registry (stingy.methods) is the one source of method names in every layer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from stingy.empirical.recipes import METHODS as RECIPE_METHODS
from stingy.empirical.recipes import load_recipe, packaged_recipes
from stingy.figures.style import method_colour, method_label
from stingy.methods import METHODS, Method, MethodSettings, method, names
from stingy.simulations.config import load_config
from stingy.simulations.training import METHODS as SIMULATION_METHODS
from stingy.simulations.training import SPARSE_METHODS

ROOT = Path(__file__).resolve().parents[1]


def test_every_layer_takes_its_method_names_from_the_registry():
    assert set(SIMULATION_METHODS) | set(RECIPE_METHODS) == set(METHODS)
    assert SPARSE_METHODS == ("stingy_kd", "tail_bucket_kd", "uniform_floor_kd", "sampled_kd",
                              "within_m_kd")
    simulated = load_config(None, {}).distill.methods
    assert set(simulated) <= set(METHODS)
    used = {load_recipe(name).method.name for name in packaged_recipes()}
    assert used <= set(METHODS)
    from stingy.empirical.batched import TARGET_METHODS
    from stingy.empirical.sweep import VERDICT_METHODS

    assert set(TARGET_METHODS) <= set(METHODS) and set(VERDICT_METHODS) <= set(SIMULATION_METHODS)
    # the normal KD of simulations and of CIFAR runs is one name
    assert "normal_kd" in simulated and "normal_kd" in used and "kd" not in used


def test_figures_show_each_method_with_its_registry_label_and_a_distinct_colour():
    assert [method_label(name) for name in METHODS] == [m.label for m in METHODS.values()]
    colours = [method_colour(name) for name in METHODS]
    assert colours == [m.colour for m in METHODS.values()]
    assert len(set(colours)) == len(colours)


def test_an_unknown_method_is_refused_naming_every_allowed_one():
    with pytest.raises(ValueError, match="method must be one of scratch, normal_kd"):
        method("kd")


@pytest.mark.parametrize("fields, message", [
    ({"target": "bucket"}, "target must be one of"),
    ({"sign": 0}, "sign must be 1 or -1"),
    ({"within_kept": True}, "and sampled need sparse_target"),
    ({"uniform_floor": True}, "and sampled need sparse_target"),
    ({"sparse_target": True, "uniform_floor": True, "tail_bucket": True},
     "exclude each other"),
    ({"sampled": True}, "and sampled need sparse_target"),
    ({"needs_teacher": False}, "needs_teacher must be true"),
    ({"layers": ("tpu",)}, "layers must be among"),
])
def test_an_inconsistent_entry_is_refused(fields, message):
    base = {"name": "x", "label": "X", "colour": "#000000", "needs_teacher": True,
            "target": "teacher"}
    with pytest.raises(ValueError, match=message):
        Method(**{**base, **fields})


def test_names_filter_by_layer_and_fields():
    assert names("cifar", data_free=True) == ("dafl_kd",)
    assert "nasty_teacher" not in names("simulations")
    assert names(needs_teacher=False) == ("scratch", "label_smoothing")


def _cifar_loss(name, student, teacher, labels, **numbers):
    settings = MethodSettings(name, **{"temperature": 4.0, "alpha": 0.9, "k": 2, **numbers})
    return METHODS[name].objective(settings, student.shape[-1])(student, teacher, labels)


def test_the_nasty_teacher_trains_away_from_the_teacher():
    student = torch.zeros(4, 10)
    teacher = torch.arange(10.0).repeat(4, 1)
    labels = torch.zeros(4, dtype=torch.long)
    normal = _cifar_loss("normal_kd", student, teacher, labels, alpha=1.0)
    nasty = _cifar_loss("nasty_teacher", student, teacher, labels, nasty_weight=1.0)
    ce = torch.nn.functional.cross_entropy(student, labels)
    assert math.isclose(float(nasty), float(ce - normal), rel_tol=1e-6)
