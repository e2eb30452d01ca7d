"""Fuzz stored state: mutate one file of a finished run folder or a stored top-k file
(truncate, flip a byte, delete, swap two lines, corrupt one JSON line, append bytes) and
read it back through the public path.

Allowed outcomes: the correct result (the pristine one), or a ValueError / FileNotFoundError
whose message is one line. Never another exception (a traceback at the CLI), never a
"finished" run whose summary differs from the pristine one, and never a file deleted that
existed before. Examples per test: ``STINGY_FUZZ_EXAMPLES`` (default 40); the slow tier runs
``STINGY_FUZZ_SLOW_EXAMPLES`` (default 2,000).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import SUMMARY, read_state
from stingy.empirical.train import train_recipe
from stingy.theory.topk import TopKTeacher, load_topk_teacher, save_topk_teacher
from tests.empirical.tiny import TINY, tiny_dataset

EXAMPLES = int(os.environ.get("STINGY_FUZZ_EXAMPLES", "40"))
SLOW_EXAMPLES = int(os.environ.get("STINGY_FUZZ_SLOW_EXAMPLES", "2000"))
OPERATIONS = ("truncate", "flip", "delete", "swap_lines", "corrupt_json_line", "append")
ALLOWED = (ValueError, FileNotFoundError)


def mutate(path: Path, operation: str, position: int) -> None:
    """Apply one mutation to ``path``; ``position`` picks the byte or line it touches."""
    data = path.read_bytes()
    if operation == "delete":
        path.unlink()
    elif operation == "truncate":
        path.write_bytes(data[:position % max(len(data), 1)])
    elif operation == "flip" and data:
        index = position % len(data)
        path.write_bytes(data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:])
    elif operation == "append":
        path.write_bytes(data + b"\x00garbage\n")
    else:
        lines = data.split(b"\n")
        index = position % len(lines)
        if operation == "swap_lines" and len(lines) > 1:
            other = (index + 1) % len(lines)
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index] = b'{"epoch": '
        path.write_bytes(b"\n".join(lines))


def one_line(error: BaseException) -> None:
    assert isinstance(error, ALLOWED), f"{type(error).__name__}: {error}"
    assert "\n" not in str(error).strip(), str(error)


def _train(out: Path, resume: bool):
    recipe = load_recipe("cifar10-cnn-scratch", TINY)
    return train_recipe(recipe, dataset=tiny_dataset(), out=out, name="run", device="cpu",
                        resume=resume)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _train(out, resume=False)
    torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def topk_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("topk") / "rows.npz"
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 12, generator=generator)
    values, indices = logits.topk(3, dim=-1)
    save_topk_teacher(path, TopKTeacher(indices, values, 12))
    return path


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def check_resume(finished_run: Path, scratch: Path, file_index: int, operation: str,
                 position: int) -> None:
    copy = Path(shutil.copytree(finished_run, scratch / "out"))
    run = copy / "run"
    pristine_summary = json.loads((finished_run / "run" / SUMMARY).read_text())
    target = _files(run)[file_index % len(_files(run))]
    mutate(target, operation, position)
    event(f"{operation} {target.name}")
    before = set(_files(copy))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(copy, resume=True)
    except Exception as error:  # noqa: BLE001 - the outcome under test
        one_line(error)
        event("refused")
    else:
        state = read_state(run)
        assert state["state"] == "finished"
        summary = json.loads((run / SUMMARY).read_text())
        assert summary["test_accuracy"] == pristine_summary["test_accuracy"]
        event("correct result")
    finally:
        torch.set_num_threads(threads)
    assert before <= set(_files(copy)), sorted(str(p) for p in before - set(_files(copy)))


def check_topk(topk_file: Path, scratch: Path, operation: str, checksum: bool,
               position: int) -> None:
    folder = Path(shutil.copytree(topk_file.parent, scratch / "topk"))
    pristine = load_topk_teacher(topk_file)
    target = folder / (topk_file.name + (".sha256" if checksum else ""))
    mutate(target, operation, position)
    event(f"{operation} {target.name}")
    try:
        loaded = load_topk_teacher(folder / topk_file.name)
    except Exception as error:  # noqa: BLE001 - the outcome under test
        one_line(error)
        event("refused")
    else:
        assert torch.equal(loaded.indices, pristine.indices)
        assert torch.equal(loaded.values, pristine.values)
        event("correct result")


def _scratch():
    import tempfile

    return tempfile.TemporaryDirectory()


MUTATION = {"file_index": st.integers(0, 100), "operation": st.sampled_from(OPERATIONS),
            "position": st.integers(0, 10_000)}
RULES = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=EXAMPLES, **RULES)
@given(**MUTATION)
def test_a_mutated_finished_run_resumes_to_its_result_or_is_refused_in_one_line(
        finished_run, file_index, operation, position):
    with _scratch() as scratch:
        check_resume(finished_run, Path(scratch), file_index, operation, position)


@settings(max_examples=EXAMPLES, **RULES)
@given(operation=st.sampled_from(OPERATIONS), checksum=st.booleans(),
       position=st.integers(0, 10_000))
def test_a_mutated_top_k_file_reads_back_unchanged_or_is_refused(topk_file, operation, checksum,
                                                                 position):
    with _scratch() as scratch:
        check_topk(topk_file, Path(scratch), operation, checksum, position)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **RULES)
@given(**MUTATION)
def test_many_mutated_finished_runs(finished_run, file_index, operation, position):
    with _scratch() as scratch:
        check_resume(finished_run, Path(scratch), file_index, operation, position)
