"""stingy theory / stingy derive, run in-process through stingy.cli.main."""

import json

import numpy as np
import pytest

from stingy.cli import main
from stingy.theory import derivations


def test_theory_prints_a_table(capsys):
    assert main(["theory", "--classes", "10", "--k", "2", "--temperature", "4"]) == 0
    out = capsys.readouterr().out
    for label in ("kept mass m", "TV(p~, U_M)", "remainder", "signal / drive", "drive norm"):
        assert label in out


def test_theory_json_keys_for_seeded_logits(capsys):
    assert main(["theory", "--classes", "100", "--ratio", "0.1", "--temperature", "20",
                 "--seed", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["k"] == 10 and result["settings"]["rows"] == 1
    for key in ("kept_mass", "kept_mass_lower", "kept_mass_upper", "kept_mass_expansion",
                "paper_mass_shift", "mass_shift_error", "mass_shift_error_bound",
                "tv_to_uniform", "tv_to_uniform_bound", "order_t2", "order_t", "order_1",
                "teacher_matching", "student_spread", "exact", "remainder", "drive_norm",
                "signal_norm", "signal_to_drive", "signal_to_drive_bound"):
        assert key in result["mean"] and len(result["per_row"][key]) == 1
    assert result["mean"]["kept_mass_lower"] == pytest.approx(0.1)


def test_theory_json_reports_the_exact_ratio_and_worst_case_for_given_logits(tmp_path, capsys):
    rng = np.random.default_rng(1)
    teacher = rng.normal(0, 3, (4, 10))
    np.save(tmp_path / "t.npy", teacher)
    assert main(["theory", "--classes", "10", "--k", "3", "--temperature", "5", "--logits",
                 str(tmp_path / "t.npy"), "--json"]) == 0
    per_row = json.loads(capsys.readouterr().out)["per_row"]
    for row, exact, worst, tv in zip(teacher, per_row["signal_to_drive_exact"],
                                     per_row["tv_to_uniform_worst_case"],
                                     per_row["tv_to_uniform"]):
        kept = np.sort(row)[::-1][:3]
        target = np.exp((kept - kept.max()) / 5) / np.exp((kept - kept.max()) / 5).sum()
        assert exact == pytest.approx(np.linalg.norm(target - 1 / 3) / np.sqrt(1 / 3 - 1 / 10))
        assert tv <= worst + 1e-12  # the worst case for this row's kept range


def test_theory_json_two_dimensional_per_row_and_mean(tmp_path, capsys):
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(0, 3, (5, 10)), rng.normal(0, 1, (5, 10))
    np.save(tmp_path / "t.npy", teacher)
    np.save(tmp_path / "s.npy", student)
    assert main(["theory", "--classes", "10", "--k", "10", "--temperature", "2", "--logits",
                 str(tmp_path / "t.npy"), "--student-logits", str(tmp_path / "s.npy"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    per_row = result["per_row"]
    assert len(per_row["exact"]) == 5
    assert result["mean"]["exact"] == pytest.approx(np.mean(per_row["exact"]))
    assert per_row["signal_to_drive"] == [None] * 5  # inf at k = K (no drive) -> null
    assert len(per_row["mass_shift_kept"][0]) == 10


@pytest.mark.parametrize("argv,needle", [
    (["--k", "0", "--temperature", "1"], "--k"),
    (["--k", "11", "--temperature", "1"], "--k"),
    (["--k", "2", "--temperature", "0"], "--temperature"),
    (["--ratio", "0.01", "--temperature", "1"], "ratio"),
    (["--ratio", "2", "--temperature", "1"], "ratio"),
])
def test_theory_bad_arguments_exit_2_with_one_line(argv, needle, capsys):
    assert main(["theory", "--classes", "10", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_theory_bad_files_exit_2(tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((3, 7)))
    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan, 1.0]))
    np.save(tmp_path / "ok.npy", np.zeros((3, 3)))
    np.save(tmp_path / "short.npy", np.zeros((2, 3)))
    base = ["theory", "--k", "1", "--temperature", "1"]
    assert main([*base, "--classes", "10", "--logits", str(tmp_path / "wrong.npy")]) == 2
    assert "--classes" in capsys.readouterr().err
    assert main([*base, "--classes", "3", "--logits", str(tmp_path / "nan.npy")]) == 2
    assert "finite" in capsys.readouterr().err
    assert main([*base, "--classes", "3", "--logits", str(tmp_path / "ok.npy"),
                 "--student-logits", str(tmp_path / "short.npy")]) == 2
    assert "--student-logits" in capsys.readouterr().err


def test_derive_prints_statuses_writes_latex_and_exits_1_on_failure(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(derivations, "DERIVATIONS", [derivations.derive_t3_mass_shift_identity,
                                                     derivations.derive_t5_decomposition])
    assert main(["derive", "--latex", str(tmp_path / "t.tex")]) == 0
    out = capsys.readouterr().out
    assert "proved for all K, k" in out and "T3d" in out and "T5a" in out
    assert (tmp_path / "t.tex").read_text().count(r"\subsection*") == 2

    def derive_wrong():
        """A wrong claim."""
        return derivations._record("T9", "1 = 2", False, "", "")

    monkeypatch.setattr(derivations, "DERIVATIONS", [derive_wrong])
    assert main(["derive"]) == 1
    assert "failed" in capsys.readouterr().out
