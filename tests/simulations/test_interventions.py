"""The interventions: the prediction is written before anything trains and never rewritten;
I-ratio's spreads give the ratios the theory gives; every check is Holm-corrected and says
whether its prediction held."""

from __future__ import annotations

import json

import pytest

from stingy.simulations import interventions


@pytest.fixture
def tiny(monkeypatch, small_task):
    monkeypatch.setattr(interventions, "NOISES", (0.3,))
    monkeypatch.setattr(interventions, "SPREADS", (0.0, 1.0, 4.0))
    monkeypatch.setattr(interventions, "STEPS", {"short": 3, "long": 6})
    real = interventions.config_for
    monkeypatch.setattr(interventions, "config_for", lambda *args: small_task(real(*args)))


def test_interventions_write_the_prediction_first_and_check_each(tmp_path, tiny):
    result = interventions.run_interventions(tmp_path, seeds=2, log=lambda m: None)
    prediction = json.loads((tmp_path / interventions.PREDICTION).read_text())
    assert prediction == result["prediction"]
    assert {c["check"] for c in prediction["checks"]} == set(interventions.PREDICTED)
    assert sorted(v["check"] for v in result["verdicts"]) == sorted(interventions.PREDICTED)
    for verdict in result["verdicts"]:
        assert "p_holm" in verdict and verdict["prediction_held"] == (
            verdict["predicted_outcome"] == verdict["verdict_holm"])
    ratios = [r["signal_to_drive"] for r in result["ratios"]]
    assert ratios[0] == pytest.approx(0.0, abs=1e-9) and ratios[0] < ratios[1] < ratios[2]
    spreads = {r["spread"] for r in result["runs"] if r["intervention"] == "ratio"}
    caps = {(r["cap"], r["length"]) for r in result["runs"] if r["intervention"] == "gap"}
    assert spreads == {0.0, 1.0, 4.0} and len(caps) == 2 * len(interventions.CAPS)
    written = (tmp_path / interventions.PREDICTION).stat().st_mtime_ns
    interventions.write_prediction(tmp_path)
    assert (tmp_path / interventions.PREDICTION).stat().st_mtime_ns == written
