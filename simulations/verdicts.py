"""Checks of the theory on result rows: pure functions, predicted vs measured, 95% intervals.

Rows are the dicts of runs.csv (one per student) and drive_rates.csv (one per first-step
measurement). Comparisons between methods are paired by seed (same task draw, data,
initialisation and batch order); with ``task.draw_per_seed`` every seed is its own task draw,
so the Student-t intervals over seeds treat the task as a random factor. Each check returns
{check, statement, predicted, measured, ci95, verdict, p_value, detail, noise, noise_kind};
:func:`all_verdicts` then adds Holm's correction over the whole family (p_holm,
verdict_raw, verdict_holm; :mod:`stingy.simulations.statistics`). ``verdict`` is the raw one.
Details report measured numbers only; no explanation is attached that was not computed.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
from scipy import stats

from stingy.intervals import paired, t_interval
from stingy.simulations.statistics import holm


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


def one_sided_p(values, threshold: float = 0.0, greater: bool = True) -> float:
    """p-value of a one-sample t-test of mean > threshold (or < threshold); nan below 2 values."""
    values = np.asarray(values, dtype=float) - threshold
    if len(values) < 2:
        return float("nan")
    error = values.std(ddof=1) / math.sqrt(len(values))
    statistic = values.mean() / error if error > 0 else math.copysign(math.inf, values.mean())
    statistic = statistic if greater else -statistic
    return float(stats.t.sf(statistic, len(values) - 1))


def equivalence_p(values, low: float, high: float) -> float:
    """TOST p-value that the mean lies inside (low, high): the larger one-sided p."""
    return max(one_sided_p(values, low, True), one_sided_p(values, high, False))


def _result(check, statement, predicted, measured, ci, passed, detail, setting,
            p_value=float("nan")) -> dict:
    return {"check": check, "statement": statement, "predicted": predicted,
            "measured": measured, "ci95": [ci[0], ci[1]], "verdict": "pass" if passed else "fail",
            "p_value": p_value, "detail": detail, **setting}


def _setting(rows) -> dict:
    return {"noise": rows[0]["noise"], "noise_kind": rows[0]["noise_kind"]}


def check_greater(check: str, statement: str, better: dict, worse: dict, setting: dict,
                  detail: str) -> dict:
    """A paired check that ``better`` - ``worse`` (accuracy per seed) is > 0: passes when its
    95% interval lies above 0; ``detail`` names the two (numbers are appended)."""
    difference = paired(better, worse)
    interval = t_interval(difference)
    detail = (f"{detail} = {interval[0]:+.4f} [{interval[1]:+.4f}, {interval[2]:+.4f}] "
              f"(accuracy, paired over {len(difference)} seeds)")
    return _result(check, statement, "> 0", interval[0], interval[1:], interval[1] > 0, detail,
                   setting, one_sided_p(difference))


def check_kd(rows) -> dict:
    """(kd) normal KD is more accurate than labels only: a working KD baseline."""
    return check_greater("kd", "normal KD is more accurate than labels only",
                         accuracy_by_seed(rows, "normal_kd"), accuracy_by_seed(rows, "scratch"),
                         _setting(rows), "normal_kd - scratch")


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
    p_value = max(one_sided_p(paired(stingy, accuracy_by_seed(rows, "scratch")), greater=False),
                  one_sided_p(paired(stingy, accuracy_by_seed(rows, "normal_kd")), greater=False))
    return _result("a", f"stingy KD at r={ratio} is less accurate than both labels only and "
                   "normal KD", "< 0", binding[0], binding[1:], passed, detail, _setting(rows),
                   p_value)


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
        f"r={r}: acc {curve[r]:.3f}, kept mass m {mass[r]:.3f}, exact signal/drive "
        f"{signal[r]:.3f}"
        for r in ratios)
    p_value = max(one_sided_p(paired(accuracy_by_seed(rows, "stingy_kd", r), middle))
                  for r in ends.values())
    return _result("b", f"stingy accuracy at the smallest r ({ends['smallest']}, k=1) and the "
                   f"largest r ({ends['largest']}) exceeds that at r={ratio}", "> 0", binding[0],
                   binding[1:], passed, detail, _setting(rows), p_value)


def _by_seed(rate_rows, kept_sets: str) -> dict:
    """{seed: rows} of the drive-rate rows with the given kept sets ("true" or "shuffled")."""
    grouped = defaultdict(list)
    for row in rate_rows:
        if row["kept_sets"] == kept_sets:
            grouped[int(row["seed"])].append(row)
    return grouped


def temperature_exponents(rate_rows) -> np.ndarray:
    """Per seed: the mean over ratios of the log-log slope of the measured first-step rate
    against T (true kept sets). Rows with a non-positive rate are left out."""
    exponents = []
    for rows in _by_seed(rate_rows, "true").values():
        slopes = []
        for ratio in sorted({row["ratio"] for row in rows}):
            chosen = [r for r in rows if r["ratio"] == ratio and r["measured_rate"] > 0]
            if len({r["temperature"] for r in chosen}) >= 2:
                slopes.append(np.polyfit(np.log([r["temperature"] for r in chosen]),
                                         np.log([r["measured_rate"] for r in chosen]), 1)[0])
        exponents.append(np.mean(slopes))
    return np.array(exponents)


def _with_signal(rate_row) -> float:
    return rate_row["predicted_rate"] + rate_row["signal_rate"]


def check_c(rate_rows, tolerance: float = 0.1, factor: float = 1.25) -> list[dict]:
    """(c) the first-step rate of the logit gap (stingy.simulations.drive_rate), seeds as units.

    c-T: the rate is proportional to T: per-seed exponent inside [1 - tol, 1 + tol].
    c-eNTK: measured / predicted (eNTK drive with kept-set overlap) inside [1/factor, factor]
    (per seed, mean over T and r); the free-logit prediction a T / k is reported beside it.
    c-overlap: shuffling the batch's kept sets lowers measured and predicted rates by the same
    amount: (drop measured) / (drop predicted) inside [1/factor, factor], the prediction being
    the drive's and the teacher signal's rate together (the signal moves the gap across
    examples wherever kept sets overlap; stingy.simulations.drive_rate).
    Each is an equivalence test (TOST); its interval must lie inside the band to pass.
    """
    setting = _setting(rate_rows)
    exponents = temperature_exponents(rate_rows)
    true_rows, shuffled_rows = _by_seed(rate_rows, "true"), _by_seed(rate_rows, "shuffled")
    seeds = sorted(true_rows)
    ratio_to_prediction = np.array([np.mean([r["measured_rate"] / r["predicted_rate"]
                                             for r in true_rows[s]]) for s in seeds])
    free_logit = np.array([np.mean([r["measured_rate"] / r["free_logit_rate"]
                                    for r in true_rows[s]]) for s in seeds])
    drops = []
    for seed in seeds:
        shuffled = {(r["ratio"], r["temperature"]): r for r in shuffled_rows[seed]}
        drops.append(np.mean([(r["measured_rate"] - shuffled[key]["measured_rate"])
                              / (_with_signal(r) - _with_signal(shuffled[key]))
                              for r in true_rows[seed]
                              for key in [(r["ratio"], r["temperature"])]]))
    drops = np.array(drops)
    results = []
    free_note = (f"; the free-logit prediction a T / k (no overlap) gives measured / predicted "
                 f"= {free_logit.mean():.4f}")
    for name, statement, values, low, high, extra, note in (
            ("c-T", "the first-step growth rate of the logit gap is proportional to T",
             exponents, 1 - tolerance, 1 + tolerance, "exponent of T per seed (mean over r)", ""),
            ("c-eNTK", "the eNTK drive prediction with kept-set overlap gives the first-step rate",
             ratio_to_prediction, 1 / factor, factor,
             "measured / predicted per seed (mean over T, r)", free_note),
            ("c-overlap", ("shuffling the kept sets across the batch changes the rate as the "
                           "overlap predicts (drive and teacher signal)"), drops, 1 / factor,
             factor, "(measured true - shuffled) / (predicted drive + signal, true - shuffled) "
             "per seed, mean over T, r", "")):
        interval = t_interval(values)
        passed = bool(low < interval[1] and interval[2] < high)
        detail = (f"{extra}: {interval[0]:.4f} [{interval[1]:.4f}, {interval[2]:.4f}] over "
                  f"{len(values)} seeds; pass needs the interval inside [{low:.3f}, {high:.3f}]"
                  f"{note}")
        results.append(_result(name, statement, f"in [{low:.3f}, {high:.3f}]", interval[0],
                               interval[1:], passed, detail, setting,
                               equivalence_p(values, low, high)))
    return results


RECOVERY_CHECKS = {"within_m_kd": ("d", "within-M KD"),
                   "tail_bucket_kd": ("f", "tail-bucket KD (stingy teacher + its tail mass)"),
                   "uniform_floor_kd": ("g", "uniform-floor KD (the sparse row, 1/K on each "
                                        "dropped class)"),
                   "sampled_kd": ("h", "sampled KD (k classes sampled from the teacher)")}


def check_d(rows, ratio: float, recovery: float = 0.5, tolerance: float = 1.0,
            method: str = "within_m_kd") -> dict:
    """(d) within-M KD (or (f) tail-bucket KD, ``method="tail_bucket_kd"``) recovers (at least
    ``recovery`` of) normal KD's accuracy from a stingy teacher. Recovery per seed =
    (method - stingy) / (normal - stingy). If stingy KD shows no deficit (its interval vs
    normal KD contains 0) the check is method - normal >= -tolerance accuracy points instead."""
    check, name = RECOVERY_CHECKS[method]
    within = accuracy_by_seed(rows, method, ratio)
    stingy = accuracy_by_seed(rows, "stingy_kd", ratio)
    normal = accuracy_by_seed(rows, "normal_kd")
    deficit = t_interval(paired(normal, stingy))
    gap_to_normal = t_interval(paired(within, normal))
    if deficit[1] > 0:
        # a seed with no deficit has no share to recover: it is left out of the fractions
        seeds = sorted(s for s in set(within) & set(stingy) & set(normal)
                       if normal[s] != stingy[s])
        fractions = [(within[s] - stingy[s]) / (normal[s] - stingy[s]) for s in seeds]
        measured = t_interval(fractions)
        passed = measured[1] > recovery
        p_value = one_sided_p(fractions, recovery)
        predicted = f">= {recovery} of the stingy deficit"
    else:
        measured = gap_to_normal
        passed = measured[1] > -tolerance / 100
        p_value = one_sided_p(paired(within, normal), -tolerance / 100)
        predicted = f"within - normal >= {-tolerance / 100}"
    detail = (f"r={ratio}: normal - stingy = {deficit[0]:+.4f} [{deficit[1]:+.4f}, "
              f"{deficit[2]:+.4f}]; {method} - normal = {gap_to_normal[0]:+.4f} "
              f"[{gap_to_normal[1]:+.4f}, {gap_to_normal[2]:+.4f}]; "
              + ("measured is the recovered share of the deficit" if deficit[1] > 0 else
                 f"no significant stingy deficit, so measured is {method} - normal"))
    return _result(check, f"{name} from the stingy teacher at r={ratio} recovers normal KD's "
                   "accuracy", predicted, measured[0], measured[1:], passed, detail,
                   _setting(rows), p_value)


def _setting_key(row) -> tuple:
    return (float(row["noise"]), row["noise_kind"], float(row.get("teacher_logit_range", 0.0)))


def harm_by_setting(rows, ratio: float) -> dict:
    """{(noise, kind, logit_range): {"normal": {seed: normal - stingy}, "labels": {seed:
    scratch - stingy}, "mass": mean kept mass at ratio}}."""
    grouped = defaultdict(list)
    for row in rows:
        grouped[_setting_key(row)].append(row)
    out = {}
    for key, group in grouped.items():
        stingy = accuracy_by_seed(group, "stingy_kd", ratio)
        normal, labels = accuracy_by_seed(group, "normal_kd"), accuracy_by_seed(group, "scratch")
        out[key] = {"normal": {s: normal[s] - stingy[s] for s in stingy if s in normal},
                    "labels": {s: labels[s] - stingy[s] for s in stingy if s in labels},
                    "mass": float(np.mean(list(accuracy_by_seed(group, "stingy_kd", ratio,
                                                                "kept_mass").values())))}
    return out


def _describe(key, harm) -> str:
    noise, kind, scale = key
    scale_text = f"logit range {scale:g}" if scale else "exact logits"
    return f"{kind} noise {noise:g}, {scale_text} (m={harm['mass']:.3f})"


def check_e(rows, ratio: float, margin: float = 0.02, mass_tolerance: float = 0.01) -> list[dict]:
    """(e) kept mass and label noise, each varied with the other held fixed; harm is
    baseline - stingy accuracy at ``ratio`` against both baselines (normal KD, labels only),
    paired by seed.

    e-mass: at fixed noise, settings that differ only in the teacher-logit scale: the one with
    the lower kept mass m is harmed more (difference > 0).
    e-noise: pairs of noise levels whose kept masses differ by at most ``mass_tolerance``
    (fixed kept mass): if harm depended on noise only through m, the difference would be
    within +-margin (equivalence test). Pairs with different masses are not tested.
    """
    harms = harm_by_setting(rows, ratio)
    results = []
    for baseline in ("normal", "labels"):
        for noise, kind in sorted({(n, k) for n, k, _ in harms}):
            scales = sorted((harms[n, k, s]["mass"], (n, k, s)) for n, k, s in harms
                            if (n, k) == (noise, kind))
            if len(scales) < 2:
                continue
            (_, low), (_, high) = scales[0], scales[-1]
            diff = paired(harms[low][baseline], harms[high][baseline])
            interval = t_interval(diff)
            detail = (f"harm vs {baseline}: {_describe(low, harms[low])} "
                      f"{np.mean(list(harms[low][baseline].values())):+.4f}; "
                      f"{_describe(high, harms[high])} "
                      f"{np.mean(list(harms[high][baseline].values())):+.4f}; paired by seed")
            results.append(_result(
                "e-mass", f"at noise {noise:g} the lower kept mass is harmed more "
                f"(vs {baseline})", "> 0", interval[0], interval[1:], interval[1] > 0, detail,
                {"noise": noise, "noise_kind": kind}, one_sided_p(diff)))
        for low, high in itertools.combinations(sorted(harms), 2):
            if low[:2] == high[:2] or abs(harms[low]["mass"] - harms[high]["mass"]) > \
                    mass_tolerance:
                continue
            if low[0] > high[0]:
                low, high = high, low
            (n_low, _, _), (n_high, kind_high, _) = low, high
            diff = paired(harms[high][baseline], harms[low][baseline])
            interval = t_interval(diff)
            mass_gap = harms[high]["mass"] - harms[low]["mass"]
            detail = (f"harm vs {baseline}: {_describe(high, harms[high])} minus "
                      f"{_describe(low, harms[low])}; kept-mass difference {mass_gap:+.3f}; "
                      f"pass needs the interval inside [-{margin}, {margin}]")
            results.append(_result(
                "e-noise", f"at kept mass {harms[low]['mass']:.3f} noise {n_high:g} vs "
                f"{n_low:g} does not change the harm (vs {baseline})",
                f"in [-{margin}, {margin}]", interval[0], interval[1:],
                bool(-margin < interval[1] and interval[2] < margin), detail,
                {"noise": f"{n_high:g} vs {n_low:g}", "noise_kind": kind_high},
                equivalence_p(diff, -margin, margin)))
    return results


NEEDED_METHODS = {"a": ("scratch", "normal_kd", "stingy_kd"), "b": ("stingy_kd",),
                  "d": ("normal_kd", "stingy_kd", "within_m_kd"),
                  "e": ("scratch", "normal_kd", "stingy_kd")}


def left_out_checks(methods, ratios, ratio: float) -> dict[str, str]:
    """{check: why it cannot be computed} for a run of ``methods`` at stingy ``ratios`` whose
    checks look at ``ratio``: a missing method, or for (b) no ratio on each side of it."""
    reasons = {check: f"needs {', '.join(m for m in needed if m not in methods)}"
               for check, needed in NEEDED_METHODS.items()
               if any(m not in methods for m in needed)}
    ratios = sorted(ratios)
    if "b" not in reasons and not (ratios and ratios[0] < ratio < ratios[-1]):
        reasons["b"] = f"needs a stingy ratio on each side of r={ratio}, got {ratios}"
    return reasons


def all_verdicts(run_rows, rate_rows, ratio: float, recovery: float = 0.5,
                 tolerance: float = 1.0, extra: list[dict] = ()) -> list[dict]:
    """Checks a, b, d (and f when tail-bucket KD ran) for every (noise, kind) setting, c on
    its first-step rates, e across settings, and the ``extra`` checks given; then Holm's
    correction over the whole family. A check the rows cannot give (:func:`left_out_checks`)
    is left out."""
    methods = {row["method"] for row in run_rows}
    left_out = left_out_checks(methods, {float(row["ratio"]) for row in run_rows
                                         if row["method"] == "stingy_kd"}, ratio)
    bucket = {"normal_kd", "stingy_kd", "tail_bucket_kd"} <= methods
    settings = defaultdict(list)
    for row in run_rows:
        settings[_setting_key(row)].append(row)
    rates = defaultdict(list)
    for row in rate_rows:
        rates[_setting_key(row)].append(row)
    results = []
    for key in sorted(settings):
        group = settings[key]
        results += [check(group, ratio) for name, check in (("a", check_a), ("b", check_b))
                    if name not in left_out]
        if rates[key]:
            results += check_c(rates[key])
        if "d" not in left_out:
            results.append(check_d(group, ratio, recovery, tolerance))
        if bucket:
            results.append(check_d(group, ratio, recovery, tolerance, "tail_bucket_kd"))
    across = check_e(run_rows, ratio) if "e" not in left_out else []
    return holm(results + across + list(extra))
