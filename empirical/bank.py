"""The logit bank: a teacher's logits on every augmented training batch, computed once per epoch.

The augmentation stream is a pure function of (seed, epoch, batch): :class:`AugmentStream`
draws epoch ``e``'s batch order from a generator seeded with ``mix(seed, e)`` and batch ``b``'s
crop offsets and flips from one seeded with ``mix(seed, e, b)``. So every student trained with
the same data seed sees exactly the images the bank's teacher saw, in the same order, and a
resumed run needs no random state to continue.

:class:`LogitBank` runs the teacher over one epoch's batches (inference mode, several batches
per forward pass, bf16 autocast on CUDA) and stores the logits as fp16: all K of them, or the
indices (int64) and values of the top ``top_k`` (in descending order, ties to the lower class
index, so the first k columns are the top-k set for every k <= top_k). Each epoch is one file ``epoch-NNNN.pt`` of
plain tensors written atomically (``stingy.io.save_torch``) and read with
``torch.load(weights_only=True)``, in the folder ``<root>/<key>``, where ``key`` hashes
:func:`bank_key`'s fields (teacher fingerprint, data fingerprint, seed, batch size, augment,
top_k, format, and the code of bank.py, augment.py and engine.py). Students of a sweep share
a bank; a rerun or a resumed run reuses its files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from stingy.empirical.engine import batch_count, batch_rows
from stingy.io import file_digest, load_torch, save_torch
from stingy.objective import TopKRows

BANK_FORMAT = 1
PADDING = 4
# the code that decides which images a batch holds and how they look
CODE_FILES = tuple(Path(__file__).with_name(name) for name in ("bank.py", "augment.py",
                                                               "engine.py"))


def mix(*values: int) -> int:
    """A 63-bit seed from integers (SHA-256, so nearby inputs give unrelated seeds)."""
    digest = hashlib.sha256(json.dumps([int(v) for v in values]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def tensor_fingerprint(tensors) -> str:
    """SHA-256 (16 hex digits) over the bytes, dtypes and shapes of ``tensors`` in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Fingerprint of a model's state (parameter and buffer names and values)."""
    state = model.state_dict()
    names = sorted(state)
    return hashlib.sha256((json.dumps(names) + tensor_fingerprint(state[n] for n in names))
                          .encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AugmentStream:
    """Batches of one epoch as a pure function of (seed, epoch, batch)."""

    seed: int
    batch_size: int
    augment: bool = True

    def steps(self, size: int) -> int:
        """Batches per epoch; a last batch of one joins the batch before it."""
        return batch_count(size, self.batch_size)

    def rows(self, step: int, size: int) -> slice:
        """The positions of batch ``step`` in the epoch's order of ``size`` examples."""
        return batch_rows(step, size, self.batch_size)

    def order(self, epoch: int, size: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(mix(self.seed, epoch))
        return torch.randperm(size, generator=generator)

    def batch(self, data, order: torch.Tensor, epoch: int, step: int,
              channels_last: bool = False):
        """(images, labels) of batch ``step`` of ``epoch``; ``data`` is an engine.DeviceData."""
        index = order[self.rows(step, len(order))]
        generator = None
        if self.augment:
            generator = torch.Generator(device=data.images.device)
            generator.manual_seed(mix(self.seed, epoch, step))
        return data.batch(index, generator, channels_last)

    def batches(self, data, epoch: int, channels_last: bool = False):
        """Yield (step, images, labels) for every batch of ``epoch``."""
        order = self.order(epoch, len(data))
        for step in range(self.steps(len(data))):
            yield (step, *self.batch(data, order, epoch, step, channels_last))


def bank_key(teacher_fingerprint: str, data_fingerprint: str, stream: AugmentStream,
             top_k: int | None) -> dict:
    code = hashlib.sha256("".join(file_digest(path) for path in CODE_FILES).encode())
    return {"format": BANK_FORMAT, "code": code.hexdigest()[:16],
            "teacher": teacher_fingerprint, "data": data_fingerprint,
            "seed": stream.seed, "batch_size": stream.batch_size, "augment": stream.augment,
            "padding": PADDING, "top_k": top_k}


class LogitBank:
    """Per-epoch teacher logits on disk for one (teacher, data, stream, top_k)."""

    def __init__(self, root: str | Path, teacher: torch.nn.Module, data, stream: AugmentStream,
                 *, top_k: int | None = None, forward_batches: int = 8, autocast: bool = False,
                 channels_last: bool = False):
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                                  or top_k < 1):
            raise ValueError(f"top_k must be None (all logits) or an integer >= 1, got {top_k!r}")
        self.teacher, self.data, self.stream, self.top_k = teacher, data, stream, top_k
        self.forward_batches, self.autocast = forward_batches, autocast
        self.channels_last = channels_last
        data_fingerprint = tensor_fingerprint([data.images, data.labels])
        self.key = bank_key(model_fingerprint(teacher), data_fingerprint, stream, top_k)
        name = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:20]
        self.directory = Path(root) / name
        self.built_epochs = 0  # epochs this object computed (not read from disk)

    def path(self, epoch: int) -> Path:
        return self.directory / f"epoch-{epoch:04d}.pt"

    @torch.inference_mode()
    def compute(self, epoch: int) -> dict:
        """The teacher's logits on every batch of ``epoch``, concatenated in batch order."""
        was_training = self.teacher.training
        self.teacher.eval()
        chunks, pending = [], []

        def flush():
            images = torch.cat(pending)
            pending.clear()
            with torch.autocast(images.device.type, dtype=torch.bfloat16,
                                enabled=self.autocast):
                chunks.append(self.teacher(images).float())

        for step, images, _ in self.stream.batches(self.data, epoch, self.channels_last):
            pending.append(images)
            if len(pending) == self.forward_batches:
                flush()
        if pending:
            flush()
        self.teacher.train(was_training)
        logits = torch.cat(chunks)
        record = {"key": json.dumps(self.key, sort_keys=True), "epoch": epoch}
        if self.top_k is None:
            return {**record, "logits": logits.half().cpu()}
        # descending, ties to the lower class index: the first k columns are the top-k set
        values, indices = logits.sort(dim=-1, descending=True, stable=True)
        kept = min(self.top_k, logits.shape[-1])
        return {**record, "values": values[:, :kept].half().cpu(),
                "indices": indices[:, :kept].cpu(), "num_classes": logits.shape[-1]}

    def epoch(self, epoch: int, device) -> BankEpoch:
        """The logits of ``epoch`` on ``device``: read from the bank, or computed and saved."""
        path = self.path(epoch)
        if path.is_file():
            record = load_torch(path, "logit bank file")
            expected = json.dumps(self.key, sort_keys=True)
            if (not isinstance(record, dict) or record.get("key") != expected
                    or record.get("epoch") != epoch):
                raise ValueError(f"logit bank file {path} does not match its key; delete it")
        else:
            record = self.compute(epoch)
            save_torch(path, record)
            self.built_epochs += 1
        return BankEpoch(record, self.stream, device)


class BankEpoch:
    """One epoch of bank logits on the device; ``teacher(step)`` gives a batch's teacher as an
    objective reads it (stingy.objective): the fp16 logits [B, K] of a dense bank, or the
    :class:`~stingy.objective.TopKRows` of a top-k bank."""

    def __init__(self, record: dict, stream: AugmentStream, device):
        # clone: a freshly computed record holds inference tensors, which autograd refuses
        self.stream = stream
        self.dense = record["logits"].to(device).clone() if "logits" in record else None
        self.rows = None if "logits" in record else TopKRows(
            record["indices"].to(device).clone(), record["values"].to(device).clone())
        self.size = len(self.dense if self.dense is not None else self.rows.indices)

    def teacher(self, step: int):
        rows = self.stream.rows(step, self.size)
        if self.dense is not None:
            return self.dense[rows]
        return TopKRows(self.rows.indices[rows], self.rows.values[rows])
