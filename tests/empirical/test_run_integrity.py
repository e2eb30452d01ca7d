"""Run integrity: fingerprints and run id checked on resume, one writer at a time, run
states, recoverable run directories, plain run names and divergence stops a run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from stingy.cli import main
from stingy.empirical.engine import RunControl
from stingy.empirical.quick import _run
from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import CHECKPOINT, LOCK, METRICS, STATE, SUMMARY, read_state
from stingy.empirical.train import train_recipe
from stingy.io import read_jsonl
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)
from tests.empirical.tiny import write_image_folder

SMALL = ["--set", "schedule.epochs=2", "--set", "train.batch_size=16",
         "--set", "train.progress=false", "--device", "cpu"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "cache"))


def error_line(err: str) -> str:
    """The one error line (decoding progress bars, drawn with \\r, are not lines)."""
    assert "Traceback" not in err
    lines = [line for line in err.split("\n") if line.strip()]
    assert len(lines) == 1, lines
    return lines[0].rsplit("\r", 1)[-1]


def train(tmp_path, name="run", dataset=None, **kwargs):
    recipe = load_recipe(kwargs.pop("recipe_name", "cifar10-cnn-scratch"),
                         [*TINY, *kwargs.pop("extra", ())])
    control = RunControl(stop_after_epochs=kwargs.pop("stop_after_epochs", None))
    return train_recipe(recipe, dataset=dataset or tiny_dataset(), out=tmp_path, name=name,
                        device="cpu", control=control, **kwargs)


def test_a_run_records_its_id_state_and_fingerprints(tmp_path):
    train(tmp_path, stop_after_epochs=1)
    state = read_state(tmp_path / "run")
    assert state["state"] == "running" and len(state["run_id"]) == 32
    assert set(state["fingerprints"]) == {"recipe", "data", "teacher"}
    train(tmp_path, resume=True)
    finished = read_state(tmp_path / "run")
    assert finished["state"] == "finished" and finished["run_id"] == state["run_id"]


def test_resume_with_other_data_is_refused(tmp_path):
    train(tmp_path, stop_after_epochs=1)
    with pytest.raises(ValueError, match="data differs"):
        train(tmp_path, resume=True, dataset=tiny_dataset(seed=1))


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    train(tmp_path, name="a", stop_after_epochs=1)
    train(tmp_path, name="b", stop_after_epochs=1)
    shutil.copy(tmp_path / "a" / CHECKPOINT, tmp_path / "b" / CHECKPOINT)
    with pytest.raises(ValueError, match="does not match its checksum"):
        train(tmp_path, name="b", resume=True)
    shutil.copy(tmp_path / "a" / f"{CHECKPOINT}.sha256", tmp_path / "b" / f"{CHECKPOINT}.sha256")
    with pytest.raises(ValueError, match="belongs to another run"):
        train(tmp_path, name="b", resume=True)


HOLD_LOCK = """
import sys, time
from stingy.io import ExclusiveLock
lock = ExclusiveLock(sys.argv[1], "run")
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_fails_at_once_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images")
    argv = ["train", "cifar10-cnn-scratch", "--name", "run", "--data", str(folder), "--out",
            str(tmp_path / "runs"), *SMALL]
    (tmp_path / "runs" / "run").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK,
                               str(tmp_path / "runs" / "run" / LOCK)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        began = time.monotonic()
        assert main([*argv, "--resume"]) == 2
        assert time.monotonic() - began < 10
        assert "in use by another process" in error_line(capsys.readouterr().err)
    finally:
        holder.kill()
        holder.wait()
    assert main([*argv, "--resume"]) == 0  # the dead holder's lock is taken over
    assert [r["epoch"] for r in read_jsonl(tmp_path / "runs" / "run" / METRICS)] == [1, 2]
    assert read_state(tmp_path / "runs" / "run")["state"] == "finished"


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / ".checkpoint.pt.x1y2.tmp").write_bytes(b"")  # what a kill mid-write leaves
    summary = train(tmp_path, resume=True)
    assert summary["finished"] and summary["epochs_done"] == 2
    assert not list(directory.glob("*.tmp")) and not list(directory.glob(".*.tmp"))


def test_quick_reruns_after_a_kill_during_the_teachers_first_epoch(tmp_path):
    out = tmp_path / "quick"
    (out / "runs" / "quick-teacher").mkdir(parents=True)  # killed before any checkpoint
    shrink = ["data.train_subset=0", "data.test_subset=0", "schedule.epochs=1",
              "train.batch_size=16", "train.progress=false"]
    summary = _run("quick-teacher", dataset=tiny_dataset(), out=out, device="cpu",
                   overrides=shrink)
    assert summary["finished"]
    assert read_state(out / "runs" / "quick-teacher")["state"] == "finished"


def test_quick_retrains_a_finished_run_made_from_other_data(tmp_path):
    out = tmp_path / "quick"
    shrink = ["data.train_subset=0", "data.test_subset=0", "schedule.epochs=1",
              "train.batch_size=16", "train.progress=false"]
    _run("quick-teacher", dataset=tiny_dataset(), out=out, device="cpu", overrides=shrink)
    first = read_state(out / "runs" / "quick-teacher")
    _run("quick-teacher", dataset=tiny_dataset(), out=out, device="cpu", overrides=shrink)
    assert read_state(out / "runs" / "quick-teacher")["run_id"] == first["run_id"]  # reused
    _run("quick-teacher", dataset=tiny_dataset(seed=3), out=out, device="cpu", overrides=shrink)
    again = read_state(out / "runs" / "quick-teacher")
    assert again["run_id"] != first["run_id"] and again["state"] == "finished"
    assert again["fingerprints"]["data"] != first["fingerprints"]["data"]


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "", "x" * 200])
def test_name_must_be_a_plain_name(name, tmp_path, capsys):
    code = main(["train", "cifar10-cnn-scratch", "--name", name, "--out",
                 str(tmp_path / "out" / "runs"), "--data", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--name" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_a_non_finite_loss_stops_the_run_with_exit_1_and_state_failed(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images")
    code = main(["train", "cifar10-cnn-scratch", "--name", "run", "--data", str(folder),
                 "--out", str(tmp_path / "runs"), *SMALL, "--set", "optim.lr=1e30",
                 "--set", "optim.name=sgd"])
    assert code == 1 and "diverged at epoch 1" in error_line(capsys.readouterr().err)
    directory = tmp_path / "runs" / "run"
    assert read_state(directory)["state"] == "failed"
    assert not (directory / SUMMARY).exists() and not (directory / CHECKPOINT).exists()


def test_a_refused_new_run_leaves_no_directory(tmp_path, capsys):
    code = main(["train", "cifar10-cnn-scratch", "--name", "run", "--out",
                 str(tmp_path / "runs"), "--data", str(tmp_path / "missing"), *SMALL])
    assert code == 2 and "missing" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "run").exists()


def test_resume_keeps_only_metrics_up_to_the_checkpoint(tmp_path):
    train(tmp_path, stop_after_epochs=1, extra=["schedule.epochs=3"])
    metrics = tmp_path / "run" / METRICS
    line = metrics.read_text().splitlines()[0]
    metrics.write_text(line + "\n" + line.replace('"epoch": 1', '"epoch": 2') + "\n")
    train(tmp_path, resume=True, extra=["schedule.epochs=3"])
    assert [json.loads(x)["epoch"] for x in metrics.read_text().splitlines()] == [1, 2, 3]
    assert (tmp_path / "run" / STATE).is_file()


def test_reproduce_reruns_a_paper_run_killed_before_its_first_checkpoint(tmp_path):
    from stingy.pipeline import PAPER_DIR, run_recipe

    folder = write_image_folder(tmp_path / "images")
    killed = tmp_path / "results" / PAPER_DIR / "runs" / "teacher"
    killed.mkdir(parents=True)
    (killed / "recipe.json").write_text("{}")  # written before the kill, nothing else
    run = {"name": "teacher", "recipe": "cifar10-cnn-scratch",
           "set": ["schedule.epochs=1", "train.batch_size=16", "train.progress=false"]}
    summary = run_recipe(tmp_path / "results", run, str(folder))
    assert summary["test_accuracy"] is not None
    assert read_state(killed)["state"] == "finished"


def run_files(directory):
    return {path.name: path.read_bytes() for path in directory.iterdir()
            if path.is_file() and path.name != LOCK}


def test_resume_refuses_a_bad_metrics_line_in_one_line_and_truncates_nothing(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images")
    argv = ["train", "cifar10-cnn-scratch", "--name", "run", "--data", str(folder), "--out",
            str(tmp_path / "runs"), *SMALL]
    assert main(argv) == 0
    directory = tmp_path / "runs" / "run"
    first, second = (directory / METRICS).read_text().splitlines()
    (directory / METRICS).write_text(f"{first}\n{second[:-7]}\n")  # line 2 cut, as by a bad disk
    before = run_files(directory)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "metrics.jsonl line 2" in line and "--force" in line
    assert run_files(directory) == before  # neither the metrics nor the state changed
    assert read_state(directory)["state"] == "finished"


def test_resume_refuses_metrics_that_miss_a_checkpointed_epoch(tmp_path):
    train(tmp_path, stop_after_epochs=1, extra=["schedule.epochs=3"])
    (tmp_path / "run" / METRICS).write_text("")
    with pytest.raises(ValueError, match=r"logs epochs \[\], not 1..1"):
        train(tmp_path, resume=True, extra=["schedule.epochs=3"])


def test_resume_without_run_json_deletes_nothing_until_forced(tmp_path):
    train(tmp_path)
    directory = tmp_path / "run"
    (directory / STATE).unlink()
    before = run_files(directory)
    with pytest.raises(ValueError, match=r"no run\.json, .* --force instead of --resume"):
        train(tmp_path, resume=True)
    assert run_files(directory) == before
    summary = train(tmp_path, restart="always")
    assert summary["finished"] and read_state(directory)["state"] == "finished"


@pytest.mark.parametrize("text", ["{", "[]", '{"state": "finished"}'])
def test_resume_with_a_corrupt_run_json_is_refused_not_restarted(tmp_path, text):
    train(tmp_path, stop_after_epochs=1)
    directory = tmp_path / "run"
    (directory / STATE).write_text(text)
    before = run_files(directory)
    with pytest.raises(ValueError, match=r"run\.json is unreadable or not a run record.*--force"):
        train(tmp_path, resume=True)
    assert run_files(directory) == before


def test_force_starts_an_existing_run_over_and_needs_a_name(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images")
    argv = ["train", "cifar10-cnn-scratch", "--data", str(folder), "--out",
            str(tmp_path / "runs"), *SMALL]
    assert main([*argv, "--name", "run"]) == 0
    first = read_state(tmp_path / "runs" / "run")["run_id"]
    capsys.readouterr()
    assert main([*argv, "--name", "run"]) == 2
    assert "--force to start it over" in error_line(capsys.readouterr().err)
    assert main([*argv, "--force"]) == 2
    assert "--force needs --name" in error_line(capsys.readouterr().err)
    assert main([*argv, "--name", "run", "--force", "--resume"]) == 2
    capsys.readouterr()
    assert main([*argv, "--name", "run", "--force"]) == 0
    state = read_state(tmp_path / "runs" / "run")
    assert state["run_id"] != first and state["state"] == "finished"


def test_a_failing_run_removes_only_its_own_folder_never_a_shared_parent(tmp_path,
                                                                          monkeypatch):
    import stingy.empirical.train as train_module

    out = tmp_path / "new" / "runs"  # neither exists yet: both runs create them

    def another_run_finishes_then_this_load_fails(name, data=None):
        train(out, name="other")
        raise FileNotFoundError(f"no dataset at {data}")

    monkeypatch.setattr(train_module.data_module, "load_dataset",
                        another_run_finishes_then_this_load_fails)
    with pytest.raises(FileNotFoundError):
        train_recipe(load_recipe("cifar10-cnn-scratch", TINY), dataset=str(tmp_path / "none"),
                     out=out, name="mine", device="cpu")
    assert read_state(out / "other")["state"] == "finished"
    assert (out / "other" / SUMMARY).is_file() and not (out / "mine").exists()


def test_a_last_step_that_breaks_the_model_fails_the_run(tmp_path):
    from stingy.io import Diverged

    one_step = ["schedule.epochs=1", "train.batch_size=64", "optim.name=sgd", "optim.lr=3e38"]
    with pytest.raises(Diverged, match="diverged at epoch 1: the outputs on the test images"):
        train(tmp_path, extra=one_step)  # 48 images: the loss is read before the update
    directory = tmp_path / "run"
    assert read_state(directory)["state"] == "failed"
    assert not (directory / SUMMARY).exists() and not (directory / CHECKPOINT).exists()


def test_quick_reuses_a_finished_run_from_its_folder_not_a_path_in_its_summary(tmp_path):
    out = tmp_path / "quick"
    shrink = ["data.train_subset=0", "data.test_subset=0", "schedule.epochs=1",
              "train.batch_size=16", "train.progress=false"]
    _run("quick-teacher", dataset=tiny_dataset(), out=out, device="cpu", overrides=shrink)
    path = out / "runs" / "quick-teacher" / SUMMARY
    path.write_text(json.dumps({**json.loads(path.read_text()),
                                "run_dir": str(tmp_path / "elsewhere")}))
    reused = _run("quick-teacher", dataset=tiny_dataset(), out=out, device="cpu",
                  overrides=shrink)
    assert reused["run_dir"] == str(out / "runs" / "quick-teacher")


@pytest.mark.parametrize("field, what", [("name", "run"), ("teacher", "teacher")])
def test_a_paper_run_names_only_plain_folders(tmp_path, field, what):
    from stingy.pipeline import run_recipe

    run = {"name": "student", "recipe": "cifar10-cnn-kd", "teacher": "teacher",
           field: "../../elsewhere"}
    with pytest.raises(ValueError, match=f"a {what} name of the paper profile must be a plain"):
        run_recipe(tmp_path / "results", run, None)
    assert not (tmp_path / "elsewhere").exists()


def test_a_job_result_edited_after_it_was_written_is_refused(tmp_path):
    from stingy.empirical.sweep import read_result
    from stingy.io import write_checksum, write_json

    path = tmp_path / "result.json"
    write_json(path, {"id": "teacher-n0.0", "finished": True, "test_accuracy": 0.61})
    write_checksum(path)
    assert read_result(path, "teacher-n0.0")["test_accuracy"] == 0.61
    write_json(path, {"id": "teacher-n0.0", "finished": True, "test_accuracy": 0.99})
    with pytest.raises(ValueError, match="does not match its checksum"):
        read_result(path, "teacher-n0.0")
