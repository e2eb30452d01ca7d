"""Sweeps on a real SLURM: a single-node cluster (munged, slurmctld, slurmd) on this machine
runs a toy sweep from the ``sweep.sbatch`` that ``plan`` writes, as a job array. ``collect``
gives the rows of the same sweep run locally, and a task killed mid-run and resubmitted loses
nothing.

It needs Debian's ``slurm-wlm`` and ``munge`` and root (to start the daemons): ``.ci/run``
installs both and sets ``STINGY_SLURM_TEST=1``, which turns a missing piece into a failure.
Elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stingy.empirical.sweep import RESULT, SBATCH, collect

from .test_sweep import toy_plan
from .tiny import write_image_folder

REQUIRED = os.environ.get("STINGY_SLURM_TEST") == "1"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")


def _unavailable() -> str | None:
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return f"no {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting the SLURM daemons needs root"
    return None


def _start_munge() -> None:
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    for folder in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
        os.makedirs(folder, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)


def _config(folder: Path) -> Path:
    host, cpus = socket.gethostname().split(".")[0], os.cpu_count()
    lines = [
        "ClusterName=stingy", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={folder}/spool", f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid", f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "ReturnToService=2",
        f"NodeName={host} CPUs={cpus} RealMemory=1000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP"]
    for name in ("state", "spool"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    path = folder / "slurm.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait(condition, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _unavailable()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_CONF": str(_config(folder))}
    _start_munge()
    subprocess.run(["slurmctld"], env=env, check=True)
    subprocess.run(["slurmd"], env=env, check=True)

    def idle():
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                               text=True).stdout.split()
        return state == ["idle"]

    try:
        _wait(idle, "the node to come up", timeout=60)
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        subprocess.run(["pkill", "-f", f"slurmd.*{folder}|^slurmd$"], capture_output=True)


def _tasks(env, job: str) -> dict[str, str]:
    """{array task id: state} of a job's tasks still in the queue."""
    lines = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%K %T"], env=env,
                           capture_output=True, text=True).stdout.split("\n")
    return dict(line.split() for line in lines if line.strip())


def _submit(env, script: Path, array: str | None = None) -> str:
    command = ["sbatch", "--parsable", *([f"--array={array}"] if array else []), str(script)]
    return subprocess.run(command, env=env, capture_output=True, text=True,
                          check=True).stdout.strip().split(";")[0]


def _rows(out: Path) -> list[tuple]:
    return sorted((r["job"], r["label"], r["seed"], r["test_accuracy"])
                  for r in collect(out)["rows"])


def test_a_toy_sweep_on_slurm_gives_the_local_rows_and_survives_a_killed_task(tmp_path,
                                                                             cluster):
    images = write_image_folder(tmp_path / "images", train_per_class=4, test_per_class=2)
    env = {**cluster, "OMP_NUM_THREADS": "1", "STINGY_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    local, cluster_out = tmp_path / "local", tmp_path / "cluster"
    toy = {"noise": [0.0], "extras": [], "student_epochs": 3}
    jobs = toy_plan(local, images, **toy)
    for index in range(len(jobs)):
        subprocess.run([sys.executable, "-m", "stingy", "sweep", "run", "--out", str(local),
                        "--index", str(index)], env=env, check=True, capture_output=True)

    toy_plan(cluster_out, images, **toy)
    script = cluster_out / SBATCH
    assert f"--array=0-{len(jobs) - 1}" in script.read_text()
    job = _submit(env, script)
    victim = len(jobs) - 1  # a student job: it waits for the teacher, then trains
    result = cluster_out / "jobs" / jobs[victim]["id"] / RESULT
    _wait(lambda: _tasks(env, job).get(str(victim)) == "RUNNING", "the task to start")
    killed_before_its_result = not result.is_file()
    subprocess.run(["scancel", f"{job}_{victim}"], env=env, check=True)
    _wait(lambda: not _tasks(env, job), "the array to end")
    assert killed_before_its_result and not result.is_file()
    assert collect(cluster_out)["missing"]

    again = _submit(env, script, array=str(victim))
    _wait(lambda: not _tasks(env, again), "the resubmitted task to end")
    assert not collect(cluster_out)["missing"]
    assert _rows(cluster_out) == _rows(local)
