"""Bad sources give clear errors and no cache; the cache is reused, and rebuilt on change."""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest

from stingy.empirical import data
from stingy.empirical.data import CIFAR10_CLASSES, load_dataset

from .test_data_formats import (  # noqa: F401
    make_tar_gz,
    no_outside_sources,
    write_cifar10_python,
    write_image_folder,
)


def cache_files(cache_dir) -> list[str]:
    return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


def test_second_load_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    write_cifar10_python(tmp_path / "src")
    source, cache = tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cache"
    first = load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    assert len(cache_files(cache)) == 1 and cache_files(cache)[0].startswith("cifar10-")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data, "decode_source", no_decoding)
    second = load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(second.train_images, first.train_images)
    np.testing.assert_array_equal(second.test_labels, first.test_labels)
    assert second.classes == first.classes


def test_changed_source_is_decoded_again_under_a_new_key(tmp_path):
    write_cifar10_python(tmp_path / "src", seed=0)
    source, cache = tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cache"
    first = load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    write_cifar10_python(tmp_path / "src", per_batch=4, seed=5)
    os.utime(source / "test_batch", ns=(1, 1))  # a different mtime even on coarse clocks
    second = load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    assert len(second.train_labels) == 20 != len(first.train_labels)
    assert len(cache_files(cache)) == 2


def test_unreadable_cache_file_is_rebuilt(tmp_path):
    write_cifar10_python(tmp_path / "src")
    source, cache = tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cache"
    first = load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    (cache / cache_files(cache)[0]).write_bytes(b"not a zip")
    again = load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again.train_images, first.train_images)


def test_truncated_archive_names_the_path_and_leaves_no_cache(tmp_path):
    write_cifar10_python(tmp_path / "src", per_batch=50)
    archive = make_tar_gz(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "c10.tar.gz")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"c10\.tar\.gz is corrupt or truncated"):
        load_dataset("cifar10", data=archive, cache_dir=tmp_path / "cache", progress=False)
    assert cache_files(tmp_path / "cache") == []


def test_file_that_is_not_an_archive_is_refused(tmp_path):
    junk = tmp_path / "cifar.tar.gz"
    junk.write_bytes(b"hello, not gzip")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_dataset("cifar10", data=junk, cache_dir=tmp_path / "cache", progress=False)
    other = tmp_path / "cifar.zip"
    other.write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"must be a \.tar\.gz, \.tgz or \.tar"):
        load_dataset("cifar10", data=other, cache_dir=tmp_path / "cache", progress=False)


def test_missing_batch_is_named(tmp_path):
    write_cifar10_python(tmp_path / "src")
    (tmp_path / "src" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3 is missing"):
        load_dataset("cifar10", data=tmp_path / "src", cache_dir=tmp_path / "cache",
                     progress=False)
    assert cache_files(tmp_path / "cache") == []


def test_corrupt_pickle_and_wrong_shape_are_named(tmp_path):
    write_cifar10_python(tmp_path / "src")
    folder = tmp_path / "src" / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch is not a readable CIFAR pickle"):
        load_dataset("cifar10", data=folder, cache_dir=tmp_path / "cache", progress=False)
    (folder / "test_batch").write_bytes(pickle.dumps(
        {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"b'data' must be uint8 of shape \[N, 3072\]"):
        load_dataset("cifar10", data=folder, cache_dir=tmp_path / "cache", progress=False)
    (folder / "test_batch").write_bytes(pickle.dumps(
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    with pytest.raises(ValueError, match=r"labels.* in \[0, 10\)"):
        load_dataset("cifar10", data=folder, cache_dir=tmp_path / "cache", progress=False)


def test_corrupt_or_wrong_size_image_is_named(tmp_path):
    write_image_folder(tmp_path / "imgs", ["a", "b"], per_class=1)
    bad = tmp_path / "imgs" / "train" / "b" / "0000.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"train/b/0000\.png cannot be decoded"):
        load_dataset("imgs", data=tmp_path / "imgs", cache_dir=tmp_path / "cache",
                     progress=False)
    from PIL import Image
    Image.fromarray(np.zeros((40, 32, 3), np.uint8)).save(bad)
    with pytest.raises(ValueError, match=r"0000\.png is 32x40, expected 32x32"):
        load_dataset("imgs", data=tmp_path / "imgs", cache_dir=tmp_path / "cache",
                     progress=False)
    assert cache_files(tmp_path / "cache") == []


def test_folder_without_train_and_test_splits_is_refused(tmp_path):
    write_image_folder(tmp_path / "imgs", ["a"], per_class=1)
    for path in (tmp_path / "imgs" / "test").rglob("*.png"):
        path.unlink()
    with pytest.raises(ValueError, match="not a CIFAR python folder or archive, nor an image"):
        load_dataset("imgs", data=tmp_path / "imgs", cache_dir=tmp_path / "cache")


def test_cifar10_folder_with_other_classes_is_refused(tmp_path):
    write_image_folder(tmp_path / "imgs", ["cat", "dog"], per_class=1)
    with pytest.raises(ValueError, match="needs CIFAR-10's 10 class folders"):
        load_dataset("cifar10", data=tmp_path / "imgs", cache_dir=tmp_path / "cache")


def test_cifar10_pickles_are_not_accepted_as_cifar100(tmp_path):
    write_cifar10_python(tmp_path / "src")
    with pytest.raises(ValueError, match="holds cifar10 in the official format, not cifar100"):
        load_dataset("cifar100", data=tmp_path / "src" / "cifar-10-batches-py",
                     cache_dir=tmp_path / "cache")


def test_missing_data_path_is_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data path .*nowhere does not exist"):
        load_dataset("cifar10", data=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_folder_name_without_data_and_no_download_source_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no source for dataset 'mine'"):
        load_dataset("mine", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="allow download"):
        load_dataset("cifar100", cache_dir=tmp_path / "cache", download=False)


@pytest.mark.parametrize("bad", ["", None, "../x", ".hidden", 10])
def test_bad_dataset_name_is_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="dataset name must be"):
        load_dataset(bad, cache_dir=tmp_path)


def test_resolution_order_is_data_then_env_then_mirror(tmp_path, monkeypatch):
    for name in ("a", "b/train", "b/test", "c"):
        (tmp_path / name).mkdir(parents=True)
    mirror = tmp_path / "c" / "cifar10-jpeg.tar.gz"
    mirror.write_bytes(b"")
    monkeypatch.setattr(data, "OFFLINE_MIRRORS", {"cifar10": mirror})
    assert data.find_data("cifar10") == mirror
    assert data.find_data("cifar100") is None  # the mirror is CIFAR-10 only
    monkeypatch.setenv("STINGY_DATA", str(tmp_path / "b"))
    assert data.find_data("cifar10") == tmp_path / "b"
    assert data.find_data("cifar10", data=tmp_path / "a") == tmp_path / "a"


def test_directory_holding_a_known_name_resolves_to_it(tmp_path, monkeypatch):
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    monkeypatch.setenv("STINGY_DATA", str(tmp_path))
    assert data.find_data("cifar100") == tmp_path / "cifar-100-python"
    assert data.find_data("cifar10") == tmp_path / "cifar-10-python.tar.gz"


def test_stingy_data_folder_without_the_dataset_is_passed_over(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-batches-py").mkdir()
    monkeypatch.setenv("STINGY_DATA", str(tmp_path))
    assert data.find_data("cifar100") is None  # goes on to the mirror / download
    assert data.find_data("cifar100", data=tmp_path) == tmp_path  # an explicit path is kept
    write_cifar10_python(tmp_path / "direct")
    monkeypatch.setenv("STINGY_DATA", str(tmp_path / "direct" / "cifar-10-batches-py"))
    assert data.find_data("cifar10") == tmp_path / "direct" / "cifar-10-batches-py"


def test_default_cache_dir_follows_stingy_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "here"))
    assert data.default_cache_dir() == tmp_path / "here"


def test_offline_mirror_is_found_next_to_the_repository(cifar10_jpeg_archive, monkeypatch):
    monkeypatch.setattr(data, "OFFLINE_MIRRORS", {"cifar10": data.REPO.parent / "shared" /
                                                  "data" / "cifar10-jpeg.tar.gz"})
    assert data.find_data("cifar10").resolve() == cifar10_jpeg_archive.resolve()


@pytest.mark.slow
def test_offline_cifar10_jpeg_mirror_decodes_to_the_documented_dataset(cifar10_jpeg_archive,
                                                                       tmp_path):
    dataset = load_dataset("cifar10", data=cifar10_jpeg_archive, cache_dir=tmp_path,
                           progress=False)
    assert dataset.classes == list(CIFAR10_CLASSES)
    assert dataset.train_images.shape == (50000, 32, 32, 3)
    assert dataset.test_images.shape == (10000, 32, 32, 3)
    assert (np.bincount(dataset.train_labels) == 5000).all()
    assert (np.bincount(dataset.test_labels) == 1000).all()
    mean, std = data.channel_statistics(dataset.train_images)
    # README: train means 0.4913, 0.4821, 0.4465 and stds 0.2452, 0.2428, 0.2606
    assert mean == pytest.approx((0.4913, 0.4821, 0.4465), abs=2e-4)
    assert std == pytest.approx((0.2452, 0.2428, 0.2606), abs=2e-4)
    with tarfile.open(cifar10_jpeg_archive) as tar:  # the first train cat is image 0 of cat
        member = tar.extractfile("cifar10-jpeg/train/cat/0000.jpg")
        expected = data._decode_chunk([member.read()])[0]
    cats = dataset.train_images[dataset.train_labels == CIFAR10_CLASSES.index("cat")]
    np.testing.assert_array_equal(cats[0], expected)
