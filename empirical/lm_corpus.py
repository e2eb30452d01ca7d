"""The text of ``stingy lm`` and its tokenizer: the Python standard library's own source.

:func:`load_corpus` reads the ``.py`` files of the running interpreter's standard library
(``sysconfig``'s ``stdlib`` path; ``site-packages``, ``__pycache__`` and every folder or file
whose name starts with ``test`` left out), orders them by the sha256 of their relative path (a
fixed shuffle of the library's packages), keeps them up to ``corpus.max_bytes`` and holds out
every ``corpus.held_out_every``-th one. Its digest is the sha256 of every kept file's relative
path, size and bytes in that order: two machines with the same Python read the same corpus.

:func:`cached_tokenizer` trains a byte-level BPE (the ``tokenizers`` package) on the training
files, or reads it from the cache, a JSON file named by a key of the corpus digest, the
tokenizer settings, the ``tokenizers`` version and this file's code, with its sha256 beside it.
Nothing is fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from stingy.io import verify_checksum, write_checksum, write_text

EXCLUDED = ("site-packages", "dist-packages", "__pycache__")


@dataclass(frozen=True)
class Corpus:
    """Training and held-out texts (one string per file), their digest and size."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]
    digest: str
    files: int
    bytes: int
    root: str

    def provenance(self) -> dict:
        return {"corpus_sha256": self.digest, "files": self.files, "bytes": self.bytes,
                "train_files": len(self.train), "held_out_files": len(self.held_out),
                "stdlib": self.root}


def source_files(root: Path) -> list[Path]:
    """Every ``.py`` file under ``root`` but the excluded folders and test files, by path."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders
                               if name not in EXCLUDED and not name.startswith("test"))
        found += [Path(folder) / name for name in files
                  if name.endswith(".py") and not name.startswith("test")]
    return sorted(found)


def _order(root: Path, path: Path) -> str:
    return hashlib.sha256(path.relative_to(root).as_posix().encode()).hexdigest()


def load_corpus(settings, root: str | Path | None = None) -> Corpus:
    """The corpus of ``settings`` (stingy.empirical.lm_settings.CorpusSettings) from the
    standard library, or from ``root`` (a folder of ``.py`` files) where given."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(source_files(root), key=lambda path: _order(root, path))
    digest, texts, total = hashlib.sha256(), [], 0
    for path in files:
        if total >= settings.max_bytes:
            break
        data = path.read_bytes()
        digest.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
        texts.append(data.decode("utf-8", errors="replace"))
        total += len(data)
    if len(texts) < settings.held_out_every:
        raise ValueError(f"the corpus at {root} has {len(texts)} source files, fewer than "
                         f"corpus.held_out_every = {settings.held_out_every}")
    every = settings.held_out_every
    held_out = tuple(text for i, text in enumerate(texts) if i % every == every - 1)
    train = tuple(text for i, text in enumerate(texts) if i % every != every - 1)
    return Corpus(train, held_out, digest.hexdigest(), len(texts), total, str(root))


def source_digest(*files: str | Path) -> str:
    """sha256 (16 hex digits) of the named source files: the code a cached file depends on."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(*parts) -> str:
    """16 hex digits of sha256 over JSON-encoded ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def train_tokenizer(texts, settings):
    """A byte-level BPE of ``settings.vocab_size`` tokens at most, trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=settings.vocab_size,
                                  min_frequency=settings.min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def tokenizer_key(corpus: Corpus, settings) -> str:
    import tokenizers

    return cache_key("tokenizer", corpus.digest, settings.to_table(), tokenizers.__version__,
                     source_digest(__file__))


def read_tokenizer(path: Path):
    """A cached tokenizer after its checksum; ValueError for a changed or malformed file."""
    from tokenizers import Tokenizer

    verify_checksum(path, "tokenizer file")
    try:
        tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    except Exception as err:  # noqa: BLE001 - tokenizers raises plain Exception
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else "unreadable"
        raise ValueError(f"tokenizer file {str(path)!r} is not a tokenizer ({reason})") from None
    if tokenizer.get_vocab_size() <= 256:
        raise ValueError(f"tokenizer file {str(path)!r} has {tokenizer.get_vocab_size()} "
                         f"tokens, no more than the 256 bytes")
    return tokenizer


def cached_tokenizer(corpus: Corpus, settings, cache: Path, log=print):
    """(tokenizer, key): read from ``cache/tokenizer-<key>.json`` or trained and written there
    (atomically, with its checksum)."""
    key = tokenizer_key(corpus, settings)
    path = Path(cache) / f"tokenizer-{key}.json"
    if path.is_file():
        return read_tokenizer(path), key
    log(f"[lm] training a byte-level BPE of {settings.vocab_size} tokens on "
        f"{len(corpus.train)} files")
    tokenizer = train_tokenizer(corpus.train, settings)
    write_text(path, tokenizer.to_str())
    write_checksum(path)
    return tokenizer, key


def encode(tokenizer, texts):
    """The token ids of ``texts``, one file after another, as one int64 tensor."""
    import torch

    ids = [token for encoding in tokenizer.encode_batch(list(texts)) for token in encoding.ids]
    return torch.tensor(ids, dtype=torch.int64)
