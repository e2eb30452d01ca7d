"""Caption pieces computed from the result files: the simulated task and its settings, the
temperatures the students were distilled at, and the predictions that failed (from a
verdicts.json), so a caption never states a fixed claim."""

from __future__ import annotations

from pathlib import Path

from stingy.figures.inputs import read_json
from stingy.figures.style import canonical_method, method_label
from stingy.formatting import is_missing
from stingy.methods import METHODS


def simulation_settings(config_json) -> str:
    """'100 classes, 10000 training examples, oracle teacher, ... alpha=0.9' from a
    simulations config.json, or a note that it is absent (the temperatures are the rows',
    :func:`temperature_text`)."""
    if config_json is None or not Path(config_json).is_file():
        return "settings file absent"
    config = read_json(config_json, "simulation config").get("config", {})
    task, student, distill = (config.get(name, {}) for name in ("task", "student", "distill"))
    teacher = config.get("teacher", {})
    return (f"synthetic task with {task.get('classes')} classes, {task.get('train_size')} "
            f"training examples, {teacher.get('kind')} teacher; MLP students, "
            f"{student.get('hidden')} hidden units, {student.get('steps')} steps, "
            f"{student.get('seeds')} seeds; alpha={distill.get('alpha')}")


def mechanism_setting(run_json) -> str:
    """'K 100, label noise 0.3, r 0.1' from a mechanism sweep's run.json ('' without one)."""
    if run_json is None or not Path(run_json).is_file():
        return ""
    profile = read_json(run_json, "mechanism sweep settings").get("profile", {})
    return ", ".join(f"{name} {profile[key]:g}" for key, name in
                     (("classes", "K"), ("noise", "label noise"), ("ratio", "r"))
                     if key in profile)


def kd_temperatures(rows) -> dict[str, list[float]]:
    """Method label -> the temperatures its students were distilled at, for every method that
    learns from a teacher, from rows with ``method`` and ``temperature`` columns."""
    found = {}
    for row in rows:
        method, temperature = canonical_method(row["method"]), row.get("temperature")
        if (method in METHODS and not METHODS[method].needs_teacher) or is_missing(temperature) \
                or temperature == "":
            continue
        found.setdefault(method_label(method), set()).add(float(temperature))
    return {label: sorted(values) for label, values in found.items()}


def temperature_text(rows) -> str:
    """'every distilled student at T=20', or each method's temperatures when they differ."""
    found = kd_temperatures(rows)
    values = {t for ts in found.values() for t in ts}
    if not values:
        return "distillation temperature not recorded"
    if len(values) == 1:
        return f"every distilled student at T={values.pop():g}"
    return "; ".join(f"{label} at " + " and ".join(f"T={t:g}" for t in ts)
                     for label, ts in found.items())


def failing_predictions(verdicts_json, checks=None) -> list[dict]:
    """The failing verdicts of a verdicts.json (optionally only the named checks)."""
    if verdicts_json is None or not Path(verdicts_json).is_file():
        return []
    verdicts = read_json(verdicts_json, "simulation verdicts")
    return [v for v in verdicts if str(v.get("verdict")).lower() in ("fail", "failed", "false")
            and (checks is None or v.get("check") in checks)]


def failing_text(verdicts_json, checks=None, scope="") -> str:
    """A caption sentence listing the failing predictions with their numbers, or one saying
    none failed (or that no verdicts file was given)."""
    if verdicts_json is None or not Path(verdicts_json).is_file():
        return " No verdicts file: predictions were not checked here."
    failing = failing_predictions(verdicts_json, checks)
    if not failing:
        return f" Every prediction checked on {scope or 'these'} data passed."
    parts = []
    for verdict in failing:
        measured = verdict.get("measured")
        measured = f"{measured:.3g}" if isinstance(measured, float) else str(measured)
        interval = verdict.get("ci95") or []
        ci = (f" [{interval[0]:.3g}, {interval[1]:.3g}]" if len(interval) == 2
              and all(isinstance(v, (int, float)) for v in interval) else "")
        parts.append(f"({verdict.get('check')}, noise {verdict.get('noise')}) "
                     f"{verdict.get('statement')}: measured {measured}{ci}, "
                     f"predicted {verdict.get('predicted')}")
    return f" FAILING predictions{' on ' + scope + ' data' if scope else ''}: " + "; ".join(parts) + "."
