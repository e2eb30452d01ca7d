"""Sweep settings as data: simulations/default.toml, an optional TOML override, then flags.

:func:`load_config` merges them (``stingy.settings.merge``), :func:`validate` checks every
value against :data:`SCHEMA` (``stingy.settings``; ValueError naming the flag or key) and :func:`setting_hash` keys the per-noise-setting result files.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

from stingy import settings
from stingy.io import code_digest
from stingy.simulations.data import NOISE_KINDS
from stingy.simulations.training import METHODS
from stingy.theory.operators import keep_count

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config must be an existing TOML file, got {str(path)!r}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--config {path} is not valid TOML ({err})") from None


def merge(base: dict, override: dict) -> dict:
    """Recursive dict update; an unknown key is an error naming it."""
    return settings.merge(base, override, what="config", opaque=("ratios_by_classes",))


def load_config(path: str | Path | None = None, flags: dict | None = None) -> dict:
    """default.toml, updated by the TOML at ``path``, updated by ``flags`` (section.key: value)."""
    config = read_toml(DEFAULT_CONFIG)
    explicit_ratios = False
    if path is not None:
        table = read_toml(path)
        config = merge(config, table)
        explicit_ratios = isinstance(table.get("distill"), dict) and "ratios" in table["distill"]
    update: dict = {}
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".")
        update.setdefault(section, {})[key] = value
        explicit_ratios |= dotted == "distill.ratios"
    config = merge(config, update)
    settings.check(config, {"task.classes": SCHEMA["task.classes"],
                            "distill.ratios_by_classes": SCHEMA["distill.ratios_by_classes"]},
                   FLAG_NAMES)
    classes = config["task"]["classes"]
    by_classes = config["distill"]["ratios_by_classes"]
    if not explicit_ratios and str(classes) in by_classes:
        config["distill"]["ratios"] = by_classes[str(classes)]
    return validate(config)


def _number(value, flag: str, low: float, high: float = float("inf"), integer: bool = False,
            open_low: bool = False):
    settings.Number(low, high, integer=integer, open_low=open_low).check(value, flag)
    return value


_COUNT, _SIZE = settings.Number(0, integer=True), settings.Number(1, integer=True)
_POSITIVE = settings.Number(0, open_low=True)
_FRACTION = settings.Number(0, 1)
_RATIO = settings.Number(0, 1, open_low=True)

SCHEMA = {
    "task.classes": settings.Number(2, 100_000, integer=True),
    "task.superclass_size": _SIZE, "task.latent_dim": _SIZE, "task.input_dim": _SIZE,
    "task.superclass_spread": settings.Number(0), "task.member_spread": settings.Number(0),
    "task.task_seed": settings.Number(0, 2**32 - 1, integer=True),
    "task.train_size": _SIZE, "task.test_size": _SIZE, "task.draw_per_seed": settings.Flag(),
    "noise.rates": settings.ListOf(settings.Number(0, 0.99), 1),
    "noise.kinds": settings.ListOf(settings.Choice(tuple(NOISE_KINDS)), 1),
    "teacher.kind": settings.Choice(("oracle", "trained")),
    "teacher.logit_range": settings.Number(0), "teacher.hidden": _SIZE,
    "teacher.epochs": _SIZE, "teacher.lr": _POSITIVE,
    "distill.temperature": settings.Number(0, 1000, open_low=True),
    "distill.alpha": _FRACTION, "distill.ratios": settings.ListOf(_RATIO, 1),
    "distill.methods": settings.ListOf(settings.Choice(tuple(METHODS)), 1),
    "distill.ratios_by_classes": settings.Table(),
    "student.seeds": settings.Number(2, integer=True), "student.hidden": _COUNT,
    "student.optimizer": settings.Choice(("sgd", "adam")), "student.lr": _POSITIVE,
    "student.momentum": settings.Number(0, 1, open_high=True),
    "student.weight_decay": settings.Number(0), "student.batch_size": _SIZE,
    "student.steps": _SIZE,
    "probe.temperatures": settings.ListOf(settings.Number(0, 1000, open_low=True), 1),
    "probe.steps": settings.Number(2, integer=True), "probe.lr": _POSITIVE,
    "log.gap_every": _SIZE, "log.early_steps": _COUNT, "log.probe_examples": _SIZE,
    "checks.intermediate_ratio": _FRACTION, "checks.recovery_fraction": _FRACTION,
    "checks.no_deficit_tolerance": settings.Number(0, 100),
}
# the command-line flag that sets a key, named in its error messages
FLAG_NAMES = {"task.classes": "--classes", "noise.rates": "--noise",
              "noise.kinds": "--noise-kind", "teacher.kind": "--teacher",
              "teacher.logit_range": "--teacher-logit-range",
              "distill.temperature": "--temperature", "distill.alpha": "--alpha",
              "distill.ratios": "--ratios", "student.seeds": "--seeds", "student.steps": "--steps"}


def validate(config: dict) -> dict:
    """Check every setting; the message names the flag (or TOML key) and what is allowed."""
    settings.check(config, SCHEMA, FLAG_NAMES)
    task, noise, distill = config["task"], config["noise"], config["distill"]
    student = config["student"]
    classes, size = task["classes"], task["superclass_size"]
    if classes % size:
        raise ValueError(f"--classes must be a multiple of task.superclass_size={size}, "
                         f"got {classes}")
    _number(task["input_dim"], "task.input_dim", 1, task["latent_dim"], integer=True)
    if "superclass" in noise["kinds"] and size < 2 and any(noise["rates"]):
        raise ValueError("--noise-kind superclass needs task.superclass_size >= 2")
    for key, ratios in distill["ratios_by_classes"].items():
        settings.ListOf(_RATIO, 1).check(ratios, f"distill.ratios_by_classes.{key}")
    for ratio in distill["ratios"]:
        if int(round(ratio * classes, 9)) < 1:
            raise ValueError(f"--ratios must each keep at least one class: ratio >= 1/{classes}, "
                             f"got {ratio}")
    distill["ratios"] = sorted({float(r) for r in distill["ratios"]})
    if len({keep_count(r, classes) for r in distill["ratios"]}) < len(distill["ratios"]):
        raise ValueError(f"--ratios must give distinct k = int(ratio*{classes}), "
                         f"got {distill['ratios']}")
    _number(student["batch_size"], "student.batch_size", 1, task["train_size"], integer=True)
    _number(config["log"]["probe_examples"], "log.probe_examples", 1, task["test_size"],
            integer=True)
    return config


def intermediate_ratio(config: dict) -> float:
    """The ratio checks a, b, d, e look at: the swept ratio nearest the configured one."""
    wanted = config["checks"]["intermediate_ratio"] or (
        0.1 if config["task"]["classes"] >= 100 else 0.2)
    return min(config["distill"]["ratios"], key=lambda r: abs(r - wanted))


def setting_hash(config: dict, rate: float, kind: str) -> str:
    """Hash of everything that determines one noise setting's runs (not the checks): the
    settings and the code that computes them (the simulations and theory packages)."""
    relevant = {key: value for key, value in config.items() if key not in ("noise", "checks")}
    text = json.dumps({"config": relevant, "rate": rate, "kind": kind,
                       "code": code_digest("simulations", "theory")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_setting(path: Path) -> dict | None:
    """A finished noise setting's cached result (``settings/<hash>.json``), or None when
    absent or unreadable (then it is computed again). JSON holds NaN as null; the rows get
    their NaN back (no row value is None otherwise)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict):
        return None
    for table in ("runs", "gap_trajectory", "drive_rates"):
        result[table] = [{key: float("nan") if value is None else value
                          for key, value in row.items()} for row in result.get(table, [])]
    return result
