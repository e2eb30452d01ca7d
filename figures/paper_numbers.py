"""The paper's own numbers (paper_numbers.toml), which the report and the figures show
beside ours."""

from __future__ import annotations

from pathlib import Path

import tomllib

PAPER_NUMBERS_FILE = Path(__file__).with_name("paper_numbers.toml")


def load_paper_numbers() -> dict:
    with open(PAPER_NUMBERS_FILE, "rb") as f:
        return tomllib.load(f)
