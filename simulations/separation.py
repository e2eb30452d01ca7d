"""Check (e) separated: kept mass varied at fixed noise, noise varied at fixed kept mass.

With the exact oracle teacher, label noise and kept mass move together (noise floors the noisy
posterior, which flattens the teacher and lowers m), so comparing noise levels cannot say which
of the two harms the stingy student. Here the teacher's logits are rescaled (the
``teacher.logit_range`` option: one constant per setting, argmax and kept sets unchanged) so that
the kept mass m at the checked ratio and temperature hits a target, for each noise level:

    noise in NOISES x target m in MASSES  ->  one setting each (scratch, normal KD, stingy KD).

:func:`stingy.simulations.verdicts.check_e` then compares the two masses at each noise
(e-mass) and the two noise levels at each mass (e-noise), against both baselines, paired by
seed, and Holm corrects the family. :func:`run_separation` returns rows and verdicts.
"""

from __future__ import annotations

import time

import torch

from stingy.simulations.config import SimulationConfig, load_config
from stingy.simulations.statistics import holm, write_run
from stingy.simulations.sweep import make_setting_data, run_setting
from stingy.simulations.verdicts import check_e
from stingy.theory.operators import keep_count, kept_mass

NOISES = (0.0, 0.3)
MASSES = (0.15, 0.3)
RATIO = 0.1


def kept_mass_at_range(test_teacher: torch.Tensor, logit_range: float, k: int,
                       temperature: float) -> float:
    """Mean kept mass when each seed's logits [S, N, C] are rescaled to mean range logit_range
    (as stingy.simulations.teachers.oracle_logits does)."""
    ranges = (test_teacher.amax(-1) - test_teacher.amin(-1)).mean(-1, keepdim=True)
    scaled = test_teacher.double() * (logit_range / ranges)[..., None]
    return float(kept_mass(scaled, k, temperature).mean())


def logit_range_for_mass(test_teacher: torch.Tensor, target: float, k: int,
                         temperature: float) -> float:
    """The mean logit range whose kept mass is ``target`` (bisection; m rises with the range)."""
    low, high = 1e-3, 1e3
    if not (kept_mass_at_range(test_teacher, low, k, temperature) < target
            < kept_mass_at_range(test_teacher, high, k, temperature)):
        raise ValueError(f"target kept mass {target} is not reachable by rescaling the teacher")
    for _ in range(60):
        middle = (low * high) ** 0.5
        if kept_mass_at_range(test_teacher, middle, k, temperature) < target:
            low = middle
        else:
            high = middle
    return (low * high) ** 0.5


def separation_config(seeds: int = 5) -> SimulationConfig:
    """The default config with scratch, normal KD and stingy KD at the checked ratio only."""
    return load_config(None, {"distill.methods": ["scratch", "normal_kd", "stingy_kd"],
                              "distill.ratios": [RATIO], "student.seeds": seeds})


def run_separation(seeds: int = 5, progress=None) -> dict:
    """Every (noise, target mass) setting; {"runs", "verdicts", "settings", "wall_s"}."""
    start = time.time()
    base = separation_config(seeds)
    k = keep_count(RATIO, base.task.classes)
    temperature = base.distill.temperature
    runs, settings = [], []
    for noise in NOISES:
        exact = make_setting_data(base, noise, "symmetric")
        for mass in MASSES:
            logit_range = logit_range_for_mass(exact["test_teacher"], mass, k, temperature)
            config = base.replace(teacher=base.teacher.replace(logit_range=logit_range))
            runs += run_setting(config, noise, "symmetric")["runs"]
            settings.append({"noise": noise, "target_mass": mass, "logit_range": logit_range})
            if progress is not None:
                progress(f"noise {noise} mass {mass} done at {time.time() - start:.0f} s")
    return {"runs": runs, "verdicts": holm(check_e(runs, RATIO)), "settings": settings,
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads()}


def write_separation(result: dict, out) -> None:
    """runs.csv, verdicts.json and run.json (settings, wall time, machine, date), atomically."""
    write_run(out, {"runs.csv": result["runs"], "verdicts.json": result["verdicts"]},
              {"settings": result["settings"], "wall_s": result["wall_s"],
               "torch_threads": result["torch_threads"]})
