"""Smoke run on the real offline CIFAR-10 (JPEG q75 mirror): load, train a CNN on 600
images, distil a stingy student from it. Skipped (with the path) when the archive is absent."""

from __future__ import annotations

from stingy.empirical.data import load_dataset
from stingy.empirical.recipes import load_recipe
from stingy.empirical.train import train_recipe
from stingy.io import read_jsonl
from tests.empirical.tiny import single_thread  # noqa: F401 (fixture)

SMALL = ["data.train_subset=600", "data.test_subset=500", "schedule.epochs=2",
         "optim.lr=3e-3", "schedule.name=onecycle", "train.progress=false"]


def test_cnn_learns_real_cifar10_and_a_stingy_student_runs(cifar10_jpeg_archive, tmp_path):
    dataset = load_dataset("cifar10", data=cifar10_jpeg_archive, progress=False)
    assert dataset.train_images.shape == (50000, 32, 32, 3)
    teacher = train_recipe(load_recipe("cifar10-cnn-scratch", SMALL), dataset=dataset,
                           out=tmp_path, name="teacher", device="cpu")
    print("teacher test accuracy", teacher["test_accuracy"])
    assert teacher["test_accuracy"] > 0.15  # chance is 0.1
    student = train_recipe(load_recipe("cifar10-cnn-stingy", [*SMALL, "schedule.epochs=1"]),
                           dataset=dataset, out=tmp_path, name="stingy", device="cpu",
                           teacher=tmp_path / "teacher")
    record = read_jsonl(tmp_path / "stingy" / "metrics.jsonl")[-1]
    assert student["finished"] and record["logit_gap"] == record["logit_gap"]  # not nan
