"""``stingy sweep``: sparse ratio x T x seeds x student architecture on real images, sharded.

One profile (``empirical/sweeps/<name>.toml`` or a path; :class:`SweepProfile`) defines the
whole sweep. :func:`plan_jobs` turns it into jobs:

* ``teacher-n<noise>``: the teacher, trained on labels with symmetric noise ``noise`` (each
  wrong label uniform among the other K - 1 classes, the simulations' definition; a fixed
  ``noise_seed``, so the students see the same noisy labels);
* ``nasty``: a Nasty Teacher trained against ``teacher-n0.0`` (when "nasty" is in extras);
* ``students-<model>-s<seed>-n<noise>``: one group (empirical.batched) holding the profile's
  methods at the paper's settings (normal KD at T = 4, stingy, within-M and tail-bucket KD at
  T = 20, alpha = 0.9), its temperature ablation (normal KD at the other temperatures, stingy KD
  at the verdict ratio at the other temperatures), and at noise 0 the extras (reversed logits,
  KD from the Nasty Teacher), all initialised alike and reading one logit bank per teacher.

Before any student trains, ``prediction.json`` records the predicted order of the stingy
students' harm over the (k, T) cells, from the exact T5 signal-to-drive ratio and the kept mass
on the teacher's training logits; ``collect`` reports the rank correlation of predicted and
measured harm with a bootstrap interval over seeds (``prediction_check.json``).

``plan`` writes ``plan.json`` (profile, data, device, jobs); ``run --index I`` runs job I
(its teacher first, if not done, under a lock, so any order of indices works); a job whose
``result.json`` exists is skipped, an interrupted one resumes from its checkpoint, so the
command is idempotent. A job whose loss or weights turn non-finite fails: it writes
``failed.json`` (the error line) and never a result, and the command exits with code 1. The
jobs of ``plan.json`` must be the ones its profile plans, so their ids name plain folders
under ``jobs/``. ``collect`` merges every ``result.json`` into ``rows.csv``,
``summary.csv`` (mean and 95% t interval over seeds), ``verdicts.json`` (checks kd, a, b, d, f,
e and the Nasty Teacher's harm, Holm-corrected, per student model; stingy.simulations.verdicts),
``nasty.json``, ``ablation.json`` and ``prediction_check.json``.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from stingy import settings
from stingy.empirical.bank import AugmentStream, LogitBank
from stingy.empirical.batched import COMPILE_MODES, MODES, GroupSettings, Student, train_group
from stingy.empirical.engine import DeviceData, RunControl, balanced_subset, drive_record
from stingy.empirical.models import build_model
from stingy.empirical.model_names import MODEL_NAMES
from stingy.empirical.prediction import (
    PREDICTION,
    prediction_check,
    stingy_cells,
    write_prediction,
)
from stingy.empirical.recipes import DATASETS
from stingy.intervals import paired, t_interval
from stingy.io import (Diverged, ExclusiveLock, load_torch, plain_name, save_torch,
                       verify_checksum, write_checksum, write_csv, write_json, write_text)
from stingy.machine import git_commit, load_average, machine_info
from stingy.methods import METHODS, MethodSettings
from stingy.settings import (
    ALPHA, BATCH_SIZE, COUNT, EPOCHS, LEARNING_RATE, NOISE_RATE, RATIO, SEED, SIZE, SUBSET,
    TEMPERATURE, WEIGHT_DECAY, Choice, ListOf, Number, Settings, Text, setting)
from stingy.theory.operators import keep_count
from stingy.theory.sweep import theory_grid

PROFILE_DIR = Path(__file__).resolve().parent / "sweeps"
EXTRAS = ("reversed", "nasty")
VERDICT_METHODS = ("scratch", "normal_kd", "stingy_kd", "within_m_kd", "tail_bucket_kd")
PLAN, RESULT, MODEL_FILE, TEST_LOGITS = "plan.json", "result.json", "model.pt", "test_logits.pt"
FAILED = "failed.json"  # a job that diverged: its error line (it never has a result)


STUDENT_METHODS = ("scratch", "normal_kd", "stingy_kd", "within_m_kd", "tail_bucket_kd")
LABELS = {"normal_kd": "kd", "stingy_kd": "stingy", "within_m_kd": "within",
          "tail_bucket_kd": "bucket", "reversed_kd": "reversed"}
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class SweepProfile(Settings):
    """Every setting of a sweep (a profile TOML's top-level keys), checked when built.

    ``methods`` are the students of every group, at the paper's settings: normal KD at
    ``kd_temperatures[0]``, stingy KD at every ratio and within-M and tail-bucket KD at
    ``within_ratios`` / ``bucket_ratios``, all three at ``sparse_temperatures[0]``. The
    temperature ablation adds normal KD at the other ``kd_temperatures`` and stingy KD at
    ``verdict_ratio`` at the other ``sparse_temperatures``. ``bank_top_k`` > 0 stores only the
    teacher's top-k logits per image: then every method must read its target from them
    (k <= bank_top_k), so normal KD, the tail bucket and the reversed and nasty extras, which
    need the dense teacher, are refused."""

    name: str = setting("custom", Text())
    description: str = setting("", Text())
    dataset: str = setting("cifar10", Choice(DATASETS))
    train_subset: int = setting(0, SUBSET)      # 0: every training image; n: a balanced n
    teacher_train_subset: int = setting(0, SUBSET)  # the teachers' (0: train_subset); holds it
    test_subset: int = setting(0, SUBSET)
    seeds: tuple = setting((0, 1, 2), ListOf(SEED, 1, distinct=True))
    methods: tuple = setting(STUDENT_METHODS, ListOf(Choice(STUDENT_METHODS), 1, distinct=True))
    ratios: tuple = setting((0.1, 0.2, 0.5, 0.7), ListOf(Number(0, 1, open_low=True,
                                                                open_high=True), 1, distinct=True))
    kd_temperatures: tuple = setting((4.0, 20.0), ListOf(TEMPERATURE, 1, distinct=True))
    sparse_temperatures: tuple = setting((20.0, 4.0), ListOf(TEMPERATURE, 1, distinct=True))
    alpha: float = setting(0.9, ALPHA)
    noise: tuple = setting((0.0,), ListOf(NOISE_RATE, 1, distinct=True))
    noise_seed: int = setting(1234, SEED)
    within_ratios: tuple = setting((0.2,), ListOf(RATIO, distinct=True))
    bucket_ratios: tuple = setting((0.2,), ListOf(RATIO, distinct=True))
    verdict_ratio: float = setting(0.2, RATIO)          # the intermediate r of checks a, b, d, f
    extras: tuple = setting(EXTRAS, ListOf(Choice(EXTRAS), distinct=True))
    student_models: tuple = setting(("preresnet20", "cnn"), ListOf(Choice(MODEL_NAMES), 1,
                                                                    distinct=True))
    student_epochs: int = setting(15, EPOCHS)
    student_batch_size: int = setting(128, BATCH_SIZE)
    student_lr: float = setting(0.1, LEARNING_RATE)
    student_weight_decay: float = setting(5e-4, WEIGHT_DECAY)
    teacher_model: str = setting("resnet18", Choice(MODEL_NAMES))
    teacher_seed: int = setting(0, SEED)
    teacher_epochs: int = setting(30, EPOCHS)
    teacher_batch_size: int = setting(512, BATCH_SIZE)
    teacher_lr: float = setting(0.4, LEARNING_RATE)
    teacher_weight_decay: float = setting(5e-4, WEIGHT_DECAY)
    teacher_label_smoothing: float = setting(0.1, Number(0, 1, open_high=True))
    teacher_ema: float = setting(0.0, Number(0, 1, open_high=True))
    nasty_epochs: int = setting(30, EPOCHS)
    nasty_weight: float = setting(0.04, Number(0))
    nasty_temperature: float = setting(4.0, TEMPERATURE)
    bank_top_k: int = setting(0, COUNT)                 # 0: all logits (fp16); k: top-k rows
    bank_forward_batches: int = setting(8, SIZE)        # student batches per teacher forward
    mode: str = setting("vmap", Choice(MODES))
    compile: str = setting("off", Choice(COMPILE_MODES))

    def check(self) -> None:
        if (self.verdict_ratio not in self.ratios
                or not min(self.ratios) < self.verdict_ratio < max(self.ratios)):
            raise ValueError(f"verdict_ratio {self.verdict_ratio} must be one of ratios, "
                             f"strictly between the smallest and the largest ratio (check b "
                             f"compares both ends with it)")
        for name, method in (("within_ratios", "within_m_kd"), ("bucket_ratios", "tail_bucket_kd")):
            ratios = getattr(self, name)
            if not set(ratios) <= set(self.ratios):
                raise ValueError(f"{name} must be a subset of ratios, got {list(ratios)}")
            if method in self.methods and self.verdict_ratio not in ratios:
                raise ValueError(f"{name} must hold verdict_ratio {self.verdict_ratio} (its "
                                 f"check compares {method} with stingy KD there)")
        if self.teacher_train_subset and (not self.train_subset
                                          or self.teacher_train_subset < self.train_subset):
            raise ValueError(f"teacher_train_subset ({self.teacher_train_subset}) must hold the "
                             f"students' train_subset ({self.train_subset}): 0 or at least it")
        if 0.0 not in self.noise:
            raise ValueError(f"noise must include 0 (the clean teacher), got {list(self.noise)}")
        if self.bank_top_k:
            self._check_top_k_bank()

    def _check_top_k_bank(self) -> None:
        from stingy.theory.operators import keep_count

        dense = [name for name in self.methods if METHODS[name].needs_dense_teacher]
        dense += [f"the {extra} extra" for extra in self.extras]
        if dense:
            raise ValueError(f"bank_top_k = {self.bank_top_k} keeps only the teacher's top-k "
                             f"logits, which {', '.join(dense)} cannot use (they need the dense "
                             f"teacher): use bank_top_k = 0 or leave them out of methods/extras")
        largest = keep_count(max(self.ratios), DATASET_CLASSES[self.dataset])
        if largest > self.bank_top_k:
            raise ValueError(f"bank_top_k = {self.bank_top_k} is smaller than the largest kept "
                             f"count k = {largest} (ratio {max(self.ratios)}): the students "
                             f"would read rows the bank does not hold")

    @property
    def paper_temperatures(self) -> dict:
        """{method: the temperature its verdicts read}: the first of each list."""
        sparse = self.sparse_temperatures[0]
        return {"normal_kd": self.kd_temperatures[0], "stingy_kd": sparse,
                "within_m_kd": sparse, "tail_bucket_kd": sparse}


def load_profile(profile: str | Path, overrides: list[str] | None = None) -> SweepProfile:
    """A packaged profile name (``empirical/sweeps/<name>.toml``) or a TOML path, with
    ``--set key=value`` overrides; every value is checked (ValueError naming the key)."""
    path = Path(profile)
    if not path.suffix:
        path = PROFILE_DIR / f"{profile}.toml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ValueError(f"--profile must be one of {names} or a .toml path, got {profile!r}")
    table = settings.overlay_overrides(settings.read_toml(path, "--profile"), overrides)
    return profile_from_table({**table, "name": path.stem})


def profile_from_table(table: dict) -> SweepProfile:
    """A profile from plain data (a plan.json's ``profile``)."""
    return settings.from_table(SweepProfile, table, what="profile")


# ----------------------------------------------------------------------------- jobs

def teacher_id(noise: float) -> str:
    return f"teacher-n{noise}"


def plan_jobs(profile: SweepProfile) -> list[dict]:
    """Jobs in an order that runs each teacher before its students (noise 0 first)."""
    jobs = [{"id": teacher_id(0.0), "kind": "teacher", "noise": 0.0, "needs": []}]
    if "nasty" in profile.extras:
        jobs.append({"id": "nasty", "kind": "nasty", "noise": 0.0, "needs": [teacher_id(0.0)]})
    for noise in sorted(profile.noise):
        if noise:
            jobs.append({"id": teacher_id(noise), "kind": "teacher", "noise": noise, "needs": []})
        for seed in profile.seeds:
            for model in profile.student_models:
                needs = [teacher_id(noise)]
                if noise == 0 and "nasty" in profile.extras:
                    needs.append("nasty")
                jobs.append({"id": f"students-{model}-s{seed}-n{noise}", "kind": "students",
                             "model": model, "seed": seed, "noise": noise, "needs": needs})
    return jobs


def students_of(profile: SweepProfile, noise: float, num_classes: int) -> list[Student]:
    """The group of one (model, seed, noise) job: the methods at the paper's settings, the
    temperature ablation, and at noise 0 the extras."""

    def student(name, temperature=4.0, ratio=None, teacher="teacher"):
        k = keep_count(ratio, num_classes) if ratio is not None else 0
        label = name if name == "scratch" else (
            f"{LABELS[name]}-r{ratio}-T{temperature}" if ratio is not None
            else f"{LABELS[name]}-T{temperature}")
        if teacher == "nasty":
            label = f"kd-from-nasty-T{temperature}"
        return Student(label, MethodSettings(name, temperature, profile.alpha, k=k),
                       teacher if METHODS[name].needs_teacher else None)

    methods, paper = profile.methods, profile.paper_temperatures
    sparse = {"stingy_kd": profile.ratios, "within_m_kd": profile.within_ratios,
              "tail_bucket_kd": profile.bucket_ratios}
    students = [student("scratch")] if "scratch" in methods else []
    if "normal_kd" in methods:
        students += [student("normal_kd", t) for t in profile.kd_temperatures]
    for name, ratios in sparse.items():
        if name in methods:
            students += [student(name, paper[name], ratio) for ratio in ratios]
    if "stingy_kd" in methods:  # the ablation: stingy KD at the verdict ratio at other T
        students += [student("stingy_kd", t, profile.verdict_ratio)
                     for t in profile.sparse_temperatures[1:]]
    if noise == 0:
        t = paper["normal_kd"]
        if "reversed" in profile.extras:
            students.append(student("reversed_kd", t))
        if "nasty" in profile.extras:
            students.append(student("normal_kd", t, teacher="nasty"))
    return students


def symmetric_noise(labels: torch.Tensor, rate: float, num_classes: int,
                    seed: int) -> torch.Tensor:
    """Each label kept with probability 1 - rate, else replaced by a class drawn uniformly
    among the other num_classes - 1 (the simulations' symmetric noise)."""
    generator = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(labels), generator=generator) < rate
    shift = torch.randint(1, num_classes, (len(labels),), generator=generator)
    return torch.where(flip, (labels + shift) % num_classes, labels)


class SweepContext:
    """What every job of one process shares: the plan, the data on the device, the teachers."""

    def __init__(self, out: Path, dataset=None,
                 lock_wait_seconds: float | None = None):
        from stingy.empirical import data as data_module
        from stingy.empirical.engine import normalisation
        from stingy.empirical.train import resolve_device

        self.out = Path(out)
        self.lock_wait_seconds = (JOB_LOCK_WAIT_SECONDS if lock_wait_seconds is None
                                  else lock_wait_seconds)
        self.plan, self.profile = read_plan(self.out)
        self.jobs = {job["id"]: job for job in self.plan["jobs"]}
        self.device = resolve_device(self.plan["device"])
        if dataset is None:
            dataset = data_module.load_dataset(self.profile.dataset, data=self.plan["data"])
        self.num_classes = len(dataset.classes)
        self.mean, self.std = normalisation(self.profile.dataset)
        profile = self.profile
        self.index = {"students": balanced_subset(dataset.train_labels, profile.train_subset, 0),
                      "teacher": balanced_subset(dataset.train_labels,
                                                 profile.teacher_train_subset
                                                 or profile.train_subset, 0)}
        test_index = balanced_subset(dataset.test_labels, profile.test_subset, 0)
        self.train_images = torch.as_tensor(dataset.train_images)
        self.clean_labels = torch.as_tensor(dataset.train_labels, dtype=torch.int64)
        self.test = DeviceData(torch.as_tensor(dataset.test_images)[test_index],
                               torch.as_tensor(dataset.test_labels)[test_index], self.mean,
                               self.std, self.device)
        self._train = {}

    def train(self, noise: float, who: str = "students") -> DeviceData:
        """The training images of the students (or the teacher, ``who="teacher"``) with labels
        at symmetric noise ``noise``: drawn once over the whole training set, so the teacher's
        and the students' shared images carry the same noisy labels."""
        if (noise, who) not in self._train:
            labels = symmetric_noise(self.clean_labels, noise, self.num_classes,
                                     self.profile.noise_seed)
            index = self.index[who]
            self._train[noise, who] = DeviceData(self.train_images[index], labels[index],
                                                 self.mean, self.std, self.device)
        return self._train[noise, who]

    def job_dir(self, job_id: str) -> Path:
        return job_dir(self.out, job_id)

    def done(self, job_id: str) -> bool:
        """Whether the job finished: a failed or interrupted job writes no result."""
        path = self.job_dir(job_id) / RESULT
        if not path.is_file():
            return False
        read_result(path, job_id)  # refuses a result that is not this job's finished one
        return True

    def teacher_model(self, job_id: str) -> torch.nn.Module:
        saved = load_torch(self.job_dir(job_id) / MODEL_FILE, "a sweep teacher")
        model = build_model(saved["model_name"], self.num_classes)
        model.load_state_dict(saved["state_dict"])
        return model.to(self.device).eval()

    def bank(self, job_id: str, train: DeviceData, stream: AugmentStream) -> LogitBank:
        on_cuda = self.device.type == "cuda"
        return LogitBank(self.out / "bank", self.teacher_model(job_id), train, stream,
                         top_k=self.profile.bank_top_k or None,
                         forward_batches=self.profile.bank_forward_batches, autocast=on_cuda,
                         channels_last=True)


def read_plan(out: Path) -> tuple[dict, SweepProfile]:
    """``out/plan.json`` and its profile. Its jobs must be the ones the profile plans: their
    ids name folders, so a plan edited by hand cannot point a job outside ``out``."""
    path = out / PLAN
    if not path.is_file():
        raise ValueError(f"--out {str(out)!r} holds no {PLAN}: run `stingy sweep plan` first")
    try:
        plan = json.loads(path.read_text())
    except ValueError:
        plan = None
    if not isinstance(plan, dict) or not isinstance(plan.get("profile"), dict):
        raise ValueError(f"{path} is unreadable or not a sweep plan; plan the sweep again "
                         f"into a new --out")
    profile = profile_from_table(plan["profile"])
    if plan.get("jobs") != plan_jobs(profile):
        raise ValueError(f"{path} lists jobs its profile does not plan; plan the sweep again "
                         f"into a new --out")
    return plan, profile


def job_dir(out: Path, job_id: str) -> Path:
    """A job's folder, ``out/jobs/<id>``; the id must be a plain name."""
    return Path(out) / "jobs" / plain_name(job_id, "a job id of plan.json")


def read_result(path: Path, job_id: str) -> dict:
    """A job's ``result.json``: it must match its checksum, read, and be this job's finished
    result."""
    verify_checksum(path, "a job's result")
    try:
        result = json.loads(path.read_text())
    except ValueError:
        result = None
    if not (isinstance(result, dict) and result.get("finished") is True
            and result.get("id") == job_id):
        raise ValueError(f"{path} is unreadable or not the finished result of job {job_id}; "
                         f"delete it to run the job again")
    return result


# ----------------------------------------------------------------------------- running

def plan_sweep(profile: SweepProfile, out: str | Path, data: str | None = None,
               device: str | None = None) -> list[dict]:
    """Write ``out/plan.json``; refuse to overwrite a plan with a different profile."""
    out = Path(out)
    jobs = plan_jobs(profile)
    plan = {"profile": profile.to_table(), "data": data, "device": device,
            "jobs": jobs}
    if (out / PLAN).is_file():
        old = json.loads((out / PLAN).read_text())
        if old["profile"] != plan["profile"]:
            raise ValueError(f"--out {str(out)!r} already holds a plan with another profile; "
                             f"use a new --out")
    write_json(out / PLAN, plan)
    write_sbatch(out, len(jobs))
    return jobs


SBATCH = "sweep.sbatch"


def write_sbatch(out: Path, job_count: int) -> Path:
    """``out/sweep.sbatch``: a SLURM job array with one task per job of the plan, each running
    ``stingy sweep run --index $SLURM_ARRAY_TASK_ID`` with this Python, from this folder. Any
    order works (a job waits for its teachers through their locks); a task killed or resubmitted
    continues from its job's checkpoint."""
    out = Path(out).resolve()
    script = "\n".join([
        "#!/bin/bash",
        "#SBATCH --job-name=stingy-sweep",
        f"#SBATCH --array=0-{job_count - 1}",
        f"#SBATCH --output={out}/slurm/%A_%a.out",
        "#SBATCH --cpus-per-task=2",
        "set -euo pipefail",
        f"cd {shlex.quote(str(Path.cwd()))}",
        f"exec {shlex.quote(sys.executable)} -m stingy sweep run --out {shlex.quote(str(out))} "
        '--index "$SLURM_ARRAY_TASK_ID"', ""])
    (out / "slurm").mkdir(parents=True, exist_ok=True)
    path = write_text(out / SBATCH, script)
    path.chmod(0o755)
    return path


def run_index(out: str | Path, index: int, dataset=None, context: SweepContext | None = None,
              log=print, lock_wait_seconds: float | None = None) -> dict:
    """Run job ``index`` of ``out/plan.json`` (and the teachers it needs); return its result.
    ``lock_wait_seconds``: how long to wait for a job another process holds (default
    JOB_LOCK_WAIT_SECONDS)."""
    context = context or SweepContext(out, dataset, lock_wait_seconds)
    ids = list(context.jobs)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(ids):
        raise ValueError(f"--index must be an integer in [0, {len(ids) - 1}], got {index!r}")
    return run_job(context, ids[index], log)


def run_job(context: SweepContext, job_id: str, log=print,
            stop_after_epochs: int | None = None) -> dict:
    """Run one job (its needs first); ``stop_after_epochs`` (a test hook, as if killed after
    that many epochs' checkpoints) returns {"finished": False} and writes no result."""
    job = context.jobs[job_id]
    directory = context.job_dir(job_id)
    if context.done(job_id):
        return read_result(directory / RESULT, job_id)
    for need in job["needs"]:
        run_job(context, need, log)
    with job_lock(directory, log, context.lock_wait_seconds):
        if context.done(job_id):  # another process finished it while we waited
            return read_result(directory / RESULT, job_id)
        log(f"[sweep] {job_id}: start")
        runner = run_students if job["kind"] == "students" else run_teacher
        try:
            result = runner(context, job, directory, log, stop_after_epochs)
        except Diverged as err:
            write_json(directory / FAILED, {"id": job_id, "error": str(err), "at": _now()})
            raise
        if not result["finished"]:
            return result
        write_json(directory / RESULT, result)
        write_checksum(directory / RESULT)
        (directory / FAILED).unlink(missing_ok=True)
        (directory / "group.pt").unlink(missing_ok=True)
        log(f"[sweep] {job_id}: done in {result['seconds']:.1f} s")
    return result


def run_teacher(context: SweepContext, job: dict, directory: Path, log,
                stop_after_epochs: int | None = None) -> dict:
    """Train the teacher (scratch, label smoothing, EMA) or the Nasty Teacher (a group of one)."""
    profile, nasty = context.profile, job["kind"] == "nasty"
    train = context.train(job["noise"], "teacher")
    stream = AugmentStream(profile.teacher_seed, profile.teacher_batch_size)
    epochs = profile.nasty_epochs if nasty else profile.teacher_epochs
    settings = GroupSettings(profile.teacher_model, epochs, profile.teacher_batch_size,
                             profile.teacher_lr, weight_decay=profile.teacher_weight_decay,
                             label_smoothing=0.0 if nasty else profile.teacher_label_smoothing,
                             ema_decay=profile.teacher_ema, mode="loop", compile=profile.compile)
    if nasty:
        student = Student("nasty", MethodSettings("nasty_teacher", profile.nasty_temperature,
                                                  nasty_weight=profile.nasty_weight), "teacher")
        banks = {"teacher": context.bank(teacher_id(0.0), train, stream)}
    else:
        student, banks = Student("teacher", MethodSettings("scratch")), {}
    control = RunControl(stop_after_epochs, on_epoch=lambda r: log(
        f"[sweep] {job['id']} epoch {r['epoch']}: loss {r['train_loss'][0]:.4f} "
        f"({r['seconds']:.1f} s)"))
    result = train_group(settings, [student], train, stream, banks,
                         num_classes=context.num_classes, init_seed=profile.teacher_seed,
                         device=context.device, directory=directory, control=control)
    if not result["finished"]:
        return {"finished": False}
    logits = result["group"].predict(context.test)[0].cpu()
    save_torch(directory / MODEL_FILE, {"model_name": profile.teacher_model,
                                        "state_dict": result["group"].model_state(0)})
    save_torch(directory / TEST_LOGITS, {"logits": logits})
    accuracy = float((logits.argmax(-1) == context.test.labels.cpu()).float().mean())
    return {"id": job["id"], "kind": job["kind"], "finished": True, "noise": job["noise"],
            "model": profile.teacher_model, "test_accuracy": accuracy,
            "seconds": result["seconds"], "epochs": epochs, "device": str(context.device)}


def run_students(context: SweepContext, job: dict, directory: Path, log,
                 stop_after_epochs: int | None = None) -> dict:
    profile, noise = context.profile, job["noise"]
    train = context.train(noise)
    stream = AugmentStream(job["seed"], profile.student_batch_size)
    students = students_of(profile, noise, context.num_classes)
    if noise == 0:
        predict_harm(context, students)
    banks = {name: context.bank(source, train, stream)
             for name, source in (("teacher", teacher_id(noise)), ("nasty", "nasty"))
             if any(s.teacher == name for s in students)}
    settings = GroupSettings(job["model"], profile.student_epochs, profile.student_batch_size,
                             profile.student_lr, weight_decay=profile.student_weight_decay,
                             mode=profile.mode, compile=profile.compile)
    control = RunControl(stop_after_epochs, on_epoch=lambda r: log(
        f"[sweep] {job['id']} epoch {r['epoch']} ({r['seconds']:.1f} s)"))
    result = train_group(settings, students, train, stream, banks,
                         num_classes=context.num_classes, init_seed=job["seed"],
                         device=context.device, directory=directory, control=control)
    if not result["finished"]:
        return {"finished": False}
    teacher_logits = load_torch(context.job_dir(teacher_id(noise)) / TEST_LOGITS,
                                "a teacher's test logits")["logits"]
    labels = context.test.labels.cpu()
    rows = []
    for student, logits in zip(students, result["group"].predict(context.test).cpu()):
        method, k = student.method, student.method.k or None
        row = {"job": job["id"], "model": job["model"], "seed": job["seed"], "noise": noise,
               "label": student.label, "method": method.name, "teacher": student.teacher,
               "k": k, "ratio": k / context.num_classes if k else None,
               "temperature": method.temperature if student.teacher else None,
               "test_accuracy": float((logits.argmax(-1) == labels).float().mean())}
        if k:
            theory = theory_grid(teacher_logits, [k], [method.temperature])[0]
            row.update(kept_mass=theory["kept_mass"], signal_to_drive=theory["signal_to_drive"],
                       logit_gap=drive_record(logits, teacher_logits, k,
                                              method.temperature)["logit_gap"])
        rows.append(row)
    return {"id": job["id"], "kind": "students", "finished": True, "rows": rows,
            "seconds": result["seconds"],
            "images_per_second_per_student": result["images_per_second_per_student"],
            "students": len(students), "device": str(context.device)}


def predict_harm(context: SweepContext, students: list[Student]) -> dict:
    """``prediction.json`` before any student trains (written once, under a lock; see
    stingy.empirical.prediction), from the clean teacher's logits on the training images."""
    from stingy.empirical.engine import predict

    path = context.out / PREDICTION
    if path.is_file():
        return json.loads(path.read_text())
    with job_lock(context.job_dir("prediction"), print, context.lock_wait_seconds):
        teacher = context.teacher_model(teacher_id(0.0))
        logits = predict(teacher, context.train(0.0), 1000, False, False).cpu()
        return write_prediction(path, logits, stingy_cells(students),
                                f"{teacher_id(0.0)} on the {len(logits)} training images, "
                                f"un-augmented")


# How long a job waits for another process that holds its lock (training its teacher, say)
# before it gives up with one line.
JOB_LOCK_WAIT_SECONDS = 6 * 3600.0


def job_lock(directory: Path, log, wait_seconds: float) -> ExclusiveLock:
    """The exclusive lock ``<directory>/.lock`` (``fcntl.flock``; a dead holder's lock is
    taken over), waited for up to ``wait_seconds``."""
    return ExclusiveLock(Path(directory) / ".lock", f"sweep job {Path(directory).name}",
                         wait_seconds=wait_seconds, log=log)


def run_all(out: str | Path, dataset=None, budget_seconds: float | None = None,
            log=print) -> dict:
    """Run every job in plan order (stopping before a job once ``budget_seconds`` have
    passed), then collect. ``provenance.json`` gains one record per call: the command line,
    commit, machine, start and end, and the load average at both (a timing is only as good as
    the machine was quiet)."""
    began = time.monotonic()
    context = SweepContext(out, dataset)
    record = {"command": " ".join(sys.argv), "commit": git_commit(),
              "started": _now(), "load_average_start": load_average()}
    skipped = []
    for job_id in context.jobs:
        if budget_seconds is not None and time.monotonic() - began > budget_seconds:
            skipped.append(job_id)
            continue
        run_job(context, job_id, log)
    if skipped:
        log(f"[sweep] budget of {budget_seconds} s spent; not run: {', '.join(skipped)}")
    record.update(finished=_now(), load_average_end=load_average(),
                  wall_seconds=time.monotonic() - began, not_run=skipped)
    write_provenance(Path(out), record)
    return collect(out)


def write_provenance(out: Path, record: dict) -> None:
    """Append ``record`` to ``out/provenance.json`` (with the machine it ran on)."""
    path = out / "provenance.json"
    runs = json.loads(path.read_text()).get("runs", []) if path.is_file() else []
    write_json(path, {"machine": machine_info(), "runs": [*runs, record]})


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- collecting

def verdict_rows(rows: list[dict], profile: SweepProfile) -> list[dict]:
    """Rows in the simulations' vocabulary (``accuracy``, ``noise_kind``; the method names
    are the registry's in both) of the methods the verdicts read, from the normal teacher at
    each method's paper temperature."""
    paper = profile.paper_temperatures
    return [{**row, "accuracy": row["test_accuracy"], "noise_kind": "symmetric"}
            for row in rows if row["method"] in VERDICT_METHODS
            and row["teacher"] in (None, "teacher")
            and (row["method"] == "scratch" or row["temperature"] == paper[row["method"]])]


def real_verdicts(rows: list[dict], profile: SweepProfile) -> list[dict]:
    """Per student model, on the measured rows at the paper's temperatures (paired by seed),
    Holm-corrected together: (kd) normal KD beats labels only and, at noise 0, the Nasty
    Teacher's harm per setting; checks a, b, d, f (per noise) and e (across noise) of
    stingy.simulations.verdicts."""
    from stingy.simulations.verdicts import (all_verdicts, check_greater, check_kd,
                                             left_out_checks)

    results = []
    for model in profile.student_models:
        chosen = [row for row in verdict_rows(rows, profile) if row["model"] == model]
        if len({row["seed"] for row in chosen}) < 2:
            continue
        try:
            extra = [check_kd([r for r in chosen if r["noise"] == noise])
                     for noise in sorted({r["noise"] for r in chosen})]
            nasty = nasty_by_seed(rows, profile, model)
            if nasty:
                extra.append(check_greater(
                    "nasty", "KD from the normal teacher is more accurate than KD from the "
                    "Nasty Teacher", *nasty, {"noise": 0.0, "noise_kind": "symmetric"},
                    "kd_from_teacher - kd_from_nasty"))
            verdicts = all_verdicts(chosen, [], profile.verdict_ratio, extra=extra)
        except ValueError as err:  # e.g. a budget-cut sweep lacks a method's rows
            results.append({"model": model, "verdict": "not computed", "detail": str(err)})
            continue
        results += [{"model": model, **verdict} for verdict in verdicts]
        left_out = left_out_checks({r["method"] for r in chosen},
                                   {r["ratio"] for r in chosen if r["method"] == "stingy_kd"},
                                   profile.verdict_ratio)
        results += [{"model": model, "check": check, "verdict": "not computed",
                     "detail": f"left out: it {reason}"}
                    for check, reason in left_out.items() if check != "e"]
    return results


def nasty_by_seed(rows: list[dict], profile: SweepProfile, model: str) -> tuple | None:
    """({seed: accuracy} of KD from the teacher, the same from the Nasty Teacher) at noise 0
    and the paper's normal-KD temperature; None without both."""
    t = profile.paper_temperatures["normal_kd"]
    by_seed = {name: {r["seed"]: r["test_accuracy"] for r in rows
                      if r["model"] == model and r["noise"] == 0 and r["label"] == name}
               for name in (f"kd-T{t}", f"kd-from-nasty-T{t}")}
    return tuple(by_seed.values()) if all(by_seed.values()) else None


def summarise(rows: list[dict]) -> list[dict]:
    """Mean test accuracy with a 95% t interval over seeds per (noise, model, label)."""
    from stingy.intervals import t_interval

    grouped = defaultdict(list)
    for row in rows:
        grouped[row["noise"], row["model"], row["label"]].append(row)
    table = []
    for (noise, model, label), group in sorted(grouped.items()):
        mean, low, high = t_interval([r["test_accuracy"] for r in group])
        table.append({"noise": noise, "model": model, "label": label,
                      "method": group[0]["method"], "ratio": group[0]["ratio"],
                      "temperature": group[0]["temperature"], "seeds": len(group),
                      "accuracy_mean": mean, "accuracy_ci_low": low, "accuracy_ci_high": high})
    return table


def nasty_report(out: Path, rows: list[dict], profile: SweepProfile) -> dict | None:
    """KL(nasty || normal) of the tempered test outputs, both teachers' accuracy, and the harm
    (KD from the normal teacher minus KD from the nasty one, paired by seed) per student."""
    from stingy.intervals import paired, t_interval

    nasty_dir, normal_dir = out / "jobs" / "nasty", out / "jobs" / teacher_id(0.0)
    if not (nasty_dir / RESULT).is_file():
        return None
    t = profile.nasty_temperature
    nasty = load_torch(nasty_dir / TEST_LOGITS, "the nasty teacher's test logits")["logits"]
    normal = load_torch(normal_dir / TEST_LOGITS, "the normal teacher's test logits")["logits"]
    log_p, log_q = torch.log_softmax(nasty / t, -1), torch.log_softmax(normal / t, -1)
    kl = float((log_p.exp() * (log_p - log_q)).sum(-1).mean())
    report = {"temperature": t, "kl_nasty_to_normal": kl,
              "nasty_accuracy": read_result(nasty_dir / RESULT, "nasty")["test_accuracy"],
              "normal_accuracy": read_result(normal_dir / RESULT,
                                             teacher_id(0.0))["test_accuracy"],
              "harm": {}}
    for model in profile.student_models:
        nasty = nasty_by_seed(rows, profile, model)
        harm = paired(*nasty) if nasty else []
        if len(harm):
            mean, low, high = t_interval(harm)
            report["harm"][model] = {"mean": mean, "ci95": [low, high], "seeds": len(harm)}
    return report


def collect(out: str | Path) -> dict:
    """Merge the finished jobs' results into rows.csv, summary.csv, teachers.csv,
    verdicts.json and nasty.json; return them, with the jobs not finished (``missing``) and
    those of them that diverged (``failed``)."""
    out = Path(out)
    plan, profile = read_plan(out)
    rows, teachers, missing, failed = [], [], [], []
    for job in plan["jobs"]:
        path = job_dir(out, job["id"]) / RESULT
        if not path.is_file():
            missing.append(job["id"])
            if (path.parent / FAILED).is_file():
                failed.append(job["id"])
            continue
        result = read_result(path, job["id"])
        if job["kind"] == "students":
            rows += result["rows"]
        else:
            teachers.append(result)
    verdicts = real_verdicts(rows, profile) if rows else []
    summary = summarise(rows)
    nasty = nasty_report(out, rows, profile)
    ablation = temperature_ablation(rows, profile)
    checked = check_prediction(out, rows, profile)
    write_csv(out / "rows.csv", rows)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "teachers.csv", teachers)
    write_json(out / "verdicts.json", verdicts)
    write_json(out / "nasty.json", nasty)
    write_json(out / "ablation.json", ablation)
    write_json(out / "prediction_check.json", checked)
    return {"rows": rows, "summary": summary, "teachers": teachers, "verdicts": verdicts,
            "nasty": nasty, "ablation": ablation, "prediction_check": checked,
            "missing": missing, "failed": failed}


def temperature_ablation(rows: list[dict], profile: SweepProfile) -> list[dict]:
    """Per model at noise 0, paired by seed: each ablation student minus its method at the
    paper's temperature (stingy KD at the verdict ratio, normal KD), with a 95% t interval."""
    paper = profile.paper_temperatures
    ratio = profile.verdict_ratio
    pairs = [(f"kd-T{t}", f"kd-T{paper['normal_kd']}") for t in profile.kd_temperatures[1:]]
    pairs += [(f"stingy-r{ratio}-T{t}", f"stingy-r{ratio}-T{paper['stingy_kd']}")
              for t in profile.sparse_temperatures[1:]]
    table = []
    for model in profile.student_models:
        by_label = defaultdict(dict)
        for row in rows:
            if row["model"] == model and row["noise"] == 0:
                by_label[row["label"]][row["seed"]] = row["test_accuracy"]
        for ablated, paper_label in pairs:
            difference = paired(by_label[ablated], by_label[paper_label])
            if len(difference) >= 2:
                mean, low, high = t_interval(difference)
                table.append({"model": model, "ablation": ablated, "versus": paper_label,
                              "difference": mean, "ci95": [low, high],
                              "seeds": len(difference)})
    return table


def check_prediction(out: Path, rows: list[dict], profile: SweepProfile) -> list[dict]:
    """The rank correlation of the harm predicted before the run and the harm measured, per
    student model (stingy.empirical.prediction); [] without a prediction."""
    path = out / PREDICTION
    if not path.is_file():
        return []
    prediction = json.loads(path.read_text())
    normal = f"kd-T{profile.paper_temperatures['normal_kd']}"
    return [prediction_check(prediction, rows, model, normal)
            for model in profile.student_models]
