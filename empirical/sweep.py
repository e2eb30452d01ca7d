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

import dataclasses
import json
import os
import socket
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from stingy.empirical.bank import AugmentStream, LogitBank
from stingy.empirical.batched import COMPILE_MODES, MODES, GroupSettings, Student, train_group
from stingy.empirical.engine import DeviceData, balanced_subset, drive_record
from stingy.empirical.models import MODEL_NAMES, build_model
from stingy.io import save_torch, write_csv, write_json
from stingy.theory.operators import keep_count
from stingy.theory.sweep import theory_grid

PROFILE_DIR = Path(__file__).resolve().parent / "sweeps"
EXTRAS = ("reversed", "nasty")
VERDICT_METHODS = ("scratch", "normal_kd", "stingy_kd", "within_m_kd")
PLAN, RESULT, MODEL_FILE, TEST_LOGITS = "plan.json", "result.json", "model.pt", "test_logits.pt"


@dataclass(frozen=True)
class SweepProfile:
    """Every setting of a sweep (a profile TOML's top-level keys); validated once."""

    name: str
    description: str = ""
    dataset: str = "cifar10"
    train_subset: int = 0          # 0: every training image; n: a class-balanced n (seed 0)
    test_subset: int = 0
    seeds: tuple = (0, 1, 2)
    ratios: tuple = (0.1, 0.2, 0.5, 0.7)
    temperatures: tuple = (4.0,)
    alpha: float = 0.9
    noise: tuple = (0.0,)
    noise_seed: int = 1234
    within_ratios: tuple = ()      # ratios with a within-M student; () = every ratio
    verdict_ratio: float = 0.5     # the intermediate r of checks a, b, d, e
    extras: tuple = EXTRAS
    student_models: tuple = ("preresnet20", "cnn")
    student_epochs: int = 15
    student_batch_size: int = 128
    student_lr: float = 0.1
    student_weight_decay: float = 5e-4
    teacher_model: str = "resnet18"
    teacher_seed: int = 0
    teacher_epochs: int = 30
    teacher_batch_size: int = 512
    teacher_lr: float = 0.4
    teacher_weight_decay: float = 5e-4
    teacher_label_smoothing: float = 0.1
    teacher_ema: float = 0.0
    nasty_epochs: int = 30
    nasty_weight: float = 0.04
    nasty_temperature: float = 4.0
    bank_top_k: int = 0            # 0: all logits (fp16); k: top-k indices and values
    bank_forward_batches: int = 8  # student batches per teacher forward pass
    mode: str = "vmap"
    compile: str = "off"

    def __post_init__(self):
        def positive_ints(name, values, minimum=1):
            for value in values:
                if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                    raise ValueError(f"profile {name} must be integers >= {minimum}, got "
                                     f"{value!r}")

        positive_ints("epochs / batch sizes", [self.student_epochs, self.student_batch_size,
                                               self.teacher_epochs, self.teacher_batch_size,
                                               self.nasty_epochs, self.bank_forward_batches])
        positive_ints("subsets / bank_top_k / seeds", [self.train_subset, self.test_subset,
                                                       self.bank_top_k, *self.seeds], 0)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"profile seeds must be distinct and not empty, got {self.seeds}")
        for ratio in (*self.ratios, *self.within_ratios, self.verdict_ratio):
            if not 0 < ratio < 1:
                raise ValueError(f"profile ratios must be in (0, 1), got {ratio!r}")
        if (self.verdict_ratio not in self.ratios or self.verdict_ratio not in self.kept_ratios
                or not min(self.ratios) < self.verdict_ratio < max(self.ratios)):
            raise ValueError(f"profile verdict_ratio {self.verdict_ratio} must be one of ratios "
                             f"and of within_ratios, strictly between the smallest and the "
                             f"largest ratio (check b compares both ends with it)")
        if not set(self.within_ratios) <= set(self.ratios):
            raise ValueError("profile within_ratios must be a subset of ratios")
        if not self.temperatures or any(not t > 0 for t in self.temperatures):
            raise ValueError(f"profile temperatures must be > 0, got {self.temperatures}")
        if not self.noise or any(not 0 <= n < 1 for n in self.noise) or 0.0 not in self.noise:
            raise ValueError(f"profile noise must be rates in [0, 1) including 0, got "
                             f"{self.noise}")
        for model in (*self.student_models, self.teacher_model):
            if model not in MODEL_NAMES:
                raise ValueError(f"profile model {model!r} is not one of "
                                 f"{', '.join(MODEL_NAMES)}")
        if not set(self.extras) <= set(EXTRAS):
            raise ValueError(f"profile extras must be among {', '.join(EXTRAS)}, got "
                             f"{self.extras}")
        if self.mode not in MODES or self.compile not in COMPILE_MODES:
            raise ValueError(f"profile mode must be one of {MODES} and compile one of "
                             f"{COMPILE_MODES}")
        if self.bank_top_k and ("reversed" in self.extras or "nasty" in self.extras):
            raise ValueError("profile bank_top_k > 0 keeps only the top-k logits, which normal "
                             "KD, reversed and nasty need in full: use bank_top_k = 0")

    @property
    def kept_ratios(self) -> tuple:
        return self.within_ratios or self.ratios


def load_profile(profile: str | Path, overrides: dict | None = None) -> SweepProfile:
    """A packaged profile name (``empirical/sweeps/<name>.toml``) or a TOML path."""
    path = Path(profile)
    if not path.suffix:
        path = PROFILE_DIR / f"{profile}.toml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ValueError(f"--profile must be one of {names} or a .toml path, got {profile!r}")
    values = tomllib.loads(path.read_text()) | (overrides or {})
    return profile_from_dict({"name": path.stem, **values})


def profile_from_dict(values: dict) -> SweepProfile:
    known = {f.name for f in dataclasses.fields(SweepProfile)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown profile key(s) {unknown}; allowed: {', '.join(sorted(known))}")
    return SweepProfile(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


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
    students = [Student("scratch", "scratch")]
    for t in profile.temperatures:
        students.append(Student(f"kd-T{t}", "normal_kd", "teacher", t, profile.alpha))
        for ratio in profile.ratios:
            k = keep_count(ratio, num_classes)
            students.append(Student(f"stingy-r{ratio}-T{t}", "stingy_kd", "teacher", t,
                                    profile.alpha, k))
            if ratio in profile.kept_ratios:
                students.append(Student(f"within-r{ratio}-T{t}", "within_m_kd", "teacher", t,
                                        profile.alpha, k))
    if noise == 0:
        t = profile.temperatures[0]
        if "reversed" in profile.extras:
            students.append(Student(f"reversed-T{t}", "reversed_kd", "teacher", t, profile.alpha))
        if "nasty" in profile.extras:
            students.append(Student(f"kd-from-nasty-T{t}", "normal_kd", "nasty", t, profile.alpha))
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
        from stingy.empirical.train import normalisation, resolve_device

        self.out = Path(out)
        if not (self.out / PLAN).is_file():
            raise ValueError(f"--out {str(out)!r} holds no {PLAN}: run `stingy sweep plan` first")
        self.plan = json.loads((self.out / PLAN).read_text())
        self.profile = profile_from_dict(self.plan["profile"])
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
    plan = {"profile": dataclasses.asdict(profile), "data": data, "device": device,
            "jobs": jobs}
    if (out / PLAN).is_file():
        old = json.loads((out / PLAN).read_text())
        if old["profile"] != json.loads(json.dumps(plan["profile"])):
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
        student = Student("nasty", "nasty_teacher", "teacher", profile.nasty_temperature,
                          nasty_weight=profile.nasty_weight)
        banks = {"teacher": context.bank(teacher_id(0.0), train, stream)}
    else:
        student, banks = Student("teacher", "scratch"), {}
    result = train_group(settings, [student], train, context.test, stream, banks,
                         num_classes=context.num_classes, init_seed=profile.teacher_seed,
                         device=context.device, directory=directory,
                         stop_after_epochs=stop_after_epochs,
                         on_epoch=lambda r: log(f"[sweep] {job['id']} epoch {r['epoch']}: "
                                                f"loss {r['train_loss'][0]:.4f} "
                                                f"({r['seconds']:.1f} s)"))
    if not result["finished"]:
        return {"finished": False}
    logits = result["test_logits"][0].cpu()
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
    result = train_group(settings, students, train, context.test, stream, banks,
                         num_classes=context.num_classes, init_seed=job["seed"],
                         device=context.device, directory=directory,
                         stop_after_epochs=stop_after_epochs,
                         on_epoch=lambda r: log(f"[sweep] {job['id']} epoch {r['epoch']} "
                                                f"({r['seconds']:.1f} s)"))
    if not result["finished"]:
        return {"finished": False}
    teacher_logits = torch.load(context.job_dir(teacher_id(noise)) / TEST_LOGITS,
                                weights_only=True)["logits"]
    labels = context.test.labels.cpu()
    rows = []
    for student, logits in zip(students, result["test_logits"].cpu()):
        row = {"job": job["id"], "model": job["model"], "seed": job["seed"], "noise": noise,
               "label": student.label, "method": student.method, "teacher": student.teacher,
               "k": student.k, "ratio": student.k / context.num_classes if student.k else None,
               "temperature": student.temperature if student.teacher else None,
               "test_accuracy": float((logits.argmax(-1) == labels).float().mean())}
        if student.k:
            theory = theory_grid(teacher_logits, [student.k], [student.temperature])[0]
            row.update(kept_mass=theory["kept_mass"], signal_to_drive=theory["signal_to_drive"],
                       logit_gap=drive_record(logits, teacher_logits, student.k,
                                              student.temperature)["logit_gap"])
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
    profile = profile_from_dict(plan["profile"])
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
