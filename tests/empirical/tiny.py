"""Tiny in-memory CIFAR-like data and recipe overrides shared by the empirical engine tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stingy.empirical.data import ImageDataset

TINY = ["schedule.epochs=2", "train.batch_size=16", "train.eval_batch_size=64",
        "train.progress=false"]


def tiny_dataset(train: int = 48, test: int = 24, classes: int = 10, seed: int = 0,
                 name: str = "cifar10") -> ImageDataset:
    """Random uint8 images whose mean colour depends on the label (so a model can learn)."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        base = (labels * (255 // classes))[:, None, None, None]
        noise = rng.integers(0, 60, (n, 32, 32, 3))
        return np.clip(base + noise, 0, 255).astype(np.uint8), labels.astype(np.int64)

    train_images, train_labels = split(train)
    test_images, test_labels = split(test)
    return ImageDataset(name, [f"class{i}" for i in range(classes)], train_images, train_labels,
                        test_images, test_labels)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run far faster on one thread, above all on a shared, busy machine
    (OpenMP threads of tiny ops contend); restored after each test. Import it into a test
    module to apply it there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_image_folder(root, train_per_class: int = 4, test_per_class: int = 2, seed: int = 0):
    """A CIFAR-10-shaped image folder root/{train,test}/<class>/*.png that ``load_dataset``
    reads (CIFAR-10's class names, so ``load_dataset("cifar10", data=root)`` accepts it)."""
    from PIL import Image

    from stingy.empirical.data import CIFAR10_CLASSES

    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(label * 25 + rng.integers(0, 60, (32, 32, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root
