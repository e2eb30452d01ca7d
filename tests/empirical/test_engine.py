"""The training loop on tiny in-memory data: run directories, metrics, resume, subsets."""

from __future__ import annotations

import json

import pytest
import torch

from stingy.empirical.engine import RunControl, balanced_subset, batch_count, batch_rows
from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import CHECKPOINT, METRICS, MODEL, RECIPE, load_checkpoint
from stingy.empirical.train import train_recipe
from stingy.io import read_jsonl
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)


def train(tmp_path, recipe_name="cifar10-cnn-scratch", extra=(), **kwargs):
    recipe = load_recipe(recipe_name, [*TINY, *extra])
    control = RunControl(stop_after_epochs=kwargs.pop("stop_after_epochs", None))
    return train_recipe(recipe, dataset=kwargs.pop("dataset", tiny_dataset()), out=tmp_path,
                        device="cpu", control=control, **kwargs)


def without_time(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_run_writes_recipe_metrics_checkpoint_model_and_summary(tmp_path):
    summary = train(tmp_path, name="teacher")
    directory = tmp_path / "teacher"
    for name in (RECIPE, METRICS, CHECKPOINT, MODEL, "summary.json"):
        assert (directory / name).is_file(), name
    records = read_jsonl(directory / METRICS)
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("lr", "train_loss", "test_accuracy", "test_loss", "seconds"):
        assert key in records[0]
    assert summary["finished"] and summary["test_accuracy"] == records[-1]["test_accuracy"]
    state = load_checkpoint(directory)
    assert state["epoch"] == 2
    assert set(state["random"]["generators"]) == {"data_order", "augment"}


def test_existing_run_directory_is_an_error_naming_out_and_name(tmp_path):
    train(tmp_path, name="same")
    with pytest.raises(ValueError, match="--name"):
        train(tmp_path, name="same")


def test_resume_needs_a_name_of_an_existing_run(tmp_path):
    with pytest.raises(ValueError, match="--name"):
        train(tmp_path, resume=True)
    with pytest.raises(ValueError, match="no run directory"):
        train(tmp_path, name="missing", resume=True)


@pytest.mark.parametrize("recipe_name", ["cifar10-cnn-scratch", "cifar10-cnn-stingy"])
def test_resume_after_a_stop_matches_an_uninterrupted_run_exactly(tmp_path, recipe_name):
    extra = ["schedule.epochs=3", "optim.name=sgd", "optim.lr=0.05",
             "schedule.name=multistep", "schedule.milestones=[2]"]
    teacher = None
    if recipe_name != "cifar10-cnn-scratch":
        train(tmp_path, name="teacher")
        teacher = tmp_path / "teacher"
    train(tmp_path, recipe_name, extra, name="full", teacher=teacher)
    stopped = train(tmp_path, recipe_name, extra, name="cut", teacher=teacher, stop_after_epochs=1)
    assert not stopped["finished"] and not (tmp_path / "cut" / MODEL).exists()
    resumed = train(tmp_path, recipe_name, extra, name="cut", teacher=teacher, resume=True)
    assert resumed["finished"] and resumed["epochs_done"] == 3
    assert without_time(read_jsonl(tmp_path / "cut" / METRICS)) == \
        without_time(read_jsonl(tmp_path / "full" / METRICS))
    full_state = torch.load(tmp_path / "full" / MODEL, weights_only=False)["state_dict"]
    cut_state = torch.load(tmp_path / "cut" / MODEL, weights_only=False)["state_dict"]
    for key in full_state:
        assert torch.equal(full_state[key], cut_state[key]), key


def test_resume_drops_metric_lines_logged_after_the_last_checkpoint(tmp_path):
    train(tmp_path, name="run", stop_after_epochs=1)
    with open(tmp_path / "run" / METRICS, "a") as f:  # as if killed after logging epoch 2
        f.write(json.dumps({"epoch": 2, "test_accuracy": -1.0}) + "\n")
    train(tmp_path, name="run", resume=True)
    records = read_jsonl(tmp_path / "run" / METRICS)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["test_accuracy"] >= 0


def test_resume_with_a_different_recipe_is_refused(tmp_path):
    train(tmp_path, name="run", stop_after_epochs=1)
    with pytest.raises(ValueError, match="recipe differs"):
        train(tmp_path, extra=["optim.lr=0.5"], name="run", resume=True)


def test_stingy_kd_logs_the_logit_gap_next_to_the_t4_drive(tmp_path):
    train(tmp_path, name="teacher")
    train(tmp_path, "cifar10-cnn-stingy", name="stingy", teacher=tmp_path / "teacher")
    record = read_jsonl(tmp_path / "stingy" / METRICS)[-1]
    assert {"logit_gap", "t4_order_t", "t4_exact", "train_loss"} <= set(record)
    # order-T drive term = -T (1 - r) * gap, T = 20, r = 0.2
    assert record["t4_order_t"] == pytest.approx(-20 * 0.8 * record["logit_gap"], rel=1e-4,
                                                 abs=1e-6)


def test_distilling_recipes_need_a_teacher_and_scratch_refuses_one(tmp_path):
    with pytest.raises(ValueError, match="--teacher"):
        train(tmp_path, "cifar10-cnn-kd")
    train(tmp_path, name="teacher")
    with pytest.raises(ValueError, match="scratch"):
        train(tmp_path, teacher=tmp_path / "teacher", name="x")


def test_teacher_with_other_class_count_is_refused(tmp_path):
    train(tmp_path, name="teacher")
    with pytest.raises(ValueError, match="classes"):
        train(tmp_path, "cifar10-cnn-kd", name="kd", teacher=tmp_path / "teacher",
              dataset=tiny_dataset(classes=5))


def test_nasty_and_reversed_and_within_runs_finish(tmp_path):
    train(tmp_path, name="teacher")
    for recipe_name, name in [("cifar10-nasty", "nasty"), ("cifar10-reversed", "rev"),
                              ("cifar10-within", "within")]:
        summary = train(tmp_path, recipe_name, ["model.name=cnn", "schedule.epochs=1"],
                        name=name, teacher=tmp_path / "teacher")
        assert summary["finished"] and 0 <= summary["test_accuracy"] <= 1


def test_balanced_subset_is_class_balanced_nested_and_seeded():
    labels = torch.arange(1000) % 10
    small, large = balanced_subset(labels, 40, 3), balanced_subset(labels, 200, 3)
    assert torch.bincount(labels[small], minlength=10).tolist() == [4] * 10
    assert set(small.tolist()) <= set(large.tolist())
    assert torch.equal(small, balanced_subset(labels, 40, 3))
    assert not torch.equal(small, balanced_subset(labels, 40, 4))
    assert len(balanced_subset(labels, 0, 3)) == 1000


def test_sparse_checkpoints_resume_from_the_last_one_and_still_match(tmp_path):
    extra = ["schedule.epochs=4", "train.checkpoint_every=2"]
    train(tmp_path, extra=extra, name="full")
    train(tmp_path, extra=extra, name="cut", stop_after_epochs=3)
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 2
    assert len(read_jsonl(tmp_path / "cut" / METRICS)) == 3
    train(tmp_path, extra=extra, name="cut", resume=True)
    assert without_time(read_jsonl(tmp_path / "cut" / METRICS)) == \
        without_time(read_jsonl(tmp_path / "full" / METRICS))


@pytest.mark.parametrize("size, batch_size, smallest, sizes", [
    (33, 16, 2, [16, 17]), (32, 16, 2, [16, 16]), (34, 16, 2, [16, 16, 2]), (1, 16, 2, [1]),
    (201, 100, 2, [100, 101]), (35, 16, 4, [16, 19])])
def test_batches_cover_every_example_once_and_none_is_too_small(size, batch_size, smallest,
                                                                sizes):
    batches = [list(range(size))[batch_rows(step, size, batch_size, smallest)]
               for step in range(batch_count(size, batch_size, smallest))]
    assert [len(batch) for batch in batches] == sizes
    assert sum(batches, []) == list(range(size))


def test_a_last_batch_of_one_image_does_not_break_batch_norm(tmp_path):
    summary = train(tmp_path, name="run", dataset=tiny_dataset(train=33))  # 16 + 16 + 1
    assert summary["finished"]
    assert [r["images"] for r in read_jsonl(tmp_path / "run" / METRICS)] == [33, 33]
