"""No host-device synchronisation in a training step: every value a step computes stays on the
device. Counted on the CPU as the reads of a tensor's value into Python
(``aten._local_scalar_dense``, what ``.item()``, ``float()`` and ``bool()`` of a tensor call):
on CUDA each such read waits for the stream."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from stingy.empirical.bank import AugmentStream, LogitBank
from stingy.empirical.batched import GroupSettings, Student, StudentGroup, train_epoch
from stingy.empirical.dafl import Generator, build_state, dafl_step
from stingy.empirical.engine import setup_run, train_epoch as engine_epoch
from stingy.empirical.models import build_model
from stingy.empirical.recipes import build_recipe, load_recipe
from stingy.methods import MethodSettings
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)

READ = torch.ops.aten._local_scalar_dense.default


class ScalarReads(TorchDispatchMode):
    """Counts the reads of a tensor's value into Python while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is READ
        return func(*args, **(kwargs or {}))


def test_the_counter_sees_a_read():
    with ScalarReads() as reads:
        float(torch.ones(2).sum())
        torch.ones(2).sum().item()
    assert reads.count == 2


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_engine_epoch_reads_once_however_many_steps(tmp_path, optimizer):
    """Stingy KD from a teacher model: the teacher's forward, the objective, the optimizer and
    the schedule of 3 steps, then the one read of the epoch's summed loss."""
    recipe = load_recipe("cifar10-cnn-stingy", [*TINY, f"optim.name={optimizer}"])
    torch.manual_seed(0)
    run = setup_run(recipe, tiny_dataset(), build_model("cnn", 10), build_model("cnn", 10),
                    tmp_path, torch.device("cpu"), None)
    assert run.steps_per_epoch == 3
    with ScalarReads() as reads:
        engine_epoch(run, 0)
    assert reads.count == 1


def test_a_batched_epoch_of_every_kind_of_student_reads_nothing(tmp_path):
    data = tiny_dataset()
    from stingy.empirical.engine import device_splits

    train, _ = device_splits(data, build_recipe({}), torch.device("cpu"))
    stream = AugmentStream(0, 16)
    torch.manual_seed(0)
    banks = {"teacher": LogitBank(tmp_path, build_model("cnn", 10), train, stream)}
    bank_epochs = {"teacher": banks["teacher"].epoch(0, "cpu")}
    students = [Student("scratch", MethodSettings("scratch")),
                Student("kd", MethodSettings("normal_kd"), "teacher"),
                Student("stingy", MethodSettings("stingy_kd", k=2), "teacher"),
                Student("bucket", MethodSettings("tail_bucket_kd", k=2), "teacher"),
                Student("reversed", MethodSettings("reversed_kd"), "teacher")]
    objectives = [s.method.entry.objective(s.method, 10) for s in students]
    group = StudentGroup(GroupSettings("cnn", 1, 16, 0.05, mode="loop"), len(students), 10, 0,
                         "cpu")
    scheduler = torch.optim.lr_scheduler.LambdaLR(group.optimizer, lambda step: 1.0)
    with ScalarReads() as reads:
        sums = train_epoch(group, students, objectives, train, stream, bank_epochs, 0, scheduler)
    assert reads.count == 0 and sums.shape == (len(students),)


def test_dafl_steps_read_nothing_between_logs():
    recipe = build_recipe({"method": {"name": "dafl_kd", "alpha": 1.0, "ratio": 0.2},
                           "optim": {"lr": 0.05},
                           "dafl": {"steps": 10, "batch_size": 4, "latent_dim": 8}})
    torch.manual_seed(0)
    teacher, student = build_model("cnn", 10).eval(), build_model("cnn", 10)
    state = build_state(student, recipe, torch.device("cpu"), Generator(8))
    objective = recipe.entry.objective(recipe.method, 10)
    autocast = torch.autocast("cpu", enabled=False)
    teacher.requires_grad_(False)
    with ScalarReads() as reads:
        for _ in range(3):
            dafl_step(state, teacher, objective, recipe.dafl, autocast, torch.device("cpu"))
    assert reads.count == 0
