"""`stingy reproduce`: the whole study, stage by stage, reusing finished stages.

Every run writes into its own folder (default ``runs/reproduce``), never into the committed
``results/``: that folder is the reference run, and the report ends with this run beside it
(:mod:`stingy.figures.comparison`).

Stages (profile ``quick``):

1. ``derivations``: every sympy derivation (T1-T5), ``theory/derivations.json`` and ``.tex``.
2. ``theory_grid``: ``stingy.theory.sweep.theory_grid`` on representative logits,
   ``theory/theory_grid.csv`` (the theory figures' input).
3. ``simulations``: :func:`stingy.simulations.run_sweep` on the default sweep updated by the
   profile's ``overrides`` (section.key = value), ``simulations/`` (summary.csv, verdicts...).
4. CIFAR-10: ``quick`` runs `stingy quick` into ``cifar10_quick/``; ``paper`` runs the
   reference's recipes one stage per run into ``cifar10_paper/runs/<name>`` and then a summary.
   Without data it prints one line on how to provide it and the other stages still run;
   ``none`` (the ``smoke`` profile) has no CIFAR-10 stage.
5. ``figures`` and 6. ``report``: always redrawn (seconds), ``figures/`` and ``REPORT.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tomllib

from stingy.figures.draw import (
    PAPER_DIR,
    QUICK_DIR,
    SIMULATION_DIR,
    THEORY_CONFIG,
    THEORY_DIR,
    THEORY_GRID,
    draw_all,
)
from stingy.io import plain_name, write_csv, write_json, write_text
from stingy.stages import Stage, StageUnavailable, run_stage, source_digest

PROFILES_FILE = Path(__file__).with_name("profiles.toml")
# The committed results of a source checkout: the reference run (absent from an installed wheel).
REFERENCE_RUN = Path(__file__).resolve().parents[1] / "results"
NO_DATA_HINT = ("CIFAR-10 data not found: pass --data PATH (the cifar10-jpeg.tar.gz archive or "
                "an image folder) or set STINGY_DATA, or run online to download it; the "
                "CIFAR-10 comparison is skipped, everything else still runs")


def load_profiles() -> dict:
    with open(PROFILES_FILE, "rb") as f:
        return tomllib.load(f)


def profile_names() -> list[str]:
    return list(load_profiles())


def grid_temperatures(spec: dict) -> list[float]:
    """A log-spaced temperature grid from {start, stop, count}, rounded to 4 digits."""
    return [float(t) for t in np.round(np.geomspace(spec["start"], spec["stop"], spec["count"]), 4)]


# --- stage functions: each writes its files atomically and returns a small summary ---

def write_derivations(results_dir: Path) -> dict:
    """Run every sympy derivation; write theory/derivations.json and derivations.tex."""
    from stingy.theory import derivations

    records = derivations.run_all()
    write_json(results_dir / THEORY_DIR / "derivations.json", records)
    write_text(results_dir / THEORY_DIR / "derivations.tex", derivations.to_latex(records))
    statuses = [record["status"] for record in records]
    return {status: statuses.count(status) for status in sorted(set(statuses))}


def representative_batch(config: dict):
    """(teacher logits, student logits) for the theory grid, as the profile describes."""
    import torch

    from stingy.theory.examples import random_logits, representative_logits

    teacher = torch.stack([
        representative_logits(config["num_classes"], config["top_gap"], config["spread"],
                              seed=config["seed"] + i) for i in range(config["count"])])
    student = random_logits(teacher.shape, config["seed"] + 10_000, config["student_scale"])
    return teacher, student


def write_theory_grid(results_dir: Path, config: dict) -> dict:
    """The theory grid on representative logits, and the T5 ratio at the reference settings
    over 200 teacher-logit draws per top gap (theory/t5_ratio_draws.csv)."""
    from stingy.theory.examples import reference_ratio_draws
    from stingy.theory.operators import keep_count
    from stingy.theory.sweep import theory_grid

    teacher, student = representative_batch(config)
    ks = sorted({keep_count(r, config["num_classes"]) for r in config["ratios"]})
    rows = theory_grid(teacher, ks, grid_temperatures(config["temperatures"]), student)
    label = (f"{config['count']} representative logit vectors (top gap {config['top_gap']:g}, "
             f"spread {config['spread']:g})")
    write_csv(results_dir / THEORY_GRID, rows)
    write_json(results_dir / THEORY_CONFIG, {"label": label, **config})
    write_csv(results_dir / THEORY_DIR / "t5_ratio_draws.csv", reference_ratio_draws())
    return {"rows": len(rows)}


def run_simulations(results_dir: Path, overrides: dict) -> dict:
    """The simulation sweep (:func:`stingy.simulations.run_sweep`) of the default config
    updated by ``overrides`` ({"section.key": value})."""
    from stingy.simulations import run_sweep
    from stingy.simulations.config import load_config

    result = run_sweep(load_config(None, overrides), results_dir / SIMULATION_DIR)
    outcome = [str(v.get("verdict")) for v in result["verdicts"]]
    return {verdict: outcome.count(verdict) for verdict in sorted(set(outcome))}


def data_identity(data, name: str = "cifar10") -> str:
    """What the CIFAR stages read, as a key: the resolved source's identity (the decoded
    cache's key: path, and the name, size and mtime of every file), "none" when no source is
    found, or "missing:<path>" for a path that does not exist."""
    from stingy.empirical.data import find_data, source_key

    try:
        source = find_data(name, data)
    except (FileNotFoundError, ValueError):
        return f"missing:{data}"
    return "none" if source is None else source_key(source)


def _data_missing(err: Exception) -> bool:
    """stingy.empirical.data raises FileNotFoundError when no dataset source or download works."""
    return isinstance(err, FileNotFoundError)


def run_cifar10_quick(results_dir: Path, data: str | None) -> dict:
    from stingy.empirical.quick import run_quick_profile

    try:
        rows = run_quick_profile(data=data, out=results_dir / QUICK_DIR, device="cpu")
    except Exception as err:  # noqa: BLE001 - only a missing dataset is turned into a skip
        if _data_missing(err):
            raise StageUnavailable(f"{NO_DATA_HINT} ({err})") from None
        raise
    return {"runs": len(rows)}


def run_recipe(results_dir: Path, run: dict, data: str | None) -> dict:
    """One of the paper profile's runs: a packaged recipe through stingy.empirical.train."""
    from stingy.empirical.recipes import load_recipe
    from stingy.empirical.train import train_recipe

    out = results_dir / PAPER_DIR / "runs"
    name = plain_name(run["name"], "a run name of the paper profile")
    teacher = (out / plain_name(run["teacher"], "a teacher name of the paper profile")
               / "model.pt" if run.get("teacher") else None)
    resume = (out / name).is_dir()  # resumes, or starts over a run killed early
    try:
        summary = train_recipe(load_recipe(run["recipe"], run.get("set", [])), dataset=data,
                               out=out, name=name, resume=resume, teacher=teacher,
                               restart="changed")
    except Exception as err:  # noqa: BLE001
        if _data_missing(err):
            raise StageUnavailable(f"{NO_DATA_HINT} ({err})") from None
        raise
    return {"test_accuracy": summary.get("test_accuracy")}


def summarise_paper_runs(results_dir: Path, runs: list[dict], data: str | None) -> dict:
    """cifar10_paper/summary.csv (the quick summary's columns) from the runs' summaries, and
    the theory grid on the trained teacher's test logits."""
    import json

    out = results_dir / PAPER_DIR
    rows = []
    for run in runs:
        directory = out / "runs" / plain_name(run["name"], "a run name of the paper profile")
        if not (directory / "summary.json").is_file():
            continue
        summary = json.loads((directory / "summary.json").read_text())
        recipe = json.loads((directory / "recipe.json").read_text())
        method = recipe["method"]
        rows.append({"method": method["name"], "run": run["name"],
                     "teacher": run.get("teacher", ""), "student": recipe["model"]["name"],
                     "k": method.get("k", 0), "ratio": method.get("ratio", 0.0),
                     "temperature": method.get("temperature"), "alpha": method.get("alpha"),
                     "test_accuracy": summary.get("test_accuracy"),
                     "teacher_accuracy": (summary.get("teacher") or {}).get("test_accuracy", ""),
                     "seconds": summary.get("train_seconds"), "device": summary.get("device")})
    if not rows:
        raise StageUnavailable("no finished CIFAR-10 run to summarise")
    write_csv(out / "summary.csv", rows)
    teacher = out / "runs" / "teacher" / "model.pt"
    if teacher.is_file():
        from stingy.empirical.real_teacher_theory import teacher_theory

        teacher_theory(teacher, data=data, out=out)
    return {"runs": len(rows)}


def build_stages(profile: str, results_dir: Path, data: str | None) -> list[Stage]:
    """The profile's stages in order (figures and report last)."""
    profiles = load_profiles()
    if profile not in profiles:
        raise ValueError(f"profile must be one of {', '.join(profiles)}, got {profile!r}")
    spec = profiles[profile]
    results_dir = Path(results_dir)
    theory_code = {"code": source_digest("theory")}
    stages = [
        Stage("derivations", theory_code, lambda: write_derivations(results_dir),
              (f"{THEORY_DIR}/derivations.json",), description="sympy derivations T1-T5"),
        Stage("theory_grid", {**spec["theory_grid"], **theory_code},
              lambda: write_theory_grid(results_dir, spec["theory_grid"]), (THEORY_GRID,),
              description="theory grid on representative logits"),
        Stage("simulations", {**spec["simulations"],
                              "code": source_digest("simulations", "theory")},
              lambda: run_simulations(results_dir, spec["simulations"]["overrides"]),
              (f"{SIMULATION_DIR}/summary.csv", f"{SIMULATION_DIR}/verdicts.json"),
              description="simulation sweep", caches=(f"{SIMULATION_DIR}/settings",)),
    ]
    cifar = spec["cifar10"]
    empirical_code = source_digest("empirical", "theory")
    identity = data_identity(data)
    if cifar["kind"] == "none":
        pass
    elif cifar["kind"] == "quick":
        stages.append(Stage("cifar10_quick", {"kind": "quick", "data": identity,
                                              "code": empirical_code},
                            lambda: run_cifar10_quick(results_dir, data),
                            (f"{QUICK_DIR}/summary.csv",),
                            description="CIFAR-10 quick comparison (CPU)",
                            caches=(f"{QUICK_DIR}/runs",)))
    else:
        for run in cifar["runs"]:
            stages.append(Stage(f"cifar10_{run['name']}",
                                {**run, "data": identity, "code": empirical_code},
                                lambda run=run: run_recipe(results_dir, run, data),
                                (f"{PAPER_DIR}/runs/{run['name']}/summary.json",),
                                description=f"CIFAR-10 recipe {run['recipe']}",
                                caches=(f"{PAPER_DIR}/runs/{run['name']}",)))
        stages.append(Stage("cifar10_paper_summary", {"runs": cifar["runs"], "data": identity,
                                                      "code": empirical_code},
                            lambda: summarise_paper_runs(results_dir, cifar["runs"], data),
                            (f"{PAPER_DIR}/summary.csv",), description="CIFAR-10 summary"))
    return stages


def check_out(results_dir: Path, reference: Path | None) -> None:
    """A run never writes into the reference run (the committed ``results/``)."""
    if reference is None:
        return
    out, ref = results_dir.resolve(), Path(reference).resolve()
    if out == ref or ref in out.parents:
        raise ValueError(f"--out must be a folder of its own, not inside the reference run "
                         f"{reference} (default: runs/reproduce)")


def reproduce(profile: str = "quick", out: str | Path = "runs/reproduce",
              data: str | None = None, force: bool = False,
              reference: str | Path | None = REFERENCE_RUN, log=print) -> list[dict]:
    """Run every stage of ``profile`` into ``out`` and write ``out/REPORT.md``, which ends
    with this run beside the ``reference`` run (None: no comparison); return the stage
    records."""
    from stingy.figures.report import write_report

    results_dir = Path(out)
    check_out(results_dir, reference)
    stages = build_stages(profile, results_dir, data)
    results_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for number, stage in enumerate(stages, 1):
        log(f"stage {number}/{len(stages) + 2}: {stage.name}")
        records.append(run_stage(stage, results_dir, force=force, log=log))
    log(f"stage {len(stages) + 1}/{len(stages) + 2}: figures")
    drawn, skipped = draw_all(results_dir, log=log)
    log(f"stage {len(stages) + 2}/{len(stages) + 2}: report")
    report = write_report(results_dir, profile=profile, stages=records, drawn=drawn,
                          skipped=skipped, reference=reference)
    log(f"wrote {report}")
    return records
