"""Fuzz the public boundary: recipe tables, simulation config files and command lines.

Only two outcomes are allowed: success, or a ValueError / exit code 2 with one line on
stderr, no traceback, and nothing left in the output folder. Examples per test:
``STINGY_FUZZ_EXAMPLES`` (default 40, small enough for CI on 2 cores).

Commands that would start real work on valid input are kept cheap: ``train``, ``distill``,
``teacher-theory`` and ``quick`` always get a ``--data`` path that does not exist (so they
are refused after every other check, and must then leave nothing behind), and the sweep of
``run_sweep`` is replaced by a stub (its settings are still built and checked for real).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stingy.cli import main
from stingy.empirical.recipes import Recipe, build_recipe
from stingy.settings import read_toml
from stingy.simulations import runner
from stingy.simulations.config import DEFAULT_CONFIG, load_config

EXAMPLES = int(os.environ.get("STINGY_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

scalars = st.one_of(
    st.integers(-10, 10**6), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 0.5, 1e-3, 1e160, -1.0, True, False, "", "x", "sgd", "adam",
                     "cifar10", "cifar100", "stingy", "kd", "cnn", "multistep", "oracle",
                     "symmetric", "superclass", "normal_kd"]),
    st.text(max_size=8))
values = st.one_of(scalars, st.lists(scalars, max_size=4),
                   st.dictionaries(st.text(max_size=4), scalars, max_size=2))


def near(default):
    """Values near a default: itself, a neighbour, its negation, a scaled or emptied copy."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, (int, float)):
        return st.sampled_from([default, default + 1, -default, default * 1e3, 0,
                                type(default)(1)])
    if isinstance(default, list):
        return st.one_of(st.just(default), st.just(default[:1]), st.just([]),
                         st.lists(scalars, max_size=3))
    return st.just(default)


@st.composite
def tables(draw, defaults: dict, depth: int = 0):
    """A table laid out like ``defaults``: some of its keys (now and then a stranger), each
    value near its default or drawn from ``values`` (mostly wrong, sometimes right)."""
    table = {}
    for key in draw(st.lists(st.sampled_from([*defaults, "typo"]), max_size=6, unique=True)):
        known = defaults.get(key)
        if isinstance(known, dict) and depth == 0:
            table[key] = draw(st.one_of(tables(known, 1), values))
        elif key in defaults:
            table[key] = draw(st.one_of(near(known), near(known), values))
        else:
            table[key] = draw(values)
    return table


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and "Traceback" not in message, message


@FUZZ
@given(tables(Recipe().to_table()))
def test_recipe_tables_either_build_or_give_one_line(table):
    try:
        recipe = build_recipe(table)
    except ValueError as err:
        assert_one_line(str(err))
        event("refused")
        return
    event("built")
    json.dumps(recipe.to_table(), allow_nan=False)  # a built recipe holds only finite numbers


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(table: dict) -> str:
    top = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()
           if not isinstance(v, dict)]
    sections = [f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(key)} = {toml_value(value)}"
                                                   for key, value in v.items())
                for k, v in table.items() if isinstance(v, dict)]
    return "\n".join(top + sections) + "\n"


@FUZZ
@given(tables(read_toml(DEFAULT_CONFIG, "the default config")))
def test_simulation_configs_either_load_or_give_one_line(table):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(toml_text(table))
        try:
            config = load_config(path)
        except ValueError as err:
            assert_one_line(str(err))
            event("refused")
            return
    event("loaded")
    json.dumps(config.to_table(), allow_nan=False)


NUMBERS = st.sampled_from(["0", "1", "-1", "2", "3", "10", "0.5", "0.01", "1e160", "nan",
                           "inf", "-inf", "x", "", "1e3", "100"])
SETS = st.sampled_from(["optim.lr", "schedule.gamma", "schedule.milestones", "data.dataset",
                        "method.k", "train.batch_size", "seed", "optim", "typo.key", "=",
                        "log.gap_every"])
OPTIONS = {
    "theory": [("--classes", NUMBERS), ("--k", NUMBERS), ("--ratio", NUMBERS),
               ("--temperature", NUMBERS), ("--seed", NUMBERS), ("--json", None),
               ("--logits", st.sampled_from(["{folder}", "{missing}", "{file}"]))],
    "simulate": [("--classes", NUMBERS), ("--noise", NUMBERS), ("--ratios", NUMBERS),
                 ("--temperature", NUMBERS), ("--alpha", NUMBERS), ("--seeds", NUMBERS),
                 ("--steps", NUMBERS), ("--teacher", st.sampled_from(["oracle", "x"])),
                 ("--noise-kind", st.sampled_from(["symmetric", "superclass", "x"])),
                 ("--teacher-logit-range", NUMBERS),
                 ("--config", st.sampled_from(["{missing}", "{file}", "{folder}"])),
                 ("--out", st.sampled_from(["{out}", "{file}"]))],
    "train": [("--set", st.tuples(SETS, NUMBERS).map("=".join)), ("--name", st.sampled_from(
        ["run", "../x", "a/b", ".h", ""])), ("--resume", None), ("--device", st.sampled_from(
            ["cpu", "tpu", "cuda"])), ("--out", st.sampled_from(["{out}", "{file}"])),
        ("--teacher", st.sampled_from(["{missing}", "{file}", "{folder}"]))],
}
OPTIONS["distill"] = OPTIONS["train"]
RECIPES = st.sampled_from(["quick-teacher", "quick-stingy", "cifar10-kd", "nope", "{file}"])


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(["theory", "simulate", "train", "distill", "quick",
                                    "teacher-theory", "nothing"]))
    argv = [command]
    if command in ("train", "distill"):
        argv.append(draw(RECIPES))
    for flag, value in draw(st.lists(st.sampled_from(OPTIONS.get(command, [("--x", None)])),
                                     max_size=5)):
        argv.append(flag)
        if value is not None:
            argv.append(draw(value))
    if command in ("train", "distill", "quick", "teacher-theory"):
        argv += ["--data", "{missing}"]  # refused last: the run must leave nothing behind
    if command == "teacher-theory":
        argv += ["--teacher", draw(st.sampled_from(["{missing}", "{file}"]))]
    if command in ("train", "distill", "quick", "teacher-theory") and "--out" not in argv:
        argv += ["--out", "{out}"]
    return argv


def fake_sweep(config, out, progress=True):
    return {"runs": [], "summary": [], "verdicts": [], "wall_time_s": 0.0}


@FUZZ
@given(command_lines())
def test_command_lines_either_succeed_or_give_one_line_and_exit_2(monkeypatch, argv):
    monkeypatch.setattr(runner, "run_sweep", fake_sweep)
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        (root / "file").write_text("[task]\nclasses = 10\n")
        (root / "folder").mkdir()
        places = {"{out}": root / "out", "{file}": root / "file", "{folder}": root / "folder",
                  "{missing}": root / "missing"}
        argv = [str(places.get(arg, arg)) for arg in argv]
        stderr, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = main(argv)
        assert code in (0, 2), (argv, code, stderr.getvalue())
        event(f"{argv[0]} exit {code}")
        if code == 2:
            assert_one_line(stderr.getvalue())
            left = sorted(p.name for p in root.iterdir())
            assert left == ["file", "folder"] and not list((root / "folder").iterdir()), left
