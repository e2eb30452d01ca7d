"""The wheel holds only the stingy package and its dist-info; a fresh clone sets itself up with
./run and reproduces into runs/, leaving the checkout clean (slow tier: builds and installs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def working_tree_copy(destination: Path) -> Path:
    """The files git tracks or would track (not ignored), as they are now, in ``destination``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def fresh_clone(tmp_path: Path) -> Path:
    """A git clone of the working tree as it is now (committed or not), as one commit."""
    tree = working_tree_copy(tmp_path / "clone")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *command], cwd=tree, check=True, capture_output=True)
    return tree


def git_status(tree: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=tree,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_the_wheel_holds_only_the_stingy_package_and_its_data(tmp_path):
    source = working_tree_copy(tmp_path / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", str(source), "-w", str(tmp_path / "wheel")], check=True,
                   capture_output=True)
    wheel = next((tmp_path / "wheel").glob("stingy-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"stingy", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for package in ("theory", "simulations", "empirical", "figures", "benchmarks"):
        expected = {f"stingy/{package}/{path.name}" for path in (ROOT / package).glob("*.py")}
        assert expected and expected <= set(names), package
    assert {"stingy/methods.py", "stingy/cli.py", "stingy/simulations/default.toml",
            "stingy/profiles.toml", "stingy/figures/paper_numbers.toml"} <= set(names)
    recipes = {f"stingy/empirical/recipes/{p.name}" for p in (ROOT / "empirical/recipes").glob(
        "*.toml")}
    assert recipes and recipes <= set(names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "stingy = stingy.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_reproduce_with_stand_in_stages_writes_only_under_runs(tmp_path, monkeypatch, capsys):
    """The default tier's version of the next test: this checkout's code, a fresh clone as the
    working folder, stand-in stages and no figures (seconds, not minutes)."""
    from stingy import pipeline
    from stingy.cli import main
    from stingy.stages import Stage
    from stingy.io import write_json

    clone = fresh_clone(tmp_path)
    monkeypatch.chdir(clone)

    def stand_in(profile, results_dir, data):
        return [Stage("derivations", {"profile": profile}, lambda: write_json(
            results_dir / "theory" / "derivations.json", []) and {}, ("theory/derivations.json",))]

    monkeypatch.setattr(pipeline, "build_stages", stand_in)
    monkeypatch.setattr(pipeline, "draw_all", lambda results_dir, log: ([], []))
    assert main(["reproduce", "--profile", "quick", "--reference", str(clone / "results")]) == 0
    report = (clone / "runs" / "reproduce" / "REPORT.md").read_text()
    assert "derivations failed | 0 | 0 | equal | agrees" in report
    assert git_status(clone) == ""


@pytest.mark.slow
def test_reproduce_in_a_fresh_clone_writes_a_new_run_and_leaves_git_status_clean(tmp_path):
    clone = fresh_clone(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    subprocess.run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "-e", str(clone)], check=True, capture_output=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([venv / "bin/stingy", "reproduce", "--profile", "smoke", "--quiet"],
                            cwd=clone, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (clone / "runs" / "reproduce" / "REPORT.md").read_text()
    assert report.rstrip().split("## ")[-1].startswith("This run vs the reference")
    assert f"Reference run: `{clone / 'results'}`" in report
    assert git_status(clone) == ""
    stale = subprocess.run(["git", "diff", "--stat", "HEAD"], cwd=clone, capture_output=True,
                           text=True).stdout
    assert stale == ""


@pytest.mark.slow
def test_run_sets_up_the_environment_once_then_reuses_it(tmp_path):
    clone = fresh_clone(tmp_path)
    env = {**os.environ, "STINGY_VENV_ARGS": "--system-site-packages"}
    first = subprocess.run(["./run", "stingy", "--version"], cwd=clone, capture_output=True,
                           text=True, env=env, timeout=1800)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "setting up .venv" in first.stderr and first.stdout.startswith("stingy ")
    second = subprocess.run(["./run", "stingy", "--version"], cwd=clone, capture_output=True,
                            text=True, env=env, timeout=600)
    assert second.returncode == 0 and "setting up" not in second.stderr
    assert second.stdout == first.stdout
    assert (clone / ".venv" / "bin" / "stingy").is_file()
    assert git_status(clone) == ""
    usage = subprocess.run(["./run", "nonsense"], cwd=clone, capture_output=True, text=True,
                           env=env, timeout=600)
    assert usage.returncode == 2 and "usage: ./run reproduce" in usage.stderr
