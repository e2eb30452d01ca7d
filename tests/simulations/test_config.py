"""load_config builds a frozen, checked SimulationConfig: ratios by class count, the rules
between fields (each error names its key or flag), variants by replace, and the flags."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from stingy import settings
from stingy.simulations import cli
from stingy.simulations.config import SimulationConfig, flag_keys, load_config, setting_hash


def test_the_default_config_is_frozen_and_read_by_attribute():
    config = load_config()
    assert config.task.classes == 100 and config.student.steps == 300
    assert config.distill.ratios == (0.01, 0.05, 0.1, 0.2, 0.5, 0.7)  # lists become tuples
    assert config.intermediate_ratio == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.student.lr = 0.1


def test_ratios_follow_the_class_count_unless_given_and_are_sorted():
    ten = load_config(None, {"task.classes": 10})
    assert ten.distill.ratios == (0.1, 0.2, 0.3, 0.5, 0.7)
    assert ten.intermediate_ratio == 0.2
    given = load_config(None, {"task.classes": 10, "distill.ratios": [0.5, 0.1, 0.5]})
    assert given.distill.ratios == (0.1, 0.5)
    assert given.intermediate_ratio == 0.1  # the swept ratio nearest 0.2


def test_none_flags_are_left_out():
    assert load_config(None, {"task.classes": None}) == load_config()


@pytest.mark.parametrize("flags, named", [
    ({"task.input_dim": 65}, "task.input_dim"),
    ({"task.superclass_size": 1, "task.classes": 10, "noise.kinds": ["superclass"]},
     "--noise-kind"),
    ({"task.classes": 12}, "--classes"),
    ({"distill.ratios": [0.011, 0.012]}, "--ratios"),
    ({"student.batch_size": 10_001}, "student.batch_size"),
    ({"log.probe_examples": 4001}, "log.probe_examples"),
    ({"student.seeds": 1}, "--seeds"),
    ({"distill.methods": ["kd"]}, "distill.methods"),
])
def test_rules_between_and_within_fields_name_the_key(flags, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        load_config(None, flags)


def test_an_unknown_key_in_a_config_file_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[probe]\nsteps = 3\n")  # probe.steps was never read: it is no setting
    with pytest.raises(ValueError, match="is unknown") as refused:
        load_config(path)
    assert "probe." in str(refused.value) and "steps" in str(refused.value)


def test_variants_by_replace_are_checked_like_loaded_settings():
    config = load_config()
    faster = config.replace(student=config.student.replace(lr=0.05))
    assert faster.student.lr == 0.05 and config.student.lr == 0.02
    with pytest.raises(ValueError, match="lr"):
        config.student.replace(lr=-1.0)
    with pytest.raises(ValueError, match="--classes"):
        config.replace(task=config.task.replace(classes=12))


def test_the_table_is_plain_json_and_builds_the_same_config():
    config = load_config(None, {"task.classes": 10})
    table = json.loads(json.dumps(config.to_table(), allow_nan=False))
    assert settings.from_table(SimulationConfig, table, what="config") == config


def test_the_setting_hash_follows_the_settings_but_not_the_checks():
    config = load_config()
    key = setting_hash(config, 0.0, "symmetric")
    assert setting_hash(config.replace(student=config.student.replace(lr=0.05)), 0.0,
                        "symmetric") != key
    assert setting_hash(config.replace(checks=config.checks.replace(recovery_fraction=0.9)),
                        0.0, "symmetric") == key
    assert setting_hash(config, 0.3, "symmetric") != key


def test_every_flag_setting_is_an_option_of_stingy_simulate():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    keys = flag_keys()
    assert keys["--noise-kind"] == "noise.kinds" and keys["--steps"] == "student.steps"
    assert len(keys) == 10
    given = vars(parser.parse_args(["simulate"]))
    assert {flag.lstrip("-").replace("-", "_") for flag in keys} <= set(given)
