"""``stingy lm`` at toy size: the whole path (corpus, tokenizer, teacher, stored rows, every
student, metrics, verdicts, figure), resuming, bad input and corrupt cached files."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import torch

from stingy.cli import main
from stingy.empirical import lm
from stingy.empirical.lm_corpus import load_corpus, read_tokenizer
from stingy.empirical.lm_metrics import calibration_error
from stingy.empirical.lm_rows import load_sampled_rows, sampled_path, save_sampled_rows, topk_path
from stingy.empirical.lm_settings import CorpusSettings, load_lm_settings, profile_names
from stingy.empirical.lm_students import students
from stingy.empirical.lm_verdicts import checks, verdicts
from stingy.theory.topk import load_topk_teacher

TOY = load_lm_settings("toy")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One toy run; every student checks that the prediction was written before it trained."""
    root = tmp_path_factory.mktemp("lm")
    out, cache = root / "out", root / "cache"
    train = lm.train_student

    def checked(*args, **kwargs):
        assert (out / "prediction.json").is_file()
        return train(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lm, "train_student", checked)
        result = lm.run_lm(TOY, out, cache, device="cpu", log=lambda line: None)
    return out, cache, result


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_toy_run_writes_every_student_its_metrics_verdicts_and_figure(toy_run):
    out, _, result = toy_run
    labels = ["scratch", "normal_kd", "stingy_kd-k1", "stingy_kd-k8", "stingy_kd-k64",
              "tail_bucket_kd-k8", "uniform_floor_kd-k8", "sampled_kd-s8", "sampled_kd-s64"]
    assert [row["student"] for row in result["summary"]] == labels
    runs = _rows(out / "runs.csv")
    assert len(runs) == len(labels) * TOY.distill.seeds
    for row in result["summary"]:
        assert row["seeds"] == TOY.distill.seeds
        for metric in lm.METRICS:
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
        assert 0 <= row["top1_agreement"] <= 1 and 0 <= row["ece"] <= 1
        assert row["kl_to_teacher"] >= 0 and row["cross_entropy"] > 0
    assert [(v["check"], v["student"]) for v in result["verdicts"]] == [
        (c["check"], c["student"]) for c in checks(TOY.distill)]
    assert all(v["outcome"] in ("pass", "fail") for v in result["verdicts"])
    assert json.loads((out / "verdicts.json").read_text()) == json.loads(
        json.dumps(result["verdicts"]))
    provenance = json.loads((out / "provenance.json").read_text())
    assert len(provenance["corpus"]["corpus_sha256"]) == 64 and provenance["teacher_key"]
    assert provenance["teacher_held_out"]["kl_to_teacher"] == pytest.approx(0, abs=1e-5)
    assert provenance["teacher_held_out"]["top1_agreement"] == 1
    assert (out / "lm.png").stat().st_size > 0 and (out / "lm.pdf").is_file()
    for path in out.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=pytest.fail)  # strict: no NaN, no Infinity


def test_rows_report_bytes_kept_mass_and_signal_to_drive(toy_run):
    out, _, _ = toy_run
    report = json.loads((out / "rows.json").read_text())
    sizes = {entry["rows"]: entry["bytes_per_token"] for entry in report["bytes_per_token"]}
    assert sizes["top-1"] < sizes["top-8"] < sizes["top-64"] < sizes[
        "full (dense float32, teacher online)"]
    assert sizes["sampled-8"] < sizes["sampled-64"]
    statistics = report["statistics"]
    assert [entry["k"] for entry in statistics] == list(TOY.distill.top_k)
    masses = [entry["kept_mass_mean"] for entry in statistics]
    assert all(0 < m <= 1 for m in masses) and masses == sorted(masses)
    assert statistics[0]["signal_to_drive_mean"] == 0  # one kept class: p~ = U_M


def test_a_rerun_reuses_the_teacher_and_every_student_and_resumes_a_missing_one(toy_run,
                                                                               monkeypatch):
    out, cache, result = toy_run
    missing = out / "students" / "stingy_kd-k8-seed1.json"
    stored = json.loads(missing.read_text())
    missing.unlink()
    trained = []
    monkeypatch.setattr("stingy.empirical.lm_teacher.train_teacher", pytest.fail)
    monkeypatch.setattr(lm, "train_student", lambda settings, transfer, name, k, seed: (
        trained.append((name, k, seed)) or stored))
    again = lm.run_lm(TOY, out, cache, device="cpu", log=lambda line: None)
    assert trained == [("stingy_kd", 8, 1)]
    assert again["summary"] == result["summary"] and again["verdicts"] == result["verdicts"]


def test_a_folder_of_other_settings_is_refused(toy_run):
    out, cache, _ = toy_run
    other = TOY.replace(distill=TOY.distill.replace(seeds=3))
    with pytest.raises(ValueError, match="other settings"):
        lm.run_lm(other, out, cache, device="cpu", log=lambda line: None)


@pytest.mark.parametrize("argv, needle", [
    (["--profile", "huge"], "--profile"),
    (["--set", "distill.fix_k=3"], "distill.fix_k"),
    (["--set", "teacher.width=33"], "multiple of heads"),
    (["--set", "distill.top_k=[1, 8, 999]"], "vocab_size"),
    (["--set", "student_training.steps=0"], "steps"),
    (["--set", "nonsense=1"], "nonsense"),
    (["--device", "tpu"], "--device"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(argv, needle, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    code = main(["lm", "--profile", "toy", "--out", str(out), "--cache", str(cache), *argv])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and needle in error, error
    assert list(tmp_path.iterdir()) == []


def _corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_cached_teacher_is_refused_in_one_line(toy_run, tmp_path, capsys):
    _, cache, _ = toy_run
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    _corrupt(next(copy.glob("teacher-*.pt")))
    code = main(["lm", "--profile", "toy", "--out", str(tmp_path / "out"), "--cache",
                 str(copy), "--quiet"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and "checksum" in error, error


def test_corrupt_tokenizer_and_rows_files_are_refused(toy_run, tmp_path):
    _, cache, _ = toy_run
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    tokenizer = next(copy.glob("tokenizer-*.json"))
    _corrupt(tokenizer)
    with pytest.raises(ValueError, match="checksum"):
        read_tokenizer(tokenizer)
    tokenizer.write_text("{not json")
    next(copy.glob("tokenizer-*.json.sha256")).unlink()
    with pytest.raises(ValueError, match="not a tokenizer"):
        read_tokenizer(tokenizer)
    folder = next(copy.glob("rows-*"))
    _corrupt(topk_path(folder, 8))
    with pytest.raises(ValueError, match="checksum"):
        load_topk_teacher(topk_path(folder, 8))
    _corrupt(sampled_path(folder, 8))
    with pytest.raises(ValueError, match="checksum"):
        load_sampled_rows(sampled_path(folder, 8), 320, 1.0)


def test_sampled_rows_of_another_vocabulary_or_temperature_are_refused(tmp_path):
    path = save_sampled_rows(tmp_path / "s.npz", torch.tensor([[0, 3], [2, 2]]), 5, 1.0)
    rows = load_sampled_rows(path, 5, 1.0)
    assert rows.indices.tolist() == [[0, 3], [2, 2]] and rows.weights.tolist() == [[0.5] * 2] * 2
    for classes, temperature in ((4, 1.0), (5, 2.0)):
        with pytest.raises(ValueError, match="sampled rows"):
            load_sampled_rows(path, classes, temperature)


def test_the_corpus_leaves_out_tests_holds_out_every_nth_file_and_hashes_bytes(tmp_path):
    for name in ("a", "b", "c", "d", "e", "f"):
        (tmp_path / f"{name}.py").write_text(f"{name} = 1\n")
    (tmp_path / "test_a.py").write_text("skip\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "g.py").write_text("skip\n")
    settings = CorpusSettings(max_bytes=10_000, held_out_every=3)
    corpus = load_corpus(settings, tmp_path)
    assert corpus.files == 6 and len(corpus.held_out) == 2 and len(corpus.train) == 4
    assert "skip\n" not in corpus.train + corpus.held_out
    assert load_corpus(settings, tmp_path).digest == corpus.digest
    (tmp_path / "a.py").write_text("a = 2\n")
    assert load_corpus(settings, tmp_path).digest != corpus.digest
    with pytest.raises(ValueError, match="held_out_every"):
        load_corpus(CorpusSettings(max_bytes=1, held_out_every=3), tmp_path)


def test_profiles_and_the_students_they_train():
    assert set(profile_names()) == {"default", "toy", "gpu"}
    for name in ("default", "gpu"):
        settings = load_lm_settings(name)
        assert settings.tokenizer.vocab_size >= 4096 and settings.distill.seeds >= 3
        assert settings.distill.top_k == (1, 8, 64) and settings.distill.samples == (8, 64)
    assert len(students(TOY.distill)) == 9
    assert load_lm_settings("toy", ["teacher.width=64"]).teacher.layers == TOY.teacher.layers


def test_calibration_error_by_hand():
    confidence = torch.tensor([0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([True, False, True, True])
    # bin 9: |1.9 - 1| = 0.9; bin 5: |1.1 - 2| = 0.9; over 4 tokens
    assert calibration_error(confidence, correct, 10) == pytest.approx(0.45)


def test_verdicts_follow_their_rules():
    prediction = {"cells": checks(TOY.distill)}
    results = []
    for seed, noise in enumerate((0.0, 0.01, -0.01)):
        for student, value in (("normal_kd", 2.0), ("stingy_kd-k1", 2.5), ("stingy_kd-k8", 2.4),
                               ("stingy_kd-k64", 2.0), ("sampled_kd-s64", 2.0),
                               ("tail_bucket_kd-k8", 2.2), ("uniform_floor_kd-k8", 2.6)):
            results.append({"student": student, "seed": seed, "cross_entropy": value + noise,
                             "ece": value / 10 + noise})
    outcomes = {v["student"]: v["outcome"] for v in verdicts(prediction, results, 8)}
    assert outcomes == {"stingy_kd-k1": "pass", "stingy_kd-k8": "pass", "stingy_kd-k64": "fail",
                        "sampled_kd-s64": "pass", "tail_bucket_kd-k8": "pass",
                        "uniform_floor_kd-k8": "fail"}
    assert all(math.isfinite(v["cross_entropy_numbers"]["mean"])
               for v in verdicts(prediction, results, 8))
