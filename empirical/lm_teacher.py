"""The teacher of ``stingy lm``: a causal transformer trained with cross-entropy on random
windows of the training text, cached between runs.

The cache file ``teacher-<key>.pt`` holds the state dict (read with ``torch.load(weights_only
=True)`` after its sha256, stingy.io.load_torch); the key covers the tokenizer's key (so the
corpus digest and the tokenizer settings), the context, the teacher's model and training
settings and seed, and the code of this file, lm_model.py and lm_corpus.py. Its record
``teacher-<key>.json`` beside it says what it was trained from and how long it took.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stingy.empirical import lm_corpus, lm_model
from stingy.empirical.lm_corpus import cache_key, source_digest
from stingy.empirical.lm_model import build_model, train_model
from stingy.io import load_torch, save_torch, write_json


def blocks(stream: torch.Tensor, context: int, count: int, what: str) -> torch.Tensor:
    """The first ``count`` non-overlapping blocks of ``context + 1`` tokens [count, C + 1];
    ValueError when the stream is too short."""
    needed = count * (context + 1)
    if needed > len(stream):
        raise ValueError(f"{what} needs {needed} tokens ({count} blocks of {context + 1}) but "
                         f"the text has {len(stream)}: raise corpus.max_bytes or ask for fewer")
    return stream[:needed].view(count, context + 1)


def teacher_key(settings, tokenizer_key: str) -> str:
    return cache_key("teacher", tokenizer_key, settings.context, settings.teacher.to_table(),
                     settings.teacher_training.to_table(), settings.teacher_seed,
                     source_digest(__file__, lm_model.__file__, lm_corpus.__file__))


def train_teacher(settings, stream: torch.Tensor, vocab_size: int, device):
    """(teacher, losses): cross-entropy on ``batch_size`` random windows per step."""
    context, training = settings.context, settings.teacher_training
    if len(stream) <= context + 1:
        raise ValueError(f"the training text has {len(stream)} tokens, too few for the "
                         f"context {context}")
    teacher = build_model(vocab_size, context, settings.teacher, settings.teacher_seed, device)
    generator = torch.Generator().manual_seed(settings.teacher_seed)
    offsets = torch.arange(context + 1)

    def batch_at(step):
        starts = torch.randint(0, len(stream) - context, (training.batch_size,),
                               generator=generator)
        return stream[starts[:, None] + offsets].to(device)

    def loss_of(model, batch):
        return F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())

    losses = train_model(teacher, batch_at, loss_of, training, "teacher")
    return teacher, losses


def cached_teacher(settings, stream, vocab_size: int, tokenizer_key: str, cache: Path,
                   device, log=print):
    """(teacher in eval mode, key, record): read from the cache or trained and written."""
    key = teacher_key(settings, tokenizer_key)
    path, record_path = Path(cache) / f"teacher-{key}.pt", Path(cache) / f"teacher-{key}.json"
    teacher = build_model(vocab_size, settings.context, settings.teacher,
                          settings.teacher_seed, device)
    if path.is_file() and record_path.is_file():
        state = load_torch(path, "teacher file", map_location=device)
        try:
            teacher.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise ValueError(f"teacher file {str(path)!r} does not fit the teacher's settings "
                             f"({str(err).splitlines()[0][:200]})") from None
        return teacher.eval(), key, json.loads(record_path.read_text())
    log(f"[lm] training the teacher ({settings.teacher_training.steps} steps)")
    start = time.time()
    teacher, losses = train_teacher(settings, stream, vocab_size, device)
    save_torch(path, teacher.state_dict())
    record = {"key": key, "tokenizer_key": tokenizer_key, "losses": losses,
              "seconds": time.time() - start, "settings": settings.teacher.to_table(),
              "training": settings.teacher_training.to_table()}
    write_json(record_path, record)
    return teacher.eval(), key, record
