"""Sweep settings as data: simulations/default.toml, an optional TOML override, then flags.

:func:`load_config` merges them, :func:`validate` checks every value (ValueError naming the
flag or key) and :func:`setting_hash` keys the per-noise-setting result files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path

from stingy.simulations.data import NOISE_KINDS
from stingy.simulations.training import METHODS
from stingy.theory.operators import keep_count

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config must be an existing TOML file, got {str(path)!r}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"--config {path} is not valid TOML ({err})") from None


def merge(base: dict, override: dict, where: str = "") -> dict:
    """Recursive dict update; an unknown key is an error naming it."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key not in merged:
            raise ValueError(f"unknown config key {where}{key!r}")
        if isinstance(merged[key], dict) and isinstance(value, dict) and key != "ratios_by_classes":
            merged[key] = merge(merged[key], value, f"{where}{key}.")
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, flags: dict | None = None) -> dict:
    """default.toml, updated by the TOML at ``path``, updated by ``flags`` (section.key: value)."""
    config = read_toml(DEFAULT_CONFIG)
    if path is not None:
        config = merge(config, read_toml(path))
    explicit_ratios = path is not None and "ratios" in read_toml(path).get("distill", {})
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".")
        config[section][key] = value
        explicit_ratios |= dotted == "distill.ratios"
    classes = config["task"]["classes"]
    by_classes = config["distill"]["ratios_by_classes"]
    if not explicit_ratios and str(classes) in by_classes:
        config["distill"]["ratios"] = list(by_classes[str(classes)])
    return validate(config)


def _number(value, flag: str, low: float, high: float = float("inf"), integer: bool = False,
            open_low: bool = False):
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    if not ok:
        what = "an integer" if integer else "a number"
        bound = f"> {low}" if open_low else f">= {low}"
        upper = "" if high == float("inf") else f" and <= {high}"
        raise ValueError(f"{flag} must be {what} {bound}{upper}, got {value!r}")
    return value


def validate(config: dict) -> dict:
    """Check every setting; the message names the flag (or TOML key) and what is allowed."""
    task, noise, distill = config["task"], config["noise"], config["distill"]
    student, probe, checks = config["student"], config["probe"], config["checks"]
    classes = _number(task["classes"], "--classes", 2, integer=True)
    size = _number(task["superclass_size"], "task.superclass_size", 1, integer=True)
    if classes % size:
        raise ValueError(f"--classes must be a multiple of task.superclass_size={size}, "
                         f"got {classes}")
    _number(task["latent_dim"], "task.latent_dim", 1, integer=True)
    _number(task["input_dim"], "task.input_dim", 1, task["latent_dim"], integer=True)
    for key in ("superclass_spread", "member_spread"):
        _number(task[key], f"task.{key}", 0)
    for key in ("train_size", "test_size"):
        _number(task[key], f"task.{key}", 1, integer=True)
    if not noise["rates"]:
        raise ValueError("--noise needs at least one rate")
    for rate in noise["rates"]:
        _number(rate, "--noise", 0, 0.99)
    if not noise["kinds"] or any(kind not in NOISE_KINDS for kind in noise["kinds"]):
        raise ValueError(f"--noise-kind must be among {', '.join(NOISE_KINDS)}, "
                         f"got {noise['kinds']!r}")
    if "superclass" in noise["kinds"] and size < 2 and any(noise["rates"]):
        raise ValueError("--noise-kind superclass needs task.superclass_size >= 2")
    if config["teacher"]["kind"] not in ("oracle", "trained"):
        raise ValueError(f"--teacher must be oracle or trained, got {config['teacher']['kind']!r}")
    _number(config["teacher"]["logit_range"], "--teacher-logit-range", 0)
    _number(distill["temperature"], "--temperature", 0, open_low=True)
    _number(distill["alpha"], "--alpha", 0, 1)
    if not distill["ratios"]:
        raise ValueError("--ratios needs at least one ratio")
    for ratio in distill["ratios"]:
        _number(ratio, "--ratios", 0, 1, open_low=True)
        if int(round(ratio * classes, 9)) < 1:
            raise ValueError(f"--ratios must each keep at least one class: ratio >= 1/{classes}, "
                             f"got {ratio}")
    distill["ratios"] = sorted(set(float(r) for r in distill["ratios"]))
    if len({keep_count(r, classes) for r in distill["ratios"]}) < len(distill["ratios"]):
        raise ValueError(f"--ratios must give distinct k = int(ratio*{classes}), "
                         f"got {distill['ratios']}")
    unknown = [m for m in distill["methods"] if m not in METHODS]
    if unknown or not distill["methods"]:
        raise ValueError(f"distill.methods must be among {', '.join(METHODS)}, got {unknown}")
    _number(student["seeds"], "--seeds", 2, integer=True)
    _number(student["hidden"], "student.hidden", 0, integer=True)
    if student["optimizer"] not in ("sgd", "adam"):
        raise ValueError(f"student.optimizer must be sgd or adam, got {student['optimizer']!r}")
    _number(student["lr"], "student.lr", 0, open_low=True)
    _number(student["batch_size"], "student.batch_size", 1, task["train_size"], integer=True)
    _number(student["steps"], "--steps", 1, integer=True)
    for temperature in probe["temperatures"]:
        _number(temperature, "probe.temperatures", 0, open_low=True)
    _number(probe["steps"], "probe.steps", 2, integer=True)
    _number(config["log"]["probe_examples"], "log.probe_examples", 1, task["test_size"],
            integer=True)
    _number(checks["intermediate_ratio"], "checks.intermediate_ratio", 0, 1)
    return config


def intermediate_ratio(config: dict) -> float:
    """The ratio checks a, b, d, e look at: the swept ratio nearest the configured one."""
    wanted = config["checks"]["intermediate_ratio"] or (
        0.1 if config["task"]["classes"] >= 100 else 0.2)
    return min(config["distill"]["ratios"], key=lambda r: abs(r - wanted))


def setting_hash(config: dict, rate: float, kind: str) -> str:
    """Hash of everything that determines one noise setting's runs (not the checks)."""
    relevant = {key: value for key, value in config.items() if key not in ("noise", "checks")}
    text = json.dumps({"config": relevant, "rate": rate, "kind": kind}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
