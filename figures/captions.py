"""Caption pieces computed from the result files: the simulated task and its settings, and the
predictions that failed (from a verdicts.json), so a caption never states a fixed claim."""

from __future__ import annotations

from pathlib import Path

from stingy.figures.inputs import read_json


def simulation_settings(config_json) -> str:
    """'100 classes, 10000 training examples, oracle teacher, ... T=20, alpha=0.9' from a
    simulations config.json, or a note that it is absent."""
    if config_json is None or not Path(config_json).is_file():
        return "settings file absent"
    config = read_json(config_json, "simulation config").get("config", {})
    task, student, distill = (config.get(name, {}) for name in ("task", "student", "distill"))
    teacher = config.get("teacher", {})
    return (f"synthetic task with {task.get('classes')} classes, {task.get('train_size')} "
            f"training examples, {teacher.get('kind')} teacher; MLP students, "
            f"{student.get('hidden')} hidden units, {student.get('steps')} steps, "
            f"{student.get('seeds')} seeds; T={distill.get('temperature')}, "
            f"alpha={distill.get('alpha')}")


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
