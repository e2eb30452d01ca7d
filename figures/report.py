"""REPORT.md of a run: every figure with its caption, our numbers beside the paper's
(figures/paper_numbers.toml), the derivation statuses, the simulation verdicts (failing ones
marked FAIL), where our settings differ, the machine and the date, and at the end this run
beside the reference run (stingy.figures.comparison). Written atomically."""

from __future__ import annotations

import json
import math
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
# The profile whose sizes only exercise the pipeline: its report prints no verdicts.
PIPELINE_CHECK_PROFILE = "smoke"
# Where verdicts are read from, in the order the summary lists them.
VERDICT_SOURCES = (*((folder, f"CIFAR-10 sweep, {folder}") for folder in SWEEP_DIRS),
                   (SIMULATION_DIR, "simulations, symmetric noise"),
                   (SUPERCLASS_DIR, "simulations, superclass noise"),
                   ("mechanism", "simulations, mechanism sweeps"),
                   ("mechanism/interventions", "simulations, interventions"),
                   ("mechanism/harm_model", "simulations, harm model"),
                   ("mechanism/robustness", "simulations, robustness"),
                   ("mechanism/gap_growth", "simulations, linear student's gap growth"),
                   ("fixes", "simulations, fixes with and without labels"),
                   ("separation", "simulations, kept mass against noise"))


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
    if "condition" in verdict:
        text += f", {verdict['condition']}"
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
    for source, verdict in _verdicts_by_source(results_dir):
        key = (source, str(verdict.get("check")), str(verdict.get("statement")))
        group = groups.setdefault(key, {"source": source, "check": key[1],
                                         "statement": key[2], "pass": [], "fail": []})
        side = "pass" if verdict_text(decided(verdict)) == "pass" else "fail"
        setting = _setting(verdict)
        group[side].append(_measured(verdict) if setting == "-"
                           else f"{setting}: {_measured(verdict)}")
    return list(groups.values())


# The paper's claims, each tested by one check (the checks of every other id test the
# project's own hypotheses). "nasty" is the predecessor's claim, which the paper compares with.
PAPER_CLAIMS = {
    "a": "a student distilled from the Stingy Teacher is less accurate than one trained on "
         "labels only and one distilled normally",
    "b": "stingy KD is worst at an intermediate sparse ratio and recovers at the smallest and "
         "the largest (a U shape over r)",
    "nasty": "a Nasty Teacher's students are less accurate than a normal teacher's",
}
PAPER_CHECKS = tuple(PAPER_CLAIMS)


def _scope(source: str) -> str:
    return "CPU real images (CIFAR-10)" if source.startswith("CIFAR") else "simulations"


def _verdicts_by_source(results_dir: Path) -> list[tuple[str, dict]]:
    return [(source, verdict) for folder, source in VERDICT_SOURCES
            for verdict in _read_json(results_dir / folder / "verdicts.json") or []]


def _points(value) -> str:
    return fmt(100 * value, 1) if isinstance(value, (int, float)) else "?"


def _interval_points(verdict: dict) -> str:
    interval = verdict.get("ci95") or []
    if len(interval) != 2 or not all(isinstance(v, (int, float)) for v in interval):
        return ""
    return f" [{_points(interval[0])}, {_points(interval[1])}]"


def claims_section(results_dir: Path) -> str:
    """The paper's claims, one row per place it was measured: our measurement with its 95%
    interval, the status (reproduced only where the check passes after Holm, that is where
    the interval excludes zero in the claimed direction) and the scope."""
    rows, verdicts = [], _verdicts_by_source(results_dir)
    for check, claim in PAPER_CLAIMS.items():
        found = [(source, v) for source, v in verdicts if str(v.get("check")) == check]
        for source, verdict in found:
            status = ("reproduced" if verdict_text(decided(verdict)) == "pass"
                      else "not reproduced")
            setting = _setting(verdict)
            rows.append([claim, _measured(verdict)
                         + ("" if setting == "-" else f" ({setting})"), status,
                         f"{_scope(source)}: {source}"])
        if not found:
            rows.append([claim, "-", "not testable here", "no run of this folder measured it"])
    rows += _gpu_claim_rows(results_dir)
    return ("Measured: the check's own quantity (for (a): stingy KD minus the better baseline, "
            "accuracy; for (b): the recovery at the ends of r over the middle; for (nasty): KD "
            "from the normal teacher minus KD from the nasty one), mean with its 95% interval "
            "over seeds or task draws.\n\n"
            + table(["the paper's claim", "our measurement [95% interval]", "status", "scope"],
                    rows))


def _gpu_claim_rows(results_dir: Path) -> list[list[str]]:
    """Claim (a) on the GPU check: one seed, so never "reproduced"."""
    path = resolve(results_dir, GPU_CHECK)
    gpu = _read_json(path) if path else None
    if not gpu:
        return [[PAPER_CLAIMS["a"], "-", "not testable here", "GPU: no GPU run recorded"]]
    by_method: dict[str, list[float]] = {}
    for run in gpu.get("students") or []:
        if isinstance(run.get("test_accuracy"), (int, float)):
            by_method.setdefault(str(run.get("method")), []).append(run["test_accuracy"])
    stingy = by_method.get("stingy_kd")
    baselines = [max(by_method[m]) for m in ("scratch", "normal_kd") if m in by_method]
    if not stingy or not baselines:
        measured = "no stingy student in the GPU check"
    else:
        measured = (f"{fmt(min(stingy) - max(baselines), 3)} (one seed, no interval)")
    return [[PAPER_CLAIMS["a"], measured, "not testable here (one seed)",
             f"GPU: {gpu.get('device_name', gpu.get('device'))}, {gpu.get('date')}"]]


def hypotheses_section(results_dir: Path) -> str:
    """The project's own hypotheses (every check not in PAPER_CLAIMS): where each held and
    where it did not, after Holm's correction within its family."""
    rows = []
    for group in verdict_groups(results_dir):
        if group["check"] in PAPER_CHECKS:
            continue
        status = ("held" if not group["fail"] else "did not hold" if not group["pass"]
                  else "held in part")
        rows.append([fmt(group["check"]), fmt(group["statement"]), status,
                     "; ".join(group["pass"]) or "-", "; ".join(group["fail"]) or "-",
                     group["source"]])
    rows.sort(key=lambda row: row[2] == "held")
    derivations = _read_json(results_dir / THEORY_DIR / "derivations.json") or []
    broken = [str(r.get("statement_id", r.get("id", ""))) for r in derivations
              if str(r.get("status")).lower() == "failed"]
    head = (f"Derivations that failed: {', '.join(broken)} (of {len(derivations)}).\n\n"
            if broken else "")
    return head + table(["check", "hypothesis", "status", "held at", "did not hold at",
                         "source"], rows)


def _sentence_claim_a(verdicts: list[tuple[str, dict]]) -> str:
    cifar = [v for source, v in verdicts if source.startswith("CIFAR") and v.get("check") == "a"]
    if not cifar:
        return ("No CIFAR-10 sweep was measured in this run, so the paper's central claim was "
                "not tested on real images.")
    verdict = cifar[0]
    held = verdict_text(decided(verdict)) == "pass"
    return (f"On CIFAR-10 on CPU the stingy student is {_points(-verdict['measured'])} points"
            f"{_interval_points({'ci95': [-x for x in verdict.get('ci95', [])][::-1]})} below "
            f"the better of labels only and normal KD ({_setting(verdict)}), so the paper's "
            f"central claim is {'reproduced' if held else 'not reproduced'} there.")


def _sentence_simulations(verdicts: list[tuple[str, dict]]) -> str:
    simulated = [v for source, v in verdicts if source.startswith("simulations")
                 and v.get("check") == "a"]
    if not simulated:
        return "The simulations were not run."
    held = [_setting(v) for v in simulated if verdict_text(decided(v)) == "pass"]
    return (f"In the simulations (exact posteriors, controlled label noise) the same claim holds "
            f"in {len(held)} of {len(simulated)} settings"
            + (f" and fails at {'; '.join(_setting(v) for v in simulated if _setting(v) not in held)}"
               if len(held) < len(simulated) else "") + ".")


def _sentence_shape(verdicts: list[tuple[str, dict]]) -> str:
    shape = [v for _, v in verdicts if v.get("check") == "b"]
    if not shape:
        return "The U shape over the sparse ratio was not measured."
    held = sum(verdict_text(decided(v)) == "pass" for v in shape)
    return (f"The paper's U shape over the sparse ratio holds in {held} of {len(shape)} measured "
            "settings.")


def _sentence_mechanism(verdicts: list[tuple[str, dict]]) -> str:
    by_check = {}
    for _, v in verdicts:
        by_check.setdefault(str(v.get("check")), []).append(v)
    parts = []
    for check, text in (("I-ratio", "raising the signal-to-drive ratio at fixed k and teacher "
                                    "lowers the harm"),
                        ("I-gap-residual", "capping the logit gap leaves stingy KD below "
                                           "normal KD"),
                        ("H-model-rank", "a harm model fitted on half the simulation cells "
                                         "ranks the other half")):
        found = by_check.get(check)
        if found:
            failed = sum(verdict_text(decided(v)) != "pass" for v in found)
            outcome = ("held" if not failed else "did not hold") + (
                "" if len(found) == 1 else
                f" in all {len(found)} settings" if not failed else
                f" in {failed} of {len(found)} settings")
            measured = ", ".join(fmt(v.get("measured"), 3) for v in found)
            parts.append(f"{text} ({outcome}; measured {measured})")
    if not parts:
        return "No intervention on the mechanism was run."
    return "Tested by intervention: " + "; ".join(parts) + "."


def abstract_section(results_dir: Path) -> str:
    """Five plain sentences, each computed from the verdict files (or saying what was not
    measured)."""
    verdicts = _verdicts_by_source(results_dir)
    return " ".join([
        "This report asks whether distilling from only a teacher's top-k logits (the Stingy "
        "Teacher) makes students worse, and why.",
        _sentence_claim_a(verdicts), _sentence_simulations(verdicts),
        _sentence_shape(verdicts), _sentence_mechanism(verdicts)])


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


LM_DIR = "lm"


def _interval_cell(row: dict, metric: str, digits: int = 3) -> str:
    return (f"{fmt(row[metric], digits)} [{fmt(row[f'{metric}_low'], digits)}, "
            f"{fmt(row[f'{metric}_high'], digits)}]")


def lm_section(results_dir: Path) -> str:
    """``stingy lm``: each student's held-out metrics with their intervals, the stored bytes
    per token, the rows' kept mass and signal-to-drive ratio, the verdicts against the
    anchor, and the harm model's order of the top-k students against the measured one."""
    folder = results_dir / LM_DIR
    summary = folder / "summary.csv"
    if not summary.is_file():
        return f"Not run (no {LM_DIR}/summary.csv)."
    rows = read_rows(summary, "lm summary", ("student", "cross_entropy"))
    provenance = _read_json(folder / "provenance.json") or {}
    stored = _read_json(folder / "rows.json") or {}
    machine = provenance.get("machine") or {}
    lines = [f"`stingy lm` ({provenance.get('profile', '?')} profile, {provenance.get('written')}"
             f", commit {provenance.get('commit')}): a transformer teacher on the Python standard "
             f"library ({fmt(provenance.get('train_tokens'))} training tokens, corpus sha256 "
             f"{str((provenance.get('corpus') or {}).get('corpus_sha256', '?'))[:16]}), students from "
             f"{fmt(rows[0].get('seeds'))} seeds; {describe(machine) if machine else '?'}, "
             f"{fmt(provenance.get('wall_s'), 0)} s wall. Mean [95% interval over seeds] on "
             "held-out text.\n",
             table(["student", "cross-entropy (nats/token)", "KL to the teacher",
                    "top-1 agreement", "ECE"],
                   [[fmt(r["student"]), _interval_cell(r, "cross_entropy"),
                     _interval_cell(r, "kl_to_teacher"), _interval_cell(r, "top1_agreement"),
                     _interval_cell(r, "ece")] for r in rows])]
    if stored:
        lines.append("\nStored rows: " + "; ".join(
            f"{entry['rows']} {fmt(entry['bytes_per_token'], 0)} bytes/token"
            for entry in stored.get("bytes_per_token", [])) + ". Per token, at T = "
            f"{fmt(stored.get('temperature'))}: " + "; ".join(
            f"k = {entry['k']} kept mass {fmt(entry['kept_mass_mean'], 3)}, signal-to-drive "
            f"{fmt(entry['signal_to_drive_mean'], 3)}" for entry in stored.get("statistics", [])
            ) + " (means).")
    for verdict in _read_json(folder / "verdicts.json") or []:
        lines.append("\n" + _lm_verdict_line(verdict))
    lines.append("\n" + _lm_harm_model_line(results_dir, rows, stored))
    return "\n".join(lines)


def _lm_verdict_line(verdict: dict) -> str:
    """- (check, student) holds / does not hold (predicted ...): each measure's numbers."""
    parts = []
    for key, detail in verdict.items():
        if key.endswith("_numbers"):
            values = ", ".join(f"{name} {fmt(value, 4)}" for name, value in detail.items())
            parts.append(f"{key.removesuffix('_numbers')}: {values}")
    outcome = "holds" if verdict["outcome"] == "pass" else "**does not hold**"
    return (f"- ({verdict['check']}, {verdict['student']}) {outcome} (predicted "
            f"{verdict['predicted']}): {'; '.join(parts)}")


def _lm_harm_model_line(results_dir: Path, rows: list[dict], stored: dict) -> str:
    """The simulations' harm model (ratio and kept mass only; steps and noise held at the
    fitted cells' means) on the top-k students: its order against the measured excess
    cross-entropy over full KD."""
    model = (_read_json(results_dir / "mechanism/harm_model/model.json") or {}).get(
        "ratio_model")
    full = next((r for r in rows if r["student"] == "normal_kd"), None)
    if not model or not full or not stored:
        return "Harm model: not compared (no harm model or no rows report)."
    coefficient = dict(zip(model["names"], model["coefficients"]))
    scored = []
    for entry in stored.get("statistics", []):
        row = next((r for r in rows if r["student"] == f"stingy_kd-k{entry['k']}"), None)
        ratio = entry.get("signal_to_drive_mean")
        if row is None or not ratio or ratio <= 0:
            continue
        predicted = (coefficient["log_ratio"] * math.log(ratio)
                     + coefficient["kept_mass"] * entry["kept_mass_mean"])
        scored.append((entry["k"], predicted, row["cross_entropy"] - full["cross_entropy"]))
    if len(scored) < 2:
        return "Harm model: fewer than two top-k students with a positive ratio to order."
    by_model = [k for k, _, _ in sorted(scored, key=lambda c: -c[1])]
    by_measure = [k for k, _, _ in sorted(scored, key=lambda c: -c[2])]
    return (f"Harm model (fitted on the simulations; its log-ratio and kept-mass terms): it "
            f"orders the top-k students by harm as k = {', '.join(map(str, by_model))}; the "
            f"measured excess cross-entropy over full KD orders them k = "
            f"{', '.join(map(str, by_measure))} "
            f"({'the same order' if by_model == by_measure else 'a different order'}; "
            f"{len(scored)} students with a positive ratio, k = 1 has ratio 0).")


def settings_section(profile: str) -> str:
    common = [
        "Simulations are synthetic (generated data, 100 classes, small students), so they test "
        "the mechanism and the shape of the sparse-ratio curve, not the paper's accuracies.",
        "The theory figures use representative synthetic logits (theory/theory_grid.json) and, "
        "where available, a trained teacher's test logits.",
        "CIFAR-10 images come from a JPEG (q75) mirror of the dataset; its notes report "
        "absolute accuracies about 2-3 points below the lossless originals. Its effect on the "
        "comparisons between methods was not measured here (no lossless copy is available "
        "offline).",
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
    written = (f"Written by {written_by or f'`stingy reproduce --profile {profile}`'} on "
               f"{machine['date']}.\n\n"
               f"Machine: {describe(machine)} (Python {machine['python']}, "
               f"{machine['platform']}).")
    if profile == PIPELINE_CHECK_PROFILE:
        sections = [
            "# Sparse logits and knowledge distillation: pipeline check",
            f"This run is a pipeline check (profile `{profile}`): its sizes are chosen to run "
            "every stage in a few minutes, not to measure anything, so it prints no verdicts, "
            "no claims and no comparisons. Run `stingy reproduce --profile quick` (or `paper`) "
            "for a report that measures.",
            written, "## Stages\n\n" + stages_section(stages),
            "## Figures\n\n" + figures_section(results_dir, drawn, skipped)]
        return "\n\n".join(sections) + "\n"
    sections = [
        "# Sparse logits and knowledge distillation: reproduction report",
        "## Abstract\n\n" + abstract_section(results_dir),
        "## The paper's claims\n\n" + claims_section(results_dir),
        "## Our own hypotheses\n\n" + hypotheses_section(results_dir),
        written + f"\n\nPaper: {paper['source']['paper']}; its numbers: "
        f"{paper['source']['numbers']} (copied into `figures/paper_numbers.toml`).",
        "## Stages\n\n" + stages_section(stages),
        "## Where our settings differ from the paper's\n\n" + settings_section(profile),
        "## Derivations (T1-T6, sympy)\n\n" + derivations_section(results_dir),
        "## Simulation verdicts (symmetric noise)\n\n" + verdicts_section(results_dir),
        "## Simulation verdicts (superclass noise)\n\n"
        + verdicts_section(results_dir, SUPERCLASS_DIR),
        "## Sparse-ratio ablation: paper beside simulation\n\n"
        + sparse_ratio_section(results_dir, paper),
        "## CIFAR-10\n\n" + cifar_section(results_dir, paper),
        "## Sparse logits on real text (language model)\n\n" + lm_section(results_dir),
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
