"""The GPU check script in its CPU toy mode, and its FLOP count."""

from __future__ import annotations

import json

from torch import nn

from stingy.cli import main as stingy
from stingy.empirical.gpu_check import STUDENT_ORDER, forward_flops, time_to_accuracy
from stingy.empirical.models import build_model
from tests.empirical.tiny import single_thread  # noqa: F401 (fixture)


def test_flop_count_of_a_known_network():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 32 * 32, 10))
    expected = 2 * (8 * 32 * 32 * 3 * 3 * 3 + 10 * 8 * 32 * 32)
    assert forward_flops(net) == expected


def test_resnet18_costs_about_half_a_gigaflop_per_image():
    flops = forward_flops(build_model("resnet18", 10))
    assert 1.0e9 < flops < 1.2e9  # 0.56 GMACs, the usual CIFAR ResNet-18 figure
    assert forward_flops(build_model("preresnet20", 10)) < flops / 10


def test_student_order_puts_preresnet20_comparisons_first():
    assert STUDENT_ORDER[:3] == [("preresnet20", m) for m in ("scratch", "normal_kd", "stingy_kd")]
    assert STUDENT_ORDER[-1] == ("resnet18", "stingy_kd")


def test_time_to_accuracy_reports_the_first_epoch_reaching_it():
    history = [{"epoch": 1, "seconds": 2.0, "test_accuracy": 0.5},
               {"epoch": 2, "seconds": 3.0, "test_accuracy": 0.95},
               {"epoch": 3, "seconds": 4.0, "test_accuracy": 0.96}]
    assert time_to_accuracy(history, 0.93) == {"epoch": 2, "train_seconds": 5.0}
    assert time_to_accuracy(history, 0.99) is None


def test_toy_mode_writes_results_for_teacher_and_three_students(tmp_path, capsys):
    assert stingy(["gpu-check", "--toy", "--out", str(tmp_path / "check"), "--commit", "abc123"]) == 0
    report = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert report["commit"] == "abc123" and report["toy"] and report["device"] == "cpu"
    assert report["teacher"]["finished"] and report["teacher"]["images_per_second"] > 0
    assert [(s["model"], s["method"]) for s in report["students"]] == \
        [("cnn", "scratch"), ("cnn", "normal_kd"), ("cnn", "stingy_kd")]
    for run in report["students"]:
        assert run["finished"] and 0 <= run["test_accuracy"] <= 1
        assert run["tflops_per_second"] > 0 and run["epochs_done"] == 1
    assert "teacher epoch 1" in capsys.readouterr().out


def test_toy_mode_with_no_budget_records_what_it_skipped(tmp_path):
    assert stingy(["gpu-check", "--toy", "--out", str(tmp_path / "check"), "--budget-seconds", "1"]) == 0
    report = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert report["students"] == []
    assert len(report["skipped"]) == 3


def test_a_non_empty_out_folder_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "old.json").write_text("{}")
    assert stingy(["gpu-check", "--toy", "--out", str(tmp_path / "check")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "not empty" in error
