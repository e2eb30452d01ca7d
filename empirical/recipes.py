"""Training recipes: TOML files of hyperparameters, with defaults, inheritance and overrides.

A recipe is a packaged name (``empirical/recipes/<name>.toml``) or a path to a TOML file.
``extends = "other-recipe"`` at the top level starts from another recipe (recursively) and
replaces only the keys it sets; a path in ``extends`` is relative to the recipe's own file.
``--set section.key=value`` overrides any key afterwards; the value is parsed as a TOML value
(``0.1``, ``true``, ``[60, 120]``, ``"sgd"``) and falls back to a plain string.

:func:`load_recipe` returns a :class:`Recipe`, a frozen dataclass of sections
(``recipe.method.temperature``). Every key must be a field of it, so a typo is an error, and
every value is checked once, by its field's rule in ``stingy.settings``, when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

from stingy import settings
from stingy.empirical.model_names import MODEL_NAMES
from stingy.methods import MethodSettings, names
from stingy.settings import (
    BATCH_SIZE, EPOCHS, FRACTION, LEARNING_RATE, MOMENTUM, OPEN_FRACTION, SEED, SIZE, STEPS,
    SUBSET, WEIGHT_DECAY, Choice, Flag, ListOf, Number, Settings, Text, section, setting)

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"

METHODS = names("cifar")  # stingy.methods.METHODS: the same names in every layer
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "onecycle", "constant")
DATASETS = ("cifar10", "cifar100")


@dataclass(frozen=True)
class DataSettings(Settings):
    dataset: str = setting("cifar10", Choice(DATASETS))
    train_subset: int = setting(0, SUBSET)   # 0: every training image; n: a class-balanced n
    test_subset: int = setting(0, SUBSET)


@dataclass(frozen=True)
class ModelSettings(Settings):
    name: str = setting("resnet18", Choice(MODEL_NAMES))


@dataclass(frozen=True)
class OptimSettings(Settings):
    name: str = setting("sgd", Choice(OPTIMIZERS))
    lr: float = setting(0.1, LEARNING_RATE)
    momentum: float = setting(0.9, MOMENTUM)
    nesterov: bool = setting(False, Flag())
    weight_decay: float = setting(5e-4, WEIGHT_DECAY)

    def check(self) -> None:
        if self.nesterov and self.momentum == 0:
            raise ValueError("optim.nesterov = true needs optim.momentum > 0")


@dataclass(frozen=True)
class ScheduleSettings(Settings):
    """multistep: lr x gamma at each milestone epoch; onecycle: linear rise over
    warmup_fraction of the steps, then linear fall to final_lr_fraction of the peak."""

    name: str = setting("multistep", Choice(SCHEDULES))
    epochs: int = setting(160, EPOCHS)
    milestones: tuple = setting((80, 120), ListOf(SIZE))
    gamma: float = setting(0.1, Number(0, 1, open_low=True))
    warmup_fraction: float = setting(0.25, OPEN_FRACTION)
    final_lr_fraction: float = setting(0.0, FRACTION)


@dataclass(frozen=True)
class TrainSettings(Settings):
    batch_size: int = setting(128, BATCH_SIZE)
    eval_batch_size: int = setting(1000, BATCH_SIZE)
    label_smoothing: float = setting(0.0, Number(0, 1, open_high=True))
    augment: bool = setting(True, Flag())        # random crop (padding 4) and horizontal flip
    bf16: bool = setting(True, Flag())           # autocast to bfloat16 on CUDA (ignored on CPU)
    channels_last: bool = setting(True, Flag())  # NHWC memory (faster on CPU and CUDA)
    compile: bool = setting(False, Flag())       # torch.compile the student
    progress: bool = setting(True, Flag())
    checkpoint_every: int = setting(1, SIZE)     # epochs between checkpoints (and the last)


@dataclass(frozen=True)
class DaflSettings(Settings):
    """Data-free KD (stingy.empirical.dafl), DAFL's CIFAR-10 settings from its public code
    (README commands and DAFL-train.py): 2000 epochs of 120 iterations = 240,000 steps, batch
    1024, latent 1000, generator Adam lr 0.02, the student's lr x``lr_gamma`` at 40% and 80%
    of the steps, loss weights (one-hot, activation, entropy) 0.05, 0.01, 5 (CIFAR-100: 0.5,
    0.1, 20, set in its recipes). The student's optimizer is the recipe's ``optim`` and the KD
    temperature its ``method.temperature`` (DAFL uses 1)."""

    steps: int = setting(240_000, STEPS)
    batch_size: int = setting(1024, BATCH_SIZE)
    latent_dim: int = setting(1000, SIZE)
    generator_lr: float = setting(0.02, LEARNING_RATE)
    lr_milestone_fractions: tuple = setting((0.4, 0.8), ListOf(OPEN_FRACTION))
    lr_gamma: float = setting(0.1, Number(0, 1, open_low=True))
    onehot_weight: float = setting(0.05, Number(0))
    activation_weight: float = setting(0.01, Number(0))
    entropy_weight: float = setting(5.0, Number(0))
    log_every: int = setting(100, STEPS)
    checkpoint_every: int = setting(1000, STEPS)


@dataclass(frozen=True)
class Recipe(Settings):
    """A training recipe: every section of a recipe TOML, checked, plus its name."""

    recipe: str = setting("custom", Text())
    description: str = setting("", Text())
    seed: int = setting(0, SEED)
    data: DataSettings = section(DataSettings)
    model: ModelSettings = section(ModelSettings)
    method: MethodSettings = section(MethodSettings)
    optim: OptimSettings = section(OptimSettings)
    schedule: ScheduleSettings = section(ScheduleSettings)
    train: TrainSettings = section(TrainSettings)
    dafl: DaflSettings = section(DaflSettings)

    def check(self) -> None:
        if self.method.name not in METHODS:
            raise ValueError(f"method.name must be one of {', '.join(METHODS)}, got "
                             f"{self.method.name!r}")

    @property
    def entry(self):
        """The registry entry of the recipe's method (stingy.methods.Method)."""
        return self.method.entry

    @property
    def needs_teacher(self) -> bool:
        """Whether the method distils from (or against) a teacher."""
        return self.method.entry.needs_teacher


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped in ``empirical/recipes``."""
    return sorted(path.stem for path in RECIPE_DIR.glob("*.toml"))


def recipe_path(recipe: str | Path, relative_to: Path | None = None) -> Path:
    """The TOML file of a packaged name or a path (relative to ``relative_to`` when given:
    the folder of the recipe that extends it); ValueError names both options."""
    if not isinstance(recipe, (str, Path)) or not str(recipe):
        raise ValueError(f"recipe (and extends) must be a packaged recipe name or a path to a "
                         f".toml file, got {recipe!r}")
    path = Path(recipe)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.suffix == ".toml" and path.is_file():
        return path
    packaged = RECIPE_DIR / f"{recipe}.toml"
    if "/" not in str(recipe) and packaged.is_file():
        return packaged
    raise ValueError(f"recipe must be a packaged recipe name ({', '.join(packaged_recipes())}) "
                     f"or a path to a .toml file, got {str(recipe)!r}")


def _read(recipe: str | Path, seen: tuple = (), relative_to: Path | None = None) -> dict:
    """The recipe's table with its ``extends`` chain laid under it (no defaults yet)."""
    path = recipe_path(recipe, relative_to)
    if path.resolve() in seen:
        raise ValueError(f"recipe {path} extends itself (cycle {[str(p) for p in seen]})")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"recipe {path} is not valid TOML: {err}") from None
    parent = table.pop("extends", None)
    if parent is not None and (not isinstance(parent, str) or not parent):
        raise ValueError(f"extends in {path} must be a recipe name or a path to a .toml file "
                         f"(relative to {path.parent}), got {parent!r}")
    if "recipe" in table:
        raise ValueError(f"recipe {path}: the key 'recipe' is the file's name, not a setting")
    base = _read(parent, (*seen, path.resolve()), path.parent) if parent is not None else {}
    return settings.overlay(base, table)


def load_recipe(recipe: str | Path, overrides: list[str] | None = None) -> Recipe:
    """The full recipe (defaults < extends chain < file < ``--set`` overrides), checked; its
    ``recipe`` field is the recipe's name (the file stem)."""
    table = settings.overlay_overrides(_read(recipe), overrides)
    if "recipe" in table:
        raise ValueError("--set recipe=... is not a setting: the recipe's name is its file's")
    return build_recipe(table, recipe_path(recipe).stem)


def build_recipe(table: dict, name: str = "custom") -> Recipe:
    """A recipe from a table laid out like a recipe file (without ``extends``), checked."""
    return settings.from_table(Recipe, {**table, "recipe": name}, what="recipe")
