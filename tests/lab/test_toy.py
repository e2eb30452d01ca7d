"""The page's live toy separates the methods as the simulations do (results/simulations:
stingy KD below normal KD and within-M KD, whose accuracies are close; the stingy student's
logit gap grows)."""

from __future__ import annotations

STEPS = 400


def train_toy(page, k: int, temperature: float, alpha: float, steps: int) -> dict:
    return page.evaluate(f"(() => {{ const toy = new labCore.Toy({k}, {temperature}, {alpha}); "
                         f"toy.run({steps}); return toy.metrics(); }})()")


def test_stingy_student_falls_behind_normal_and_within_m_at_high_temperature(page):
    m = train_toy(page, k=2, temperature=20, alpha=0.9, steps=STEPS)
    normal, stingy, within = (m[name]["accuracy"] for name in ("normal", "stingy", "within"))
    assert normal - stingy >= 0.03, m
    assert within - stingy >= 0.03, m
    assert abs(normal - within) <= 0.02, m
    assert m["stingy"]["logit_gap"] > 2 * m["normal"]["logit_gap"], m


def test_page_toy_is_the_same_trained_model(page):
    """The toy on the page (default controls: r = 0.2 -> k_toy = 2, T = 20, a = 0.9) gives the
    same metrics as a fresh toy with those settings."""
    page.evaluate("lab.toy.reset()")
    shown = page.evaluate("lab.toy.run(60)")
    assert shown == train_toy(page, k=2, temperature=20, alpha=0.9, steps=60)
