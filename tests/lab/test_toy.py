"""The page's live toy: its students are the registry's methods with the objectives' gradients,
and it separates the methods as the simulations do (results/simulations: stingy KD below
normal KD and within-M KD, whose accuracies are close; the stingy student's logit gap grows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stingy.methods import METHODS, MethodSettings, names
from stingy.objective import SampledRows
from stingy.theory import logit_gap, top_k_mask

STEPS = 400
TOY_METHODS = names("simulations")


def train_toy(page, k: int, temperature: float, alpha: float, steps: int) -> dict:
    return page.evaluate(f"(() => {{ const toy = new labCore.Toy({k}, {temperature}, {alpha}); "
                         f"toy.run({steps}); return toy.metrics(); }})()")


def test_toy_students_are_the_simulation_methods_of_the_registry(page):
    assert page.evaluate("labCore.METHODS") == list(TOY_METHODS)
    assert page.evaluate("[...document.querySelectorAll('#students input')].map(e => e.value)") \
        == list(TOY_METHODS)


def test_stingy_student_falls_behind_normal_and_within_m_at_high_temperature(page):
    m = train_toy(page, k=2, temperature=20, alpha=0.9, steps=STEPS)
    normal, stingy, within = (m[name]["accuracy"] for name in ("normal_kd", "stingy_kd",
                                                               "within_m_kd"))
    assert normal - stingy >= 0.03, m
    assert within - stingy >= 0.03, m
    assert abs(normal - within) <= 0.02, m
    assert m["stingy_kd"]["logit_gap"] > 2 * m["normal_kd"]["logit_gap"], m


def test_every_method_trains(page):
    """A few steps of every student: finite metrics, and a history point every 10 steps."""
    toy = page.evaluate(f"(() => {{ const toy = new labCore.Toy(2, 4, 0.9, {list(TOY_METHODS)});"
                        " toy.run(20); return {history: toy.history.map(h => h.step), "
                        "metrics: toy.metrics()}; })()")
    assert toy["history"] == [0, 10, 20]
    assert set(toy["metrics"]) == set(TOY_METHODS)
    for name, metric in toy["metrics"].items():
        assert 0 <= metric["accuracy"] <= 1 and np.isfinite(metric["logit_gap"]), name


def test_page_toy_is_the_same_trained_model(page):
    """The toy on the page (default controls: r = 0.2 -> k_toy = 2, T = 20, a = 0.9) gives the
    same metrics as a fresh toy with those settings."""
    page.evaluate("lab.toy.reset()")
    shown = page.evaluate("lab.toy.run(60)")
    assert shown == train_toy(page, k=2, temperature=20, alpha=0.9, steps=60)


def uniform_draws(count: int, seed: int) -> list[float]:
    return np.random.default_rng(seed).random(count).tolist()


@pytest.mark.parametrize("name", TOY_METHODS)
def test_toy_gradient_is_the_objective_gradient(page, name):
    """The toy's per-example gradient in the student logits equals autograd of the registry
    method's objective (stingy.objective); sampled KD gets the same draws on both sides."""
    rng = np.random.default_rng(5)
    for k, temperature, alpha in ((2, 20.0, 0.9), (3, 4.0, 0.5), (1, 1.0, 0.2), (7, 2.0, 1.0)):
        z, s = 3 * rng.standard_normal(8), rng.standard_normal(8)
        label = int(rng.integers(8))
        draws = uniform_draws(k, int(rng.integers(1000)))
        got = page.evaluate(
            f"(() => {{ const u = {draws}; let i = 0; "
            f"const row = labCore.teacherRow('{name}', {z.tolist()}, {k}, {temperature}, "
            f"() => u[i++]); return labCore.logitGradient('{name}', {s.tolist()}, {label}, row, "
            f"{temperature}, {alpha}); }})()")
        objective = METHODS[name].objective(
            MethodSettings(name=name, temperature=temperature, alpha=alpha, k=k), 8)
        teacher = torch.tensor(z[None])
        if name == "sampled_kd":
            cumulative = np.cumsum(torch.softmax(teacher[0] / temperature, -1).numpy())
            drawn = np.minimum(np.searchsorted(cumulative, draws, side="right"), 7)
            teacher = SampledRows(torch.tensor(drawn[None]),
                                  torch.full((1, k), 1.0 / k, dtype=torch.float64))
        student = torch.tensor(s[None], requires_grad=True)
        objective(student, teacher, torch.tensor([label])).backward()
        np.testing.assert_allclose(got, student.grad[0].numpy(), rtol=1e-9, atol=1e-12)


def test_sampled_target_is_the_teacher_softmax_in_expectation(page):
    mean = page.evaluate("(() => { const z = [2, 1, 0.5, 0, -1, -3, 0.2, 1.5]; let sum = "
                         "z.map(() => 0); for (let n = 0; n < 4000; n++) { const t = labCore"
                         ".teacherRow('sampled_kd', z, 2, 2, Math.random).target; sum = sum"
                         ".map((v, i) => v + t[i] / 4000); } return sum; })()")
    want = torch.softmax(torch.tensor([2, 1, 0.5, 0, -1, -3, 0.2, 1.5]) / 2, -1).numpy()
    np.testing.assert_allclose(mean, want, atol=0.03)


def test_toy_metrics_are_accuracy_and_logit_gap_of_its_students(page):
    """The toy's accuracy and gap, recomputed in Python from its students' test logits."""
    data = page.evaluate("(() => { const toy = new labCore.Toy(2, 20, 0.9); toy.run(30); "
                         "return {metrics: toy.metrics(), y: toy.test.y, z: toy.test.z, "
                         "s: Object.fromEntries(toy.methods.map(m => [m, toy.test.x.map("
                         "x => toy.students[m].forward(x).logits)]))}; })()")
    labels, teacher = torch.tensor(data["y"]), torch.tensor(data["z"], dtype=torch.float64)
    kept = top_k_mask(teacher, 2)
    for method, logits in data["s"].items():
        logits = torch.tensor(logits, dtype=torch.float64)
        accuracy = float((logits.argmax(-1) == labels).double().mean())
        gap = float(logit_gap(logits, kept).mean())
        assert data["metrics"][method]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert data["metrics"][method]["logit_gap"] == pytest.approx(gap, rel=1e-9)
