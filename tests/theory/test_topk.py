"""Stored top-k teachers and kd_loss_topk: the drop tail equals kd_loss(..., k), the bucket tail
equals the dense tail-bucket KL, the file format round-trips and runs no code."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from stingy.testing import stored_topk_rows
from stingy.theory import topk
from stingy.theory.operators import kd_loss
from stingy.theory.tail_bucket import tail_bucket_terms
from stingy.theory.topk import (
    TopKTeacher,
    kd_loss_topk,
    load_topk_teacher,
    save_topk_teacher,
    topk_teacher,
)


def _case(rows=6, classes=30, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(rows, classes, generator=generator, dtype=dtype).requires_grad_()
    teacher = 3 * torch.randn(rows, classes, generator=generator, dtype=dtype)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    return student, teacher, labels


@settings(max_examples=150, deadline=None)
@given(stored_topk_rows())
def test_drop_tail_equals_kd_loss_with_k_on_the_dense_teacher(case):
    student = torch.tensor(case["student"], requires_grad=True)
    labels = torch.zeros(student.shape[0], dtype=torch.long)
    ours = kd_loss_topk(student, torch.tensor(case["indices"]), torch.tensor(case["values"]),
                        labels, temperature=case["temperature"], alpha=0.7)
    dense = kd_loss(student, torch.tensor(case["teacher"]), labels, case["temperature"], 0.7,
                    k=case["k"])
    (ours_grad,), (dense_grad,) = (torch.autograd.grad(v, student) for v in (ours, dense))
    assert torch.allclose(ours, dense, rtol=1e-9, atol=1e-10)
    assert torch.allclose(ours_grad, dense_grad, rtol=1e-9, atol=1e-10)


@settings(max_examples=100, deadline=None)
@given(stored_topk_rows())
def test_bucket_tail_equals_dense_tail_bucket_kl(case):
    student = torch.tensor(case["student"])
    ours = kd_loss_topk(student, torch.tensor(case["indices"]), torch.tensor(case["values"]),
                        temperature=case["temperature"], alpha=1.0, tail="bucket",
                        teacher_logsumexp=torch.tensor(case["logsumexp"]))
    dense = tail_bucket_terms(torch.tensor(case["teacher"]), student, case["k"],
                              case["temperature"])["exact"].mean()
    assert torch.allclose(ours, dense, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("drop", [0, 1])
def test_bucket_tail_with_zero_or_one_dropped_class_is_normal_kd(drop):
    student, teacher, labels = _case()
    stored = topk_teacher(teacher, 30 - drop, (4.0,))
    bucket = kd_loss_topk(student, stored.indices, stored.values, labels, temperature=4.0,
                          alpha=0.9, tail="bucket", teacher_logsumexp=stored.logsumexp_at(4.0))
    assert torch.allclose(bucket, kd_loss(student, teacher, labels, 4.0, 0.9), rtol=1e-10)


def test_row_chunks_do_not_change_value_or_gradient(monkeypatch):
    student, teacher, labels = _case(rows=7, classes=40, dtype=torch.float32)
    stored = topk_teacher(teacher, 5, (2.0,))

    def loss_and_grad():
        loss = kd_loss_topk(student, stored.indices, stored.values, labels, temperature=2.0,
                            alpha=0.5, tail="bucket", teacher_logsumexp=stored.logsumexp_at(2.0))
        return loss, torch.autograd.grad(loss, student)[0]

    whole = loss_and_grad()
    monkeypatch.setattr(topk, "CHUNK_ELEMENTS", 80)  # two rows per chunk, last chunk short
    chunked = loss_and_grad()
    assert torch.allclose(whole[0], chunked[0]) and torch.allclose(whole[1], chunked[1])


def test_leading_dimensions_and_numpy_inputs():
    student, teacher, labels = _case(rows=6)
    stored = topk_teacher(teacher, 4)
    flat = kd_loss_topk(student, stored.indices, stored.values, labels, temperature=3.0,
                        alpha=0.8)
    shaped = kd_loss_topk(student.reshape(2, 3, 30), stored.indices.reshape(2, 3, 4),
                          stored.values.numpy().reshape(2, 3, 4), labels.numpy().reshape(2, 3),
                          temperature=3.0, alpha=0.8)
    assert torch.allclose(flat, shaped)


def test_extreme_logits_give_finite_loss_and_gradients():
    student, teacher, labels = _case()
    student = (1e4 * student.detach()).requires_grad_()
    stored = topk_teacher(1e4 * teacher, 3, (0.01, 1000.0))
    for temperature in (0.01, 1000.0):
        for tail in ("drop", "bucket"):
            loss = kd_loss_topk(student, stored.indices, stored.values, labels,
                                temperature=temperature, alpha=0.9, tail=tail,
                                teacher_logsumexp=stored.logsumexp_at(temperature))
            (grad,) = torch.autograd.grad(loss, student)
            assert torch.isfinite(loss) and bool(torch.isfinite(grad).all())


def test_file_round_trip(tmp_path):
    _, teacher, _ = _case()
    stored = topk_teacher(teacher, 5, (1.0, 2.0))
    path = save_topk_teacher(tmp_path / "teacher.npz", stored)
    loaded = load_topk_teacher(path)
    assert loaded.num_classes == 30 and loaded.temperatures == (1.0, 2.0)
    assert torch.equal(loaded.indices, stored.indices) and torch.equal(loaded.values,
                                                                      stored.values)
    assert torch.equal(loaded.logsumexp_at(2.0), torch.logsumexp(teacher / 2.0, dim=-1))
    # no temporary left; the checksum written beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.npz", "teacher.npz.sha256"]


def test_loading_refuses_pickled_arrays_and_missing_fields(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, indices=np.array([[0]], dtype=object), values=np.zeros((1, 1)),
             num_classes=np.int64(3))
    with pytest.raises(ValueError, match="pickled.npz"):
        load_topk_teacher(pickled)
    partial = tmp_path / "partial.npz"
    np.savez(partial, values=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="indices"):
        load_topk_teacher(partial)
    with pytest.raises(FileNotFoundError, match="absent"):
        load_topk_teacher(tmp_path / "absent.npz")


def test_unknown_temperature_names_the_stored_ones():
    stored = topk_teacher(torch.zeros(2, 5), 2, (1.0,))
    with pytest.raises(ValueError, match=r"stored: \[1.0\]"):
        stored.logsumexp_at(2.0)


def _arguments():
    student, teacher, labels = _case(rows=2, classes=10)
    stored = topk_teacher(teacher, 3, (4.0,))
    return {"student_logits": student, "topk_indices": stored.indices,
            "topk_values": stored.values, "labels": labels, "temperature": 4.0, "alpha": 0.9,
            "tail": "bucket", "teacher_logsumexp": stored.logsumexp_at(4.0)}


@pytest.mark.parametrize("change,name", [
    ({"temperature": 0.0}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
    ({"tail": "keep"}, "tail"),
    ({"labels": None}, "labels"),
    ({"labels": torch.tensor([0, 10])}, "labels"),
    ({"topk_indices": torch.tensor([[0, 0, 1], [1, 2, 3]])}, "distinct"),
    ({"topk_indices": torch.tensor([[0, 1, 10], [1, 2, 3]])}, "topk_indices"),
    ({"topk_indices": torch.zeros(2, 3)}, "topk_indices"),
    ({"topk_indices": torch.tensor([[0, 1], [1, 2]])}, "same shape"),
    ({"topk_values": torch.full((2, 3), float("nan"))}, "topk_values"),
    ({"student_logits": torch.zeros(3, 10)}, "topk_indices"),
    ({"teacher_logsumexp": None}, "teacher_logsumexp"),
    ({"teacher_logsumexp": torch.zeros(3)}, "teacher_logsumexp"),
    ({"teacher_logsumexp": torch.full((2,), -100.0)}, "teacher_logsumexp"),
])
def test_bad_input_error_names_the_argument(change, name):
    arguments = _arguments()
    arguments.update(change)
    with pytest.raises(ValueError, match=name):
        kd_loss_topk(**arguments)


def test_stored_teacher_checks_its_fields():
    with pytest.raises(ValueError, match="together"):
        TopKTeacher(torch.zeros(1, 2, dtype=torch.long) + torch.tensor([0, 1]),
                    torch.zeros(1, 2), 4, None, (1.0,))
    with pytest.raises(ValueError, match="log_partition"):
        TopKTeacher(torch.tensor([[0, 1]]), torch.zeros(1, 2), 4, torch.zeros(1, 2), (1.0,))
