"""The fixes experiment: the prediction is written before anything trains and never
rewritten, every (setting, fix) gets a Holm-corrected recovery check, and each verdict says
whether its prediction held."""

from __future__ import annotations

import json

import pytest

from stingy.simulations import fixes


@pytest.fixture
def tiny(monkeypatch, small_task):
    """One alpha, one noise level, two short lengths, a small task."""
    monkeypatch.setattr(fixes, "ALPHAS", (1.0,))
    monkeypatch.setattr(fixes, "NOISES", (0.3,))
    monkeypatch.setattr(fixes, "STEPS", {"short": 3, "long": 6})
    real = fixes.fixes_config
    monkeypatch.setattr(fixes, "fixes_config", lambda *args: small_task(real(*args)))


def test_the_prediction_comes_first_and_every_fix_is_checked(tmp_path, tiny):
    result = fixes.run_fixes(tmp_path, seeds=2, log=lambda m: None)
    prediction = json.loads((tmp_path / fixes.PREDICTION).read_text())
    assert prediction == result["prediction"]
    # the tail bucket without labels under noise is predicted to fail, the others to pass
    assert {(c["fix"], c["predicted"]) for c in prediction["cells"]} == {
        ("within_m_kd", "pass"), ("tail_bucket_kd", "fail"), ("uniform_floor_kd", "pass"),
        ("sampled_kd", "pass")}
    verdicts = result["verdicts"]
    assert sorted((v["fix"], v["length"]) for v in verdicts) == sorted(
        (fix, length) for fix in fixes.FIXES for length in ("short", "long"))
    assert {v["check"] for v in verdicts} == {"d", "f", "g", "h"}
    for verdict in verdicts:
        assert "p_holm" in verdict
        assert verdict["prediction_held"] == (verdict["predicted_outcome"]
                                              == verdict["verdict_holm"])
    assert {r["method"] for r in result["runs"]} == {"scratch", "normal_kd", "stingy_kd",
                                                     *fixes.FIXES}
    written = (tmp_path / fixes.PREDICTION).stat().st_mtime_ns
    fixes.write_prediction(tmp_path)
    assert (tmp_path / fixes.PREDICTION).stat().st_mtime_ns == written  # never rewritten


def test_the_cli_refuses_one_seed_in_one_line(capsys):
    from stingy.cli import main

    assert main(["fixes", "--seeds", "1", "--out", "unused"]) == 2
    assert capsys.readouterr().err.strip() == "stingy: error: --seeds must be an integer >= 2, got 1"
