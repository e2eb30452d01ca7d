"""DAFL runs through a recipe: dense and stingy release, summary, resumable run directory."""

from __future__ import annotations

import json

import pytest

from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import MODEL
from stingy.empirical.train import train_recipe
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)

DAFL_TINY = [*TINY, "model.name=cnn", "dafl.steps=2", "dafl.batch_size=8",
             "dafl.latent_dim=16", "dafl.log_every=1"]


def test_dafl_recipes_train_a_student_from_dense_and_stingy_teachers(tmp_path):
    dataset = tiny_dataset()
    train_recipe(load_recipe("cifar10-cnn-scratch", TINY), dataset=dataset, out=tmp_path,
                 name="teacher", device="cpu")
    dense = train_recipe(load_recipe("cifar10-dafl", DAFL_TINY), dataset=dataset, out=tmp_path,
                         name="dense", device="cpu", teacher=tmp_path / "teacher")
    stingy = train_recipe(load_recipe("cifar10-dafl-stingy", DAFL_TINY), dataset=dataset,
                          out=tmp_path, name="stingy", device="cpu", teacher=tmp_path / "teacher")
    assert dense["released_k"] is None and stingy["released_k"] == 2
    for summary, name in [(dense, "dense"), (stingy, "stingy")]:
        assert summary["dafl_steps"] == 2 and 0 <= summary["test_accuracy"] <= 1
        history = json.loads((tmp_path / name / "dafl_history.json").read_text())
        assert [record["student_lr"] for record in history] == pytest.approx([0.01, 0.001])
        assert (tmp_path / name / MODEL).is_file()


def test_a_dafl_student_broken_by_its_last_step_fails_the_run(tmp_path):
    from stingy.empirical.runs import SUMMARY, read_state
    from stingy.io import Diverged

    dataset = tiny_dataset()
    train_recipe(load_recipe("cifar10-cnn-scratch", TINY), dataset=dataset, out=tmp_path,
                 name="teacher", device="cpu")
    recipe = load_recipe("cifar10-dafl", [*DAFL_TINY, "dafl.steps=1", "optim.lr=3e38"])
    with pytest.raises(Diverged, match="diverged at step 1: the student's outputs"):
        train_recipe(recipe, dataset=dataset, out=tmp_path, name="dafl", device="cpu",
                     teacher=tmp_path / "teacher")
    assert read_state(tmp_path / "dafl")["state"] == "failed"
    assert not (tmp_path / "dafl" / MODEL).exists() and not (tmp_path / "dafl" / SUMMARY).exists()
