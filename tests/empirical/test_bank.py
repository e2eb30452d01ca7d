"""The logit bank: a pure augmentation stream, students see the bank's batches, reuse, keys."""

from __future__ import annotations

import pytest
import torch

from .tiny import single_thread, tiny_dataset  # noqa: F401 - fixture

from stingy.empirical.bank import AugmentStream, LogitBank, mix
from stingy.empirical.batched import GroupSettings, Student, StudentGroup, train_group
from stingy.empirical.engine import DeviceData
from stingy.empirical.models import build_model
from stingy.io import write_checksum
from stingy.methods import MethodSettings
from stingy.theory.operators import sparsify_logits

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def tiny_data(n=40, seed=0) -> DeviceData:
    data = tiny_dataset(n, 8, seed=seed)
    return DeviceData(data.train_images, data.train_labels, MEAN, STD, "cpu")


class PixelTeacher(torch.nn.Module):
    """Logits that are a fixed linear function of the pixels, so logits identify an image."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3 * 32 * 32, 10)

    def forward(self, images):
        return self.linear(images.flatten(1))


def test_stream_is_a_pure_function_of_seed_epoch_and_batch():
    data = tiny_data()
    first, second = AugmentStream(3, 16), AugmentStream(3, 16)
    order = first.order(1, len(data))
    batch_a = first.batch(data, order, 1, 2)
    list(second.batches(data, 0))  # drawing other batches first changes nothing
    batch_b = second.batch(data, second.order(1, len(data)), 1, 2)
    assert torch.equal(batch_a[0], batch_b[0]) and torch.equal(batch_a[1], batch_b[1])
    other_epoch = first.batch(data, first.order(2, len(data)), 2, 2)
    assert not torch.equal(batch_a[0], other_epoch[0])
    assert mix(3, 1) != mix(1, 3)


def test_students_train_on_exactly_the_batches_the_bank_saw(tmp_path, monkeypatch):
    data = tiny_data(40)
    stream = AugmentStream(5, 16)
    torch.manual_seed(0)
    teacher = PixelTeacher()
    bank = LogitBank(tmp_path, teacher, data, stream, forward_batches=2)
    seen = []
    original = StudentGroup.logits

    def recording(self, images, params=None, buffers=None):
        if torch.is_grad_enabled():
            seen.append(images.detach().clone())
        return original(self, images, params, buffers)

    monkeypatch.setattr(StudentGroup, "logits", recording)
    settings = GroupSettings("cnn", 2, 16, 0.01)
    train_group(settings, [Student("kd", MethodSettings("normal_kd"), "teacher")], data, stream,
                {"teacher": bank}, num_classes=10, init_seed=0, device="cpu")
    steps = stream.steps(len(data))
    assert len(seen) == 2 * steps
    for epoch in range(2):
        stored = torch.load(bank.path(epoch), weights_only=True)["logits"]
        images = torch.cat(seen[epoch * steps:(epoch + 1) * steps])
        with torch.no_grad():
            recomputed = teacher(images).half()
        # fp16 storage: equal up to fp16 rounding of the same inputs
        torch.testing.assert_close(stored.float(), recomputed.float(), rtol=2e-3, atol=2e-3)
        assert not torch.allclose(stored.float(), torch.roll(recomputed.float(), 1, 0))


def test_bank_is_reused_and_matches_what_it_saved(tmp_path):
    data, stream = tiny_data(), AugmentStream(0, 16)
    torch.manual_seed(0)
    teacher = build_model("cnn", 10)
    first = LogitBank(tmp_path, teacher, data, stream)
    logits = first.epoch(0, "cpu").dense
    second = LogitBank(tmp_path, teacher, data, stream)
    again = second.epoch(0, "cpu").dense
    assert first.built_epochs == 1 and second.built_epochs == 0
    assert torch.equal(logits, again) and logits.dtype == torch.float16
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("change", ["teacher", "seed", "batch", "augment", "data", "top_k"])
def test_bank_key_changes_with_each_input(tmp_path, change):
    torch.manual_seed(0)
    teacher, data, stream = build_model("cnn", 10), tiny_data(), AugmentStream(0, 16)
    base = LogitBank(tmp_path, teacher, data, stream).directory
    if change == "teacher":
        with torch.no_grad():
            next(teacher.parameters())[0].add_(1e-3)
    kwargs = {"top_k": 2} if change == "top_k" else {}
    stream = {"seed": AugmentStream(1, 16), "batch": AugmentStream(0, 8),
              "augment": AugmentStream(0, 16, augment=False)}.get(change, stream)
    data = tiny_data(seed=1) if change == "data" else data
    assert LogitBank(tmp_path, teacher, data, stream, **kwargs).directory != base


def test_top_k_bank_gives_the_sparse_logits(tmp_path):
    torch.manual_seed(0)
    teacher, data, stream = build_model("cnn", 10), tiny_data(), AugmentStream(0, 16)
    dense = LogitBank(tmp_path / "a", teacher, data, stream).epoch(0, "cpu").dense
    rows = LogitBank(tmp_path / "b", teacher, data, stream, top_k=3).epoch(0, "cpu").teacher(1)
    released = torch.full((16, 10), float("-inf"), dtype=dense.dtype).scatter_(
        1, rows.indices, rows.values)
    assert torch.equal(released, sparsify_logits(dense.float(), 3)[16:32].to(dense.dtype))
    assert (rows.values[:, :-1] >= rows.values[:, 1:]).all()  # descending: any k <= 3 reads


def test_bank_file_with_another_key_is_refused(tmp_path):
    torch.manual_seed(0)
    teacher, data, stream = build_model("cnn", 10), tiny_data(), AugmentStream(0, 16)
    bank = LogitBank(tmp_path, teacher, data, stream)
    bank.epoch(0, "cpu")
    record = torch.load(bank.path(0), weights_only=True)
    torch.save({**record, "key": "{}"}, bank.path(0))
    with pytest.raises(ValueError, match="does not match its checksum"):
        LogitBank(tmp_path, teacher, data, stream).epoch(0, "cpu")
    write_checksum(bank.path(0))  # a consistent file of another key: the key check refuses it
    with pytest.raises(ValueError, match="does not match its key"):
        LogitBank(tmp_path, teacher, data, stream).epoch(0, "cpu")


def test_bank_top_k_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ValueError, match="top_k"):
        LogitBank(tmp_path, build_model("cnn", 10), tiny_data(), AugmentStream(0, 16), top_k=0)


def test_bank_key_changes_with_the_augmentation_code(tmp_path, monkeypatch):
    from stingy.empirical import bank as bank_module

    torch.manual_seed(0)
    teacher, data, stream = build_model("cnn", 10), tiny_data(), AugmentStream(0, 16)
    code = tmp_path / "augment.py"
    code.write_text("x = 1\n")
    monkeypatch.setattr(bank_module, "CODE_FILES", (code,))
    before = LogitBank(tmp_path, teacher, data, stream).directory
    code.write_text("x = 2\n")
    assert LogitBank(tmp_path, teacher, data, stream).directory != before
