"""Downloading the official archive: md5 checked, temp file renamed, nothing kept on mismatch.

A local ``http.server`` on 127.0.0.1 serves a small archive in the official CIFAR-100 format.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from stingy.empirical import data
from stingy.empirical.data import load_dataset

from .test_data_formats import make_tar_gz, write_cifar100_python


@pytest.fixture
def served_archive(tmp_path, monkeypatch):
    """(url, md5, written arrays) of a fake cifar-100-python.tar.gz served on localhost."""
    monkeypatch.delenv("STINGY_DATA", raising=False)
    monkeypatch.setattr(data, "OFFLINE_MIRRORS", {})
    written = write_cifar100_python(tmp_path / "src")
    root = tmp_path / "www"
    root.mkdir()
    archive = make_tar_gz(tmp_path / "src" / "cifar-100-python", root / "cifar-100-python.tar.gz")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cifar-100-python.tar.gz"
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    yield url, md5, written
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_with_matching_md5_is_kept_and_decoded(served_archive, tmp_path, monkeypatch):
    url, md5, written = served_archive
    monkeypatch.setitem(data.DOWNLOAD_URLS, "cifar100", url)
    monkeypatch.setitem(data.ARCHIVE_MD5, "cifar100", md5)
    cache = tmp_path / "cache"
    dataset = load_dataset("cifar100", cache_dir=cache, progress=False)
    np.testing.assert_array_equal(dataset.train_labels, written["train_labels"])
    downloads = os.listdir(cache / "downloads")
    assert downloads == ["cifar-100-python.tar.gz"]
    assert data.file_md5(cache / "downloads" / downloads[0]) == md5


def test_an_existing_download_with_the_right_md5_is_not_fetched_again(served_archive, tmp_path,
                                                                      monkeypatch):
    url, md5, _ = served_archive
    monkeypatch.setitem(data.DOWNLOAD_URLS, "cifar100", url)
    monkeypatch.setitem(data.ARCHIVE_MD5, "cifar100", md5)
    first = data.download_archive("cifar100", tmp_path / "cache", progress=False)
    monkeypatch.setitem(data.DOWNLOAD_URLS, "cifar100", "http://127.0.0.1:9/unreachable")
    assert data.download_archive("cifar100", tmp_path / "cache", progress=False) == first


def test_wrong_md5_raises_and_leaves_no_file(served_archive, tmp_path, monkeypatch):
    url, md5, _ = served_archive
    monkeypatch.setitem(data.DOWNLOAD_URLS, "cifar100", url)
    monkeypatch.setitem(data.ARCHIVE_MD5, "cifar100", "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=f"has md5 {md5}, expected {'0' * 32}"):
        load_dataset("cifar100", cache_dir=cache, progress=False)
    assert os.listdir(cache / "downloads") == []
    assert [p for p in os.listdir(cache) if p != "downloads"] == []


def test_missing_file_on_the_server_is_file_not_found(served_archive, tmp_path, monkeypatch):
    url, _md5, _ = served_archive
    monkeypatch.setitem(data.DOWNLOAD_URLS, "cifar100", url.replace("cifar-100", "nothing"))
    with pytest.raises(FileNotFoundError, match="cannot download cifar100 from .*nothing"):
        load_dataset("cifar100", cache_dir=tmp_path / "cache", progress=False)
    assert os.listdir(tmp_path / "cache" / "downloads") == []


def test_official_urls_and_checksums_are_the_published_ones():
    official = "https://www.cs.toronto.edu/~kriz/"
    assert data.DOWNLOAD_URLS == {"cifar10": official + "cifar-10-python.tar.gz",
                                  "cifar100": official + "cifar-100-python.tar.gz"}
    assert data.ARCHIVE_MD5 == {"cifar10": "c58f30108f718f92721af3b95e74349a",
                                "cifar100": "eb9058c3a382ffc7106e4002c42a8d85"}
