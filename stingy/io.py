"""Atomic result files, strict JSON, plain names, content digests and an exclusive lock.

Every writer goes to a temporary file in the destination folder, flushes and fsyncs it,
renames it over the target (``os.replace`` is atomic on POSIX and Windows) and fsyncs the
folder, so the rename itself survives a crash. Files get the usual mode (0666 less the
umask, 0644 by default), whichever writer made them. JSON is strict: NaN and infinities are
written as ``null``, so any JSON parser reads every file. A kill can leave a temporary
``.<name>.*.tmp`` file; :func:`remove_stale_temps` clears them when a run starts. JSON
lines are read strictly (:func:`read_jsonl`), and a name read from a file names a path only
once :func:`plain_name` has checked it.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import importlib
import io
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None],
                 binary: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb" if binary else "w",
                       **({} if binary else {"newline": "", "encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def plain_name(name: Any, what: str) -> str:
    """``name`` when it is a plain folder or file name (letters, digits, ``.``, ``_``, ``-``;
    no ``/`` and not starting with ``.``), else a ValueError naming ``what``: a path built
    from it stays inside its folder."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise ValueError(f"{what} must be a plain name (letters, digits, '.', '_', '-'; "
                         f"no '/' and not starting with '.'), got {name!r}")
    return name


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data), binary=True)


def strict_json(obj: Any, **options) -> str:
    """``json.dumps`` that writes NaN and infinities as null (numpy and torch values too)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, default=_json_default, **options)


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (at any depth) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {key: finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(value) for value in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy, torch
        return finite_or_none(obj.tolist())
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, strict_json(obj, indent=2) + "\n")


def write_json_once(path: str | os.PathLike, build: Callable[[], dict]) -> dict:
    """The JSON object at ``path`` if there is one (it is never rewritten: a prediction
    written before a run stays as written); else ``build()``, written there atomically."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    content = build()
    write_json(path, content)
    return content


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write tidy rows (dicts); the header is the union of keys in first-seen order."""
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields.extend(key for key in row if key not in fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` through a temporary file, so a kill mid-write keeps the old checkpoint,
    with its checksum beside it (:func:`write_checksum`)."""
    import torch

    path = atomic_write(path, lambda f: torch.save(obj, f), binary=True)
    write_checksum(path)
    return path


CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: str | os.PathLike) -> Path:
    """Where a file's checksum is kept: ``<file>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(path: str | os.PathLike) -> Path:
    """Write the sha256 of a stored file's bytes to ``<file>.sha256``, atomically, after the
    file itself."""
    return write_text(checksum_path(path), _sha256(path) + "\n")


def verify_checksum(path: str | os.PathLike, what: str) -> None:
    """ValueError naming ``what`` when ``path`` does not match its ``.sha256``. A file with no
    checksum beside it (written before checksums were kept, or by a write cut between the file
    and its checksum) is read as it is."""
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        return
    if sidecar.read_text().strip() != _sha256(path):
        raise ValueError(f"{what} {str(path)!r} does not match its checksum {sidecar.name}: it "
                         f"changed after it was written; remove both to compute it again")


def load_torch(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` after :func:`verify_checksum`; ValueError (naming
    ``what``) for a file that changed, is truncated, is not a torch file, or holds anything
    but tensors and plain types."""
    import pickle
    import zipfile

    import torch

    verify_checksum(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
            KeyError, AttributeError, TypeError, IndexError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{what} {str(path)!r} is truncated, not a stingy file, or holds "
                         f"more than tensors and plain data ({reason})") from None


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON line; the line is written with a single ``write`` and fsynced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = strict_json(record) + "\n"
    created = not path.exists()
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    if created:
        fsync_directory(path.parent)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines strictly: a line that is not a JSON object is a ValueError naming the
    file and the line. Only a last line without its newline that does not parse (an append
    cut short by a kill) is left out."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    lines = text.split("\n")
    records = [_json_line(line, path, number) for number, line in enumerate(lines[:-1], 1)]
    if lines[-1]:
        try:
            records.append(_json_line(lines[-1], path, len(lines)))
        except ValueError:
            pass  # torn by a kill mid-append
    return records


def _json_line(line: str, path, number: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} line {number} is not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} line {number} is not a JSON object")
    return record


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # torch tensors
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory`` (not below it);
    call it only while holding the folder's lock. Returns the removed paths."""
    removed = []
    for path in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (16 hex digits)."""
    return _sha256(path)[:16]


def code_digest(*packages: str) -> str:
    """sha256 of the .py and .toml files of the named ``stingy`` sub-packages (``"theory"``,
    ``"simulations"``, ...): the code a cached result depends on."""
    digest = hashlib.sha256()
    for package in packages:
        root = Path(importlib.import_module(f"stingy.{package}").__file__).parent
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
                digest.update(f"{package}/{path.relative_to(root).as_posix()}\n".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class Diverged(ArithmeticError):
    """A training loss became non-finite; the run is marked failed (CLI exit code 1)."""


class LockHeld(Exception):
    """Another live process holds the lock (an error of the caller's, shown as one line)."""


class ExclusiveLock:
    """An advisory lock on ``path`` (``fcntl.flock``), held until :meth:`release`.

    The holder's pid is written into the file. The kernel drops the lock when its process
    dies, so a lock file left by a dead process (or an empty one) is simply taken over
    (``stale_pid`` then names the dead holder). While another live process holds it, the
    caller waits up to ``wait_seconds`` (0: not at all), saying once through ``log`` whom it
    waits for, and then gets :class:`LockHeld`.
    """

    def __init__(self, path: str | os.PathLike, what: str, wait_seconds: float = 0.0,
                 log: Callable[[str], None] = print, poll_seconds: float = 0.5):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        deadline, said = time.monotonic() + wait_seconds, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                os.lseek(fd, 0, os.SEEK_SET)
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" after {wait_seconds:g} s" if wait_seconds > 0 else ""
                    raise LockHeld(f"{what} is in use by another process (pid {holder}, lock "
                                   f"{self.path}){waited}; wait for it to end") from None
                if not said:
                    log(f"waiting up to {wait_seconds:g} s for {what}, held by pid {holder} "
                        f"({self.path})")
                    said = True
                time.sleep(poll_seconds)
        os.lseek(fd, 0, os.SEEK_SET)
        previous = os.read(fd, 64).decode(errors="replace").strip()
        self.stale_pid = int(previous) if previous.isdigit() else None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> ExclusiveLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
