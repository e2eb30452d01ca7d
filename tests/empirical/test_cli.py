"""The empirical sub-commands end to end on a tiny image folder, and their one-line errors."""

from __future__ import annotations

import json

import pytest

from stingy.empirical.runs import MODEL
from stingy.cli import main
from tests.empirical.tiny import single_thread, write_image_folder  # noqa: F401 (fixture)

SMALL = ["--set", "schedule.epochs=1", "--set", "train.batch_size=16",
         "--set", "train.progress=false", "--device", "cpu"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "cache"))
    return write_image_folder(tmp_path / "images")


def test_train_distill_and_teacher_theory_commands(folder, tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--data", str(folder), "--out", str(runs), *SMALL]
    assert main(["train", "cifar10-cnn-scratch", "--name", "teacher", *common]) == 0
    assert (runs / "teacher" / MODEL).is_file()
    assert main(["distill", "cifar10-cnn-stingy", "--teacher", str(runs / "teacher"),
                 "--name", "stingy", *common]) == 0
    summary = json.loads((runs / "stingy" / "summary.json").read_text())
    assert summary["teacher"]["model_name"] == "cnn" and summary["finished"]
    assert "logit_gap" in capsys.readouterr().out
    assert main(["teacher-theory", "--teacher", str(runs / "teacher" / MODEL), "--data",
                 str(folder), "--out", str(tmp_path / "theory"), "--device", "cpu"]) == 0
    assert (tmp_path / "theory" / "teacher_theory.csv").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "cifar10-cnn-kd"], "stingy distill"),
    (["train", "no-such-recipe"], "recipe must be"),
    (["train", "cifar10-cnn-scratch", "--set", "optim.lr=-1"], "optim.lr"),
    (["distill", "cifar10-cnn-scratch", "--teacher", "x"], "stingy train"),
    (["distill", "cifar10-cnn-kd", "--teacher", "missing.pt"], "--teacher"),
    (["train", "cifar10-cnn-scratch", "--resume"], "--name"),
    (["train", "cifar10-cnn-scratch", "--device", "tpu"], "--device"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, folder, tmp_path, capsys):
    code = main([*argv, "--data", str(folder), "--out", str(tmp_path / "runs")])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert len(error.splitlines()) == 1 and message in error, error


def test_an_existing_run_name_is_refused(folder, tmp_path, capsys):
    argv = ["train", "cifar10-cnn-scratch", "--name", "same", "--data", str(folder),
            "--out", str(tmp_path / "runs"), *SMALL]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
