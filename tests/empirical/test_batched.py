"""Batched students: vmap = loop = one at a time, the loss formula, resume, bad settings."""

from __future__ import annotations

import pytest
import torch
from .tiny import single_thread  # noqa: F401 - fixture

from stingy.empirical.bank import AugmentStream, LogitBank
from stingy.empirical.batched import GroupSettings, Student, train_group
from stingy.empirical.engine import DeviceData, RunControl
from stingy.empirical.models import build_model
from stingy.methods import MethodSettings
from stingy.objective import TopKRows


def student(label, name, teacher=None, temperature=4.0, alpha=0.9, **numbers):
    return Student(label, MethodSettings(name, temperature, alpha, **numbers), teacher)


STUDENTS = [student("scratch", "scratch"), student("kd", "normal_kd", "teacher"),
            student("stingy", "stingy_kd", "teacher", k=2),
            student("within", "within_m_kd", "teacher", k=2),
            student("reversed", "reversed_kd", "teacher", 2.0, 0.5)]


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


def train(setup, students, mode="loop", epochs=2, augment=True, ema_decay=0.0, banks=None,
          **kwargs):
    """train_group's result with the students' test logits ("test_logits", None unless
    finished)."""
    train_data, test, streams, all_banks = setup
    stream = streams[augment]
    settings = GroupSettings("cnn", epochs, 16, 0.05, mode=mode, ema_decay=ema_decay)
    result = train_group(settings, students, train_data, stream, banks or all_banks[augment],
                         num_classes=10, init_seed=0, device="cpu", **kwargs)
    result["test_logits"] = result["group"].predict(test) if result["finished"] else None
    return result


def test_vmap_and_loop_train_the_same_students(setup):
    # without augmentation: the black crop padding makes max-pool ties, whose (equally valid)
    # subgradient vmap's batching rule routes to another position than the plain kernel; one
    # epoch: the kernels' float rounding differs, and by the second epoch the stingy
    # student's large gradients (T = 4 on a 2-class target) amplify it to ~1e-2
    loop = train(setup, STUDENTS, "loop", epochs=1, augment=False)["test_logits"]
    vmapped = train(setup, STUDENTS, "vmap", epochs=1, augment=False)["test_logits"]
    torch.testing.assert_close(vmapped, loop, rtol=1e-4, atol=1e-4)


def test_each_student_in_a_group_trains_as_if_alone(setup):
    together = train(setup, STUDENTS)["test_logits"]
    for index, student in enumerate(STUDENTS):
        alone = train(setup, [student])["test_logits"][0]
        torch.testing.assert_close(together[index], alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0], together[2], atol=1e-3)  # methods differ


def test_sparse_students_train_the_same_from_a_top_k_bank(setup, tmp_path):
    """A top-k bank's rows feed stingy and within-M KD through the top-k core: the same
    students as from the dense bank (the same targets, up to the fp16 of both banks)."""
    train_data, _, streams, banks = setup
    top_k = {"teacher": LogitBank(tmp_path, banks[False]["teacher"].teacher, train_data,
                                  streams[False], top_k=3)}
    assert isinstance(top_k["teacher"].epoch(0, "cpu").teacher(0), TopKRows)
    dense = train(setup, STUDENTS[2:4], epochs=1, augment=False)["test_logits"]
    rows = train(setup, STUDENTS[2:4], epochs=1, augment=False, banks=top_k)["test_logits"]
    torch.testing.assert_close(rows, dense, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dense_student", [STUDENTS[1], STUDENTS[4],
                                           student("k5", "stingy_kd", "teacher", k=5)],
                         ids=lambda s: s.label)
def test_a_top_k_bank_refuses_students_that_need_more_than_it_holds(setup, tmp_path,
                                                                       dense_student):
    train_data, _, streams, banks = setup
    top_k = {"teacher": LogitBank(tmp_path, banks[False]["teacher"].teacher, train_data,
                                  streams[False], top_k=3)}
    with pytest.raises(ValueError, match="give it a bank with all logits"):
        train(setup, [dense_student], augment=False, banks=top_k)


def test_a_diverging_group_is_refused_before_its_epoch_is_saved(setup, tmp_path):
    from stingy.empirical.runs import Diverged

    train_data, _, streams, banks = setup
    settings = GroupSettings("cnn", 2, 16, 1e30)
    with pytest.raises(Diverged, match="diverged at epoch 1"):
        train_group(settings, STUDENTS[:1], train_data, streams[True], banks[True],
                    num_classes=10, init_seed=0, device="cpu", directory=tmp_path)
    assert not (tmp_path / "group.pt").exists()


def test_a_resumed_group_equals_an_uninterrupted_one(setup, tmp_path):
    full = train(setup, STUDENTS[:3], epochs=3, ema_decay=0.9)
    first = train(setup, STUDENTS[:3], epochs=3, ema_decay=0.9, directory=tmp_path,
                  control=RunControl(stop_after_epochs=1))
    assert not first["finished"] and first["test_logits"] is None
    resumed = train(setup, STUDENTS[:3], epochs=3, ema_decay=0.9, directory=tmp_path)
    assert resumed["finished"] and len(resumed["history"]) == 3
    torch.testing.assert_close(resumed["test_logits"], full["test_logits"])


def test_ema_changes_the_evaluated_model(setup):
    plain = train(setup, STUDENTS[:1])["test_logits"]
    averaged = train(setup, STUDENTS[:1], ema_decay=0.9)["test_logits"]
    assert not torch.allclose(plain, averaged)


INVALID = [
    (lambda: student("x", "dafl_kd", "teacher", alpha=1.0), "method must be one of"),
    (lambda: student("x", "kd", "teacher"), "name must be one of"),
    (lambda: student("x", "normal_kd"), "teacher must be given"),
    (lambda: student("x", "scratch", "teacher"), "teacher must be given"),
    (lambda: student("x", "stingy_kd", "teacher"), "needs method.k >= 1"),
    (lambda: student("x", "normal_kd", "teacher", temperature=0.0), "temperature"),
    (lambda: student("x", "normal_kd", "teacher", temperature=float("inf")), "temperature"),
    (lambda: student("x", "normal_kd", "teacher", alpha="abc"), "alpha"),
    (lambda: GroupSettings("cnn", 1, 16, float("inf")), "lr"),
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
        train_group(GroupSettings("cnn", 1, 8, 0.05), STUDENTS[1:2], train_data,
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


def test_a_group_broken_by_its_last_step_is_refused(setup, tmp_path):
    from stingy.empirical.runs import Diverged

    train_data = setup[0]
    one_step = AugmentStream(0, 64)  # 48 images: the loss is read before the one update
    with pytest.raises(Diverged, match="diverged at epoch 1: .* of scratch are not finite"):
        train_group(GroupSettings("cnn", 1, 64, 3e38), STUDENTS[:1], train_data, one_step, {},
                    num_classes=10, init_seed=0, device="cpu", directory=tmp_path)
    assert not (tmp_path / "group.pt").exists()


def test_a_last_batch_of_one_image_joins_the_batch_before_it(tmp_path):
    generator = torch.Generator().manual_seed(1)
    data = DeviceData(torch.randint(0, 256, (33, 32, 32, 3), dtype=torch.uint8,
                                    generator=generator),
                      torch.randint(0, 10, (33,), generator=generator), (0.5,) * 3,
                      (0.25,) * 3, "cpu")
    stream = AugmentStream(0, 16)
    torch.manual_seed(0)
    bank = LogitBank(tmp_path, build_model("cnn", 10), data, stream)
    order = stream.order(0, len(data))
    assert stream.steps(len(data)) == 2
    assert [len(stream.batch(data, order, 0, step)[1]) for step in range(2)] == [16, 17]
    assert len(bank.epoch(0, "cpu").teacher(1)) == 17
    result = train_group(GroupSettings("cnn", 1, 16, 0.05, mode="loop"), STUDENTS[:2], data,
                         stream, {"teacher": bank}, num_classes=10, init_seed=0, device="cpu")
    assert result["finished"]
