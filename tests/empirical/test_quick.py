"""The quick profile's outputs, on tiny data with the profile shrunk by overrides."""

from __future__ import annotations

import json

import numpy as np

from stingy.empirical.quick import SUMMARY_COLUMNS, run_quick_profile
from tests.empirical.tiny import single_thread, tiny_dataset  # noqa: F401 (fixture)

SHRINK = ["data.train_subset=0", "data.test_subset=0", "schedule.epochs=1",
          "train.batch_size=16", "train.progress=false"]


def test_quick_profile_writes_summary_theory_logits_and_gap_log(tmp_path):
    out = tmp_path / "quick"
    rows = run_quick_profile(out=out, device="cpu", dataset=tiny_dataset(), overrides=SHRINK)
    assert [row["method"] for row in rows] == ["scratch", "normal_kd", "stingy_kd", "within_m_kd"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == rows and summary["logit_gap_k"] == 2
    for row in rows:
        assert set(SUMMARY_COLUMNS) <= set(row)
        assert 0 <= row["test_accuracy"] <= 1 and row["teacher"] == "cnn"
    assert rows[2]["k"] == 2 and rows[2]["temperature"] == 20.0 and rows[0]["k"] is None
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[:len(SUMMARY_COLUMNS)] == list(SUMMARY_COLUMNS)
    theory_lines = (out / "teacher_theory.csv").read_text().splitlines()
    assert len(theory_lines) == 1 + 4 * 16  # k in {1, 2, 5, 10} x 16 temperatures
    arrays = np.load(out / "teacher_logits.npz")
    assert arrays["normal"].shape == (16, 10) and arrays["labels"].shape == (16,)
    assert arrays["nasty"].shape == (16, 10) and np.isfinite(arrays["nasty"]).all()
    assert sorted(arrays["labels"][:10]) == list(range(10))  # one image of each class first
    assert (np.isfinite(arrays["stingy"]).sum(axis=1) == 2).all()
    np.testing.assert_array_equal(arrays["normal"].argmax(1), arrays["stingy"].argmax(1))
    assert list(arrays["class_names"]) == [f"class{i}" for i in range(10)]
    gap = (out / "logit_gap.csv").read_text().splitlines()
    assert gap[0].startswith("method,epoch") and len(gap) == 3  # stingy and within, 1 epoch


def test_quick_profile_reuses_finished_runs(tmp_path):
    out = tmp_path / "quick"
    first = run_quick_profile(out=out, device="cpu", dataset=tiny_dataset(), overrides=SHRINK)
    again = run_quick_profile(out=out, device="cpu", dataset=tiny_dataset(), overrides=SHRINK)
    assert [r["test_accuracy"] for r in first] == [r["test_accuracy"] for r in again]
