"""`--teacher` takes a model.pt, a plain state_dict with --arch, or precomputed logits (.npy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stingy.cli import main
from stingy.empirical.engine import DeviceData, balanced_subset, predict
from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import MODEL
from stingy.empirical.engine import normalisation
from stingy.empirical.train import load_teacher, train_recipe
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset and a teacher trained on it (model.pt)."""
    torch.set_num_threads(1)
    dataset = tiny_dataset(train=60, test=20)
    out = tmp_path_factory.mktemp("teacher")
    train_recipe(load_recipe("cifar10-cnn-scratch", [*TINY, "schedule.epochs=1"]),
                 dataset=dataset, out=out, name="teacher", device="cpu")
    return dataset, out / "teacher" / MODEL


def _distil(dataset, out, name, **teacher):
    recipe = load_recipe("cifar10-cnn-kd", [*TINY, "train.augment=false",
                                            "data.train_subset=40"])
    return train_recipe(recipe, dataset=dataset, out=out, name=name, device="cpu", **teacher)


def _train_logits(model, dataset) -> np.ndarray:
    mean, std = normalisation("cifar10")
    data = DeviceData(dataset.train_images, dataset.train_labels, mean, std, "cpu")
    return predict(model, data, 1000, False, False).numpy()


def test_state_dict_with_arch_and_precomputed_logits_train_like_the_model_file(trained,
                                                                               tmp_path):
    dataset, model_file = trained
    model, _ = load_teacher(model_file, 10)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    np.save(tmp_path / "logits.npy", _train_logits(model, dataset))
    reference = _distil(dataset, tmp_path, "model-file", teacher=model_file)
    from_state = _distil(dataset, tmp_path, "state-dict", teacher=tmp_path / "weights.pt",
                         teacher_arch="cnn")
    _distil(dataset, tmp_path, "logits", teacher=tmp_path / "logits.npy")
    assert from_state["test_accuracy"] == reference["test_accuracy"]
    history = [json.loads(line) for line in
               (tmp_path / "model-file" / "metrics.jsonl").read_text().splitlines()]
    for name in ("state-dict", "logits"):
        other = [json.loads(line) for line in
                 (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        for mine, theirs in zip(other, history, strict=True):
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4), name


def test_precomputed_logits_are_taken_by_training_image_index(trained, tmp_path):
    """Logits of the wrong rows (shuffled) change the training: the rows are used by index."""
    dataset, model_file = trained
    model, _ = load_teacher(model_file, 10)
    logits = _train_logits(model, dataset)
    np.save(tmp_path / "right.npy", logits)
    kept = balanced_subset(dataset.train_labels, 40, 0).numpy()
    shuffled = logits.copy()
    shuffled[kept] = logits[kept[::-1]]
    np.save(tmp_path / "shuffled.npy", shuffled)
    right = _distil(dataset, tmp_path, "right", teacher=tmp_path / "right.npy")
    _distil(dataset, tmp_path, "wrong", teacher=tmp_path / "shuffled.npy")
    assert right["test_accuracy"] is not None
    first = [json.loads(line)["train_loss"] for line in
             (tmp_path / "right" / "metrics.jsonl").read_text().splitlines()]
    second = [json.loads(line)["train_loss"] for line in
              (tmp_path / "wrong" / "metrics.jsonl").read_text().splitlines()]
    assert first != pytest.approx(second, rel=1e-3)


@pytest.mark.parametrize("write, extra, message", [
    (lambda p: np.save(p / "t.npy", np.zeros((3, 10))), [], "shape (training images"),
    (lambda p: np.save(p / "t.npy", np.array([object()] * 40 * 10).reshape(40, 10)), [],
     "not a numeric .npy"),
    (lambda p: np.save(p / "t.npy", np.full((40, 10), np.nan)), [], "finite"),
    (lambda p: torch.save({"weight": torch.zeros(2)}, p / "t.pt"), ["--arch", "cnn"],
     "does not fit --arch cnn"),
    (lambda p: torch.save({"a": [1, 2]}, p / "t.pt"), ["--arch", "cnn"], "state_dict"),
])
def test_a_bad_teacher_file_is_one_line_and_exit_2(write, extra, message, tmp_path, capsys,
                                                   monkeypatch):
    from tests.empirical.tiny import write_image_folder

    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "images")
    write(tmp_path)
    teacher = next(tmp_path.glob("t.*"))
    code = main(["distill", "cifar10-cnn-kd", "--teacher", str(teacher), *extra, "--data",
                 str(folder), "--out", str(tmp_path / "runs"), "--set", "schedule.epochs=1",
                 "--set", "train.progress=false", "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and message in error, error


def _npy_cases(folder):
    import numpy as np

    empty = folder / "empty.npy"
    empty.write_bytes(b"")
    npz = folder / "npz.npy"
    with open(npz, "wb") as f:
        np.savez(f, a=np.zeros(3))
    huge = folder / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (10**14, 10)})
    truncated = folder / "truncated.npy"
    np.save(truncated, np.zeros((4, 10), dtype=np.float32))
    truncated.write_bytes(truncated.read_bytes()[:-20])
    return {"empty": empty, "npz": npz, "huge": huge, "truncated": truncated}


@pytest.mark.parametrize("case", ["empty", "npz", "huge", "truncated"])
def test_a_bad_logits_file_is_one_value_error_before_any_allocation(tmp_path, case):
    from stingy.empirical.train import load_teacher_logits

    path = _npy_cases(tmp_path)[case]
    with pytest.raises(ValueError, match="--teacher") as error:
        load_teacher_logits(path, 4, 10)
    assert "\n" not in str(error.value)
