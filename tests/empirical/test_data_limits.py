"""Data sources stay inside their root and within size and time limits."""

from __future__ import annotations

import os

import pytest

from stingy.empirical import data
from stingy.empirical.data import load_dataset

from .test_data_download import served_archive  # noqa: F401 (fixture)
from .test_data_formats import (  # noqa: F401 (fixture)
    make_tar_gz,
    no_outside_sources,
    write_cifar10_python,
    write_image_folder,
)


def test_a_symlink_out_of_the_data_root_is_not_followed(tmp_path):
    write_image_folder(tmp_path / "root", ["a", "b"], per_class=2)
    write_image_folder(tmp_path / "outside", ["a", "b"], per_class=3, seed=9)
    (tmp_path / "root" / "train" / "a" / "secret.png").symlink_to(
        tmp_path / "outside" / "train" / "a" / "0000.png")
    (tmp_path / "root" / "train" / "c").symlink_to(tmp_path / "outside" / "train" / "b")
    dataset = load_dataset("pair", data=tmp_path / "root", cache_dir=tmp_path / "cache",
                           progress=False)
    assert dataset.classes == ["a", "b"] and len(dataset.train_labels) == 4


def test_a_symlink_inside_the_data_root_is_read(tmp_path):
    write_image_folder(tmp_path / "root", ["a", "b"], per_class=2)
    (tmp_path / "root" / "train" / "a" / "copy.png").symlink_to(
        tmp_path / "root" / "train" / "b" / "0000.png")
    dataset = load_dataset("pair", data=tmp_path / "root", cache_dir=tmp_path / "cache",
                           progress=False)
    assert len(dataset.train_labels) == 5


def test_an_archive_member_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    write_cifar10_python(tmp_path / "src")
    archive = make_tar_gz(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "c.tar.gz")
    biggest = max(p.stat().st_size for p in (tmp_path / "src").rglob("*") if p.is_file())
    monkeypatch.setattr(data, "MAX_MEMBER_BYTES", biggest - 1)
    opened = []
    original = data.tarfile.TarFile.extractfile

    def extractfile(self, member):
        opened.append(member.size)
        return original(self, member)

    monkeypatch.setattr(data.tarfile.TarFile, "extractfile", extractfile)
    with pytest.raises(ValueError, match="over the .*-byte limit"):
        load_dataset("cifar10", data=archive, cache_dir=tmp_path / "cache", progress=False)
    assert max(opened, default=0) <= biggest - 1  # the big member was never opened
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


def test_an_archive_at_the_cap_is_read(tmp_path, monkeypatch):
    write_cifar10_python(tmp_path / "src")
    archive = make_tar_gz(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "c.tar.gz")
    biggest = max(p.stat().st_size for p in (tmp_path / "src").rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in (tmp_path / "src").rglob("*") if p.is_file())
    monkeypatch.setattr(data, "MAX_MEMBER_BYTES", biggest)
    monkeypatch.setattr(data, "MAX_ARCHIVE_BYTES", total)
    assert len(load_dataset("cifar10", data=archive, cache_dir=tmp_path / "cache",
                            progress=False).classes) == 10
    monkeypatch.setattr(data, "MAX_ARCHIVE_BYTES", total - 1)
    with pytest.raises(ValueError, match="add up to more than"):
        load_dataset("cifar10", data=archive, cache_dir=tmp_path / "cache2", progress=False)


def test_a_download_past_its_deadline_ends_cleanly(served_archive, tmp_path, monkeypatch):  # noqa: F811
    url, md5, _ = served_archive
    monkeypatch.setitem(data.DOWNLOAD_URLS, "cifar100", url)
    monkeypatch.setitem(data.ARCHIVE_MD5, "cifar100", md5)
    monkeypatch.setattr(data, "DOWNLOAD_DEADLINE_S", -1.0)
    with pytest.raises(FileNotFoundError, match="not finished within"):
        load_dataset("cifar100", cache_dir=tmp_path / "cache", progress=False)
    assert os.listdir(tmp_path / "cache" / "downloads") == []
