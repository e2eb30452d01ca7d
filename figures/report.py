"""REPORT.md of a run: every figure with its caption, our numbers beside the paper's
(figures/paper_numbers.toml), the derivation statuses, the simulation verdicts (failing ones
marked FAIL), where our settings differ, the machine and the date, and at the end this run
beside the reference run (stingy.figures.comparison). Written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stingy.figures.accuracy_figures import cifar_rows
from stingy.figures.draw import (
    CIFAR_SUMMARY,
    GPU_CHECK,
    PAPER_DIR,
    QUICK_DIR,
    SIMULATION_DIR,
    SUPERCLASS_DIR,
    SWEEP_DIRS,
    THEORY_DIR,
    resolve,
)
from stingy.figures.inputs import group_mean, read_rows
from stingy.figures.paper_numbers import load_paper_numbers
from stingy.formatting import fmt, is_missing, percent
from stingy.io import write_text
from stingy.machine import describe, machine_info

PASSING = ("pass", "passed", "confirmed", "true", "ok")
# Where verdicts are read from, in the order the summary lists them.
VERDICT_SOURCES = (*((folder, f"CIFAR-10 sweep, {folder}") for folder in SWEEP_DIRS),
                   (SIMULATION_DIR, "simulations, symmetric noise"),
                   (SUPERCLASS_DIR, "simulations, superclass noise"),
                   ("mechanism", "simulations, mechanism sweeps"),
                   ("mechanism/interventions", "simulations, interventions"),
                   ("fixes", "simulations, fixes with and without labels"),
                   ("separation", "simulations, kept mass against noise"))
# The checks that test the paper's own claims (stingy below both baselines; the U shape over
# r); every other check tests a prediction of ours and counts as new when it holds.
PAPER_CHECKS = ("a", "b")


def verdict_text(verdict) -> str:
    """'pass' for a passing verdict, '**FAIL**' for a failing one, else the verdict in bold."""
    text = str(verdict).strip().lower()
    if text in PASSING:
        return "pass"
    if text in ("fail", "failed", "false"):
        return "**FAIL**"
    return f"**{verdict}**"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(cell) if not isinstance(cell, str) else cell for cell in row)
              + " |" for row in rows]
    return "\n".join(lines)


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def derivations_section(results_dir: Path) -> str:
    records = _read_json(results_dir / THEORY_DIR / "derivations.json")
    if records is None:
        return "Not run (no theory/derivations.json)."
    rows = []
    for record in records:
        status = record.get("status", "")
        shown = f"**{status.upper()}**" if str(status).lower() == "failed" else status
        rows.append([str(record.get("statement_id", record.get("id", ""))),
                     fmt(record.get("statement", "")), shown, fmt(record.get("detail", ""))])
    failed = sum(str(r.get("status")).lower() == "failed" for r in records)
    head = f"{len(records)} statements, {failed} failed. LaTeX: `theory/derivations.tex`.\n\n"
    return head + table(["id", "statement", "status", "detail"], rows)


def simulation_setup(results_dir: Path, folder: str = SIMULATION_DIR) -> str:
    """One sentence on the simulated task from <folder>/config.json."""
    saved = _read_json(results_dir / folder / "config.json")
    config = (saved or {}).get("config")
    if not config:
        return "Simulations are synthetic (simulations/config.json absent)."
    task, student, distill = config["task"], config["student"], config["distill"]
    return (f"Synthetic task: {task['classes']} classes, {task['train_size']} training examples "
            f"per seed, teacher {config['teacher']['kind']}, students with {student['hidden']} "
            f"hidden units trained {student['steps']} steps, {student['seeds']} seeds, "
            f"T={distill['temperature']:g}, alpha={distill['alpha']:g}; wall time "
            f"{fmt(saved.get('wall_time_s'), 0)} s ({folder}/config.json).")


def decided(verdict: dict):
    """The verdict a check is judged by: Holm-corrected over its family where the file has
    one (``verdict_holm``), else the verdict itself."""
    return verdict.get("verdict_holm", verdict.get("verdict"))


def failing_first(verdicts: list[dict]) -> list[dict]:
    """The verdicts with every non-passing one first (order kept within each group)."""
    return sorted(verdicts, key=lambda v: verdict_text(decided(v)) == "pass")


def verdicts_section(results_dir: Path, folder: str = SIMULATION_DIR) -> str:
    verdicts = _read_json(results_dir / folder / "verdicts.json")
    if verdicts is None:
        return f"Not run (no {folder}/verdicts.json)."
    verdicts = failing_first(verdicts)
    rows = [[fmt(v.get("check", "")), _setting(v), fmt(v.get("statement", "")),
             fmt(v.get("predicted")),
             fmt(v.get("measured")), fmt(v.get("ci95")), verdict_text(v.get("verdict")),
             verdict_text(v["verdict_holm"]) if "verdict_holm" in v else "-",
             fmt(v.get("detail", ""))] for v in verdicts]
    failing = sum(verdict_text(decided(v)) != "pass" for v in verdicts)
    head = (f"{len(verdicts)} checks, {failing} not passing after Holm's correction (bold, "
            f"listed first). {simulation_setup(results_dir, folder)}\n\n")
    return head + table(["check", "setting", "statement", "predicted", "measured", "95% CI",
                         "verdict", "Holm", "detail"], rows)


def _setting(verdict: dict) -> str:
    """The setting a verdict belongs to: label noise, and alpha and training length where the
    verdict has them ('-' when it spans settings)."""
    noise, kind = verdict.get("noise"), verdict.get("noise_kind")
    if noise is None:
        return "-"
    text = f"noise {fmt(noise)}" + (f" {kind}" if isinstance(kind, str) else "")
    if "alpha" in verdict:
        text += f", alpha {fmt(verdict['alpha'])}"
    if "length" in verdict:
        text += f", {verdict['length']} training"
    return text


def _measured(verdict: dict) -> str:
    interval = verdict.get("ci95") or []
    ci = f" {fmt(interval, 3)}" if len(interval) == 2 else ""
    return f"{fmt(verdict.get('measured'), 3)}{ci}"


def verdict_groups(results_dir: Path) -> list[dict]:
    """Verdicts grouped by (source, check, statement): each group lists its settings that
    pass and those that do not (after Holm's correction where computed), with the measured
    value and interval."""
    groups: dict[tuple, dict] = {}
    for folder, source in VERDICT_SOURCES:
        for verdict in _read_json(results_dir / folder / "verdicts.json") or []:
            key = (source, str(verdict.get("check")), str(verdict.get("statement")))
            group = groups.setdefault(key, {"source": source, "check": key[1],
                                             "statement": key[2], "pass": [], "fail": []})
            side = "pass" if verdict_text(decided(verdict)) == "pass" else "fail"
            setting = _setting(verdict)
            group[side].append(_measured(verdict) if setting == "-"
                               else f"{setting}: {_measured(verdict)}")
    return list(groups.values())


def _group_line(group: dict, side: str) -> str:
    other = "fail" if side == "pass" else "pass"
    text = (f"- ({group['check']}) {fmt(group['statement'])} [{group['source']}]: "
            f"{'holds' if side == 'pass' else 'fails'} at " + "; ".join(group[side]))
    if group[other]:
        text += f" ({'holds' if other == 'pass' else 'fails'} at " + "; ".join(
            item.split(":")[0] for item in group[other]) + ")"
    return text


def _cifar_lines(results_dir: Path) -> list[tuple[str, str]]:
    """('held' | 'failed', line) per student: its worst stingy student against scratch on
    clean labels, from the first CIFAR-10 summary found."""
    path = resolve(results_dir, CIFAR_SUMMARY)
    if path is None:
        return []
    rows = [r for r in cifar_rows(path) if is_missing(r.get("noise")) or r.get("noise") in (0, "")]
    lines = []
    for student in sorted({str(r.get("student", "")) for r in rows}):
        chosen = [r for r in rows if str(r.get("student", "")) == student]
        scratch = [r["accuracy_mean"] for r in chosen if r["method"] == "scratch"]
        stingy = [r for r in chosen if r["method"] == "stingy_kd"]
        if not scratch or not stingy:
            continue
        seeds = (f"{fmt(stingy[0]['n_seeds'])} seeds" if not is_missing(stingy[0].get("n_seeds"))
                 else "one seed, no interval")
        worst = min(stingy, key=lambda r: r["accuracy_mean"])
        drop = (worst["accuracy_mean"] - scratch[0]) * (100 if worst["accuracy_mean"] <= 1 else 1)
        lines.append(("held" if drop < 0 else "failed",
                      f"- CIFAR-10 ({path.parent.name}, student {student}, {seeds}): the "
                      f"stingy student at r = {fmt(worst.get('ratio'))} is "
                      f"{fmt(abs(drop), 1)} points {'below' if drop < 0 else 'above'} scratch"))
    return lines


def summary_section(results_dir: Path) -> str:
    """One screen: what did not hold (first), what reproduced the paper, what is new; every
    line computed from the verdict files, the derivation statuses and the CIFAR summary."""
    groups = verdict_groups(results_dir)
    failed = [_group_line(g, "fail") for g in groups if g["fail"]]
    reproduced = [_group_line(g, "pass") for g in groups
                  if not g["fail"] and g["check"] in PAPER_CHECKS]
    new = [_group_line(g, "pass") for g in groups
           if not g["fail"] and g["check"] not in PAPER_CHECKS]
    derivations = _read_json(results_dir / THEORY_DIR / "derivations.json") or []
    broken = [str(r.get("statement_id", r.get("id", ""))) for r in derivations
              if str(r.get("status")).lower() == "failed"]
    if broken:
        failed.append(f"- derivations that failed: {', '.join(broken)} (of {len(derivations)})")
    for outcome, line in _cifar_lines(results_dir):
        (reproduced if outcome == "held" else failed).append(line)
    parts = [f"**Did not hold ({len(failed)})**\n\n" + ("\n".join(failed) or "- nothing")]
    parts.append(f"**Reproduced: the paper's claims that held ({len(reproduced)})**\n\n"
                 + ("\n".join(reproduced) or "- nothing"))
    parts.append(f"**New: our predictions beyond the paper that held ({len(new)})**\n\n"
                 + ("\n".join(new) or "- nothing"))
    return "\n\n".join(parts)


def sparse_ratio_section(results_dir: Path, paper: dict) -> str:
    """The paper's CIFAR-100 sparse-ratio ablation beside our simulated clean-label sweep,
    as accuracy and as the drop relative to scratch."""
    ablation = paper["sparse_ratio_ablation"]
    ratios = ablation["ratios"]
    path = results_dir / SIMULATION_DIR / "summary.csv"
    ours = {}
    baselines = {}
    if path.is_file():
        rows = read_rows(path, "simulation summary", ("noise", "method", "ratio", "accuracy_mean"))
        noise = min(row["noise"] for row in rows)
        clean = [row for row in rows if row["noise"] == noise]
        for row in group_mean(clean, ("method", "ratio"), ("accuracy_mean",)):
            if row["method"] == "stingy_kd":
                ours[round(row["ratio"], 6)] = row["accuracy_mean"]
            elif row["method"] in ("scratch", "normal_kd", "reversed_kd"):
                baselines[row["method"]] = row["accuracy_mean"]
    reference = ablation["resnet18_to_shufflenetv2"]
    scratch_ours = baselines.get("scratch")
    table_rows = []
    for i, ratio in enumerate(ratios):
        mine = ours.get(round(ratio, 6))
        drop = (None if mine is None or scratch_ours is None
                else (mine - scratch_ours) * (100 if mine <= 1 else 1))
        table_rows.append([f"{ratio:.0%}", fmt(reference["stingy"][i], 1),
                           fmt(reference["stingy"][i] - reference["scratch"], 1),
                           percent(mine), fmt(drop, 2)])
    for method in ("scratch", "normal_kd", "reversed_kd"):
        mine = baselines.get(method)
        drop = (None if mine is None or scratch_ours is None
                else (mine - scratch_ours) * (100 if mine <= 1 else 1))
        table_rows.append([method, fmt(reference[method], 1),
                           fmt(reference[method] - reference["scratch"], 1), percent(mine),
                           fmt(drop, 2)])
    worst = min(ours, key=ours.get) if ours else None
    note = (f"Our simulated stingy accuracy is lowest at r = {worst:.0%}; the paper's is lowest "
            "at r = 10% (U-shaped)." if worst is not None else
            "No simulation summary: our columns are empty.")
    head = (f"Paper: CIFAR-100, ResNet-18 -> ShuffleNetV2 ({ablation['source']}). Ours: "
            "synthetic simulation, clean labels, mean over seeds. Absolute accuracies are not "
            f"comparable (different data and models); compare the shape. {note}\n\n")
    return head + table(["r / method", "paper acc", "paper minus scratch", "ours acc",
                         "ours minus scratch"], table_rows)


def _cifar_summary(results_dir: Path) -> tuple[Path | None, list[dict]]:
    for folder in (PAPER_DIR, QUICK_DIR):
        path = results_dir / folder / "summary.csv"
        if path.is_file():
            return path, read_rows(path, "CIFAR-10 summary", ("method", "test_accuracy"))
    return None, []


def paper_student_number(reference: dict, row: dict):
    """The Nasty Teacher table's number for a summary row: its student's scratch or normal KD
    accuracy, or KD from a nasty teacher (normal_kd whose teacher run is the nasty one)."""
    method = row.get("method")
    if method == "normal_kd" and "nasty" in str(row.get("teacher", "")):
        method = "nasty_kd"
    return (reference.get(row.get("student"), {}) or {}).get(method)


def cifar_section(results_dir: Path, paper: dict) -> str:
    path, rows = _cifar_summary(results_dir)
    reference = paper["cifar10_nasty_teacher"]
    lines = []
    if not rows:
        lines.append("Not run: no CIFAR-10 data was found (see the stage table).")
    else:
        lines.append(f"From `{path.relative_to(results_dir)}` (CIFAR-10, JPEG q75 mirror, one "
                     "seed). Paper column: the reference's CIFAR-10 numbers (Nasty Teacher "
                     "table, CNN student; no CIFAR-10 stingy number is in the paper except "
                     "data-free KD).\n")
        table_rows = [[fmt(row["method"]), fmt(row.get("student", "")), fmt(row.get("ratio")),
                       fmt(row.get("temperature")), percent(row["test_accuracy"]),
                       percent(row.get("teacher_accuracy")),
                       fmt(paper_student_number(reference, row), 2)] for row in rows]
        lines.append(table(["method", "student", "r", "T", "test acc (%)", "teacher acc (%)",
                            "paper (same student, %)"], table_rows))
        teacher = reference["teacher_accuracy"]
        lines.append(f"\nPaper's CIFAR-10 ResNet-18 teacher: {teacher['normal']}"
                     f"% (nasty {teacher['nasty']}%); data-free KD (DAFL, "
                     f"ResNet-34 teacher) stingy student {paper['dafl_cifar10']['stingy'][1]}%.")
    gpu_path = resolve(results_dir, GPU_CHECK)
    gpu = _read_json(gpu_path) if gpu_path else None
    lines.append("\n" + gpu_section(gpu, reference) if gpu else
                 "\nNo GPU check results (no gpu_check.json or gpu/gpu_check.json).")
    return "\n".join(lines)


def gpu_section(gpu: dict, reference: dict) -> str:
    """The GPU check (empirical/gpu_check.py): machine, teacher time to 93%, images/s,
    TFLOP/s and each student beside the paper's CIFAR-10 numbers."""
    teacher = gpu.get("teacher") or {}
    reached = teacher.get("time_to_93") or {}
    toy = " TOY RUN (synthetic data): not a measurement." if gpu.get("toy") else ""
    device = gpu.get("device_name", gpu.get("device"))
    lines = [f"GPU check (`gpu_check.json`, empirical/gpu_check.py): {device}, torch "
             f"{gpu.get('torch')}, CUDA {gpu.get('cuda')}, {gpu.get('date')}, commit "
             f"{gpu.get('commit')}.{toy} Short one-cycle schedules sized to a few minutes of "
             "GPU time (not the reference's 160 epochs), one seed; the paper column holds the "
             "reference's full-schedule CIFAR-10 numbers (Nasty Teacher table).\n",
             table(["teacher", "test acc (%)", "time to 93% (train s)", "epoch reached",
                    "images/s", "TFLOP/s"],
                   [[fmt(teacher.get("model")), percent(teacher.get("test_accuracy")),
                     fmt(reached.get("train_seconds"), 2) if reached else "not reached",
                     fmt(reached.get("epoch")), fmt(teacher.get("images_per_second"), 0),
                     fmt(teacher.get("tflops_per_second"), 2)]])]
    paper_keys = {"scratch": "scratch", "normal_kd": "normal_kd"}
    rows = []
    for run in gpu.get("students") or []:
        paper_value = (reference.get(run.get("model"), {}) or {}).get(
            paper_keys.get(run.get("method"), ""), None)
        rows.append([fmt(run.get("model")), fmt(run.get("method")),
                     percent(run.get("test_accuracy")),
                     f"{run.get('epochs_done')}/{run.get('epochs')}",
                     "yes" if run.get("finished") else "**no**",
                     fmt(run.get("images_per_second"), 0), fmt(run.get("tflops_per_second"), 2),
                     fmt(paper_value, 2)])
    if rows:
        lines.append("\n" + table(["student", "method", "test acc (%)", "epochs", "finished",
                                    "images/s", "TFLOP/s", "paper (%)"], rows))
    if gpu.get("skipped"):
        lines.append("\nSkipped: " + "; ".join(map(str, gpu["skipped"])))
    return "\n".join(lines)


def settings_section(profile: str) -> str:
    common = [
        "Simulations are synthetic (generated data, 100 classes, small students), so they test "
        "the mechanism and the shape of the sparse-ratio curve, not the paper's accuracies.",
        "The theory figures use representative synthetic logits (theory/theory_grid.json) and, "
        "where available, a trained teacher's test logits.",
        "CIFAR-10 images come from a JPEG (q75) mirror; absolute accuracies run about 2-3 "
        "points below the lossless originals, comparisons between methods are unaffected.",
        "No CIFAR-100 or Tiny-ImageNet data is available offline, so the paper's CIFAR-100 "
        "tables are compared with the simulations only.",
    ]
    if profile == "quick":
        common.insert(0, "CPU quick profile: a small CNN teacher and students, few epochs, "
                      "subsampled training data, one seed (the paper: ResNet-18 teacher, 160 "
                      "epochs, full data). Distillation settings follow the paper (normal KD "
                      "T=4, stingy T=20, alpha=0.9).")
    else:
        common.insert(0, "Paper profile: the reference's CIFAR-10 recipes (ResNet-18 teacher, "
                      "SGD 0.1, 160 epochs; students per empirical/recipes), one seed.")
    return "\n".join(f"- {item}" for item in common)


def figures_section(results_dir: Path, drawn: list[dict], skipped: list[dict]) -> str:
    parts = []
    for record in drawn:
        png = Path(record["png"])
        link = os.path.relpath(png, results_dir)
        pdf = os.path.relpath(Path(record["pdf"]), results_dir)
        parts.append(f"### {record['figure_id']}: {record['title']}\n\n![{record['title']}]"
                     f"({link})\n\n{record['caption']} (PDF: `{pdf}`)")
    for record in skipped:
        parts.append(f"### {record['figure_id']}: {record['title']}\n\nNot drawn: its input "
                     f"{', '.join(record['missing'])} is not in this results folder.")
    return "\n\n".join(parts) if parts else "No figures."


def stages_section(stages: list[dict]) -> str:
    rows = []
    for record in stages:
        note = record.get("reason", "") or json.dumps(record.get("summary", {}))
        rows.append([record["stage"], record["status"], fmt(record.get("seconds")), fmt(note)])
    return table(["stage", "status", "seconds", "note"], rows)


def reference_section(results_dir: Path, reference) -> str:
    """This run's headline numbers beside the reference run's, with the tolerance used; a
    disagreement is marked **DIFFERS**."""
    from stingy.figures.comparison import compare, headline_numbers, settings_differences

    if reference is None or not Path(reference).is_dir():
        return f"No reference run to compare with ({reference or 'none given'})."
    rows = compare(headline_numbers(results_dir), headline_numbers(reference))
    compared = [row for row in rows if row["agree"] is not None]
    differ = sum(not row["agree"] for row in compared)
    flag = {True: "agrees", False: "**DIFFERS**", None: "not compared (one run only)"}
    head = (f"Reference run: `{reference}`. {len(compared)} headline numbers in both runs, "
            f"{differ} differ beyond their tolerance; {len(rows) - len(compared)} are in one "
            "run only. Simulation accuracies are compared within the sum of both runs' 95% "
            "confidence half-widths, CIFAR-10 accuracies (one seed) within a fixed tolerance, "
            "verdicts and derivation failures exactly.")
    differ = settings_differences(results_dir, reference)
    if differ:
        head += (" **The settings differ** (" + ", ".join(f"`{name}`" for name in differ)
                 + "): numbers from those stages are not like for like.")
    head += "\n\n"
    return head + table(["number", "this run", "reference", "tolerance", "flag"],
                        [[row["name"], fmt(row["this"]), fmt(row["reference"]),
                          row["tolerance"] or "-", flag[row["agree"]]] for row in rows])


def render_report(results_dir, profile: str, stages: list[dict], drawn: list[dict],
                  skipped: list[dict], machine: dict | None = None, reference=None,
                  written_by: str | None = None) -> str:
    """``written_by`` names what wrote the report (default: ``stingy reproduce``)."""
    results_dir = Path(results_dir)
    machine = machine or machine_info()
    paper = load_paper_numbers()
    sections = [
        "# Sparse logits and knowledge distillation: reproduction report",
        "## Summary\n\n" + summary_section(results_dir),
        f"Written by {written_by or f'`stingy reproduce --profile {profile}`'} on "
        f"{machine['date']}.\n\n"
        f"Machine: {describe(machine)} (Python {machine['python']}, {machine['platform']}).\n\n"
        f"Paper: {paper['source']['paper']}; its numbers: {paper['source']['numbers']} "
        "(copied into `figures/paper_numbers.toml`).",
        "## Stages\n\n" + stages_section(stages),
        "## Where our settings differ from the paper's\n\n" + settings_section(profile),
        "## Derivations (T1-T5, sympy)\n\n" + derivations_section(results_dir),
        "## Simulation verdicts (symmetric noise)\n\n" + verdicts_section(results_dir),
        "## Simulation verdicts (superclass noise)\n\n"
        + verdicts_section(results_dir, SUPERCLASS_DIR),
        "## Sparse-ratio ablation: paper beside simulation\n\n"
        + sparse_ratio_section(results_dir, paper),
        "## CIFAR-10\n\n" + cifar_section(results_dir, paper),
        "## Figures\n\n" + figures_section(results_dir, drawn, skipped),
        "## This run vs the reference\n\n" + reference_section(results_dir, reference),
    ]
    return "\n\n".join(sections) + "\n"


def write_report(results_dir, profile: str, stages: list[dict], drawn: list[dict],
                 skipped: list[dict], machine: dict | None = None, reference=None,
                 written_by: str | None = None) -> Path:
    """Render the report and write ``<results_dir>/REPORT.md`` and the self-contained
    ``REPORT.html`` (figures embedded) atomically; returns the Markdown path."""
    from stingy.figures.html import markdown_to_html

    results_dir = Path(results_dir)
    text = render_report(results_dir, profile, stages, drawn, skipped, machine, reference,
                         written_by)
    write_text(results_dir / "REPORT.html", markdown_to_html(text, results_dir))
    return write_text(results_dir / "REPORT.md", text)


def rewrite_report(results_dir, profile: str = "quick", log=print) -> Path:
    """Redraw every figure and rewrite REPORT.md and REPORT.html from the result files
    already in ``results_dir`` (no stage is run; the stage table is read from the finished
    stage markers, shown as reused)."""
    from stingy.figures.draw import draw_all
    from stingy.stages import MARKER_DIR

    results_dir = Path(results_dir)
    markers = sorted((results_dir / MARKER_DIR).glob("*.json"),
                     key=lambda path: json.loads(path.read_text()).get("finished", ""))
    stages = [{**json.loads(path.read_text()), "status": "reused"} for path in markers]
    drawn, skipped = draw_all(results_dir, log=log)
    return write_report(results_dir, profile, stages, drawn, skipped, written_by=(
        "`stingy.figures.report.rewrite_report` from the result files already in the folder "
        "(no stage rerun; the stage table lists the stage markers, and each result folder's "
        "run.json or provenance.json names the command, commit and date that made it)"))
