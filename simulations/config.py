"""Sweep settings as data: simulations/default.toml, an optional TOML override, then flags.

:func:`load_config` lays them over each other and builds a :class:`SimulationConfig`, a frozen
dataclass of sections whose every value is checked by its field's rule (``stingy.settings``;
a ValueError names the flag or key); :func:`setting_hash` keys the per-noise-setting result
files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from stingy import settings
from stingy.io import code_digest
from stingy.methods import names
from stingy.simulations.data import NOISE_KINDS
from stingy.settings import (
    ALPHA, BATCH_SIZE, COUNT, EPOCHS, FRACTION, LEARNING_RATE, MOMENTUM, NOISE_RATE, NON_NEGATIVE,
    RATIO, SEED, SIZE, STEPS, TEMPERATURE, WEIGHT_DECAY, Choice, Flag, ListOf, Number, Settings,
    TableOf, section, setting)

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
MAX_STORED_LOGITS = 500_000_000  # 2 GB of float32 teacher logits per noise setting
METHODS = names("simulations")


@dataclass(frozen=True)
class TaskSettings(Settings):
    classes: int = setting(rule=Number(2, 100_000, integer=True), flag="--classes")
    superclass_size: int = setting(rule=SIZE)
    latent_dim: int = setting(rule=SIZE)
    input_dim: int = setting(rule=SIZE)
    superclass_spread: float = setting(rule=NON_NEGATIVE)
    member_spread: float = setting(rule=NON_NEGATIVE)
    task_seed: int = setting(rule=SEED)
    draw_per_seed: bool = setting(rule=Flag())
    train_size: int = setting(rule=SIZE)
    test_size: int = setting(rule=SIZE)


@dataclass(frozen=True)
class NoiseSettings(Settings):
    rates: tuple = setting(rule=ListOf(NOISE_RATE, 1), flag="--noise")
    kinds: tuple = setting(rule=ListOf(Choice(NOISE_KINDS), 1), flag="--noise-kind")


@dataclass(frozen=True)
class TeacherSettings(Settings):
    kind: str = setting(rule=Choice(("oracle", "trained")), flag="--teacher")
    logit_range: float = setting(rule=NON_NEGATIVE, flag="--teacher-logit-range")
    hidden: int = setting(rule=SIZE)
    epochs: int = setting(rule=EPOCHS)
    lr: float = setting(rule=LEARNING_RATE)


@dataclass(frozen=True)
class DistillSettings(Settings):
    temperature: float = setting(rule=TEMPERATURE, flag="--temperature")
    alpha: float = setting(rule=ALPHA, flag="--alpha")
    ratios: tuple = setting(rule=ListOf(RATIO, 1), flag="--ratios")
    methods: tuple = setting(rule=ListOf(Choice(METHODS), 1))
    ratios_by_classes: dict = setting(rule=TableOf(ListOf(RATIO, 1)))
    within_spread: float = setting(1.0, Number(0, 100))


@dataclass(frozen=True)
class StudentSettings(Settings):
    seeds: int = setting(rule=Number(2, integer=True), flag="--seeds")
    hidden: int = setting(rule=COUNT)
    optimizer: str = setting(rule=Choice(("sgd", "adam")))
    lr: float = setting(rule=LEARNING_RATE)
    momentum: float = setting(rule=MOMENTUM)
    weight_decay: float = setting(rule=WEIGHT_DECAY)
    batch_size: int = setting(rule=BATCH_SIZE)
    steps: int = setting(rule=STEPS, flag="--steps")
    gap_cap: float = setting(0.0, Number(0, 1e6))


@dataclass(frozen=True)
class ProbeSettings(Settings):
    temperatures: tuple = setting(rule=ListOf(TEMPERATURE, 1))
    lr: float = setting(rule=LEARNING_RATE)


@dataclass(frozen=True)
class LogSettings(Settings):
    gap_every: int = setting(rule=SIZE)
    early_steps: int = setting(rule=COUNT)
    probe_examples: int = setting(rule=SIZE)


@dataclass(frozen=True)
class ChecksSettings(Settings):
    intermediate_ratio: float = setting(rule=FRACTION)
    recovery_fraction: float = setting(rule=FRACTION)
    no_deficit_tolerance: float = setting(rule=Number(0, 100))


@dataclass(frozen=True)
class SimulationConfig(Settings):
    """Every setting of a simulation sweep (the sections of default.toml)."""

    task: TaskSettings = section(TaskSettings)
    noise: NoiseSettings = section(NoiseSettings)
    teacher: TeacherSettings = section(TeacherSettings)
    distill: DistillSettings = section(DistillSettings)
    student: StudentSettings = section(StudentSettings)
    probe: ProbeSettings = section(ProbeSettings)
    log: LogSettings = section(LogSettings)
    checks: ChecksSettings = section(ChecksSettings)

    def check(self) -> None:
        task, noise, distill = self.task, self.noise, self.distill
        classes, size = task.classes, task.superclass_size
        if classes % size:
            raise ValueError(f"--classes must be a multiple of task.superclass_size={size}, "
                             f"got {classes}")
        Number(1, task.latent_dim, integer=True).check(task.input_dim, "task.input_dim")
        if "superclass" in noise.kinds and size < 2 and any(noise.rates):
            raise ValueError("--noise-kind superclass needs task.superclass_size >= 2")
        for ratio in distill.ratios:
            if int(round(ratio * classes, 9)) < 1:
                raise ValueError(f"--ratios must each keep at least one class: ratio >= "
                                 f"1/{classes}, got {ratio}")
        kept = {int(round(ratio * classes, 9)) for ratio in distill.ratios}
        if len(kept) < len(distill.ratios) or list(distill.ratios) != sorted(distill.ratios):
            raise ValueError(f"--ratios must be increasing and give distinct k = "
                             f"int(ratio*{classes}), got {list(distill.ratios)}")
        Number(1, task.train_size, integer=True).check(self.student.batch_size,
                                                         "student.batch_size")
        stored = self.student.seeds * (task.train_size + task.test_size) * classes
        if stored > MAX_STORED_LOGITS:
            raise ValueError(
                f"--seeds x (task.train_size + task.test_size) x --classes must be at most "
                f"{MAX_STORED_LOGITS:.0e} teacher logits (4 bytes each), got {self.student.seeds}"
                f" x {task.train_size + task.test_size} x {classes} = {stored:.3g}")
        Number(1, task.test_size, integer=True).check(self.log.probe_examples,
                                                      "log.probe_examples")

    @property
    def intermediate_ratio(self) -> float:
        """The ratio checks a, b, d, e look at: the swept ratio nearest the configured one
        (0 configured: 0.1 at C >= 100, else 0.2)."""
        wanted = self.checks.intermediate_ratio or (0.1 if self.task.classes >= 100 else 0.2)
        return min(self.distill.ratios, key=lambda r: abs(r - wanted))


def load_config(path: str | Path | None = None, flags: dict | None = None) -> SimulationConfig:
    """default.toml, updated by the TOML at ``path``, updated by ``flags`` ({"section.key":
    value}; None values are left out). ``distill.ratios`` not given anywhere comes from
    ``distill.ratios_by_classes`` when it has the class count; ratios are sorted and made
    unique."""
    table = settings.read_toml(DEFAULT_CONFIG, "the default config")
    explicit_ratios = False
    if path is not None:
        update = settings.read_toml(path, "--config")
        table = settings.overlay(table, update)
        explicit_ratios = isinstance(update.get("distill"), dict) and "ratios" in update["distill"]
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section_name, key = dotted.split(".")
        table = settings.overlay(table, {section_name: {key: value}})
        explicit_ratios |= dotted == "distill.ratios"
    return settings.from_table(SimulationConfig, _normalised(table, explicit_ratios),
                               what="config")


def flag_keys() -> dict[str, str]:
    """{"--flag": "section.key"} of every setting a command-line flag sets (the fields'
    ``flag=``)."""
    return {field.metadata["flag"]: f"{section.name}.{field.name}"
            for section in dataclasses.fields(SimulationConfig)
            for field in dataclasses.fields(section.metadata["section"])
            if field.metadata.get("flag")}


def _normalised(table: dict, explicit_ratios: bool) -> dict:
    """The table with ``distill.ratios`` chosen by class count (unless given) and sorted."""
    distill = table.get("distill")
    task = table.get("task")
    if not isinstance(distill, dict) or not isinstance(task, dict):
        return table
    ratios = distill.get("ratios")
    by_classes = distill.get("ratios_by_classes")
    classes = str(task.get("classes"))
    if not explicit_ratios and isinstance(by_classes, dict) and classes in by_classes:
        ratios = by_classes[classes]
    if isinstance(ratios, list) and all(isinstance(r, (int, float)) and not isinstance(r, bool)
                                        for r in ratios):
        ratios = sorted({float(r) for r in ratios})
    return {**table, "distill": {**distill, "ratios": ratios}}


def setting_hash(config: SimulationConfig, rate: float, kind: str) -> str:
    """Hash of everything that determines one noise setting's runs (not the checks): the
    settings and the code that computes them (the simulations and theory packages)."""
    relevant = {key: value for key, value in config.to_table().items()
                if key not in ("noise", "checks")}
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
