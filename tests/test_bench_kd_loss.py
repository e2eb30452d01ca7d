"""The KD-loss benchmark as a library function (for ``stingy bench``): one row per size with
the keys its Markdown table and benchmarks/run.py read; it refuses a core that disagrees
with the reference. (Its speed target is checked by running it, not by a timed test.)"""

import pytest

from stingy.benchmarks import bench_kd_loss


def test_run_returns_one_row_per_size_with_the_table_keys():
    rows = bench_kd_loss.run(sizes=((4, 10), (3, 20)), min_run_time=0.001, rounds=1)
    assert [(row["batch"], row["num_classes"], row["k"]) for row in rows] == [(4, 10, 1),
                                                                              (3, 20, 2)]
    for row in rows:
        for key in ("ours_us", "validated_us", "reference_us", "copy_us",
                    "reference_over_ours", "ours_over_copy"):
            assert row[key] > 0
    assert "| 4 x 10 | 1 |" in bench_kd_loss.markdown(rows)


def test_agreement_check_catches_a_wrong_gradient(monkeypatch):
    student, teacher, labels = bench_kd_loss._inputs(8, 10)
    bench_kd_loss.check_agreement(student, teacher, labels, 2)
    monkeypatch.setattr(bench_kd_loss, "kd_loss_unchecked",
                        lambda s, z, y, t, a, k: bench_kd_loss.reference_kd_loss(s, z, y, t, a, k)
                        + 0.01 * (s**2).sum())
    with pytest.raises(AssertionError, match="differs from the reference"):
        bench_kd_loss.check_agreement(student, teacher, labels, 2)
