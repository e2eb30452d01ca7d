"""Recipes: every packaged one loads, reproduces the reference's numbers, and bad keys fail."""

from __future__ import annotations

import pytest

from stingy.empirical.recipes import Recipe, load_recipe, packaged_recipes
from stingy.settings import parse_override


def kept_classes(recipe, num_classes):
    return recipe.entry.objective(recipe.method, num_classes).k


def test_every_packaged_recipe_loads_and_names_itself():
    names = packaged_recipes()
    assert {"cifar10-teacher", "cifar10-kd", "cifar10-stingy", "cifar100-stingy",
            "cifar10-nasty", "quick-teacher", "cifar10-teacher-fast"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert isinstance(recipe, Recipe) and recipe.recipe == name


def test_a_recipe_is_frozen_and_its_json_has_every_section():
    import dataclasses

    recipe = load_recipe("quick-stingy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.method.temperature = 4.0  # type: ignore[misc]
    table = recipe.to_table()
    assert set(table) == {"recipe", "description", "seed", "data", "model", "method", "optim",
                          "schedule", "train", "dafl"}
    assert table["schedule"]["milestones"] == [80, 120]  # tuples become JSON lists
    assert load_recipe("quick-stingy") == recipe  # settings compare by value


def test_cifar10_reference_hyperparameters():
    teacher = load_recipe("cifar10-teacher")
    assert teacher.model.name == "resnet18"
    assert (teacher.optim.lr, teacher.optim.momentum,
            teacher.optim.weight_decay) == (0.1, 0.9, 5e-4)
    assert teacher.schedule.epochs == 160
    assert teacher.schedule.milestones == (80, 120)
    assert teacher.train.batch_size == 128
    kd, stingy = load_recipe("cifar10-kd").method, load_recipe("cifar10-stingy")
    assert (kd.name, kd.temperature, kd.alpha) == ("normal_kd", 4.0, 0.9)
    assert (stingy.method.temperature, stingy.method.alpha, kept_classes(stingy, 10)) == \
        (20.0, 0.9, 2)
    cnn = load_recipe("cifar10-cnn-stingy")
    assert (cnn.optim.name, cnn.optim.lr, cnn.schedule.epochs) == \
        ("adam", 1e-3, 100)
    nasty = load_recipe("cifar10-nasty").method
    assert (nasty.nasty_weight, nasty.temperature) == (0.04, 4.0)


def test_cifar100_reference_hyperparameters():
    teacher = load_recipe("cifar100-teacher")
    assert teacher.schedule.epochs == 200
    assert teacher.schedule.milestones == (60, 120, 160)
    assert teacher.schedule.gamma == 0.2
    assert kept_classes(load_recipe("cifar100-stingy"), 100) == 10
    assert load_recipe("cifar100-kd").method.temperature == 20.0
    nasty = load_recipe("cifar100-nasty").method
    assert (nasty.nasty_weight, nasty.temperature) == (0.005, 20.0)


def test_overrides_replace_values_and_parse_toml_types():
    recipe = load_recipe("cifar10-stingy", ["method.k=3", "schedule.milestones=[2, 4]",
                                            "optim.name=adam", "train.compile=true"])
    assert recipe.method.k == 3 and kept_classes(recipe, 10) == 3
    assert recipe.schedule.milestones == (2, 4)
    assert recipe.optim.name == "adam" and recipe.train.compile is True
    assert parse_override("data.dataset=cifar100") == {"data": {"dataset": "cifar100"}}


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "optim.lrr"),
    ("method.name=magic", "method.name"),
    ("schedule.epochs=0", "schedule.epochs"),
    ("method.alpha=2", "method.alpha"),
    ("train.batch_size=-1", "train.batch_size"),
    ("nothing", "--set"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_recipe("cifar10-kd", [override])


def test_unknown_recipe_lists_the_packaged_ones(tmp_path):
    with pytest.raises(ValueError, match="cifar10-teacher"):
        load_recipe("no-such-recipe")
    path = tmp_path / "mine.toml"
    path.write_text('extends = "cifar10-kd"\n[method]\ntemperature = 7.0\n')
    recipe = load_recipe(path)
    assert recipe.recipe == "mine" and recipe.method.temperature == 7.0
    assert recipe.method.alpha == 0.9
