"""The page's live toy separates the methods as the simulations do (results/simulations:
stingy KD below normal KD and within-M KD, whose accuracies are close; the stingy student's
logit gap grows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stingy.theory import kd_loss, logit_gap, top_k_mask

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


@pytest.mark.parametrize("method", ["normal", "stingy", "within"])
def test_toy_gradient_is_the_kd_loss_gradient(page, method):
    """The toy's per-example gradient in the student logits equals autograd of
    stingy.theory.kd_loss (normal: k=None; stingy: k; within-M: k, within_kept=True)."""
    rng = np.random.default_rng(5)
    for k, temperature, alpha in ((2, 20.0, 0.9), (3, 4.0, 0.5), (1, 1.0, 0.2), (7, 2.0, 1.0)):
        z, s = 3 * rng.standard_normal(8), rng.standard_normal(8)
        label = int(rng.integers(8))
        got = page.evaluate(
            f"(() => {{ const z = {z.tolist()}, k = {k}, T = {temperature}; "
            f"const mask = labCore.topKMask(z, k); const target = '{method}' === 'normal' ? "
            f"labCore.softmax(z, T) : labCore.softmax(z.map((v, i) => mask[i] ? v : -Infinity), T); "
            f"return labCore.logitGradient('{method}', {s.tolist()}, {label}, target, mask, T, "
            f"{alpha}); }})()")
        student = torch.tensor(s[None], requires_grad=True)
        options = {"normal": {}, "stingy": {"k": k}, "within": {"k": k, "within_kept": True}}
        kd_loss(student, torch.tensor(z[None]), torch.tensor([label]), temperature, alpha,
                **options[method]).backward()
        np.testing.assert_allclose(got, student.grad[0].numpy(), rtol=1e-9, atol=1e-12)


def test_toy_metrics_are_accuracy_and_logit_gap_of_its_students(page):
    """The toy's accuracy and gap, recomputed in Python from its students' test logits."""
    data = page.evaluate("(() => { const toy = new labCore.Toy(2, 20, 0.9); toy.run(30); "
                         "return {metrics: toy.metrics(), y: toy.test.y, z: toy.test.z, "
                         "s: Object.fromEntries(labCore.METHODS.map(m => [m, toy.test.x.map("
                         "x => toy.students[m].forward(x).logits)]))}; })()")
    labels, teacher = torch.tensor(data["y"]), torch.tensor(data["z"], dtype=torch.float64)
    kept = top_k_mask(teacher, 2)
    for method, logits in data["s"].items():
        logits = torch.tensor(logits, dtype=torch.float64)
        accuracy = float((logits.argmax(-1) == labels).double().mean())
        gap = float(logit_gap(logits, kept).mean())
        assert data["metrics"][method]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert data["metrics"][method]["logit_gap"] == pytest.approx(gap, rel=1e-9)
