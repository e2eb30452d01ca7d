"""``stingy sweep``: sparse ratio x T x seeds x student architecture on real images, sharded.

One profile (``empirical/sweeps/<name>.toml`` or a path; :class:`SweepProfile`) defines the
whole sweep. :func:`plan_jobs` turns it into jobs:

* ``teacher-n<noise>``: the teacher, trained on labels with symmetric noise ``noise`` (each
  wrong label uniform among the other K - 1 classes, the simulations' definition; a fixed
  ``noise_seed``, so the students see the same noisy labels);
* ``nasty``: a Nasty Teacher trained against ``teacher-n0.0`` (when "nasty" is in extras);
* ``students-<model>-s<seed>-n<noise>``: one group (empirical.batched) holding scratch, normal
  KD per T, stingy and within-M KD per (ratio, T), and at noise 0 the extras (reversed logits,
  KD from the Nasty Teacher), all initialised alike and reading one logit bank per teacher.

``plan`` writes ``plan.json`` (profile, data, device, jobs); ``run --index I`` runs job I
(its teacher first, if not done, under a lock, so any order of indices works); a job whose
``result.json`` exists is skipped, an interrupted one resumes from its checkpoint, so the
command is idempotent. ``collect`` merges every ``result.json`` into ``rows.csv``,
``summary.csv`` (mean and 95% t interval over seeds), ``verdicts.json`` (checks a, b, d, e of
stingy.simulations.verdicts on these rows, per student model) and ``nasty.json``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from stingy.empirical.bank import AugmentStream, LogitBank
from stingy import settings
from stingy.empirical.batched import COMPILE_MODES, MODES, GroupSettings, Student, train_group
from stingy.empirical.engine import DeviceData, RunControl, balanced_subset, drive_record
from stingy.empirical.models import build_model
from stingy.empirical.model_names import MODEL_NAMES
from stingy.empirical.recipes import DATASETS
from stingy.io import save_torch, write_csv, write_json
from stingy.methods import METHODS, MethodSettings
from stingy.settings import (
    ALPHA, BATCH_SIZE, COUNT, EPOCHS, LEARNING_RATE, NOISE_RATE, RATIO, SEED, SIZE, SUBSET,
    TEMPERATURE, WEIGHT_DECAY, Choice, ListOf, Number, Settings, Text, setting)
from stingy.theory.operators import keep_count
from stingy.theory.sweep import theory_grid

PROFILE_DIR = Path(__file__).resolve().parent / "sweeps"
EXTRAS = ("reversed", "nasty")
VERDICT_METHODS = ("scratch", "normal_kd", "stingy_kd", "within_m_kd")
PLAN, RESULT, MODEL_FILE, TEST_LOGITS = "plan.json", "result.json", "model.pt", "test_logits.pt"


STUDENT_METHODS = ("scratch", "normal_kd", "stingy_kd", "within_m_kd")
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class SweepProfile(Settings):
    """Every setting of a sweep (a profile TOML's top-level keys), checked when built.

    ``methods`` are the students of every group (stingy and within-M KD once per ratio and
    temperature; within-M only at ``within_ratios``, () = every ratio). ``bank_top_k`` > 0
    stores only the teacher's top-k logits per image: then every method must read its target
    from them (k <= bank_top_k), so normal KD and the reversed and nasty extras, which need the
    dense teacher, are refused."""

    name: str = setting("custom", Text())
    description: str = setting("", Text())
    dataset: str = setting("cifar10", Choice(DATASETS))
    train_subset: int = setting(0, SUBSET)      # 0: every training image; n: a balanced n
    test_subset: int = setting(0, SUBSET)
    seeds: tuple = setting((0, 1, 2), ListOf(SEED, 1, distinct=True))
    methods: tuple = setting(STUDENT_METHODS, ListOf(Choice(STUDENT_METHODS), 1, distinct=True))
    ratios: tuple = setting((0.1, 0.2, 0.5, 0.7), ListOf(Number(0, 1, open_low=True,
                                                                open_high=True), 1, distinct=True))
    temperatures: tuple = setting((4.0,), ListOf(TEMPERATURE, 1, distinct=True))
    alpha: float = setting(0.9, ALPHA)
    noise: tuple = setting((0.0,), ListOf(NOISE_RATE, 1, distinct=True))
    noise_seed: int = setting(1234, SEED)
    within_ratios: tuple = setting((), ListOf(RATIO))  # () = every ratio
    verdict_ratio: float = setting(0.5, RATIO)          # the intermediate r of checks a, b, d, e
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
        if (self.verdict_ratio not in self.ratios or self.verdict_ratio not in self.kept_ratios
                or not min(self.ratios) < self.verdict_ratio < max(self.ratios)):
            raise ValueError(f"verdict_ratio {self.verdict_ratio} must be one of ratios and of "
                             f"within_ratios, strictly between the smallest and the largest "
                             f"ratio (check b compares both ends with it)")
        if not set(self.within_ratios) <= set(self.ratios):
            raise ValueError("within_ratios must be a subset of ratios")
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
    def kept_ratios(self) -> tuple:
        return self.within_ratios or self.ratios


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
    """The group of one (model, seed, noise) job."""
    alpha = profile.alpha

    def student(label, name, temperature=4.0, teacher="teacher", **numbers):
        return Student(label, MethodSettings(name, temperature, alpha, **numbers),
                       teacher if METHODS[name].needs_teacher else None)

    students = [student("scratch", "scratch")] if "scratch" in profile.methods else []
    for t in profile.temperatures:
        if "normal_kd" in profile.methods:
            students.append(student(f"kd-T{t}", "normal_kd", t))
        for ratio in profile.ratios:
            k = keep_count(ratio, num_classes)
            if "stingy_kd" in profile.methods:
                students.append(student(f"stingy-r{ratio}-T{t}", "stingy_kd", t, k=k))
            if "within_m_kd" in profile.methods and ratio in profile.kept_ratios:
                students.append(student(f"within-r{ratio}-T{t}", "within_m_kd", t, k=k))
    if noise == 0:
        t = profile.temperatures[0]
        if "reversed" in profile.extras:
            students.append(student(f"reversed-T{t}", "reversed_kd", t))
        if "nasty" in profile.extras:
            students.append(student(f"kd-from-nasty-T{t}", "normal_kd", t, teacher="nasty"))
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

    def __init__(self, out: Path, dataset=None):
        from stingy.empirical import data as data_module
        from stingy.empirical.engine import normalisation
        from stingy.empirical.train import resolve_device

        self.out = Path(out)
        if not (self.out / PLAN).is_file():
            raise ValueError(f"--out {str(out)!r} holds no {PLAN}: run `stingy sweep plan` first")
        self.plan = json.loads((self.out / PLAN).read_text())
        self.profile = profile_from_table(self.plan["profile"])
        self.jobs = {job["id"]: job for job in self.plan["jobs"]}
        self.device = resolve_device(self.plan["device"])
        if dataset is None:
            dataset = data_module.load_dataset(self.profile.dataset, data=self.plan["data"])
        self.num_classes = len(dataset.classes)
        mean, std = normalisation(self.profile.dataset)
        train_index = balanced_subset(dataset.train_labels, self.profile.train_subset, 0)
        test_index = balanced_subset(dataset.test_labels, self.profile.test_subset, 0)
        self.train_images = torch.as_tensor(dataset.train_images)[train_index]
        self.clean_labels = torch.as_tensor(dataset.train_labels, dtype=torch.int64)[train_index]
        self.test = DeviceData(torch.as_tensor(dataset.test_images)[test_index],
                               torch.as_tensor(dataset.test_labels)[test_index], mean, std,
                               self.device)
        self.mean, self.std = mean, std
        self._train = {}

    def train(self, noise: float) -> DeviceData:
        if noise not in self._train:
            labels = symmetric_noise(self.clean_labels, noise, self.num_classes,
                                     self.profile.noise_seed)
            self._train[noise] = DeviceData(self.train_images, labels, self.mean, self.std,
                                            self.device)
        return self._train[noise]

    def job_dir(self, job_id: str) -> Path:
        return self.out / "jobs" / job_id

    def done(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / RESULT).is_file()

    def teacher_model(self, job_id: str) -> torch.nn.Module:
        saved = torch.load(self.job_dir(job_id) / MODEL_FILE, map_location="cpu",
                           weights_only=True)
        model = build_model(saved["model_name"], self.num_classes)
        model.load_state_dict(saved["state_dict"])
        return model.to(self.device).eval()

    def bank(self, job_id: str, train: DeviceData, stream: AugmentStream) -> LogitBank:
        on_cuda = self.device.type == "cuda"
        return LogitBank(self.out / "bank", self.teacher_model(job_id), train, stream,
                         top_k=self.profile.bank_top_k or None,
                         forward_batches=self.profile.bank_forward_batches, autocast=on_cuda,
                         channels_last=on_cuda)


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
    return jobs


def run_index(out: str | Path, index: int, dataset=None, context: SweepContext | None = None,
              log=print) -> dict:
    """Run job ``index`` of ``out/plan.json`` (and the teachers it needs); return its result."""
    context = context or SweepContext(out, dataset)
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
        return json.loads((directory / RESULT).read_text())
    for need in job["needs"]:
        run_job(context, need, log)
    with JobLock(directory):
        if context.done(job_id):  # another process finished it while we waited
            return json.loads((directory / RESULT).read_text())
        log(f"[sweep] {job_id}: start")
        runner = run_students if job["kind"] == "students" else run_teacher
        result = runner(context, job, directory, log, stop_after_epochs)
        if not result["finished"]:
            return result
        write_json(directory / RESULT, result)
        (directory / "group.pt").unlink(missing_ok=True)
        log(f"[sweep] {job_id}: done in {result['seconds']:.1f} s")
    return result


def run_teacher(context: SweepContext, job: dict, directory: Path, log,
                stop_after_epochs: int | None = None) -> dict:
    """Train the teacher (scratch, label smoothing, EMA) or the Nasty Teacher (a group of one)."""
    profile, nasty = context.profile, job["kind"] == "nasty"
    train = context.train(job["noise"])
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
    teacher_logits = torch.load(context.job_dir(teacher_id(noise)) / TEST_LOGITS,
                                weights_only=True)["logits"]
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


class JobLock:
    """An exclusive lock file ``<directory>/.lock`` (host and pid inside). A lock left by a
    dead process on this host is taken over; otherwise the caller waits for it."""

    def __init__(self, directory: Path, poll_seconds: float = 1.0):
        self.path = Path(directory) / ".lock"
        self.poll_seconds = poll_seconds

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                else:
                    time.sleep(self.poll_seconds)
                continue
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
            os.close(fd)
            return self

    def _stale(self) -> bool:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return False  # being written right now
        if owner.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def run_all(out: str | Path, dataset=None, budget_seconds: float | None = None,
            log=print) -> dict:
    """Run every job in plan order (stopping before a job once ``budget_seconds`` have
    passed), then collect."""
    began = time.monotonic()
    context = SweepContext(out, dataset)
    skipped = []
    for job_id in context.jobs:
        if budget_seconds is not None and time.monotonic() - began > budget_seconds:
            skipped.append(job_id)
            continue
        run_job(context, job_id, log)
    if skipped:
        log(f"[sweep] budget of {budget_seconds} s spent; not run: {', '.join(skipped)}")
    return collect(out)


# ----------------------------------------------------------------------------- collecting

def verdict_rows(rows: list[dict]) -> list[dict]:
    """Rows in the simulations' vocabulary (``accuracy``, ``noise_kind``; the method names
    are the registry's in both) of the methods the verdicts read."""
    return [{**row, "accuracy": row["test_accuracy"], "noise_kind": "symmetric"}
            for row in rows if row["method"] in VERDICT_METHODS
            and row["teacher"] in (None, "teacher")]


def real_verdicts(rows: list[dict], profile: SweepProfile) -> list[dict]:
    """Checks a, b, d (per noise) and e (across noise) of stingy.simulations.verdicts, per
    student model and temperature, on the measured rows (paired by seed)."""
    from stingy.simulations.verdicts import all_verdicts

    results = []
    for model in profile.student_models:
        for t in profile.temperatures:
            chosen = [r for r in verdict_rows(rows) if r["model"] == model
                      and r["temperature"] in (None, t)]
            if len({r["seed"] for r in chosen}) < 2:
                continue
            try:
                verdicts = all_verdicts(chosen, [], profile.verdict_ratio)
            except ValueError as err:  # e.g. a budget-cut sweep lacks a method's rows
                results.append({"model": model, "temperature": t, "verdict": "not computed",
                                "detail": str(err)})
                continue
            results += [{"model": model, "temperature": t, **v} for v in verdicts]
    return results


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
    nasty = torch.load(nasty_dir / TEST_LOGITS, weights_only=True)["logits"]
    normal = torch.load(normal_dir / TEST_LOGITS, weights_only=True)["logits"]
    log_p, log_q = torch.log_softmax(nasty / t, -1), torch.log_softmax(normal / t, -1)
    kl = float((log_p.exp() * (log_p - log_q)).sum(-1).mean())
    report = {"temperature": t, "kl_nasty_to_normal": kl,
              "nasty_accuracy": json.loads((nasty_dir / RESULT).read_text())["test_accuracy"],
              "normal_accuracy": json.loads((normal_dir / RESULT).read_text())["test_accuracy"],
              "harm": {}}
    t0 = profile.temperatures[0]
    for model in profile.student_models:
        by_seed = {name: {r["seed"]: r["test_accuracy"] for r in rows
                          if r["model"] == model and r["noise"] == 0 and r["label"] == name}
                   for name in (f"kd-T{t0}", f"kd-from-nasty-T{t0}")}
        harm = paired(by_seed[f"kd-T{t0}"], by_seed[f"kd-from-nasty-T{t0}"])
        if len(harm):
            mean, low, high = t_interval(harm)
            report["harm"][model] = {"mean": mean, "ci95": [low, high], "seeds": len(harm)}
    return report


def collect(out: str | Path) -> dict:
    """Merge the finished jobs' results into rows.csv, summary.csv, teachers.csv,
    verdicts.json and nasty.json; return them."""
    out = Path(out)
    plan = json.loads((out / PLAN).read_text())
    profile = profile_from_table(plan["profile"])
    rows, teachers, missing = [], [], []
    for job in plan["jobs"]:
        path = out / "jobs" / job["id"] / RESULT
        if not path.is_file():
            missing.append(job["id"])
            continue
        result = json.loads(path.read_text())
        if job["kind"] == "students":
            rows += result["rows"]
        else:
            teachers.append(result)
    verdicts = real_verdicts(rows, profile) if rows else []
    summary = summarise(rows)
    nasty = nasty_report(out, rows, profile)
    write_csv(out / "rows.csv", rows)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "teachers.csv", teachers)
    write_json(out / "verdicts.json", verdicts)
    write_json(out / "nasty.json", nasty)
    return {"rows": rows, "summary": summary, "teachers": teachers, "verdicts": verdicts,
            "nasty": nasty, "missing": missing}
