"""CIFAR-10 / CIFAR-100 and 32x32 image folders, decoded once into a uint8 cache.

Sources, in the order :func:`find_data` tries them:

1. ``data=PATH`` (CLI ``--data PATH``): a file or a directory;
2. the ``STINGY_DATA`` environment variable (same forms);
3. for CIFAR-10 only, the offline JPEG mirror ``../shared/data/cifar10-jpeg.tar.gz`` next to
   the repository (``OFFLINE_MIRRORS``);
4. with ``download=True``, the official archive from ``DOWNLOAD_URLS`` (Krizhevsky's page),
   checked against ``ARCHIVE_MD5`` and kept in ``<cache_dir>/downloads``.

A directory given as a source may hold the dataset itself or one of its usual names
(``KNOWN_NAMES``: ``cifar-10-batches-py``, ``cifar-10-python.tar.gz``, ``cifar10-jpeg.tar.gz``,
...). Formats understood, from a directory or straight from a ``.tar.gz`` / ``.tgz`` / ``.tar``:

* the official CIFAR-10 python format: ``data_batch_1..5`` and ``test_batch`` pickles with
  ``b"data"`` ([N, 3072] uint8, each row the R, G, B planes of a 32x32 image, row-major) and
  ``b"labels"``; ``batches.meta`` with ``b"label_names"``;
* the official CIFAR-100 python format: ``train`` and ``test`` pickles with ``b"data"`` and
  ``b"fine_labels"``; ``meta`` with ``b"fine_label_names"``;
* an image folder ``[root/]{train,test}/<class>/*.{png,jpg,jpeg}`` of 32x32 images, classes
  in sorted order. Sorted order is the official label order for CIFAR-10 (airplane,
  automobile, bird, cat, deer, dog, frog, horse, ship, truck) and for CIFAR-100's fine labels
  (apple, aquarium_fish, ...), so a folder of either gets the official labels.

The decoded arrays are cached as ``<cache_dir>/<name>-<key>.npz`` (``cache_dir`` defaults to
``$STINGY_CACHE`` or ``~/.cache/stingy``), where ``key`` hashes this module's code, the
source's resolved path and the name, size and modification time of every file in it, so a
changed source or decoder is decoded again. Every file is written atomically; an error
leaves no partial cache or download behind.

Untrusted input: the CIFAR pickles are read by :class:`CifarUnpickler`, which admits only
the types that format holds (dicts, lists, bytes, str, numbers and numpy arrays), so a planted
``__reduce__`` runs nothing. A directory source yields only the files that lie inside it
(a symlink pointing out of the root is skipped). Archive members are checked against
``MAX_MEMBER_BYTES`` and ``MAX_ARCHIVE_BYTES`` from their headers before any byte is read.
A download must finish within ``DOWNLOAD_DEADLINE_S`` seconds.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import time
import urllib.request
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stingy.io import atomic_write, file_digest
from stingy.progress import bar_disabled

REPO = Path(__file__).resolve().parents[1]

# The official label order (batches.meta), which is also alphabetical.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

# Per-channel statistics of the training images (values in [0, 1]) for normalisation on the
# fly. CIFAR-10: the values of the Nasty-Teacher / stingy-teacher reference (its
# data_loader.py), which also uses them for CIFAR-100; here CIFAR-100 has its own.
CHANNEL_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CHANNEL_STD = {"cifar10": (0.2470, 0.2430, 0.2610), "cifar100": (0.2673, 0.2564, 0.2762)}

DOWNLOAD_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
ARCHIVE_NAMES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
ARCHIVE_MD5 = {"cifar10": "c58f30108f718f92721af3b95e74349a",
               "cifar100": "eb9058c3a382ffc7106e4002c42a8d85"}
OFFLINE_MIRRORS = {"cifar10": REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"}
KNOWN_NAMES = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz", "cifar10-jpeg.tar.gz",
                "cifar10-jpeg", "cifar10"),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", "cifar100"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CACHE_FORMAT = 1  # bump when the decoded layout changes
MAX_MEMBER_BYTES = 256 * 2**20   # one file of a source (CIFAR-100's train pickle: 147 MiB)
MAX_ARCHIVE_BYTES = 1024 * 2**20  # all files of an archive together (CIFAR-100: 178 MiB)
DOWNLOAD_DEADLINE_S = 1800.0     # a whole download (163 MiB) at >= 0.1 MiB/s


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification dataset held in memory as uint8 NHWC arrays."""

    name: str                 # "cifar10", "cifar100", or the image folder's name
    classes: list[str]
    train_images: np.ndarray  # uint8 [N, 32, 32, 3]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ----------------------------------------------------------------------------- finding

def default_cache_dir() -> Path:
    return Path(os.environ.get("STINGY_CACHE") or Path.home() / ".cache" / "stingy")


def find_data(name: str, data: str | os.PathLike | None = None) -> Path | None:
    """The source to read ``name`` from: ``data``, then $STINGY_DATA, then the offline mirror.

    A directory holding one of the dataset's ``KNOWN_NAMES`` resolves to that entry. A
    STINGY_DATA folder with neither such an entry nor the dataset's own files is passed over
    (it may hold other datasets only); ``data`` is always used as given. Returns
    None when nothing is found (the caller may then download). A ``data`` path that does not
    exist is an error, not a fall-through.
    """
    name = check_dataset_name(name)
    if data is not None:
        return _resolve(name, _existing(data, "data"))
    if os.environ.get("STINGY_DATA"):
        source = _resolve(name, _existing(os.environ["STINGY_DATA"], "STINGY_DATA"))
        if _may_hold(name, source):
            return source
    mirror = OFFLINE_MIRRORS.get(name)
    if mirror is not None and mirror.is_file():
        return mirror
    return None


def check_dataset_name(name) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"dataset name must be 'cifar10', 'cifar100' or an image folder's "
                         f"name (used for the cache file), got {name!r}")
    return name


def _existing(path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} path {path} does not exist (expected a CIFAR archive, "
                                f"a CIFAR python folder or an image folder)")
    return path


def _may_hold(name: str, path: Path) -> bool:
    """False for a STINGY_DATA folder that clearly lacks a CIFAR dataset (e.g. a shared data
    folder with only CIFAR-10 when CIFAR-100 is asked for), so the search goes on."""
    if path.is_file() or name not in KNOWN_NAMES or path.name in KNOWN_NAMES[name]:
        return True
    markers = {"cifar10": ["data_batch_1"], "cifar100": ["train", "meta"]}[name]
    pickles = all((path / marker).is_file() for marker in markers)
    return pickles or ((path / "train").is_dir() and (path / "test").is_dir())


def _resolve(name: str, path: Path) -> Path:
    if path.is_dir():
        for known in KNOWN_NAMES.get(name, ()):
            if (path / known).exists():
                return path / known
    return path


# ----------------------------------------------------------------------------- loading

def load_dataset(name: str, data: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, download: bool = True,
                 progress: bool = True) -> ImageDataset:
    """Load ``name`` ("cifar10", "cifar100", or any name for an image folder given by ``data``).

    Decodes the source once and caches the arrays (see the module docstring); later calls
    load the cache in well under a second.
    """
    name = check_dataset_name(name)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    source = find_data(name, data)
    if source is None:
        if name not in DOWNLOAD_URLS:
            raise FileNotFoundError(f"no source for dataset {name!r}: give data=PATH (an image "
                                    f"folder or archive) or set STINGY_DATA")
        if not download:
            raise FileNotFoundError(
                f"{name} not found: give data=PATH, set STINGY_DATA, or allow download")
        source = download_archive(name, cache_dir, progress=progress)
    cache_path = cache_dir / f"{name}-{source_key(source)}.npz"
    cached = _read_cache(cache_path, name)
    if cached is not None:
        return cached
    dataset = decode_source(name, source, progress=progress)
    atomic_write(cache_path, lambda f: np.savez(
        f, classes=np.array(dataset.classes), train_images=dataset.train_images,
        train_labels=dataset.train_labels, test_images=dataset.test_images,
        test_labels=dataset.test_labels), binary=True)
    return dataset


def source_key(source: Path) -> str:
    """Hash of the decoder's code and the source's identity: resolved path, and the name, size
    and mtime of every file in it."""
    source = source.resolve()
    files = _files_inside(source) if source.is_dir() else [source]
    digest = hashlib.sha256(f"{CACHE_FORMAT}\n{file_digest(__file__)}\n{source}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(source.parent)}:{stat.st_size}:{stat.st_mtime_ns}\n"
                      .encode())
    return digest.hexdigest()[:16]


def _read_cache(path: Path, name: str) -> ImageDataset | None:
    """The cached dataset, or None when absent or unreadable (then it is decoded again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            return ImageDataset(name=name, classes=[str(c) for c in arrays["classes"]],
                                train_images=arrays["train_images"],
                                train_labels=arrays["train_labels"],
                                test_images=arrays["test_images"],
                                test_labels=arrays["test_labels"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def decode_source(name: str, source: Path, progress: bool = False) -> ImageDataset:
    """Read every image of ``source`` (a directory or an archive) into an ImageDataset."""
    files = _ArchiveFiles(source) if source.is_file() else _DirectoryFiles(source)
    try:
        if files.find("data_batch_1") is not None:
            return _cifar_pickles(name, files, source, "cifar10")
        if files.find("train") is not None and files.find("meta") is not None:
            return _cifar_pickles(name, files, source, "cifar100")
        return _image_folder(name, files, source, progress)
    finally:
        files.close()


# ----------------------------------------------------------------------------- sources

def _files_inside(root: Path) -> list[Path]:
    """The regular files under ``root`` whose real path lies inside it, sorted (a symlink that
    leads out of the root is passed over)."""
    real_root = root.resolve()
    files = []
    for path in sorted(root.rglob("*")):
        real = path.resolve()
        if real.is_file() and real.is_relative_to(real_root):
            files.append(path)
    return files


def _check_size(size: int, name: str, source: Path) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ValueError(f"{source}: {name} is {size} bytes, over the {MAX_MEMBER_BYTES}-byte "
                         f"limit for one file of a dataset")


class _DirectoryFiles:
    """The files inside a directory, by relative POSIX path."""

    def __init__(self, root: Path):
        self.root = root
        self.names = [p.relative_to(root).as_posix() for p in _files_inside(root)]

    def find(self, basename: str) -> str | None:
        return next((n for n in self.names if n.rsplit("/", 1)[-1] == basename), None)

    def read(self, name: str) -> bytes:
        path = self.root / name
        _check_size(path.stat().st_size, name, self.root)
        return path.read_bytes()

    def close(self) -> None:
        pass


class _ArchiveFiles(_DirectoryFiles):
    """The files of a tar archive (gzip or plain), read in one streaming pass."""

    def __init__(self, path: Path):
        if not path.name.endswith(ARCHIVE_SUFFIXES):
            raise ValueError(f"data file {path} must be a .tar.gz, .tgz or .tar archive "
                             f"(or give a directory)")
        self.contents: dict[str, bytes] = {}
        total = 0
        try:
            with tarfile.open(path, "r|*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    _check_size(member.size, member.name, path)  # from the header, unread
                    total += member.size
                    if total > MAX_ARCHIVE_BYTES:
                        raise ValueError(f"{path}: the archive's files add up to more than "
                                         f"{MAX_ARCHIVE_BYTES} bytes")
                    self.contents[member.name.removeprefix("./")] = \
                        tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise ValueError(f"archive {path} is corrupt or truncated ({err})") from None
        self.names = sorted(self.contents)

    def read(self, name: str) -> bytes:
        return self.contents[name]

    def close(self) -> None:
        self.contents.clear()


class CifarUnpickler(pickle.Unpickler):
    """An unpickler for the CIFAR python format: built-in containers, bytes, str and numbers,
    the numpy callables that rebuild an array, and ``_codecs.encode`` (how protocol 2 writes
    bytes from Python 3). Any other global (``os.system``,
    ``builtins.eval``, ...) is refused before it is looked up, so nothing runs."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR "
                                         f"file")
        return super().find_class(module, name)


def _unpickle(files, name: str, source: Path) -> dict:
    try:
        return CifarUnpickler(io.BytesIO(files.read(name)), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError) as err:
        raise ValueError(f"{source}: {name} is not a readable CIFAR pickle ({err})") from None


def _cifar_pickles(name: str, files, source: Path, kind: str) -> ImageDataset:
    """Official python-format CIFAR-10 (kind "cifar10") or CIFAR-100 ("cifar100")."""
    if name in DOWNLOAD_URLS and name != kind:
        raise ValueError(f"{source} holds {kind} in the official format, not {name}")
    if kind == "cifar10":
        splits = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        meta_file, names_key, labels_key = "batches.meta", b"label_names", b"labels"
    else:
        splits = {"train": ["train"], "test": ["test"]}
        meta_file, names_key, labels_key = "meta", b"fine_label_names", b"fine_labels"
    meta_path = files.find(meta_file)
    if meta_path is None:
        raise ValueError(f"{source}: {meta_file} is missing (expected the official {kind} "
                         f"python format)")
    meta = _unpickle(files, meta_path, source)
    if names_key not in meta:
        raise ValueError(f"{source}: {meta_file} has no {names_key!r} entry")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[names_key]]
    arrays = {}
    for split, batch_names in splits.items():
        images, labels = [], []
        for batch_name in batch_names:
            found = files.find(batch_name)
            if found is None:
                raise ValueError(f"{source}: {batch_name} is missing (expected "
                                 f"{', '.join(n for names in splits.values() for n in names)})")
            batch = _unpickle(files, found, source)
            batch_images, batch_labels = _check_batch(batch, labels_key, len(classes),
                                                      f"{source}: {batch_name}")
            images.append(batch_images)
            labels.append(batch_labels)
        arrays[split] = np.concatenate(images), np.concatenate(labels)
    return ImageDataset(name, classes, arrays["train"][0], arrays["train"][1],
                        arrays["test"][0], arrays["test"][1])


def _check_batch(batch: dict, labels_key: bytes, num_classes: int, where: str):
    if not isinstance(batch, dict) or b"data" not in batch or labels_key not in batch:
        raise ValueError(f"{where} must be a dict with b'data' and {labels_key!r}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[labels_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{where}: b'data' must be uint8 of shape [N, 3072], got "
                         f"{data.dtype} {data.shape}")
    if labels.shape != (len(data),) or (labels.size and not
                                        (0 <= labels.min() and labels.max() < num_classes)):
        raise ValueError(f"{where}: {labels_key!r} must hold {len(data)} labels in "
                         f"[0, {num_classes})")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _image_folder(name: str, files, source: Path, progress: bool) -> ImageDataset:
    """``[root/]{train,test}/<class>/<image>``, classes sorted (= official CIFAR order)."""
    by_split: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    roots = set()
    for path in files.names:
        parts = path.split("/")
        if len(parts) < 3 or not path.lower().endswith(IMAGE_SUFFIXES):
            continue
        if parts[-3] in by_split:
            by_split[parts[-3]].append((parts[-2], path))
            roots.add("/".join(parts[:-3]))
    if not by_split["train"] or not by_split["test"] or len(roots) != 1:
        raise ValueError(f"{source} is not a CIFAR python folder or archive, nor an image folder "
                         f"laid out as [root/]train/<class>/*.png|jpg and [root/]test/<class>/..."
                         f" with a single root")
    train_classes = sorted({c for c, _ in by_split["train"]})
    test_classes = sorted({c for c, _ in by_split["test"]})
    if train_classes != test_classes:
        raise ValueError(f"{source}: train and test must have the same class folders; train "
                         f"has {train_classes}, test has {test_classes}")
    classes = train_classes
    if name == "cifar10" and classes != list(CIFAR10_CLASSES):
        raise ValueError(f"{source}: a cifar10 image folder needs CIFAR-10's 10 class folders "
                         f"({', '.join(CIFAR10_CLASSES)}), got {train_classes}")
    if name == "cifar100" and len(classes) != 100:
        raise ValueError(f"{source}: a cifar100 image folder needs 100 class folders, got "
                         f"{len(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    arrays = {}
    for split, entries in by_split.items():
        entries.sort(key=lambda entry: (index[entry[0]], entry[1]))
        paths = [p for _, p in entries]
        images = decode_images([files.read(p) for p in paths], paths, source, progress,
                               split)
        arrays[split] = images, np.array([index[c] for c, _ in entries], dtype=np.int64)
    return ImageDataset(name, classes, arrays["train"][0], arrays["train"][1],
                        arrays["test"][0], arrays["test"][1])


def _decode_chunk(blobs: list[bytes]) -> np.ndarray | tuple[int, str]:
    """Decode encoded images into uint8 [n, H, W, 3]; (index, reason) for the first bad one."""
    from PIL import Image

    images = []
    for position, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob)) as image:
                array = np.asarray(image.convert("RGB"))
        except Exception as err:  # noqa: BLE001 - Pillow raises many types for bad files
            return position, f"cannot be decoded ({type(err).__name__}: {err})"
        if array.shape != (32, 32, 3):
            return position, f"is {array.shape[1]}x{array.shape[0]}, expected 32x32"
        images.append(array)
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)


def decode_images(blobs: list[bytes], paths: list[str], source: Path, progress: bool = False,
                  label: str = "", chunk: int = 2000) -> np.ndarray:
    """Decode 32x32 images with Pillow, in a process pool when there are many and >1 core."""
    chunks = [blobs[i:i + chunk] for i in range(0, len(blobs), chunk)]
    workers = min(len(chunks), os.cpu_count() or 1)
    bar = tqdm(total=len(blobs), desc=f"decoding {label}", unit="img", disable=bar_disabled(progress),
               leave=False)
    results = []
    with bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for result in pool.map(_decode_chunk, chunks):
                    results.append(result)
                    bar.update(len(result) if isinstance(result, np.ndarray) else 0)
        else:
            for piece in chunks:
                results.append(_decode_chunk(piece))
                bar.update(len(piece))
    for number, result in enumerate(results):
        if isinstance(result, tuple):
            position, reason = result
            raise ValueError(  # noqa: TRY004 - bad file content, not a bad argument type
                f"{source}: image {paths[number * chunk + position]} {reason}")
    return np.concatenate(results) if results else np.zeros((0, 32, 32, 3), np.uint8)


# ----------------------------------------------------------------------------- download

def download_archive(name: str, cache_dir: Path, progress: bool = True) -> Path:
    """The official archive of ``name`` in ``<cache_dir>/downloads``, md5-checked.

    An archive already there is reused if its md5 matches; else it is fetched from
    ``DOWNLOAD_URLS[name]`` into a temporary file that is renamed into place only after the
    checksum matched (a mismatch raises ValueError and leaves nothing behind).
    """
    url, expected = DOWNLOAD_URLS[name], ARCHIVE_MD5[name]
    target = cache_dir / "downloads" / ARCHIVE_NAMES[name]
    if target.is_file() and file_md5(target) == expected:
        return target

    def fetch(out) -> None:
        digest = hashlib.md5()
        deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, desc=f"downloading {name}", unit="B", unit_scale=True,
                          disable=bar_disabled(progress), leave=False) as bar:
                    while block := response.read(1 << 16):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"not finished within {DOWNLOAD_DEADLINE_S:g} s")
        except OSError as err:
            raise FileNotFoundError(f"cannot download {name} from {url} ({err}); give "
                                    f"data=PATH or set STINGY_DATA instead") from None
        if digest.hexdigest() != expected:
            raise ValueError(f"download of {name} from {url} has md5 {digest.hexdigest()}, "
                             f"expected {expected}; nothing was kept")

    return atomic_write(target, fetch, binary=True)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def channel_statistics(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NHWC images, as fractions of 255 (for image folders
    that have no entry in CHANNEL_MEAN / CHANNEL_STD)."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist())
