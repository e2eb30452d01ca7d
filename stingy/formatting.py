"""Numbers as the report's and the benchmarks' tables show them; '-' for a missing value."""

from __future__ import annotations

import math


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value, digits: int = 4) -> str:
    """A number with up to ``digits`` decimals and no trailing zeros; '-' when missing."""
    if is_missing(value) or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
        return str(value).replace("|", "\\|").replace("\n", " ")
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def percent(value) -> str:
    """An accuracy as percent with 2 decimals (values <= 1 are fractions)."""
    if is_missing(value) or value == "":
        return "-"
    return f"{value * 100 if value <= 1 else value:.2f}"
