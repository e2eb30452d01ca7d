"""Reading CIFAR in the official python formats and image folders, from folders and archives."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stingy.empirical import data
from stingy.empirical.data import CIFAR10_CLASSES, load_dataset


@pytest.fixture(autouse=True)
def no_outside_sources(monkeypatch):
    """Tests see only the files they write: no STINGY_DATA, no offline mirror, no network."""
    monkeypatch.delenv("STINGY_DATA", raising=False)
    monkeypatch.setattr(data, "OFFLINE_MIRRORS", {})
    monkeypatch.setattr(data, "DOWNLOAD_URLS", {"cifar10": "http://127.0.0.1:9/none.tar.gz",
                                                "cifar100": "http://127.0.0.1:9/none.tar.gz"})


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10_python(root: Path, per_batch: int = 3, seed: int = 0) -> dict:
    """A miniature cifar-10-batches-py folder; returns the raw rows and labels written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    written = {"train": [], "train_labels": [], "test": [], "test_labels": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        _pickle(folder / name, {b"data": rows, b"labels": labels, b"batch_label": b"x"})
        split = "test" if name == "test_batch" else "train"
        written[split].append(rows)
        written[f"{split}_labels"] += labels
    _pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                                      b"num_cases_per_batch": per_batch})
    return {k: np.concatenate(v) if k in ("train", "test") else np.array(v)
            for k, v in written.items()}


def write_cifar100_python(root: Path, n_train: int = 6, n_test: int = 4, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        _pickle(folder / split, {b"data": rows, b"fine_labels": fine,
                                 b"coarse_labels": [0] * n, b"filenames": [b"f"] * n})
        written[split], written[f"{split}_labels"] = rows, np.array(fine)
    _pickle(folder / "meta", {b"fine_label_names": [f"class{i:03d}".encode() for i in range(100)],
                              b"coarse_label_names": [b"c"] * 20})
    return written


def write_image_folder(root: Path, classes, per_class: int = 2, suffix: str = ".png",
                       seed: int = 2) -> dict[tuple[str, str, int], np.ndarray]:
    """root/{train,test}/<class>/<i>.png with random pixels; returns the pixels written."""
    rng = np.random.default_rng(seed)
    written = {}
    for split in ("train", "test"):
        for name in classes:
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                path = root / split / name / f"{i:04d}{suffix}"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                written[(split, name, i)] = pixels
    return written


def make_tar_gz(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    """Independent reference: pixel (y, x) of channel c sits at column c*1024 + y*32 + x."""
    n = len(rows)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for c in range(3):
        for y in range(32):
            out[:, y, :, c] = rows[:, c * 1024 + y * 32: c * 1024 + y * 32 + 32]
    return out


@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar10_python_format_gives_hwc_pixels_labels_and_official_classes(tmp_path,
                                                                            as_archive):
    written = write_cifar10_python(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-batches-py"
    if as_archive:
        source = make_tar_gz(source, tmp_path / "cifar-10-python.tar.gz")
    dataset = load_dataset("cifar10", data=source, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.name == "cifar10" and dataset.classes == list(CIFAR10_CLASSES)
    assert dataset.train_images.shape == (15, 32, 32, 3) and dataset.train_images.dtype == np.uint8
    assert dataset.test_images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(dataset.train_images, rows_to_nhwc(written["train"]))
    np.testing.assert_array_equal(dataset.test_images, rows_to_nhwc(written["test"]))
    assert dataset.train_labels.dtype == np.int64
    np.testing.assert_array_equal(dataset.train_labels, written["train_labels"])
    np.testing.assert_array_equal(dataset.test_labels, written["test_labels"])


@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar100_python_format_uses_fine_labels_and_fine_names(tmp_path, as_archive):
    written = write_cifar100_python(tmp_path / "src")
    source = tmp_path / "src" / "cifar-100-python"
    if as_archive:
        source = make_tar_gz(source, tmp_path / "cifar-100-python.tar.gz")
    dataset = load_dataset("cifar100", data=source, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.name == "cifar100" and len(dataset.classes) == 100
    assert dataset.classes[:2] == ["class000", "class001"]
    np.testing.assert_array_equal(dataset.train_images, rows_to_nhwc(written["train"]))
    np.testing.assert_array_equal(dataset.test_labels, written["test_labels"])


def test_cifar10_image_folder_gets_official_class_order(tmp_path):
    written = write_image_folder(tmp_path / "cifar10-jpeg", CIFAR10_CLASSES, per_class=1)
    archive = make_tar_gz(tmp_path / "cifar10-jpeg", tmp_path / "cifar10-jpeg.tar.gz")
    dataset = load_dataset("cifar10", data=archive, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.classes == list(CIFAR10_CLASSES)
    for index, name in enumerate(CIFAR10_CLASSES):
        np.testing.assert_array_equal(dataset.train_images[dataset.train_labels == index][0],
                                      written[("train", name, 0)])


@pytest.mark.parametrize("as_archive", [False, True])
def test_generic_image_folder_sorts_classes_and_keeps_pixels(tmp_path, as_archive):
    classes = ["zebra", "apple", "moon"]
    written = write_image_folder(tmp_path / "tiny", classes, per_class=3)
    source = tmp_path / "tiny"
    if as_archive:
        source = make_tar_gz(source, tmp_path / "tiny.tar.gz")
    dataset = load_dataset("tiny", data=source, cache_dir=tmp_path / "cache", progress=False)
    assert dataset.name == "tiny" and dataset.classes == ["apple", "moon", "zebra"]
    assert dataset.train_images.shape == (9, 32, 32, 3) and dataset.test_images.shape == (9, 32,
                                                                                            32, 3)
    np.testing.assert_array_equal(dataset.train_labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    for position, (split, name, i) in enumerate(
            (s, c, i) for s in ["test"] for c in sorted(classes) for i in range(3)):
        np.testing.assert_array_equal(dataset.test_images[position], written[(split, name, i)])


def test_many_images_decode_the_same_through_the_process_pool(tmp_path, monkeypatch):
    written = write_image_folder(tmp_path / "pool", ["a", "b"], per_class=7)
    monkeypatch.setattr(data.os, "cpu_count", lambda: 2)
    source = data._DirectoryFiles(tmp_path / "pool")
    paths = [n for n in source.names if n.startswith("train/")]
    images = data.decode_images([source.read(p) for p in paths], paths, tmp_path, chunk=3)
    expected = [written[("train", p.split("/")[1], int(p.split("/")[2][:4]))] for p in paths]
    np.testing.assert_array_equal(images, np.stack(expected))


def test_channel_statistics_are_fractions_of_255():
    images = np.zeros((2, 32, 32, 3), np.uint8)
    images[1] = 255
    mean, std = data.channel_statistics(images)
    assert mean == pytest.approx((0.5,) * 3) and std == pytest.approx((0.5,) * 3)


def test_images_in_a_folder_come_back_as_rgb_even_if_grey(tmp_path):
    for split in ("train", "test"):
        path = tmp_path / "grey" / split / "only" / "0.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((32, 32), 7, np.uint8), mode="L").save(path)
    dataset = load_dataset("grey", data=tmp_path / "grey", cache_dir=tmp_path / "c",
                           progress=False)
    assert dataset.train_images.shape == (1, 32, 32, 3) and (dataset.train_images == 7).all()


def test_png_bytes_roundtrip_helper_is_lossless():
    pixels = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    decoded = data._decode_chunk([buffer.getvalue()])
    np.testing.assert_array_equal(decoded[0], pixels)
