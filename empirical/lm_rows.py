"""The teacher's stored rows for the students' training tokens, and what they keep.

:func:`cached_rows` runs the teacher once over the students' training blocks and stores, per
token, its top-k rows in the toolkit's format (stingy.theory.topk.save_topk_teacher: indices,
values and the log-partition LSE(z / T) at the distillation temperature), one file per k of
``distill.top_k``, and its sampled rows for sampled KD (stingy.objective.sample_rows: classes
drawn with replacement from softmax(z / T), weight 1/k each), one file per count of
``distill.samples``: ``sampled-s<count>.npz`` holding ``indices`` (N, count) int64,
``num_classes`` and ``temperature``, written atomically with its sha256 beside it and read
with ``allow_pickle=False``. The files live in the cache, in a folder named by a key of the
teacher's key and the rows' settings; a file that no longer matches its checksum is refused.

:func:`row_statistics` reads off the stored rows, per token, the kept mass
m = sum_M softmax(z / T) (from the log-partition) and the exact signal-to-drive ratio
||p~ - U_M|| / sqrt(1/k - 1/K) (stingy.theory.signal), and summarises them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stingy.io import atomic_write, verify_checksum, write_checksum
from stingy.objective import SampledRows, TopKRows, sample_rows
from stingy.progress import bar_disabled
from stingy.theory.signal import exact_ratio_from_kept_target
from stingy.theory.topk import TopKTeacher, load_topk_teacher, save_topk_teacher, topk_teacher

QUANTILES = {"p10": 0.1, "median": 0.5, "p90": 0.9}


def topk_path(folder: Path, k: int) -> Path:
    return folder / f"topk-k{k}.npz"


def sampled_path(folder: Path, count: int) -> Path:
    return folder / f"sampled-s{count}.npz"


def save_sampled_rows(path, indices: torch.Tensor, num_classes: int, temperature: float):
    arrays = {"indices": indices.cpu().numpy().astype(np.int64),
              "num_classes": np.int64(num_classes), "temperature": np.float64(temperature)}
    path = atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)
    write_checksum(path)
    return path


def load_sampled_rows(path, num_classes: int, temperature: float) -> SampledRows:
    """Sampled rows after their checksum; ValueError for a changed or malformed file, or one
    drawn over another vocabulary or at another temperature."""
    path = Path(path)
    verify_checksum(path, "sampled rows file")
    try:
        with np.load(path, allow_pickle=False) as data:
            indices, classes, stored_t = (data["indices"], data["num_classes"],
                                          data["temperature"])
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a sampled rows .npz ({err})") from None
    if indices.ndim != 2 or indices.dtype.kind not in "iu" or int(classes) != num_classes \
            or float(stored_t) != temperature or indices.size and (
                indices.min() < 0 or indices.max() >= num_classes):
        raise ValueError(f"{path} does not hold sampled rows over {num_classes} classes at "
                         f"T = {temperature}")
    indices = torch.from_numpy(indices)
    return SampledRows(indices, torch.full(indices.shape, 1.0 / indices.shape[-1]))


@torch.no_grad()
def _teacher_passes(teacher, inputs: torch.Tensor, distill, batch: int, device):
    """(top-k rows at max(top_k) with LSE(z/T), {count: sampled indices}) over ``inputs``."""
    generator = torch.Generator(device=device).manual_seed(distill.sample_seed)
    stored, samples = [], {count: [] for count in distill.samples}
    for start in tqdm(range(0, len(inputs), batch), desc="teacher rows", leave=False,
                      disable=bar_disabled()):
        logits = teacher(inputs[start:start + batch].to(device)).flatten(0, 1).float()
        stored.append(topk_teacher(logits, max(distill.top_k), (distill.temperature,)))
        for count in distill.samples:
            samples[count].append(sample_rows(logits, count, distill.temperature,
                                              generator).indices.cpu())
    top = TopKTeacher(torch.cat([s.indices.cpu() for s in stored]),
                      torch.cat([s.values.cpu() for s in stored]), stored[0].num_classes,
                      torch.cat([s.log_partition.cpu() for s in stored]),
                      (distill.temperature,))
    return top, {count: torch.cat(parts) for count, parts in samples.items()}


def cached_rows(teacher, inputs: torch.Tensor, distill, folder: Path, batch: int,
                device) -> Path:
    """Write the rows of ``teacher`` over ``inputs`` [blocks, C] into ``folder`` (a cache
    folder named by their key) unless every file is already there; the folder."""
    folder = Path(folder)
    wanted = [topk_path(folder, k) for k in distill.top_k] + [
        sampled_path(folder, count) for count in distill.samples]
    if all(path.is_file() for path in wanted):
        return folder
    top, samples = _teacher_passes(teacher, inputs, distill, batch, device)
    for k in distill.top_k:
        save_topk_teacher(topk_path(folder, k), TopKTeacher(
            top.indices[:, :k].contiguous(), top.values[:, :k].contiguous(), top.num_classes,
            top.log_partition, top.temperatures))
    for count, indices in samples.items():
        save_sampled_rows(sampled_path(folder, count), indices, top.num_classes,
                          distill.temperature)
    return folder


def read_topk_rows(folder: Path, k: int, num_classes: int, temperature: float,
                   tokens: int) -> TopKRows:
    """The stored top-k rows of ``folder`` as TopKRows with their LSE(z / T); ValueError
    for a file of another vocabulary or size."""
    stored = load_topk_teacher(topk_path(folder, k))
    if stored.num_classes != num_classes or stored.values.shape != (tokens, k):
        raise ValueError(f"{topk_path(folder, k)} does not hold {tokens} rows of the top {k} "
                         f"of {num_classes} classes")
    return TopKRows(stored.indices, stored.values.float(),
                    stored.logsumexp_at(temperature).float())


def _summary(values: torch.Tensor, name: str) -> dict:
    values = values.double()
    row = {f"{name}_mean": float(values.mean())}
    for label, q in QUANTILES.items():
        row[f"{name}_{label}"] = float(torch.quantile(values, q))
    return row


def row_statistics(rows: TopKRows, k: int, num_classes: int, temperature: float) -> dict:
    """Kept mass and signal-to-drive ratio of the top-k rows, per token, summarised."""
    scaled = rows.values[:, :k].double() / temperature
    kept_mass = torch.exp(torch.logsumexp(scaled, dim=-1) - rows.log_partition.double())
    ratio = exact_ratio_from_kept_target(torch.softmax(scaled, dim=-1), num_classes)
    return {"k": k, "tokens": len(scaled), **_summary(kept_mass.clamp(max=1.0), "kept_mass"),
            **_summary(ratio, "signal_to_drive")}


def bytes_per_token(folder: Path, distill, tokens: int, num_classes: int) -> list[dict]:
    """Stored bytes per token of each rows file, beside the dense float32 row."""
    sizes = [{"rows": "full (dense float32, teacher online)", "k": num_classes,
              "bytes_per_token": 4.0 * num_classes}]
    sizes += [{"rows": f"top-{k}", "k": k,
               "bytes_per_token": topk_path(folder, k).stat().st_size / tokens}
              for k in distill.top_k]
    sizes += [{"rows": f"sampled-{count}", "k": count,
               "bytes_per_token": sampled_path(folder, count).stat().st_size / tokens}
              for count in distill.samples]
    return sizes
