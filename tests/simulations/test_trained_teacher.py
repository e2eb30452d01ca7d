"""The trained-teacher path: a wide MLP trained on each seed's noisy labels gives finite
per-seed logits of the right shapes, learns the task, and can be rescaled to a logit range."""

from __future__ import annotations

import pytest
import torch

from stingy.simulations.config import load_config
from stingy.simulations.sweep import make_setting_data
from stingy.simulations.teachers import mean_logit_range

EASY = {"task.classes": 10, "task.superclass_size": 5, "task.train_size": 400,
        "task.test_size": 300, "student.seeds": 2, "student.batch_size": 50,
        "task.superclass_spread": 3.0, "task.member_spread": 2.0,  # well separated: learnable
        "teacher.kind": "trained", "teacher.hidden": 32, "teacher.epochs": 15,
        "teacher.lr": 0.01}


def easy_config(**flags):
    return load_config(None, {**EASY, **flags})


def test_trained_teacher_logits_are_per_seed_finite_and_learn_the_task():
    setting = make_setting_data(easy_config(), 0.2, "symmetric")
    assert setting["train_teacher"].shape == (2, 400, 10)
    assert setting["test_teacher"].shape == (2, 300, 10)
    assert torch.isfinite(setting["train_teacher"]).all()
    assert not torch.equal(setting["test_teacher"][0], setting["test_teacher"][1])  # own seed
    bayes = (setting["test_log_posterior"].argmax(-1) == setting["test_y"]).double().mean()
    teacher = (setting["test_teacher"].argmax(-1) == setting["test_y"]).double().mean(1)
    assert bayes > 0.8
    assert bool((teacher > 0.6).all()), (teacher, bayes)  # chance is 0.1


def test_trained_teacher_can_be_rescaled_to_a_logit_range():
    setting = make_setting_data(easy_config(**{"teacher.logit_range": 7.0}), 0.2, "symmetric")
    assert float(mean_logit_range(setting["train_teacher"])) == pytest.approx(7.0, rel=1e-4)
