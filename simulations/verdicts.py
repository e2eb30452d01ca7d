"""Checks of the theory on result rows: pure functions, predicted vs measured, 95% intervals.

Rows are the dicts of runs.csv (one per student) and drive_rates.csv (one per probe student).
Comparisons between methods are paired by seed (same data, initialisation and batch order);
intervals are Student-t over seeds. Each check returns
{check, statement, predicted, measured, ci95, verdict, detail, noise, noise_kind}.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy import stats


def t_interval(values) -> tuple[float, float, float]:
    """Mean and two-sided 95% Student-t interval: mean +- t_{0.975, n-1} s / sqrt(n)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def welch_interval(a, b) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a 95% Welch interval (unpaired samples)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else 1
    diff = float(a.mean() - b.mean())
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


def accuracy_by_seed(rows, method: str, ratio: float | None = None, key: str = "accuracy") -> dict:
    """{seed: value} for one method (and ratio, for sparse methods)."""
    chosen = {}
    for row in rows:
        if row["method"] != method:
            continue
        if ratio is not None and not math.isclose(float(row["ratio"]), ratio):
            continue
        chosen[int(row["seed"])] = float(row[key])
    if not chosen:
        raise ValueError(f"no rows for method={method!r} ratio={ratio!r}")
    return chosen


def paired(a: dict, b: dict) -> np.ndarray:
    """a[seed] - b[seed] over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    return np.array([a[s] - b[s] for s in seeds])


def _result(check, statement, predicted, measured, ci, passed, detail, setting) -> dict:
    return {"check": check, "statement": statement, "predicted": predicted,
            "measured": measured, "ci95": [ci[0], ci[1]], "verdict": "pass" if passed else "fail",
            "detail": detail, **setting}


def _setting(rows) -> dict:
    return {"noise": rows[0]["noise"], "noise_kind": rows[0]["noise_kind"]}


def check_a(rows, ratio: float) -> dict:
    """(a) stingy KD at an intermediate r is below normal KD and below labels only."""
    stingy = accuracy_by_seed(rows, "stingy_kd", ratio)
    vs_scratch = t_interval(paired(stingy, accuracy_by_seed(rows, "scratch")))
    vs_normal = t_interval(paired(stingy, accuracy_by_seed(rows, "normal_kd")))
    binding = max(vs_scratch, vs_normal, key=lambda x: x[0])
    passed = vs_scratch[2] < 0 and vs_normal[2] < 0
    detail = (f"r={ratio}: stingy - scratch = {vs_scratch[0]:+.4f} [{vs_scratch[1]:+.4f}, "
              f"{vs_scratch[2]:+.4f}]; stingy - normal_kd = {vs_normal[0]:+.4f} "
              f"[{vs_normal[1]:+.4f}, {vs_normal[2]:+.4f}] (accuracy, paired by seed); "
              f"measured is the larger of the two differences")
    return _result("a", f"stingy KD at r={ratio} is less accurate than both labels only and "
                   "normal KD", "< 0", binding[0], binding[1:], passed, detail, _setting(rows))


def check_b(rows, ratio: float) -> dict:
    """(b) the accuracy curve recovers at k=1 (smallest r) and at the largest r."""
    ratios = sorted({float(r["ratio"]) for r in rows if r["method"] == "stingy_kd"})
    middle = accuracy_by_seed(rows, "stingy_kd", ratio)
    ends = {"smallest": ratios[0], "largest": ratios[-1]}
    diffs = {name: t_interval(paired(accuracy_by_seed(rows, "stingy_kd", r), middle))
             for name, r in ends.items()}
    binding = min(diffs.values(), key=lambda x: x[0])
    passed = all(d[1] > 0 for d in diffs.values())
    mass = {r: np.mean(list(accuracy_by_seed(rows, "stingy_kd", r, "kept_mass").values()))
            for r in ratios}
    signal = {r: np.mean(list(accuracy_by_seed(rows, "stingy_kd", r, "signal_to_drive").values()))
              for r in ratios}
    curve = {r: np.mean(list(accuracy_by_seed(rows, "stingy_kd", r).values())) for r in ratios}
    detail = "; ".join(f"acc(r={ends[n]}) - acc(r={ratio}) = {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]"
                       for n, d in diffs.items())
    detail += ". Per r: " + ", ".join(
        f"r={r}: acc {curve[r]:.3f}, kept mass m {mass[r]:.3f}, signal/drive {signal[r]:.3f}"
        for r in ratios)
    if not passed:
        detail += (". Why (T2-T5): the order-T drive -T(1-r)(sbar_M - sbar_Mc) vanishes only at "
                   "k = K; at the largest r the T5 signal-to-drive ratio is "
                   f"{signal[ratios[-1]]:.3f} (the teacher's within-M logit spread against the "
                   "drive), so the drive still dominates the teacher's signal, and the kept mass "
                   f"m = {mass[ratios[-1]]:.3f} < 1 means the sparse target still moves "
                   f"{1 - mass[ratios[-1]]:.3f} of the tempered mass (T2); at k = 1 the target is "
                   "the teacher's top-1 (T4 special case), which recovers only as well as the "
                   "teacher's argmax is correct")
    return _result("b", f"stingy accuracy at the smallest r ({ends['smallest']}, k=1) and the "
                   f"largest r ({ends['largest']}) exceeds that at r={ratio}", "> 0", binding[0],
                   binding[1:], passed, detail, _setting(rows))


def fit_exponents(rate_rows, scaling: str):
    """OLS of log(rate) on [1, log T, log S(r)]; S = 1 - r ("t_one_minus_r") or 1/r ("t_over_k").

    Returns (coefficients [3], 95% intervals [3, 2], R^2, number of rows used, dropped).
    """
    used = [r for r in rate_rows if r["early_rate"] > 0]
    temperature = np.array([r["temperature"] for r in used], float)
    ratio = np.array([r["ratio"] for r in used], float)
    shape = 1 - ratio if scaling == "t_one_minus_r" else 1 / ratio
    design = np.column_stack([np.ones(len(used)), np.log(temperature), np.log(shape)])
    target = np.log([r["early_rate"] for r in used])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    dof = len(used) - design.shape[1]
    sigma2 = resid @ resid / dof
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    half = stats.t.ppf(0.975, dof) * np.sqrt(np.diag(cov))
    r2 = 1 - resid @ resid / ((target - target.mean()) @ (target - target.mean()))
    return coef, np.column_stack([coef - half, coef + half]), float(r2), len(used), \
        len(rate_rows) - len(used)


def check_c(rate_rows, scaling: str) -> dict:
    """(c) the early growth rate of sbar_M - sbar_Mc is proportional to T * S(r).

    ``t_one_minus_r``: rate ~ T (1 - r) (the drive's total push, aT(1 - r) over M);
    ``t_over_k``: rate ~ T / k (the drive's push on the gap for free logits: -aT(1-r)/k on M
    minus +aT(1-r)/(K-k) on Mc is aT/k). Proportional means both log-log exponents are 1.
    """
    coef, ci, r2, used, dropped = fit_exponents(rate_rows, scaling)
    passed = bool(ci[1, 0] <= 1 <= ci[1, 1] and ci[2, 0] <= 1 <= ci[2, 1])
    shape = "(1 - r)" if scaling == "t_one_minus_r" else "1/r"
    detail = (f"log rate = b0 + bT log T + bS log {shape}: bT = {coef[1]:.3f} "
              f"[{ci[1, 0]:.3f}, {ci[1, 1]:.3f}], bS = {coef[2]:.3f} [{ci[2, 0]:.3f}, "
              f"{ci[2, 1]:.3f}], R^2 = {r2:.3f}, {used} probe students"
              + (f", {dropped} with a non-positive rate left out" if dropped else "")
              + "; measured is bS, pass needs 1 inside both intervals")
    form = "T (1 - r)" if scaling == "t_one_minus_r" else "T / k"
    return _result("c", f"early growth rate of the logit gap is proportional to {form}", 1.0,
                   float(coef[2]), ci[2], passed, detail, _setting(rate_rows))


def check_d(rows, ratio: float, recovery: float = 0.5, tolerance: float = 1.0) -> dict:
    """(d) within-M KD recovers (at least ``recovery`` of) normal KD's accuracy from a stingy
    teacher. Recovery per seed = (within - stingy) / (normal - stingy). If stingy KD shows no
    deficit (its interval vs normal KD contains 0) the check is within - normal >= -tolerance
    accuracy points instead."""
    within = accuracy_by_seed(rows, "within_m_kd", ratio)
    stingy = accuracy_by_seed(rows, "stingy_kd", ratio)
    normal = accuracy_by_seed(rows, "normal_kd")
    deficit = t_interval(paired(normal, stingy))
    gap_to_normal = t_interval(paired(within, normal))
    if deficit[1] > 0:
        seeds = sorted(set(within) & set(stingy) & set(normal))
        fractions = [(within[s] - stingy[s]) / (normal[s] - stingy[s]) for s in seeds]
        measured = t_interval(fractions)
        passed = measured[1] > recovery
        predicted = f">= {recovery} of the stingy deficit"
    else:
        measured = gap_to_normal
        passed = measured[1] > -tolerance / 100
        predicted = f"within - normal >= {-tolerance / 100}"
    detail = (f"r={ratio}: normal - stingy = {deficit[0]:+.4f} [{deficit[1]:+.4f}, "
              f"{deficit[2]:+.4f}]; within_m - normal = {gap_to_normal[0]:+.4f} "
              f"[{gap_to_normal[1]:+.4f}, {gap_to_normal[2]:+.4f}]; "
              + ("measured is the recovered share of the deficit" if deficit[1] > 0 else
                 "no significant stingy deficit, so measured is within_m - normal"))
    return _result("d", f"within-M KD from the stingy teacher at r={ratio} recovers normal KD's "
                   "accuracy", predicted, measured[0], measured[1:], passed, detail,
                   _setting(rows))


def harm_by_setting(rows, ratio: float) -> dict:
    """{(noise, kind): (per-seed normal - stingy accuracy, mean kept mass at ratio)}."""
    grouped = defaultdict(list)
    for row in rows:
        grouped[float(row["noise"]), row["noise_kind"]].append(row)
    out = {}
    for key, group in grouped.items():
        harm = paired(accuracy_by_seed(group, "normal_kd"),
                      accuracy_by_seed(group, "stingy_kd", ratio))
        mass = np.mean(list(accuracy_by_seed(group, "stingy_kd", ratio, "kept_mass").values()))
        out[key] = (harm, float(mass))
    return out


def check_e(rows, ratio: float, per_setting: list[dict]) -> list[dict]:
    """(e) label noise lowers the teacher's kept mass m (T2) and so raises the stingy harm
    (normal - stingy at ``ratio``): compare the highest and lowest noise of each kind, and the
    two kinds at each shared non-zero rate (the lower m is predicted to be harmed more)."""
    harms = harm_by_setting(rows, ratio)
    summary = "; ".join(f"noise={v['noise']} {v['noise_kind']}: ({v['check']}) {v['verdict']}"
                        for v in per_setting)
    results = []
    pairs = []
    for kind in sorted({k for _, k in harms}):
        rates = sorted(n for n, k in harms if k == kind)
        if len(rates) > 1:
            pairs.append(((rates[-1], kind), (rates[0], kind)))
    shared = sorted({n for n, k in harms if n > 0 and (n, "symmetric") in harms
                     and (n, "superclass") in harms})
    pairs += [((n, "symmetric"), (n, "superclass")) for n in shared]
    for first, second in pairs:
        (harm_a, mass_a), (harm_b, mass_b) = harms[first], harms[second]
        if mass_a > mass_b:
            first, second, harm_a, harm_b, mass_a, mass_b = (second, first, harm_b, harm_a,
                                                             mass_b, mass_a)
        diff = welch_interval(harm_a, harm_b)
        detail = (f"harm = normal_kd - stingy_kd accuracy at r={ratio}: {first[1]} noise "
                  f"{first[0]} (m={mass_a:.3f}) {harm_a.mean():+.4f} vs {second[1]} noise "
                  f"{second[0]} (m={mass_b:.3f}) {harm_b.mean():+.4f}; Welch interval. "
                  f"Checks a-d per setting: {summary}")
        results.append(_result(
            "e", f"the stingy harm is larger with the lower kept mass ({first[1]} noise "
            f"{first[0]}) than with {second[1]} noise {second[0]}", "> 0", diff[0], diff[1:],
            diff[1] > 0, detail, {"noise": f"{first[0]} vs {second[0]}",
                                  "noise_kind": f"{first[1]} vs {second[1]}"}))
    return results


def all_verdicts(run_rows, rate_rows, ratio: float, recovery: float = 0.5,
                 tolerance: float = 1.0) -> list[dict]:
    """Checks a-d for every (noise, kind) setting, then e across settings."""
    settings = defaultdict(list)
    for row in run_rows:
        settings[float(row["noise"]), row["noise_kind"]].append(row)
    rates = defaultdict(list)
    for row in rate_rows:
        rates[float(row["noise"]), row["noise_kind"]].append(row)
    results = []
    for key in sorted(settings):
        group = settings[key]
        results += [check_a(group, ratio), check_b(group, ratio)]
        if rates[key]:
            results += [check_c(rates[key], "t_one_minus_r"), check_c(rates[key], "t_over_k")]
        results.append(check_d(group, ratio, recovery, tolerance))
    return results + check_e(run_rows, ratio, results)
