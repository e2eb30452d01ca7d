"""One config merger and one schema of checks for every layer's settings.

Recipes (``stingy.empirical.recipes``) and simulation configs (``stingy.simulations.config``)
are nested tables of defaults updated by TOML files and flags. :func:`merge` applies an update
and refuses unknown keys; :func:`check` validates every key once, when the settings are
built, against a schema: a flat table ``{"section.key": rule}`` whose rules are the frozen
dataclasses below. Every number must be finite and of the right type (``True`` is not a
number), so ``inf``, ``nan`` and strings never reach a training loop. A value of the wrong
type is a bad setting like any other, so every check raises ValueError (which the CLI prints
as one line), never TypeError.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def merge(base: Mapping, update: Mapping, *, what: str, where: str = "",
          opaque: tuple[str, ...] = ()) -> dict:
    """``base`` updated recursively by ``update``; ValueError for an unknown key or for a
    value that does not match the table/scalar shape of ``base``. Keys in ``opaque`` hold free
    tables that are replaced whole."""
    if not isinstance(update, Mapping):
        table = where.rstrip(".") or "settings"
        raise ValueError(f"{what} {table} must be a table, got {update!r}")  # noqa: TRY004
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        name = f"{where}{key}"
        if key not in base:
            raise ValueError(f"{what} key {name!r} is unknown; allowed keys here: "
                             f"{', '.join(sorted(base))}")
        if isinstance(base[key], Mapping) and key not in opaque:
            if not isinstance(value, Mapping):
                raise ValueError(f"{what} key {name!r} must be a table, got {value!r}")
            merged[key] = merge(base[key], value, what=what, where=f"{name}.", opaque=opaque)
        elif isinstance(value, Mapping) and key not in opaque:
            raise ValueError(f"{what} key {name!r} must be a value, not a table")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def lookup(settings: Mapping, dotted: str) -> Any:
    value = settings
    for part in dotted.split("."):
        value = value[part]
    return value


def leaf_keys(settings: Mapping, where: str = "", opaque: tuple[str, ...] = ()) -> list[str]:
    """Every dotted key that holds a value (tables named in ``opaque`` count as values)."""
    keys = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and key not in opaque:
            keys += leaf_keys(value, f"{where}{key}.", opaque)
        else:
            keys.append(f"{where}{key}")
    return keys


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
        kind = int if self.integer else (int, float)
        ok = isinstance(value, kind) and not isinstance(value, bool)
        ok = ok and (self.integer or math.isfinite(value))
        ok = ok and (value > self.low if self.open_low else value >= self.low)
        ok = ok and (value < self.high if self.open_high else value <= self.high)
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")


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
    """A list whose every item passes ``item``, with at least ``min_length`` items."""

    item: Number | Choice
    min_length: int = 0

    def check(self, value, name: str) -> None:
        least = f" of at least {self.min_length} items" if self.min_length else ""
        message = (f"{name} must be a list{least}, each item {self.item.describe()}, "
                   f"got {value!r}")
        if not isinstance(value, list) or len(value) < self.min_length:
            raise ValueError(message)
        for item in value:
            try:
                self.item.check(item, name)
            except ValueError:
                raise ValueError(message) from None


@dataclass(frozen=True)
class Table:
    """A free table (its keys are checked by whoever uses it)."""

    def check(self, value, name: str) -> None:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a table, got {value!r}")  # noqa: TRY004


def check(settings: Mapping, schema: Mapping[str, Any],
          names: Mapping[str, str] | None = None) -> None:
    """Validate every ``section.key`` of ``schema`` in ``settings``; the first failure is a
    ValueError naming the key (or its flag, from ``names``) and what is allowed."""
    for dotted, rule in schema.items():
        flag = (names or {}).get(dotted)
        rule.check(lookup(settings, dotted), f"{flag} ({dotted})" if flag else dotted)
