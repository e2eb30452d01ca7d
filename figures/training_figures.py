"""Training curves: test accuracy and test loss per epoch for every CIFAR run (teacher and
students), one colour per method; each distilled run's temperature and teacher are read from
its own recipe.json and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from stingy.figures.style import FULL_WIDTH, GREY, method_colour, method_label, save_figure
from stingy.io import read_jsonl
from stingy.methods import METHODS

CIFAR_FOLDERS = ("cifar10_paper", "cifar10_sweep", "cifar10_quick")


def cifar_runs(results_dir) -> list[tuple[str, Path, dict]]:
    """(name, metrics.jsonl, recipe) for every CIFAR run folder with per-epoch metrics, the
    name being the folder's path under the results folder."""
    results_dir = Path(results_dir)
    runs = []
    for folder in CIFAR_FOLDERS:
        for metrics in sorted((results_dir / folder).glob("**/metrics.jsonl")):
            recipe_path = metrics.with_name("recipe.json")
            recipe = json.loads(recipe_path.read_text()) if recipe_path.is_file() else {}
            runs.append((str(metrics.parent.relative_to(results_dir)), metrics, recipe))
    return runs


def is_teacher(name: str, recipe: dict) -> bool:
    """Teacher runs: named so, or trained with the Nasty Teacher objective."""
    method = recipe.get("method", {}).get("name", "")
    return "teacher" in Path(name).name or method in ("nasty", "nasty_teacher")


def distill_temperature(recipe: dict):
    """The temperature a run learnt from a teacher at, or None (no teacher in its loss)."""
    method = recipe.get("method", {})
    name = method.get("name", "scratch")
    if name in METHODS and METHODS[name].needs_teacher:
        return method.get("temperature")
    return None


def _group(name: str, recipe: dict) -> tuple:
    """(is a teacher, method, model, temperature): runs in one group share a colour and a
    legend entry."""
    return (is_teacher(name, recipe), recipe.get("method", {}).get("name", "scratch"),
            recipe.get("model", {}).get("name", "?"), distill_temperature(recipe))


def describe_run(name: str, recipe: dict, records: list, metrics_path: Path) -> str:
    """'quick-kd (cnn, Normal KD at T=4 from quick-teacher, 5 epochs, final 63.2%)'; the
    teacher is the run folder named in the run's summary.json."""
    parts = [recipe.get("model", {}).get("name", "?")]
    temperature = distill_temperature(recipe)
    if temperature is not None:
        summary_path = metrics_path.with_name("summary.json")
        teacher = (json.loads(summary_path.read_text()).get("teacher") or {}
                   if summary_path.is_file() else {})
        source = f" from {Path(teacher['path']).parent.name}" if teacher.get("path") else ""
        parts.append(f"{method_label(recipe['method']['name'])} at T={temperature:g}{source}")
    parts += [f"{len(records)} epochs", f"final {100 * records[-1]['test_accuracy']:.1f}%"]
    return f"{Path(name).name} ({', '.join(parts)})"


def draw_training_curves(runs: list, out_stem) -> dict:
    """Test accuracy and test loss per epoch of every run in ``runs`` ((name, metrics.jsonl,
    recipe)); students coloured by method, teachers grey and dashed."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.9))
    described, groups = [], {}
    for name, _, recipe in runs:
        key = _group(name, recipe)
        groups[key] = groups.get(key, 0) + 1
    labelled = set()
    for name, path, recipe in runs:
        records = [r for r in read_jsonl(path) if r.get("test_accuracy") is not None]
        if not records:
            continue
        key = _group(name, recipe)
        teacher, method, model, temperature = key
        nasty = method in ("nasty", "nasty_teacher")
        colour = (method_colour("nasty_kd") if nasty else GREY) if teacher else method_colour(method)
        style = "--" if teacher else "-"
        label = None
        if key not in labelled:
            labelled.add(key)
            kind = ("Nasty teacher" if nasty else "teacher") if teacher else method_label(method)
            kind += f" T={temperature:g}" if temperature is not None else ""
            label = f"{kind}, {model}" + (f" ({groups[key]} runs)" if groups[key] > 1 else "")
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
        left.plot(epochs, [100 * r["test_accuracy"] for r in records], color=colour, ls=style,
                  marker="o", ms=2.5, label=label)
        losses = [r.get("test_loss") for r in records]
        if all(loss is not None for loss in losses):
            right.plot(epochs, losses, color=colour, ls=style, marker="o", ms=2.5)
        described.append(describe_run(name, recipe, records, path))
    left.set_xlabel("epoch")
    left.set_ylabel("test accuracy (%)")
    left.set_title("(a) test accuracy")
    right.set_xlabel("epoch")
    right.set_ylabel("test cross-entropy")
    right.set_title("(b) test loss")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center")
    record = save_figure(fig, out_stem)
    folders = sorted({str(Path(name).parts[0]) for name, _, _ in runs})
    record["caption"] = (
        f"Training curves of every CIFAR-10 run with per-epoch metrics ({', '.join(folders)}; "
        "metrics.jsonl per run, one seed each): " + "; ".join(described) + ". Colour = method; "
        "teachers dashed (grey; the Nasty Teacher in its method colour). The test loss is plain cross-entropy on the labels.")
    return record
