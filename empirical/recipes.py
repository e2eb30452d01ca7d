"""Training recipes: TOML files of hyperparameters, with defaults, inheritance and overrides.

A recipe is a packaged name (``empirical/recipes/<name>.toml``) or a path to a TOML file.
``extends = "other-recipe"`` at the top level starts from another recipe (recursively) and
replaces only the keys it sets; a path in ``extends`` is relative to the recipe's own file. ``--set section.key=value`` overrides any key afterwards; the
value is parsed as a TOML value (``0.1``, ``true``, ``[60, 120]``, ``"sgd"``) and falls back
to a plain string. Every key must exist in :data:`DEFAULTS`, so a typo is an error, and every value is checked
once against :data:`SCHEMA` (type, finiteness, range) when the recipe is loaded.
"""

from __future__ import annotations

from pathlib import Path

import tomllib

from stingy.settings import Choice, Flag, ListOf, Number, Table, Text, check, merge
from stingy.methods import method as method_entry
from stingy.methods import names

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"

METHODS = names("cifar")  # stingy.methods.METHODS: the same names in every layer
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "onecycle", "constant")
DATASETS = ("cifar10", "cifar100")
MAX_TEMPERATURE = 1000.0  # the largest T the studies use (the theory grid's top end)

DEFAULTS: dict = {
    "description": "",
    "seed": 0,
    "data": {
        "dataset": "cifar10",
        "train_subset": 0,   # 0: every training image; n: a class-balanced first n (seeded)
        "test_subset": 0,
    },
    "model": {"name": "resnet18"},
    "method": {
        "name": "scratch",   # one of METHODS
        "temperature": 4.0,
        "alpha": 0.9,
        "ratio": 0.0,        # sparse ratio r (k = keep_count(r, K)); used when k = 0
        "k": 0,              # kept classes; 0: take it from the ratio
        "nasty_weight": 0.04,
    },
    "optim": {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
    },
    "schedule": {
        "name": "multistep",
        "epochs": 160,
        "milestones": [80, 120],
        "gamma": 0.1,
        "warmup_fraction": 0.25,  # onecycle: share of the steps spent rising linearly
        "final_lr_fraction": 0.0,  # onecycle: lr at the end as a fraction of the peak
    },
    "train": {
        "batch_size": 128,
        "eval_batch_size": 1000,
        "label_smoothing": 0.0,
        "augment": True,     # random crop (padding 4) and horizontal flip
        "bf16": True,        # autocast to bfloat16 on CUDA (ignored on CPU)
        "channels_last": True,  # on CUDA
        "compile": False,    # torch.compile the student
        "progress": True,
        "checkpoint_every": 1,  # epochs between checkpoints (the last epoch always writes one)
    },
    "dafl": {                # stingy.empirical.dafl.distill_data_free; 0: DAFL_SETTINGS' value
        "steps": 0,
        "batch_size": 0,
        "options": {},       # any other keyword of distill_data_free (e.g. entropy_weight)
    },
}


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


def _merge(base: dict, update: dict) -> dict:
    return merge(base, update, what="recipe", opaque=("options",))


def _read(recipe: str | Path, seen: tuple = (), relative_to: Path | None = None) -> dict:
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
    base = (_read(parent, (*seen, path.resolve()), path.parent) if parent is not None
            else DEFAULTS)
    return _merge(base, table)


def parse_override(text: str) -> tuple[list[str], object]:
    """``"optim.lr=0.05"`` -> (["optim", "lr"], 0.05); the value is read as TOML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set must look like section.key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def apply_overrides(recipe: dict, overrides: list[str] | None) -> dict:
    for text in overrides or []:
        keys, value = parse_override(text)
        update: dict = {}
        nested = update
        for key in keys[:-1]:
            nested = nested.setdefault(key, {})
        nested[keys[-1]] = value
        recipe = _merge(recipe, update)
    return recipe


def load_recipe(recipe: str | Path, overrides: list[str] | None = None) -> dict:
    """The full recipe (defaults < extends chain < file < overrides), validated.

    The result has a ``"recipe"`` key: the recipe's name (file stem).
    """
    loaded = apply_overrides(_read(recipe), overrides)
    loaded = validate_recipe(loaded)
    return {"recipe": recipe_path(recipe).stem, **loaded}


def build_recipe(table: dict, name: str = "custom") -> dict:
    """A recipe from a table laid out like a recipe file (without ``extends``), validated."""
    return {"recipe": name, **validate_recipe(_merge(DEFAULTS, table))}


def _schema() -> dict:
    from stingy.empirical.models import BUILDERS

    positive, fraction = Number(0, open_low=True), Number(0, 1)
    count, size = Number(0, integer=True), Number(1, integer=True)
    return {
        "description": Text(), "seed": Number(0, 2**32 - 2, integer=True),
        "data.dataset": Choice(tuple(DATASETS)), "data.train_subset": count,
        "data.test_subset": count,
        "model.name": Choice(tuple(BUILDERS)),
        "method.name": Choice(METHODS), "method.temperature": Number(0, MAX_TEMPERATURE,
                                                                     open_low=True),
        "method.alpha": fraction, "method.ratio": fraction, "method.k": count,
        "method.nasty_weight": Number(0),
        "optim.name": Choice(OPTIMIZERS), "optim.lr": positive,
        "optim.momentum": Number(0, 1, open_high=True), "optim.nesterov": Flag(),
        "optim.weight_decay": Number(0),
        "schedule.name": Choice(SCHEDULES), "schedule.epochs": size,
        "schedule.milestones": ListOf(size), "schedule.gamma": Number(0, 1, open_low=True),
        "schedule.warmup_fraction": Number(0, 1, open_low=True, open_high=True),
        "schedule.final_lr_fraction": fraction,
        "train.batch_size": size, "train.eval_batch_size": size,
        "train.label_smoothing": Number(0, 1, open_high=True), "train.augment": Flag(),
        "train.bf16": Flag(), "train.channels_last": Flag(), "train.compile": Flag(),
        "train.progress": Flag(), "train.checkpoint_every": size,
        "dafl.steps": count, "dafl.batch_size": count, "dafl.options": Table(),
    }


def validate_recipe(recipe: dict) -> dict:
    """Check every key against the schema (type, finiteness, range); ValueError names it."""
    recipe = {key: value for key, value in recipe.items() if key != "recipe"}
    check(recipe, _schema())
    method, optim = recipe["method"], recipe["optim"]
    if optim["nesterov"] and optim["momentum"] == 0:
        raise ValueError("optim.nesterov = true needs optim.momentum > 0")
    if method_entry(method["name"]).sparse_target and method["k"] == 0 and method["ratio"] == 0:
        raise ValueError(f"method {method['name']!r} needs method.k >= 1 or method.ratio in (0, 1], "
                         f"got k={method['k']}, ratio={method['ratio']}")
    return recipe


def needs_teacher(recipe: dict) -> bool:
    """Whether the recipe's method distils from (or against) a teacher (stingy.methods)."""
    return method_entry(recipe["method"]["name"]).needs_teacher
