"""Batched students: vmap = loop = one at a time, the loss formula, resume, bad settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from .tiny import single_thread  # noqa: F401 - fixture

from stingy.empirical.bank import AugmentStream, LogitBank
from stingy.empirical.batched import (
    GroupSettings,
    Student,
    epoch_teacher_logits,
    student_loss,
    train_group,
)
from stingy.empirical.engine import DeviceData
from stingy.empirical.models import build_model
from stingy.theory.operators import kd_loss, reverse_logits

STUDENTS = [Student("scratch", "scratch"), Student("kd", "normal_kd", "teacher", 4.0, 0.9),
            Student("stingy", "stingy_kd", "teacher", 4.0, 0.9, k=2),
            Student("within", "within_m_kd", "teacher", 4.0, 0.9, k=2),
            Student("reversed", "reversed_kd", "teacher", 2.0, 0.5)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # uniform random pixels: no flat regions, so no max-pool ties (see below)
    generator = torch.Generator().manual_seed(0)

    def split(n):
        pixels = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (n,), generator=generator)
        return DeviceData(pixels, labels, (0.5,) * 3, (0.25,) * 3, "cpu")

    train, test = split(48), split(16)
    torch.manual_seed(0)
    teacher = build_model("cnn", 10)
    streams = {True: AugmentStream(0, 16), False: AugmentStream(0, 16, augment=False)}
    banks = {augment: {"teacher": LogitBank(tmp_path_factory.mktemp("bank"), teacher, train,
                                            stream)}
             for augment, stream in streams.items()}
    return train, test, streams, banks


def train(setup, students, mode="loop", epochs=2, augment=True, **kwargs):
    train_data, test, streams, banks = setup
    stream, banks = streams[augment], banks[augment]
    settings = GroupSettings("cnn", epochs, 16, 0.05, mode=mode,
                             ema_decay=kwargs.pop("ema_decay", 0.0))
    return train_group(settings, students, train_data, test, stream, banks, num_classes=10,
                       init_seed=0, device="cpu", **kwargs)


def test_vmap_and_loop_train_the_same_students(setup):
    # without augmentation: the black crop padding makes max-pool ties, whose (equally valid)
    # subgradient vmap's batching rule routes to another position than the plain kernel
    loop = train(setup, STUDENTS, "loop", augment=False)["test_logits"]
    vmapped = train(setup, STUDENTS, "vmap", augment=False)["test_logits"]
    torch.testing.assert_close(vmapped, loop, rtol=1e-4, atol=1e-4)


def test_each_student_in_a_group_trains_as_if_alone(setup):
    together = train(setup, STUDENTS)["test_logits"]
    for index, student in enumerate(STUDENTS):
        alone = train(setup, [student])["test_logits"][0]
        torch.testing.assert_close(together[index], alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0], together[2], atol=1e-3)  # methods differ


@pytest.mark.parametrize("student", STUDENTS[1:4], ids=lambda s: s.label)
def test_student_loss_of_kd_methods_is_the_checked_kd_loss(student):
    torch.manual_seed(1)
    logits, teacher = torch.randn(6, 10), torch.randn(6, 10)
    labels = torch.randint(0, 10, (6,))
    within = student.method == "within_m_kd"
    reference = kd_loss(logits, teacher, labels, student.temperature, student.alpha,
                        k=student.k, within_kept=within)
    torch.testing.assert_close(student_loss(student, logits, teacher, labels), reference)


def test_reversed_students_learn_from_reversed_bank_logits():
    teacher = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    reversed_ = epoch_teacher_logits(teacher, ("teacher", True))
    assert torch.equal(reversed_, reverse_logits(teacher))
    assert torch.equal(epoch_teacher_logits(teacher, ("teacher", False)), teacher)


def test_scratch_and_nasty_losses_follow_their_formulas():
    torch.manual_seed(2)
    logits, teacher = torch.randn(5, 10), torch.randn(5, 10)
    labels = torch.randint(0, 10, (5,))
    scratch = student_loss(Student("s", "scratch"), logits, None, labels, label_smoothing=0.1)
    torch.testing.assert_close(scratch, F.cross_entropy(logits, labels, label_smoothing=0.1))
    nasty = Student("n", "nasty_teacher", "teacher", temperature=4.0, nasty_weight=0.04)
    expected = F.cross_entropy(logits, labels) - 0.04 * kd_loss(logits, teacher, labels, 4.0,
                                                                1.0)
    torch.testing.assert_close(student_loss(nasty, logits, teacher, labels), expected)


def test_a_resumed_group_equals_an_uninterrupted_one(setup, tmp_path):
    full = train(setup, STUDENTS[:3], epochs=3, ema_decay=0.9)
    first = train(setup, STUDENTS[:3], epochs=3, ema_decay=0.9, directory=tmp_path,
                  stop_after_epochs=1)
    assert not first["finished"] and first["test_logits"] is None
    resumed = train(setup, STUDENTS[:3], epochs=3, ema_decay=0.9, directory=tmp_path)
    assert resumed["finished"] and len(resumed["history"]) == 3
    torch.testing.assert_close(resumed["test_logits"], full["test_logits"])


def test_ema_changes_the_evaluated_model(setup):
    plain = train(setup, STUDENTS[:1])["test_logits"]
    averaged = train(setup, STUDENTS[:1], ema_decay=0.9)["test_logits"]
    assert not torch.allclose(plain, averaged)


INVALID = [
    (lambda: Student("x", "dafl_kd", "teacher"), "method must be one of"),
    (lambda: Student("x", "kd", "teacher"), "method must be one of"),
    (lambda: Student("x", "normal_kd"), "teacher must be given"),
    (lambda: Student("x", "scratch", "teacher"), "teacher must be given"),
    (lambda: Student("x", "stingy_kd", "teacher"), "needs k >= 1"),
    (lambda: Student("x", "normal_kd", "teacher", temperature=0.0), "temperature"),
    (lambda: GroupSettings("vgg", 1, 16, 0.1), "model must be one of"),
    (lambda: GroupSettings("cnn", 1, 16, 0.1, mode="streams"), "mode must be one of"),
    (lambda: GroupSettings("cnn", 1, 16, 0.1, compile="max"), "compile must be one of"),
    (lambda: GroupSettings("cnn", 0, 16, 0.1), "epochs must be an integer"),
    (lambda: GroupSettings("cnn", 1, 16, 0.1, ema_decay=1.0), "ema_decay"),
]


@pytest.mark.parametrize("make, message", INVALID)
def test_invalid_settings_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_bank_of_another_stream_is_refused(setup):
    train_data, test, _, banks = setup
    with pytest.raises(ValueError, match="would not see the bank's batches"):
        train_group(GroupSettings("cnn", 1, 8, 0.05), STUDENTS[1:2], train_data, test,
                    AugmentStream(0, 8), banks[True], num_classes=10, init_seed=0,
                    device="cpu")


def test_student_benchmark_reports_every_case_with_a_positive_rate():
    from stingy.benchmarks.bench_students import bench_students, students_markdown

    result = bench_students(images=32, batch_size=16, epochs=1, group_size=2)
    assert [(c["mode"], c["students"]) for c in result["cases"]] == [
        ("loop", 1), ("loop", 1), ("vmap", 2), ("loop", 2), ("loop", 1)]
    for case in result["cases"]:
        assert case["aggregate_images_per_second"] == pytest.approx(
            case["students"] * case["images_per_second_per_student"])
        assert case["images_per_second_per_student"] > 0
    assert students_markdown(result).count("\n| ") == len(result["cases"]) + 1
