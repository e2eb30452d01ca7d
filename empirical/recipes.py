"""Training recipes: TOML files of hyperparameters, with defaults, inheritance and overrides.

A recipe is a packaged name (``empirical/recipes/<name>.toml``) or a path to a TOML file.
``extends = "other-recipe"`` at the top level starts from another recipe (recursively) and
replaces only the keys it sets. ``--set section.key=value`` overrides any key afterwards; the
value is parsed as a TOML value (``0.1``, ``true``, ``[60, 120]``, ``"sgd"``) and falls back
to a plain string. Every key must exist in :data:`DEFAULTS`, so a typo is an error.
"""

from __future__ import annotations

import copy
from pathlib import Path

import tomllib

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"

METHODS = ("scratch", "kd", "stingy", "within", "reversed", "nasty", "dafl")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "onecycle", "constant")

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


def recipe_path(recipe: str | Path) -> Path:
    """The TOML file of a packaged name or a path; ValueError names both options."""
    path = Path(recipe)
    if path.suffix == ".toml" and path.is_file():
        return path
    packaged = RECIPE_DIR / f"{recipe}.toml"
    if packaged.is_file():
        return packaged
    raise ValueError(f"recipe must be a packaged recipe name ({', '.join(packaged_recipes())}) "
                     f"or a path to a .toml file, got {str(recipe)!r}")


def _merge(base: dict, update: dict, where: str = "") -> dict:
    """Recursive dict update that refuses keys absent from ``base`` (typos)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        name = f"{where}{key}"
        if key not in base:
            raise ValueError(f"recipe key {name!r} is unknown; allowed keys here: "
                             f"{', '.join(sorted(base))}")
        if isinstance(base[key], dict) and key != "options":
            if not isinstance(value, dict):
                raise ValueError(f"recipe key {name!r} must be a table, got {value!r}")
            merged[key] = _merge(base[key], value, f"{name}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read(recipe: str | Path, seen: tuple = ()) -> dict:
    path = recipe_path(recipe)
    if path in seen:
        raise ValueError(f"recipe {path} extends itself (cycle {[str(p) for p in seen]})")
    with open(path, "rb") as f:
        try:
            table = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"recipe {path} is not valid TOML: {err}") from None
    parent = table.pop("extends", None)
    base = _read(parent, (*seen, path)) if parent else DEFAULTS
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


def _positive(value, name: str, integer: bool = False, allow_zero: bool = False):
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not allow_zero):
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {kind} {bound}, got {value!r}")


def validate_recipe(recipe: dict) -> dict:
    """Check value ranges (names, positive sizes); ValueError names the key."""
    recipe = {key: value for key, value in recipe.items() if key != "recipe"}
    method, optim, schedule, train = (recipe[k] for k in ("method", "optim", "schedule", "train"))
    if method["name"] not in METHODS:
        raise ValueError(f"method.name must be one of {', '.join(METHODS)}, got {method['name']!r}")
    if optim["name"] not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {optim['name']!r}")
    if schedule["name"] not in SCHEDULES:
        raise ValueError(f"schedule.name must be one of {', '.join(SCHEDULES)}, "
                         f"got {schedule['name']!r}")
    _positive(recipe["seed"], "seed", integer=True, allow_zero=True)
    _positive(schedule["epochs"], "schedule.epochs", integer=True)
    _positive(optim["lr"], "optim.lr")
    _positive(optim["weight_decay"], "optim.weight_decay", allow_zero=True)
    _positive(train["batch_size"], "train.batch_size", integer=True)
    _positive(train["eval_batch_size"], "train.eval_batch_size", integer=True)
    _positive(train["checkpoint_every"], "train.checkpoint_every", integer=True)
    _positive(recipe["data"]["train_subset"], "data.train_subset", integer=True, allow_zero=True)
    _positive(recipe["data"]["test_subset"], "data.test_subset", integer=True, allow_zero=True)
    _positive(recipe["dafl"]["steps"], "dafl.steps", integer=True, allow_zero=True)
    _positive(recipe["dafl"]["batch_size"], "dafl.batch_size", integer=True, allow_zero=True)
    _positive(method["temperature"], "method.temperature")
    _positive(method["k"], "method.k", integer=True, allow_zero=True)
    _positive(method["nasty_weight"], "method.nasty_weight", allow_zero=True)
    if not 0 <= method["alpha"] <= 1:
        raise ValueError(f"method.alpha must be a number in [0, 1], got {method['alpha']!r}")
    if not 0 <= train["label_smoothing"] < 1:
        raise ValueError(f"train.label_smoothing must be in [0, 1), got {train['label_smoothing']!r}")
    if method["name"] in ("stingy", "within") and method["k"] == 0 and not 0 < method["ratio"] <= 1:
        raise ValueError(f"method {method['name']!r} needs method.k >= 1 or method.ratio in (0, 1], "
                         f"got k={method['k']}, ratio={method['ratio']}")
    if not all(isinstance(m, int) and 0 < m for m in schedule["milestones"]):
        raise ValueError(f"schedule.milestones must be positive integers, got {schedule['milestones']!r}")
    if not 0 < schedule["warmup_fraction"] < 1:
        raise ValueError(f"schedule.warmup_fraction must be in (0, 1), "
                         f"got {schedule['warmup_fraction']!r}")
    return recipe


def needs_teacher(recipe: dict) -> bool:
    """Every method but training from scratch distils from (or against) a teacher."""
    return recipe["method"]["name"] != "scratch"
