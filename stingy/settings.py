"""The one schema of every layer's settings: frozen dataclasses whose fields carry their rules.

A settings class is a frozen dataclass deriving from :class:`Settings`. Each field is a
:func:`setting` (a default and the rule its value must pass) or a :func:`section` (a nested
settings class). The loaders (``stingy.empirical.recipes.load_recipe``,
``stingy.simulations.config.load_config``, ``stingy.empirical.sweep.load_profile``) read TOML
tables, lay them over each other (:func:`overlay`) and build the dataclass with
:func:`from_table`, which refuses unknown keys and checks every value against its rule, so no
settings dict travels past a loader. Building a settings object directly checks it too.

Each quantity has one rule, defined here once (:data:`TEMPERATURE`, :data:`ALPHA`,
:data:`RATIO`, :data:`LEARNING_RATE`, ...). Every number must be finite and of the right type
(``True`` is not a number), so ``inf``, ``nan`` and strings never reach a training loop. A
value of the wrong type is a bad setting like any other: every check raises ValueError naming
the key (and its command-line flag, where one sets it), which the CLI prints as one line.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# ----------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Number:
    """A finite int or float in [low, high] (ends open when asked); ``integer``: int only."""

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    open_low: bool = False
    open_high: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        parts = []
        if self.low > -math.inf:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high < math.inf:
            parts.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def check(self, value, name: str) -> None:
        kind = numbers.Integral if self.integer else numbers.Real
        ok = isinstance(value, kind) and not isinstance(value, bool)  # numpy's bool is no Real
        ok = ok and (self.integer or math.isfinite(value))
        ok = ok and (value > self.low if self.open_low else value >= self.low)
        ok = ok and (value < self.high if self.open_high else value <= self.high)
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class ZeroOr:
    """0 (meaning "not set") or a value passing ``rule``."""

    rule: Number

    def describe(self) -> str:
        return f"0 (not set) or {self.rule.describe()}"

    def check(self, value, name: str) -> None:
        if value == 0 and not isinstance(value, bool):
            return
        try:
            self.rule.check(value, name)
        except ValueError:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}") from None


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]

    def describe(self) -> str:
        return f"one of {', '.join(self.options)}"

    def check(self, value, name: str) -> None:
        if not isinstance(value, str) or value not in self.options:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class Flag:
    def describe(self) -> str:
        return "true or false"

    def check(self, value, name: str) -> None:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")  # noqa: TRY004


@dataclass(frozen=True)
class Text:
    def describe(self) -> str:
        return "a string"

    def check(self, value, name: str) -> None:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")  # noqa: TRY004


@dataclass(frozen=True)
class ListOf:
    """A list (or tuple) whose every item passes ``item``, with at least ``min_length`` items
    and, with ``distinct``, no repeats."""

    item: Number | Choice
    min_length: int = 0
    distinct: bool = False

    def describe(self) -> str:
        least = f" at least {self.min_length}" if self.min_length else ""
        unique = " distinct" if self.distinct else ""
        return f"a list of{least}{unique} items, each {self.item.describe()}"

    def check(self, value, name: str) -> None:
        message = f"{name} must be {self.describe()}, got {value!r}"
        if not isinstance(value, (list, tuple)) or len(value) < self.min_length:
            raise ValueError(message)
        for item in value:
            try:
                self.item.check(item, name)
            except ValueError:
                raise ValueError(message) from None
        if self.distinct and len(set(value)) != len(value):
            raise ValueError(message)


@dataclass(frozen=True)
class TableOf:
    """A table of string keys, each value passing ``value``."""

    value: ListOf

    def describe(self) -> str:
        return f"a table whose every value is {self.value.describe()}"

    def check(self, value, name: str) -> None:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")  # noqa: TRY004
        for key, item in value.items():
            self.value.check(item, f"{name}.{key}")


# One rule per quantity, shared by every layer.
TEMPERATURE = Number(0, 1e6, open_low=True)         # T^2 KL stays finite in float32
ALPHA = Number(0, 1)                                # weight of the soft-target term
RATIO = Number(0, 1, open_low=True)                 # sparse ratio r, k = keep_count(r, K)
CLASS_COUNT = Number(1, 10_000_000, integer=True)   # K; a float64 row of 10^7 is 80 MB
KEPT_COUNT = Number(1, integer=True)                # k, the kept classes
LEARNING_RATE = Number(0, open_low=True)
MOMENTUM = Number(0, 1, open_high=True)
WEIGHT_DECAY = Number(0)
EPOCHS = Number(1, integer=True)
STEPS = Number(1, integer=True)
BATCH_SIZE = Number(1, integer=True)
SUBSET = Number(0, integer=True)                    # 0: every example
NOISE_RATE = Number(0, 1, open_high=True)           # share of labels flipped
SEED = Number(0, 2**32 - 2, integer=True)           # seed + 1 still seeds a generator
FRACTION = Number(0, 1)
OPEN_FRACTION = Number(0, 1, open_low=True, open_high=True)
COUNT = Number(0, integer=True)
SIZE = Number(1, integer=True)
NON_NEGATIVE = Number(0)


# ----------------------------------------------------------------------------- fields

def setting(default: Any = dataclasses.MISSING, rule=None, *, flag: str | None = None):
    """A field holding one value that must pass ``rule``; ``flag`` names the command-line flag
    that sets it (error messages then name both). Lists are stored as tuples."""
    default = tuple(default) if isinstance(default, list) else default
    return dataclasses.field(default=default, metadata={"rule": rule, "flag": flag})


def section(cls):
    """A field holding a nested settings class (a TOML table); defaults to its defaults."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls})


class Settings:
    """Base of every settings dataclass: building one checks every field against its rule,
    then the class's cross-field :meth:`check`."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, field.name, value)
            rule = field.metadata.get("rule")
            if rule is not None:
                rule.check(value, field.name)
        self.check()

    def check(self) -> None:
        """Rules between fields; a ValueError names the keys."""

    def to_table(self) -> dict:
        """The settings as plain data (nested dicts, tuples as lists), for JSON files."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes):
        """A copy with ``changes`` (checked like any new settings object)."""
        return dataclasses.replace(self, **changes)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def field_names(cls) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def dotted_keys(cls, where: str = "") -> list[str]:
    """Every ``section.key`` of a settings class."""
    keys = []
    for field in dataclasses.fields(cls):
        nested = field.metadata.get("section")
        keys += dotted_keys(nested, f"{where}{field.name}.") if nested else [where + field.name]
    return keys


# ----------------------------------------------------------------------------- loading

def overlay(base: Mapping, update: Mapping) -> dict:
    """``base`` updated recursively by ``update`` (tables merge, values replace); keys are
    checked later, by :func:`from_table`."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_table(cls, table: Mapping, *, what: str = "settings", where: str = ""):
    """Build ``cls`` from a (nested) table: unknown keys, missing keys without a default and
    values that fail their rule are a ValueError naming the dotted key (and its flag)."""
    if not isinstance(table, Mapping):
        name = where.rstrip(".") or what
        raise ValueError(f"{name} must be a table, got {table!r}")  # noqa: TRY004
    known = field_names(cls)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(f"{what} key {where + unknown[0]!r} is unknown; allowed keys here: "
                         f"{', '.join(sorted(known))}")
    values = {}
    for field in dataclasses.fields(cls):
        dotted = where + field.name
        if field.name not in table:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ValueError(f"{what} key {dotted!r} is missing")
            continue
        value = table[field.name]
        nested = field.metadata.get("section")
        if nested is not None:
            values[field.name] = from_table(nested, value, what=what, where=f"{dotted}.")
            continue
        flag = field.metadata.get("flag")
        field.metadata["rule"].check(value, f"{flag} ({dotted})" if flag else dotted)
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def read_toml(path, what: str) -> dict:
    """A TOML file as a table; a missing or malformed file is a ValueError naming ``what``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} must be an existing TOML file, got {str(path)!r}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid TOML ({err})") from None


def parse_override(text: str) -> dict:
    """``"optim.lr=0.05"`` -> ``{"optim": {"lr": 0.05}}``; the value is read as TOML and falls
    back to a plain string (``name=sgd``)."""
    if not isinstance(text, str):
        raise ValueError(f"--set must look like key=value, got {text!r}")
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ValueError(f"--set must look like key=value or section.key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    table: dict = {}
    nested = table
    parts = key.strip().split(".")
    for part in parts[:-1]:
        nested = nested.setdefault(part, {})
    nested[parts[-1]] = value
    return table


def overlay_overrides(table: Mapping, overrides) -> dict:
    """``table`` with every ``--set key=value`` of ``overrides`` laid over it, in order."""
    for text in overrides or ():
        table = overlay(table, parse_override(text))
    return dict(table)
