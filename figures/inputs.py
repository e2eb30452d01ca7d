"""Reading result files for figures and the report, with errors that name the missing file."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np


def require(path: str | Path, what: str) -> Path:
    """``path`` if it is a file, else FileNotFoundError naming it and what writes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing input file {path} ({what})")
    return path


def _number(text: str):
    """A CSV cell as int, float or the text itself ('' -> nan)."""
    if text == "":
        return math.nan
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def read_rows(path: str | Path, what: str, columns: tuple[str, ...] = ()) -> list[dict]:
    """Tidy CSV rows with numbers converted; ValueError if a needed column is missing."""
    path = require(path, what)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [{key: _number(value) for key, value in row.items()} for row in reader]
        header = reader.fieldnames or []
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)} (has: {', '.join(header)})")
    if not rows:
        raise ValueError(f"{path} has no rows")
    return rows


def read_json(path: str | Path, what: str):
    with open(require(path, what), encoding="utf-8") as f:
        return json.load(f)


def group_mean(rows: list[dict], keys: tuple[str, ...], values: tuple[str, ...]) -> list[dict]:
    """Mean of ``values`` over rows sharing ``keys``, sorted by the keys (nan ignored)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in keys)].append(row)
    out = []
    for key, members in sorted(groups.items(), key=lambda item: [_sort_key(v) for v in item[0]]):
        record = dict(zip(keys, key))
        for name in values:
            numbers = [m[name] for m in members if isinstance(m.get(name), (int, float))]
            finite = [v for v in numbers if not math.isnan(v)]
            record[name] = float(np.mean(finite)) if finite else math.nan
        out.append(record)
    return out


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def source_name(path: str | Path) -> str:
    """A result file as 'folder/name' for captions (where in the results folder it lives)."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"
