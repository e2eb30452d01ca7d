"""Shared fixtures: where the offline data lives, and the gpu marker's skip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR10_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cifar10_jpeg_archive() -> Path:
    """The offline CIFAR-10 JPEG mirror, or a skip that says where it was looked for."""
    if not CIFAR10_JPEG.is_file():
        pytest.skip(f"CIFAR-10 JPEG archive not found at {CIFAR10_JPEG}")
    return CIFAR10_JPEG
