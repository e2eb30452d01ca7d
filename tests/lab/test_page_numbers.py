"""Every number the page computes (its own JavaScript) agrees with stingy.theory on a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from stingy.theory import (
    drive_norm,
    expansion_terms,
    kept_mass,
    kept_mass_bounds,
    logit_gap,
    signal_to_drive,
    sparse_target,
    top_k_mask,
    tv_to_uniform,
    tv_to_uniform_bound,
    two_level_logits,
)
from stingy.theory.approximation import tv_worst_case
from stingy.theory.operators import distillation_kl
from stingy.theory.signal import signal_to_drive_exact

RELATIVE = 1e-9
ZERO_FLOOR = 1e-6   # an absolute floor of 1e-15 for order-1 values that are exactly 0 (TV of a
                    # flat target, a one-class signal): rounding leaves ~1e-17 there


def tv_worst_case_reference(k: int, kept_range: float, temperature: float) -> float:
    """T3's exact worst case: the largest TV(p~, U_M) over two-level logits with j = 0..k
    classes on top, each computed by stingy.theory.tv_to_uniform; an independent route to
    stingy.theory.approximation.tv_worst_case(k, kept_range, temperature), which
    test_references_agree_with_the_library_closed_forms compares it with."""
    return max(float(tv_to_uniform(two_level_logits(k, j, kept_range, dtype=torch.float64),
                                   k, temperature)) for j in range(k + 1))


def signal_and_drive_reference(z: torch.Tensor, k: int, temperature: float) -> dict:
    """T5 from autograd: the gradient g of T^2 KL(p~ || softmax(s/T)) at s = 0 is split into
    its projection on the drive direction 1_M/k - 1/K and the rest (the signal). An independent
    route to stingy.theory.signal.signal_to_drive_exact(logits, k, temperature)."""
    K = z.shape[-1]
    s = torch.zeros(K, dtype=torch.float64, requires_grad=True)
    log_target = torch.log_softmax(z.masked_fill(~top_k_mask(z, k), -math.inf) / temperature, -1)
    (temperature**2 * distillation_kl(s, log_target, temperature)).backward()
    direction = top_k_mask(z, k).double() / k - 1 / K
    if k == K:
        return {"drive_norm": 0.0, "signal_norm": float(s.grad.norm()),
                "signal_to_drive": math.inf}
    drive = (s.grad @ direction) / (direction @ direction) * direction
    signal = s.grad - drive
    return {"drive_norm": float(drive.norm()), "signal_norm": float(signal.norm()),
            "signal_to_drive": float(signal.norm() / drive.norm())}


def python_numbers(z: np.ndarray, s: np.ndarray, k: int, temperature: float) -> dict:
    """The page's numbers, each computed by stingy.theory (float64)."""
    z, s = torch.tensor(z, dtype=torch.float64), torch.tensor(s, dtype=torch.float64)
    K = z.shape[-1]
    kept = top_k_mask(z, k)
    lower, upper = kept_mass_bounds(z, k, temperature)
    terms = expansion_terms(z, s, k, temperature)
    kept_variance = float(z[kept].var(unbiased=False))
    out = {
        "dense_target": torch.softmax(z / temperature, -1).tolist(),
        "sparse_target": sparse_target(z, k, temperature).tolist(),
        "kept": kept.tolist(),
        "kept_mass": float(kept_mass(z, k, temperature)),
        "kept_mass_lower": float(lower), "kept_mass_upper": float(upper),
        "kept_range": float(z[kept].max() - z[kept].min()),
        "student_range": float(s.max() - s.min()),
        "tv_to_uniform": float(tv_to_uniform(z, k, temperature)),
        "tv_tanh": float(tv_to_uniform_bound(z, k, temperature)),
        "tv_worst_case": tv_worst_case_reference(k, float(z[kept].max() - z[kept].min()),
                                                 temperature),
        "drive_norm_closed": drive_norm(k, K, temperature),
        "signal_to_drive_order_one": float(signal_to_drive(z, k, temperature)),
        "logit_gap": float(logit_gap(s, kept)),
        **signal_and_drive_reference(z, k, temperature),
    }
    out.update({key: float(value) for key, value in terms.items()})
    # the page's split of the order-1 and order-T^2 terms: what holds s and what does not
    out["constant"] = out["order_t2"] + 0.5 * kept_variance
    out["matching"] = out["teacher_matching"] - 0.5 * kept_variance
    return out


def grid():
    """(z, s, k, T) cases: random logits at several scales, ties, two-level worst cases."""
    rng = np.random.default_rng(12)
    cases = []
    for K, ks in ((2, (1, 2)), (5, (1, 2, 4)), (10, (1, 2, 5, 9, 10)), (100, (1, 10, 50, 99))):
        for scale in (0.1, 5.0, 30.0):
            z = scale * rng.standard_normal(K)
            s = rng.standard_normal(K)
            for k in ks:
                for temperature in (0.5, 4.0, 20.0):
                    cases.append((z, s, k, temperature))
    tied = np.array([3.0, 1.0, 3.0, 1.0, 0.0, 3.0, -2.0])
    cases += [(tied, rng.standard_normal(7), k, 2.0) for k in (1, 2, 3, 4)]
    for k, j, kept_range in ((4, 1, 2 * math.log(3)), (2, 1, 6.0), (7, 3, 9.0)):
        z = two_level_logits(k, j, kept_range, num_classes=10, dtype=torch.float64).numpy()
        cases.append((z, rng.standard_normal(10), k, 1.0))
    return cases


def test_references_agree_with_the_library_closed_forms():
    """The page is checked against the autograd / two-level references above; those agree with
    the library's closed forms (tv_worst_case, signal_to_drive_exact) on the whole grid."""
    for z, _, k, temperature in grid():
        if k == len(z):
            continue
        logits = torch.tensor(z, dtype=torch.float64)
        kept = top_k_mask(logits, k)
        kept_range = float(logits[kept].max() - logits[kept].min())
        assert float(tv_worst_case(k, kept_range, temperature)) == pytest.approx(
            tv_worst_case_reference(k, kept_range, temperature), rel=RELATIVE, abs=1e-15)
        assert float(signal_to_drive_exact(logits, k, temperature)) == pytest.approx(
            signal_and_drive_reference(logits, k, temperature)["signal_to_drive"],
            rel=1e-7, abs=1e-12)


def assert_close(name, got, want, scale):
    """|got - want| <= 1e-9 (|want| + scale), scale = the largest term of the quantity's
    formula (a term formed by cancellation, like the T4 remainder, is judged against it) or
    ZERO_FLOOR."""
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want), name
        for g, w in zip(got, want):
            assert_close(name, g, w, scale)
        return
    if isinstance(want, (bool, int)):
        assert got == want, f"{name}: page {got}, python {want}"
        return
    if math.isnan(want) or math.isinf(want):
        assert got == want or (math.isnan(got) and math.isnan(want)), f"{name}: {got} vs {want}"
        return
    assert abs(got - want) <= RELATIVE * (abs(want) + scale), \
        f"{name}: page {got!r}, python {want!r}, relative error {abs(got - want) / abs(want or 1):.3g}"


T4_KEYS = ("exact", "order_t2", "order_t", "order_1", "remainder", "order_inv_t",
           "teacher_matching", "student_spread", "paper_last_line", "constant", "matching")


def compare(page_numbers: dict, want: dict) -> None:
    t4_scale = sum(abs(want[key]) for key in ("exact", "order_t2", "order_t", "order_1"))
    for key, value in want.items():
        scale = t4_scale if key in T4_KEYS else ZERO_FLOOR
        if key == "signal_norm":   # Python's is the residual of a projection of the gradient
            scale = want["drive_norm"]
        if key == "signal_to_drive":   # ... divided by the drive norm
            scale = 1.0
        assert_close(key, page_numbers[key], value, scale)
    assert_close("drive_norm", page_numbers["drive_norm"], want["drive_norm_closed"], 0.0)


def test_page_numbers_match_stingy_theory_on_the_grid(page):
    cases = grid()
    for z, s, k, temperature in cases:
        got = page.evaluate(f"labCore.compute({z.tolist()}, {s.tolist()}, {k}, {temperature})")
        compare(got, python_numbers(z, s, k, temperature))
    assert len(cases) >= 130


def test_drive_and_signal_are_orthogonal_on_the_grid(page):
    for z, s, k, temperature in grid():
        got = page.evaluate(f"labCore.compute({z.tolist()}, {s.tolist()}, {k}, {temperature})")
        assert abs(got["drive_dot_signal"]) <= 1e-12 * temperature**2, (k, temperature)


def test_two_level_preset_attains_the_exact_worst_case(page):
    for K, k, kept_range, temperature in ((10, 2, 6.0, 1.0), (10, 4, 2 * math.log(3), 1.0),
                                          (20, 7, 9.0, 2.0)):
        got = page.evaluate(f"(() => {{ const z = labCore.twoLevelLogits({K}, {k}, {kept_range}, "
                            f"{temperature}); return labCore.compute(z, z, {k}, {temperature}); "
                            f"}})()")
        want = tv_worst_case_reference(k, kept_range, temperature)
        assert got["tv_to_uniform"] == pytest.approx(want, rel=RELATIVE)
        assert got["tv_worst_case"] == pytest.approx(want, rel=RELATIVE)


def test_displayed_numbers_are_the_live_state_numbers(page):
    """The values printed in the panels are stingy.theory's for the page's current logits."""
    state = page.evaluate("({z: lab.teacher(), s: lab.student(), k: lab.state.k, "
                          "T: lab.state.T})")
    want = python_numbers(np.array(state["z"]), np.array(state["s"]), state["k"], state["T"])
    shown = page.evaluate("Object.fromEntries([...document.querySelectorAll('[data-key]')]"
                          ".map(e => [e.dataset.key, e.textContent]))")
    assert abs(float(shown.pop("drive_dot_signal"))) <= 1e-9
    assert shown.pop("tv_worst_top_count").isdigit()
    assert len(shown) >= 20
    for key, text in shown.items():
        assert float(text) == pytest.approx(want[key], rel=1e-4, abs=1e-5), key
