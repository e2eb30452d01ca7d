"""One schema for every number: recipes, simulation configs and sweep profiles are frozen
dataclasses built by stingy.settings; every bad value is one line and exit 2, naming the key."""

from __future__ import annotations

import dataclasses
import math

import pytest

from stingy import settings
from stingy.cli import main
from stingy.empirical.batched import GroupSettings
from stingy.empirical.recipes import Recipe, build_recipe, load_recipe
from stingy.empirical.sweep import SweepProfile
from stingy.methods import MethodSettings
from stingy.simulations.config import DEFAULT_CONFIG, SimulationConfig, load_config

# The one table of invalid settings of every loader, through the command line: (command line,
# text the error line must hold). Recipes (--set), simulation configs (a --config file) and
# sweep profiles (--set).
RECIPE = ["train", "quick-teacher", "--out", "{out}"]
PROFILE = ["sweep", "plan", "--profile", "quick", "--out", "{out}"]
INVALID = [
    ([*RECIPE, "--set", "method.temperature=inf"], "method.temperature"),
    ([*RECIPE, "--set", "method.name=stingy_kd"], "method.k >= 1 or method.ratio"),
    ([*RECIPE, "--set", "dafl.options={lr_milestones=\"ab\"}"], "dafl.options"),
    ([*RECIPE, "--set", "dafl.lr_milestone_fractions=\"ab\""], "dafl.lr_milestone_fractions"),
    ([*RECIPE, "--set", "recipe=x"], "--set recipe"),
    ([*PROFILE, "--set", "alpha=\"abc\""], "alpha"),
    ([*PROFILE, "--set", "temperatures=[inf]"], "temperatures"),
    ([*PROFILE, "--set", "student_lr=inf"], "student_lr"),
    ([*PROFILE, "--set", "bank_top_k=5"], "bank_top_k = 5"),
    ([*PROFILE, "--set", "colour=1"], "colour"),
    ([*RECIPE, "--set", "optim.lr=inf"], "optim.lr"),
    ([*RECIPE, "--set", "optim.lr=nan"], "optim.lr"),
    ([*RECIPE, "--set", "schedule.final_lr_fraction=-5"], "schedule.final_lr_fraction"),
    ([*RECIPE, "--set", "schedule.gamma=nan"], "schedule.gamma"),
    ([*RECIPE, "--set", "schedule.milestones=\"80\""], "schedule.milestones"),
    ([*RECIPE, "--set", "schedule.milestones=[1.5]"], "schedule.milestones"),
    ([*RECIPE, "--set", "optim.weight_decay=\"x\""], "optim.weight_decay"),
    ([*RECIPE, "--set", "optim.momentum=1"], "optim.momentum"),
    ([*RECIPE, "--set", "optim.nesterov=1"], "optim.nesterov"),
    ([*RECIPE, "--set", "optim.momentum=0", "--set", "optim.nesterov=true"], "optim.nesterov"),
    ([*RECIPE, "--set", "data.dataset=foo"], "data.dataset"),
    ([*RECIPE, "--set", "method.temperature=1e160"], "method.temperature"),
    ([*RECIPE, "--set", "seed=-1"], "seed"),
    ([*RECIPE, "--set", "train.augment=\"yes\""], "train.augment"),
    ([*RECIPE, "--set", "optim={lr = -1}"], "optim.lr"),
    ([*RECIPE, "--set", "optim=3"], "optim"),
    ([*RECIPE, "--set", "train.batch_size=true"], "train.batch_size"),
    ([*RECIPE, "--set", "schedule.warmup_fraction=\"x\""], "schedule.warmup_fraction"),
    ([*RECIPE, "--set", "method.alpha=\"x\""], "method.alpha"),
    ([*RECIPE, "--set", "train.label_smoothing=[0.1]"], "train.label_smoothing"),
    (["simulate", "--set-config", "distill.ratios=\"0.1\""], "distill.ratios"),
    (["simulate", "--set-config", "checks.recovery_fraction=\"x\""], "checks.recovery_fraction"),
    (["simulate", "--set-config", "log.early_steps=-5"], "log.early_steps"),
    (["simulate", "--set-config", "log.gap_every=0"], "log.gap_every"),
    (["simulate", "--set-config", "student.lr=inf"], "student.lr"),
    (["simulate", "--set-config", "noise.kinds=\"symmetric\""], "--noise-kind"),
    (["simulate", "--set-config", "task.classes=\"10\""], "--classes"),
    (["simulate", "--set-config", "teacher.epochs=0"], "teacher.epochs"),
    (["simulate", "--set-config", "task.draw_per_seed=1"], "task.draw_per_seed"),
    (["simulate", "--set-config", "distill.ratios_by_classes={\"10\" = \"x\"}"],
     "ratios_by_classes"),
    (["simulate", "--set-config", "probe={temperatures = [nan]}"], "probe.temperatures"),
    (["simulate", "--out", "{file}"], "--out"),
    (["train", "quick-teacher", "--out", "{file}"], "Not a directory"),
    (["theory", "--classes", "10", "--k", "2", "--temperature", "1e160"], "--temperature"),
    (["theory", "--classes", "100000000000", "--k", "2", "--temperature", "4"], "--classes"),
    (["simulate", "--seeds", "100000000000", "--out", "{out}"], "--seeds x"),
    (["simulate", "--set-config", "student.gap_cap=-1"], "student.gap_cap"),
    (["simulate", "--set-config", "distill.within_spread=inf"], "distill.within_spread"),
    (["fixes", "--seeds", "1", "--out", "{out}"], "--seeds"),
    (["interventions", "--seeds", "1", "--out", "{out}"], "--seeds"),
    (["gpu-check", "--budget-seconds", "nan", "--out", "{out}"], "--budget-seconds"),
    (["gpu-check", "--toy", "--student-epochs", "0", "--out", "{out}"], "--student-epochs"),
    (["theory", "--classes", "3", "--k", "1", "--temperature", "2", "--logits", "{out}"],
     "directory"),
]


def expand(argv: list[str], tmp_path) -> list[str]:
    """``--set-config KEY=VALUE`` becomes a --config TOML file holding that key; ``{out}`` is
    a folder that must not appear, ``{file}`` an existing file."""
    (tmp_path / "file").write_text("")
    argv = [arg.replace("{out}", str(tmp_path / "out")).replace("{file}", str(tmp_path / "file"))
            for arg in argv]
    if "--set-config" not in argv:
        return argv
    key, value = argv[argv.index("--set-config") + 1].split("=", 1)
    section, name = key.split(".") if "." in key else (key, None)
    path = tmp_path / "config.toml"
    path.write_text(f"[{section}]\n{name} = {value}\n" if name else f"{section} = {value}\n")
    return [argv[0], "--config", str(path), "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("argv, key", INVALID)
def test_every_invalid_value_is_one_line_exit_2_naming_the_key(argv, key, tmp_path, capsys):
    code = main(expand(argv, tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and key in err, err
    assert not (tmp_path / "out").exists()


SETTINGS_CLASSES = [Recipe, SimulationConfig, SweepProfile, GroupSettings, MethodSettings]


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda cls: cls.__name__)
def test_every_setting_is_a_frozen_field_with_a_rule_or_a_section(cls):
    assert cls.__dataclass_params__.frozen
    for field in dataclasses.fields(cls):
        nested = field.metadata.get("section")
        if nested is not None:
            assert nested in SETTINGS_CLASSES or issubclass(nested, settings.Settings)
            test_every_setting_is_a_frozen_field_with_a_rule_or_a_section(nested)
        else:
            assert field.metadata.get("rule") is not None, f"{cls.__name__}.{field.name}"


def test_building_a_settings_object_directly_checks_it_too():
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        Recipe().optim.replace(lr=math.inf)
    with pytest.raises(ValueError, match="nesterov = true needs"):
        Recipe().optim.replace(momentum=0.0, nesterov=True)
    assert Recipe().optim.replace(lr=0.5).lr == 0.5


def test_every_default_config_key_is_a_setting_and_every_setting_has_a_default():
    table = settings.read_toml(DEFAULT_CONFIG, "the default config")
    config_keys = [f"{section}.{key}" for section, keys in table.items() for key in keys]
    assert sorted(config_keys) == sorted(settings.dotted_keys(SimulationConfig))


def test_wrong_toml_types_in_a_recipe_file_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('extends = "quick-teacher"\n[optim]\nweight_decay = "5e-4"\n')
    assert main(["train", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "optim.weight_decay" in capsys.readouterr().err


def test_extends_must_be_a_name_or_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("extends = 1\n")
    with pytest.raises(ValueError, match="extends"):
        load_recipe(path)


def test_extends_resolves_relative_to_the_recipe_file(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "base.toml").write_text('extends = "quick-teacher"\n[optim]\nlr = 0.5\n')
    (folder / "child.toml").write_text('extends = "base.toml"\n[method]\ntemperature = 3.0\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(folder / "child.toml")
    assert recipe.optim.lr == 0.5 and recipe.method.temperature == 3.0


@pytest.mark.parametrize("rule, bad, good", [
    (settings.Number(0, open_low=True), [0, -1, math.inf, math.nan, True, "1"], [1e-9, 3]),
    (settings.Number(0, 1), [-1e-12, 1 + 1e-12, math.nan], [0, 1, 0.5]),
    (settings.Number(1, integer=True), [0, 1.0, True], [1, 10**9]),
    (settings.Number(0, 1, open_high=True), [1], [0, 0.999]),
])
def test_number_rules_accept_their_bounds_and_refuse_one_step_past(rule, bad, good):
    for value in good:
        rule.check(value, "x")
    for value in bad:
        with pytest.raises(ValueError, match="x must be"):
            rule.check(value, "x")


def test_unknown_keys_are_refused_in_both_layers(tmp_path):
    with pytest.raises(ValueError, match="optim.lrr"):
        build_recipe({"optim": {"lrr": 1}})
    path = tmp_path / "c.toml"
    path.write_text("[task]\nclasss = 3\n")
    with pytest.raises(ValueError, match="classs"):
        load_config(path)


def test_the_schema_accepts_every_packaged_recipe_and_the_default_config():
    from stingy.empirical.recipes import packaged_recipes

    for name in packaged_recipes():
        load_recipe(name)
    assert load_config().task.classes == 100
