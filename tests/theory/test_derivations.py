"""Derivations: every status states its scope; the symbolic checks reject wrong formulas."""

import re

import sympy as sp

from stingy.theory import derivations, symbolic

SCOPES = re.compile(r"^(proved for all K, k|proved for the instance K=\d+, k=\d+"
                    r"|checked numerically)$")


def test_every_statement_states_a_scope_and_the_latex_is_complete(tmp_path):
    records = derivations.run_all()
    failed = [(r["id"], r["detail"]) for r in records if r["status"] == symbolic.FAILED]
    assert failed == []
    assert all(SCOPES.match(r["status"]) for r in records), [r["status"] for r in records]
    assert all(r["detail"] for r in records)
    ids = {r["id"] for r in records}
    assert {"T4a", "T4b", "T5a", "T5b", "T5c", "T3a", "TB"} <= ids
    assert {r["id"]: r["status"] for r in records}["T4a"] == symbolic.PROVED
    path = derivations.write_latex(tmp_path / "theory.tex", records)
    text = path.read_text()
    assert text.startswith(r"\documentclass") and text.rstrip().endswith(r"\end{document}")
    assert all(r["id"] in text and r["status"] in text for r in records)


def test_instance_status_names_its_sizes():
    assert symbolic.proved_instance(4, 2) == "proved for the instance K=4, k=2"


def test_a_wrong_identity_is_reported_as_failed():
    record = derivations._record("X", "wrong", symbolic.is_zero(
        derivations.sp.Symbol("x") + 1), "x + 1 is not 0", "")
    assert record["status"] == symbolic.FAILED


def test_third_order_coefficient_rejects_wrong_candidates():
    eps = sp.symbols("epsilon", positive=True)
    kl, kept, every = derivations._kl_from_cumulants(eps)
    third = symbolic.taylor_coefficients(kl, eps, 4)[3]

    def central(moments, make):
        return derivations._central(moments, make)

    right = (central(kept, lambda z, s: z**3) / 3 - central(kept, lambda z, s: z**2 * s) / 2
             + central(every, lambda z, s: s**3) / 6)
    assert symbolic.is_zero(third - right)
    for wrong in (right + central(every, lambda z, s: s**3) / 6,
                  right - central(kept, lambda z, s: z**2 * s) / 2,
                  right + central(kept, lambda z, s: z**3) / 6):
        assert not symbolic.is_zero(third - wrong)


def test_general_kl_identity_is_not_vacuous():
    assert derivations._kl_is_the_cumulant_form()
    eps = sp.symbols("epsilon", positive=True)
    moments = derivations.Moments("X", 3, joint=False)
    # log mean e^{eps s}: coefficients 0, mean, variance/2 (a wrong variance/3 must fail)
    coefficients = symbolic.taylor_coefficients(sp.log(moments.mgf(0, eps)), eps, 3)
    variance = derivations._central(moments, lambda z, s: s**2)
    assert symbolic.is_zero(coefficients[2] - variance / 2)
    assert not symbolic.is_zero(coefficients[2] - variance / 3)


def test_a_crashing_derivation_is_recorded_as_failed(monkeypatch):
    def derive_broken():
        """A derivation that raises."""
        raise RuntimeError("boom")

    monkeypatch.setattr(derivations, "DERIVATIONS", [derive_broken])
    (record,) = derivations.run_all()
    assert record["status"] == symbolic.FAILED and "boom" in record["detail"]
