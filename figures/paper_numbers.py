"""The paper's own numbers (paper_numbers.toml), which the report and the figures show
beside ours."""

from __future__ import annotations

from pathlib import Path

import tomllib

PAPER_NUMBERS_FILE = Path(__file__).with_name("paper_numbers.toml")


def load_paper_numbers() -> dict:
    with open(PAPER_NUMBERS_FILE, "rb") as f:
        return tomllib.load(f)


def paper_temperatures(dataset: str = "cifar10") -> dict[str, float]:
    """{'normal KD': T, 'stingy KD': T}: the paper's distillation temperatures on a data set."""
    settings = load_paper_numbers()["settings"][dataset]
    return {"normal KD": settings["normal_kd"]["temperature"],
            "stingy KD": settings["stingy_kd"]["temperature"]}
