"""``stingy lm``: sparse teacher logits on real text. A small causal transformer teacher
trained on the Python standard library's source, its rows stored for the students' training
tokens (top-k in the toolkit's format, and sampled), and a smaller student trained by each
method from several seeds, measured on held-out files against the true next token and the
full teacher; after Anshumann et al., "Sparse Logit Sampling", ACL 2025.

:func:`run_lm` writes into ``out``, in this order:

    settings.json      the settings (a folder holds one run: other settings are refused)
    prediction.json    the predicted verdicts (stingy.empirical.lm_verdicts), before anything
                       trains, never rewritten
    rows.json          bytes per token of each stored rows file, and per top-k file the kept
                       mass and exact signal-to-drive ratio per token (mean, p10, median, p90)
    students/*.json    one result per student and seed (a rerun reuses those of the same
                       inputs and code, so an interrupted run resumes)
    runs.csv           those results, one row each
    summary.csv        per student, each metric's mean and 95% t-interval over seeds
    verdicts.json      each predicted check's outcome with its numbers, whatever they show
    provenance.json    corpus sha256 and files, tokenizer and teacher keys, the teacher's
                       held-out metrics, machine, commit, wall time
    lm.png, lm.pdf     the figure (stingy.figures.lm_figure)

The tokenizer, the teacher and the rows are cached in ``cache`` (stingy.empirical.lm_corpus,
lm_teacher, lm_rows), keyed on what they are made from.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from stingy.empirical import lm_metrics, lm_model, lm_rows, lm_students
from stingy.empirical.lm_corpus import (cache_key, cached_tokenizer, encode, load_corpus,
                                        source_digest)
from stingy.empirical.lm_metrics import evaluate, held_out_reference
from stingy.empirical.lm_rows import bytes_per_token, cached_rows, read_topk_rows, row_statistics
from stingy.empirical.lm_students import Transfer, students, train_student
from stingy.empirical.lm_teacher import blocks, cached_teacher
from stingy.empirical.lm_verdicts import student_label, verdicts, write_prediction
from stingy.intervals import t_interval
from stingy.io import ExclusiveLock, remove_stale_temps, write_csv, write_json
from stingy.machine import load_average, machine_info, stamp

METRICS = ("cross_entropy", "kl_to_teacher", "top1_agreement", "ece", "accuracy")
STUDENTS = "students"
LOCK = "lm.lock"


def resolve_device(device: str | None) -> torch.device:
    """``device`` (cpu or cuda), or cuda when present; ValueError for anything else."""
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def check_folder(out: Path, settings) -> None:
    """ValueError when ``out`` holds a run of other settings (or is not a folder)."""
    existing = out / "settings.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is not a folder")
    if existing.is_file() and json.loads(existing.read_text()) != settings.to_table():
        raise ValueError(f"--out {str(out)!r} holds a run of other settings "
                         f"({existing}); use another folder")


def prepare(settings, cache: Path, device, log) -> tuple[Transfer, dict]:
    """Corpus, tokenizer, teacher, held-out reference and stored rows: (transfer,
    provenance)."""
    corpus = load_corpus(settings.corpus)
    tokenizer, tokenizer_key = cached_tokenizer(corpus, settings.tokenizer, cache, log)
    vocab_size = tokenizer.get_vocab_size()
    stream, held_stream = encode(tokenizer, corpus.train), encode(tokenizer, corpus.held_out)
    transfer_blocks = blocks(stream, settings.context, settings.distill.train_blocks,
                             "distill.train_blocks")
    held_blocks = blocks(held_stream, settings.context, settings.evaluation.blocks,
                         "evaluation.blocks")
    teacher, teacher_key, record = cached_teacher(settings, stream, vocab_size, tokenizer_key,
                                                  cache, device, log)
    batch = settings.student_training.batch_size
    held_out = held_out_reference(teacher, held_blocks[:, :-1], held_blocks[:, 1:], batch,
                                  device)
    distill = settings.distill
    rows_key = cache_key("rows", teacher_key, settings.context, distill.temperature,
                         distill.top_k, distill.samples, distill.train_blocks,
                         distill.sample_seed, batch, source_digest(lm_rows.__file__))
    log("[lm] teacher rows for the students' training tokens")
    folder = cached_rows(teacher, transfer_blocks[:, :-1], settings.distill,
                         Path(cache) / f"rows-{rows_key}", batch, device)
    provenance = {"corpus": corpus.provenance(), "tokenizer_key": tokenizer_key,
                  "vocab_size": vocab_size, "train_tokens": len(stream),
                  "held_out_tokens": held_out.targets.numel(), "teacher_key": teacher_key,
                  "teacher_training_seconds": record["seconds"], "rows_key": rows_key,
                  "teacher_held_out": evaluate(teacher, held_out, batch,
                                               settings.evaluation.ece_bins)}
    return Transfer(transfer_blocks, teacher, folder, held_out, vocab_size, device), provenance


def rows_report(settings, transfer: Transfer) -> dict:
    """Bytes per token of every rows file; kept mass and signal-to-drive of every top-k."""
    tokens = transfer.blocks.shape[0] * settings.context
    distill, size = settings.distill, transfer.vocab_size
    statistics = [row_statistics(read_topk_rows(transfer.rows_folder, k, size,
                                                distill.temperature, tokens),
                                 k, size, distill.temperature) for k in distill.top_k]
    return {"tokens": tokens, "temperature": distill.temperature,
            "bytes_per_token": bytes_per_token(transfer.rows_folder, distill, tokens, size),
            "statistics": statistics}


def run_students(settings, transfer: Transfer, out: Path, fingerprint: str, log) -> list[dict]:
    """Every student and seed, reusing each result of the same fingerprint in ``out``."""
    results = []
    for seed in range(settings.distill.seeds):
        for name, k in students(settings.distill):
            path = out / STUDENTS / f"{student_label(name, k)}-seed{seed}.json"
            if path.is_file():
                stored = json.loads(path.read_text())
                if stored.get("fingerprint") == fingerprint:
                    results.append(stored)
                    continue
            result = {**train_student(settings, transfer, name, k, seed),
                      "fingerprint": fingerprint}
            write_json(path, result)
            log(f"[lm] {result['student']} seed {seed}: cross-entropy "
                f"{result['cross_entropy']:.3f} nats, ECE {result['ece']:.3f} "
                f"({result['seconds']:.0f} s)")
            results.append(result)
    return results


def summarise(results: list[dict]) -> list[dict]:
    """Per student (in training order): each metric's mean and 95% t-interval over seeds."""
    rows = []
    for label in dict.fromkeys(r["student"] for r in results):
        mine = [r for r in results if r["student"] == label]
        row = {"student": label, "method": mine[0]["method"], "k": mine[0]["k"],
               "seeds": len(mine)}
        for metric in METRICS:
            mean, low, high = t_interval([r[metric] for r in mine])
            row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    return rows


def run_lm(settings, out, cache, device=None, log=print) -> dict:
    """Run ``stingy lm`` with ``settings`` (see the module docstring); the summary, the
    verdicts, the teacher's held-out metrics and the wall time."""
    device, out, cache = resolve_device(device), Path(out), Path(cache)
    check_folder(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    with ExclusiveLock(out / LOCK, f"the lm results folder {out}"):
        for folder in (out, out / STUDENTS):
            if folder.is_dir():
                remove_stale_temps(folder)
        write_json(out / "settings.json", settings.to_table())
        prediction = write_prediction(out, settings)
        return _run(settings, out, cache, device, prediction, log)


def _run(settings, out: Path, cache: Path, device, prediction: dict, log) -> dict:
    start, load = time.time(), [load_average()]
    transfer, provenance = prepare(settings, cache, device, log)
    write_json(out / "rows.json", rows_report(settings, transfer))
    fingerprint = cache_key("student", provenance["rows_key"], settings.to_table(),
                            source_digest(__file__, lm_students.__file__, lm_model.__file__,
                                          lm_metrics.__file__))
    results = run_students(settings, transfer, out, fingerprint, log)
    write_csv(out / "runs.csv", [{key: value for key, value in r.items()
                                  if key != "fingerprint"} for r in results])
    summary = summarise(results)
    write_csv(out / "summary.csv", summary)
    checked = verdicts(prediction, results, settings.distill.fix_k)
    write_json(out / "verdicts.json", checked)
    load.append(load_average())
    write_json(out / "provenance.json", {
        **stamp(), **provenance, "machine": machine_info(), "wall_s": time.time() - start,
        "load_average_start_end": load, "profile": settings.profile})
    import matplotlib.pyplot as plt

    from stingy.figures.lm_figure import draw_lm

    plt.close(draw_lm(out / "summary.csv", out / "rows.json", out / "lm")["figure"])
    return {"summary": summary, "verdicts": checked, "teacher": provenance["teacher_held_out"],
            "wall_s": time.time() - start}
