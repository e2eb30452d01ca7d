"""stingy sweep: the plan, label noise, sharded runs by several processes, resume, verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from .tiny import single_thread, write_image_folder  # noqa: F401 - fixture

from stingy.empirical.sweep import (
    RESULT,
    SweepContext,
    collect,
    load_profile,
    plan_jobs,
    plan_sweep,
    profile_from_table,
    run_all,
    run_index,
    run_job,
    students_of,
    symmetric_noise,
    verdict_rows,
)


TOY = {"name": "toy", "seeds": [0, 1], "ratios": [0.2, 0.5, 0.7], "noise": [0.0, 0.4],
       "kd_temperatures": [4.0], "sparse_temperatures": [20.0, 4.0], "verdict_ratio": 0.5,
       "within_ratios": [0.5], "bucket_ratios": [0.5], "student_models": ["cnn"],
       "student_epochs": 2,
       "student_batch_size": 16, "teacher_model": "cnn", "teacher_epochs": 2,
       "teacher_batch_size": 16, "teacher_lr": 0.05, "nasty_epochs": 1, "mode": "loop"}


def toy_plan(out, data, **changes):
    return plan_sweep(profile_from_table({**TOY, **changes}), out, data=str(data), device="cpu")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), train_per_class=4,
                              test_per_class=2)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "cache"))


def test_plan_puts_each_teacher_before_its_students():
    jobs = plan_jobs(profile_from_table(TOY))
    position = {job["id"]: i for i, job in enumerate(jobs)}
    assert len(jobs) == 2 + 1 + 2 * 2  # teachers n0 and n0.4, nasty, 2 seeds x 2 noise
    for job in jobs:
        assert all(position[need] < position[job["id"]] for need in job["needs"])


def test_a_top_k_bank_profile_trains_only_the_sparse_methods_from_its_rows():
    profile = profile_from_table({**TOY, "bank_top_k": 7, "methods": ["stingy_kd",
                                                                      "within_m_kd"],
                                  "extras": []})
    students = students_of(profile, 0.0, 10)
    assert {s.method.name for s in students} == {"stingy_kd", "within_m_kd"}
    assert max(s.method.k for s in students) <= profile.bank_top_k


def test_groups_hold_every_method_of_the_grid():
    profile = profile_from_table(TOY)
    clean = {s.label for s in students_of(profile, 0.0, 10)}
    assert clean == {"scratch", "kd-T4.0", "stingy-r0.2-T20.0", "stingy-r0.5-T20.0",
                     "stingy-r0.7-T20.0", "within-r0.5-T20.0", "bucket-r0.5-T20.0",
                     "stingy-r0.5-T4.0", "reversed-T4.0", "kd-from-nasty-T4.0"}
    noisy = {s.label for s in students_of(profile, 0.4, 10)}
    assert noisy == clean - {"reversed-T4.0", "kd-from-nasty-T4.0"}


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4])
def test_symmetric_noise_flips_the_rate_to_other_classes_uniformly(rate):
    labels = torch.arange(40000) % 10
    noisy = symmetric_noise(labels, rate, 10, seed=0)
    flipped = noisy != labels
    assert abs(float(flipped.float().mean()) - rate) < 0.01
    if rate:
        shifts = ((noisy - labels) % 10)[flipped]
        counts = torch.bincount(shifts, minlength=10).float() / flipped.sum()
        assert counts[0] == 0 and torch.all((counts[1:] - 1 / 9).abs() < 0.01)
    assert torch.equal(noisy, symmetric_noise(labels, rate, 10, seed=0))


@pytest.mark.slow  # ~30 s: three fresh interpreters on 2 cores
def test_shards_run_by_several_processes_give_every_result_once(tmp_path, image_folder):
    out = tmp_path / "sweep"
    jobs = toy_plan(out, image_folder, noise=[0.0], extras=[], student_epochs=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STINGY_CACHE": str(tmp_path / "cache")}
    from stingy.empirical.data import load_dataset
    load_dataset("cifar10", data=image_folder)  # decode once, not in every process
    # one process per job, all started at once: the two student jobs need the teacher, so
    # one of the three processes trains it and the others wait on its lock
    workers = [subprocess.Popen(
        [sys.executable, "-m", "stingy", "sweep", "run", "--out", str(out), "--index",
         str(index)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in range(len(jobs))]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    results = [out / "jobs" / job["id"] / RESULT for job in jobs]
    assert all(path.is_file() for path in results)
    assert not list(out.rglob("*.tmp"))
    assert all(lock.read_text() == "" for lock in out.rglob(".lock"))  # no holder left
    stamps = [path.stat().st_mtime_ns for path in results]
    run_index(out, len(jobs) - 1)  # idempotent: a finished job is not run again
    assert [path.stat().st_mtime_ns for path in results] == stamps
    collected = collect(out)
    assert not collected["missing"] and len(collected["rows"]) == 2 * 8  # 8 students a group


def test_collect_gives_checks_a_b_d_per_noise_e_across_and_the_nasty_report(tmp_path,
                                                                             image_folder,
                                                                             capsys):
    from stingy.cli import main
    from stingy.empirical.data import load_dataset

    out = tmp_path / "sweep"
    toy_plan(out, image_folder, student_epochs=1, teacher_epochs=1)
    collected = run_all(out, dataset=load_dataset("cifar10", data=image_folder),
                        log=lambda m: None)
    assert not collected["missing"]
    assert len(collected["rows"]) == 2 * 10 + 2 * 8  # the extras at noise 0 only
    checks = sorted((v["check"], str(v["noise"])) for v in collected["verdicts"])
    assert [c for c in checks if c[0] in ("kd", "a", "b", "d", "f", "nasty")] == [
        ("a", "0.0"), ("a", "0.4"), ("b", "0.0"), ("b", "0.4"), ("d", "0.0"), ("d", "0.4"),
        ("f", "0.0"), ("f", "0.4"), ("kd", "0.0"), ("kd", "0.4"), ("nasty", "0.0")]
    # (e) compares noise levels only at equal kept mass (e-noise) or kept masses at one noise
    # level (e-mass); which pairs qualify depends on the measured kept masses
    assert {c[0] for c in checks} <= {"kd", "a", "b", "d", "f", "nasty", "e-noise", "e-mass"}
    assert all("p_holm" in v for v in collected["verdicts"])  # one Holm family
    nasty = collected["nasty"]
    assert nasty["kl_nasty_to_normal"] >= 0 and nasty["harm"]["cnn"]["seeds"] == 2
    assert (out / "summary.csv").is_file() and (out / "verdicts.json").is_file()
    ablation = {row["ablation"]: row["versus"] for row in collected["ablation"]}
    assert ablation == {"stingy-r0.5-T4.0": "stingy-r0.5-T20.0"}
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["runs"][0]["load_average_start"] is not None
    capsys.readouterr()
    assert main(["sweep", "collect", "--out", str(out)]) == 0  # the CLI prints every check
    printed = capsys.readouterr().out
    assert printed.count(", Holm ") == len(collected["verdicts"]) and "(kd)" in printed


def test_the_prediction_is_written_before_the_students_and_checked_after(tmp_path,
                                                                        image_folder):
    from stingy.empirical.data import load_dataset

    out = tmp_path / "sweep"
    toy_plan(out, image_folder, student_epochs=1, teacher_epochs=1, noise=[0.0], extras=[],
             seeds=[0, 1, 2])
    dataset = load_dataset("cifar10", data=image_folder)
    run_job(SweepContext(out, dataset), "students-cnn-s0-n0.0", log=lambda m: None)
    prediction = json.loads((out / "prediction.json").read_text())
    written = (out / "prediction.json").stat().st_mtime_ns
    first_result = (out / "jobs" / "students-cnn-s0-n0.0" / RESULT).stat().st_mtime_ns
    assert written < first_result  # before the first student finished
    cells = {(c["k"], c["temperature"]) for c in prediction["cells"]}
    assert cells == {(2, 20.0), (5, 20.0), (7, 20.0), (5, 4.0)}
    ranks = sorted(prediction["cells"], key=lambda c: c["predicted_harm_rank"])
    assert [c["signal_to_drive"] for c in ranks] == sorted(c["signal_to_drive"] for c in ranks)
    run_all(out, dataset=dataset, log=lambda m: None)
    assert (out / "prediction.json").stat().st_mtime_ns == written  # never rewritten
    check = json.loads((out / "prediction_check.json").read_text())[0]
    assert check["seeds"] == 3 and -1 <= check["spearman"] <= 1
    assert check["ci95"][0] <= check["ci95"][1]


def test_an_interrupted_student_job_resumes_to_the_same_result(tmp_path, image_folder):
    results = {}
    for name, interrupt in (("straight", False), ("interrupted", True)):
        out = tmp_path / name
        toy_plan(out, image_folder, noise=[0.0], extras=[])
        context = SweepContext(out)
        job_id = "students-cnn-s1-n0.0"
        if interrupt:
            stopped = run_job(context, job_id, log=lambda m: None, stop_after_epochs=1)
            assert stopped == {"finished": False}
            assert (out / "jobs" / job_id / "group.pt").is_file()
            assert not (out / "jobs" / job_id / RESULT).exists()
        results[name] = run_job(context, job_id, log=lambda m: None)["rows"]
    assert results["straight"] == results["interrupted"]


def test_verdict_rows_keep_the_verdicts_methods_from_the_normal_teacher_at_paper_t():
    def row(method, accuracy, teacher="teacher", temperature=4.0):
        return {"method": method, "teacher": teacher, "test_accuracy": accuracy,
                "temperature": temperature}

    rows = [row("normal_kd", 0.5), row("normal_kd", 0.4, "nasty"), row("reversed_kd", 0.3),
            row("within_m_kd", 0.2, temperature=20.0), row("stingy_kd", 0.1, temperature=4.0),
            row("normal_kd", 0.6, temperature=20.0)]
    adapted = verdict_rows(rows, profile_from_table(TOY))
    assert [(r["method"], r["accuracy"]) for r in adapted] == [("normal_kd", 0.5),
                                                               ("within_m_kd", 0.2)]


@pytest.mark.parametrize("name", ["gpu-10min", "cpu-30min", "quick"])
def test_packaged_profiles_load(name):
    assert load_profile(name).name == name


INVALID = [
    ({"colour": 1}, "profile key 'colour' is unknown"),
    ({"seeds": [0, 0]}, "seeds must be a list of at least 1 distinct"),
    ({"ratios": [0.2, 1.0]}, "ratios must be"),
    ({"kd_temperatures": []}, "kd_temperatures must be a list of at least 1"),
    ({"sparse_temperatures": [0.0]}, "sparse_temperatures must be"),
    ({"bucket_ratios": [0.3]}, "bucket_ratios must be a subset of ratios"),
    ({"bucket_ratios": [0.2]}, "bucket_ratios must hold verdict_ratio"),
    ({"verdict_ratio": 0.3}, "verdict_ratio"),
    ({"verdict_ratio": 0.7, "within_ratios": [0.7]}, "strictly between"),
    ({"noise": [0.2]}, "noise must include 0"),
    ({"student_models": ["vgg"]}, "student_models must be"),
    ({"extras": ["dafl"]}, "extras must be"),
    ({"student_epochs": 0}, "student_epochs must be an integer >= 1"),
    ({"bank_top_k": 3}, "normal_kd, tail_bucket_kd, the reversed extra, the nasty extra cannot"),
    ({"bank_top_k": 3, "methods": ["stingy_kd"], "extras": []}, "smaller than the largest kept"),
    ({"methods": ["nasty_teacher"]}, "methods must be"),
    ({"mode": "streams"}, "mode must be one of"),
    ({"alpha": "abc"}, "alpha must be a finite number"),
    ({"kd_temperatures": [float("inf")]}, "kd_temperatures must be"),
    ({"student_lr": float("inf")}, "student_lr must be a finite number"),
    ({"teacher_lr": 0}, "teacher_lr must be a finite number > 0"),
]


@pytest.mark.parametrize("change, message", INVALID)
def test_invalid_profiles_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        profile_from_table({**TOY, **change})


def test_cli_refuses_an_unknown_profile_in_one_line(tmp_path, capsys):
    from stingy.cli import main

    assert main(["sweep", "plan", "--profile", "nope", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stingy: error: --profile must be one of") and "\n" not in err
    assert not (tmp_path / "s").exists()


def test_a_plan_with_another_profile_is_refused(tmp_path, image_folder):
    toy_plan(tmp_path, image_folder)
    with pytest.raises(ValueError, match="another profile"):
        toy_plan(tmp_path, image_folder, student_epochs=3)
    assert json.loads((tmp_path / "plan.json").read_text())["profile"]["student_epochs"] == 2


def test_cli_plan_applies_set_overrides(tmp_path, capsys):
    from stingy.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "plan", "--profile", "quick", "--set", "student_epochs=2", "--set",
                 "mode=vmap", "--out", str(out), "--device", "cpu"]) == 0
    profile = json.loads((out / "plan.json").read_text())["profile"]
    assert (profile["student_epochs"], profile["mode"]) == (2, "vmap")
    assert main(["sweep", "plan", "--profile", "quick", "--set", "epochs",
                 "--out", str(tmp_path / "t")]) == 2
    assert "--set must look like key=value" in capsys.readouterr().err


def test_verdicts_of_a_sweep_missing_a_method_say_not_computed():
    from stingy.empirical.sweep import real_verdicts

    rows = [{"model": "cnn", "seed": seed, "noise": 0.0, "method": method, "teacher": teacher,
             "label": label, "temperature": temperature, "ratio": ratio, "test_accuracy": 0.5,
             "kept_mass": 0.9, "signal_to_drive": 1.0}
            for seed in (0, 1)
            for method, teacher, ratio, temperature, label in (
                ("scratch", None, None, None, "scratch"),
                ("normal_kd", "teacher", None, 4.0, "kd-T4.0"),
                ("stingy_kd", "teacher", 0.2, 20.0, "stingy-r0.2-T20.0"),
                ("stingy_kd", "teacher", 0.5, 20.0, "stingy-r0.5-T20.0"),
                ("stingy_kd", "teacher", 0.7, 20.0, "stingy-r0.7-T20.0"))]
    verdicts = real_verdicts(rows, profile_from_table({**TOY, "noise": [0.0]}))
    assert sorted(v["check"] for v in verdicts if v["verdict"] != "not computed") == [
        "a", "b", "kd"]
    assert [v for v in verdicts if v["verdict"] == "not computed"] == [
        {"model": "cnn", "check": "d", "verdict": "not computed",
         "detail": "left out: it needs within_m_kd"}]


def write_profile(path, **changes):
    """TOY with ``changes`` as a profile TOML (its values are TOML as JSON writes them)."""
    table = {key: value for key, value in {**TOY, **changes}.items() if key != "name"}
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items()))
    return path


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, lines
    return lines[0]


def test_a_diverging_teacher_fails_the_sweep_in_one_line_and_is_never_done(tmp_path,
                                                                          image_folder, capsys):
    from stingy.cli import main

    # 40 images in one batch: the loss is read before the update that breaks the teacher
    profile = write_profile(tmp_path / "toy.toml", noise=[0.0], extras=[], teacher_epochs=1,
                            teacher_batch_size=64, teacher_lr=3e38)
    out = tmp_path / "sweep"
    code = main(["sweep", "all", "--profile", str(profile), "--data", str(image_folder),
                 "--out", str(out), "--device", "cpu"])
    assert code == 1
    assert "diverged at epoch 1" in one_error_line(capsys.readouterr().err)
    teacher = out / "jobs" / "teacher-n0.0"
    assert not (teacher / RESULT).exists() and (teacher / "failed.json").is_file()
    assert not any((out / "jobs").glob(f"students-*/{RESULT}"))
    collected = collect(out)
    assert collected["failed"] == ["teacher-n0.0"] and not collected["rows"]


@pytest.mark.parametrize("planted, index", [("teacher-n0.0", 1), ("students-cnn-s0-n0.0", 1)],
                         ids=["a teacher id and the needs naming it", "a student job id"])
def test_a_plan_whose_job_ids_leave_the_sweep_folder_is_refused(tmp_path, image_folder, capsys,
                                                                planted, index):
    from stingy.cli import main

    out = tmp_path / "a" / "b" / "sweep"
    toy_plan(out, image_folder, noise=[0.0], extras=[], seeds=[0], student_epochs=1,
             teacher_epochs=1)
    plan = out / "plan.json"
    plan.write_text(plan.read_text().replace(f'"{planted}"', '"../../../../PWN"'))
    assert main(["sweep", "run", "--out", str(out), "--index", str(index)]) == 2
    assert "jobs its profile does not plan" in one_error_line(capsys.readouterr().err)
    assert main(["sweep", "collect", "--out", str(out)]) == 2
    assert not list(tmp_path.rglob("PWN*")) and not (out / "jobs").exists()


def test_a_job_folder_is_a_plain_name_under_jobs(tmp_path):
    from stingy.empirical.sweep import job_dir

    assert job_dir(tmp_path, "teacher-n0.0") == tmp_path / "jobs" / "teacher-n0.0"
    for bad in ("../x", "/abs", ".lock", "a/b"):
        with pytest.raises(ValueError, match="plain name"):
            job_dir(tmp_path, bad)


def test_a_result_that_is_not_this_jobs_finished_result_is_not_reused(tmp_path, image_folder):
    out = tmp_path / "sweep"
    toy_plan(out, image_folder, noise=[0.0], extras=[], seeds=[0])
    context = SweepContext(out)
    directory = out / "jobs" / "teacher-n0.0"
    directory.mkdir(parents=True)
    for text in ('{"finished": false}', "{", '{"id": "nasty", "finished": true}'):
        (directory / RESULT).write_text(text)
        with pytest.raises(ValueError, match="delete it to run the job again"):
            run_job(context, "teacher-n0.0", log=lambda m: None)
        assert (directory / RESULT).read_text() == text


@pytest.mark.parametrize("timeout", ["nan", "-1", "inf"])
def test_a_bad_lock_timeout_is_one_line_and_exit_2(tmp_path, capsys, timeout):
    from stingy.cli import main

    assert main(["sweep", "run", "--out", str(tmp_path / "s"), "--index", "0",
                 "--lock-timeout", timeout]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stingy: error: --lock-timeout") and "\n" not in err
    assert not (tmp_path / "s").exists()


def test_the_plan_writes_a_slurm_array_script_with_one_task_per_job(tmp_path, image_folder):
    jobs = toy_plan(tmp_path / "sweep", image_folder, noise=[0.0], extras=[])
    script = (tmp_path / "sweep" / "sweep.sbatch").read_text()
    assert f"#SBATCH --array=0-{len(jobs) - 1}" in script
    assert "sweep run --out" in script and '--index "$SLURM_ARRAY_TASK_ID"' in script
