"""Every derivation runs and none fails; the LaTeX export is a complete document."""

from stingy.theory import derivations


def test_no_derivation_fails_and_ids_cover_T1_to_T5(tmp_path):
    records = derivations.run_all()
    failed = [(r["id"], r["detail"]) for r in records if r["status"] == derivations.FAILED]
    assert failed == []
    assert {r["status"] for r in records} <= {derivations.PROVED, derivations.CHECKED}
    assert {r["id"][:2] for r in records} == {"T1", "T2", "T3", "T4", "T5"}
    path = derivations.write_latex(tmp_path / "theory.tex", records)
    text = path.read_text()
    assert text.startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    assert all(r["id"] in text for r in records)


def test_a_wrong_identity_is_reported_as_failed():
    record = derivations._record("X", "wrong", derivations._is_zero(
        derivations.sp.Symbol("x") + 1), "x + 1 is not 0", "")
    assert record["status"] == derivations.FAILED


def test_a_crashing_derivation_is_recorded_as_failed(monkeypatch):
    def derive_broken():
        """A derivation that raises."""
        raise RuntimeError("boom")

    monkeypatch.setattr(derivations, "DERIVATIONS", [derive_broken])
    (record,) = derivations.run_all()
    assert record["status"] == derivations.FAILED and "boom" in record["detail"]
