"""Habits every `stingy` command shares: --version, --quiet and TTY-only progress bars, quiet
ends on a closed pipe, runs/<command> as the default output root, and the sub-commands."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stingy import __version__, progress
from stingy.cli import build_parser, main
from stingy.empirical.model_names import MODEL_NAMES
from tests.simulations.tiny import TINY


def _stingy(*argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stingy", *argv], capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_version_prints_the_installed_package_version():
    result = _stingy("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"stingy {importlib.metadata.version('stingy')}"
    assert __version__ == importlib.metadata.version("stingy")


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    # ~1 MB of JSON: far more than a pipe holds, so the writer meets the closed pipe
    np.save(tmp_path / "logits.npy", np.random.default_rng(0).normal(size=(3000, 10)))
    command = [sys.executable, "-m", "stingy", "theory", "--classes", "10", "--k", "2",
               "--temperature", "4", "--logits", str(tmp_path / "logits.npy"), "--json"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = child.stdout.readline()
    child.stdout.close()
    error = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, error
    assert first.strip() == b"{" and error == ""


def test_progress_bars_need_a_request_a_terminal_and_no_quiet(monkeypatch):
    monkeypatch.setattr(progress, "QUIET", False)
    assert progress.bar_disabled(True) is None  # tqdm: shown only on a terminal
    assert progress.bar_disabled(False) is True
    monkeypatch.setattr(progress, "QUIET", True)
    assert progress.bar_disabled(True) is True


def _commands(parser, prefix=""):
    """(name, parser) of every command, nested ones (`sweep`, `sweep plan`) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def _leaf_commands(parser):
    """(name, parser) of every command that runs something (nested ones like `sweep plan`)."""
    return [(name, sub) for name, sub in _commands(parser) if sub.get_default("run")]


HELP_OF_EVERY_COMMAND = """
import contextlib, io, json, sys
from stingy.cli import main
for command in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        try:
            main([*command, "--help"])
        except SystemExit as done:
            assert done.code == 0 and shown.getvalue().startswith("usage: stingy"), command
    loaded = [name for name in ("torch", "numpy", "scipy", "sympy", "matplotlib")
              if name in sys.modules]
    assert not loaded, (command, loaded)
"""


def test_help_of_every_command_loads_no_heavy_library():
    commands = [[]] + [name.split() for name, _ in _commands(build_parser())]
    result = subprocess.run([sys.executable, "-c", HELP_OF_EVERY_COMMAND, json.dumps(commands)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_bare_stingy_lists_the_commands_one_line_each_and_exits_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    listed = [line.split()[0] for line in captured.err.splitlines() if line.startswith("  ")]
    assert listed == [name for name, _ in _commands(build_parser()) if " " not in name]
    assert captured.out == ""


def test_help_shows_exactly_the_always_required_flags_as_required():
    for name, sub in _commands(build_parser()):
        for group in sub._action_groups:
            for action in group._group_actions:
                if action.option_strings:
                    assert action.required == (group.title == "required arguments"), (
                        name, action.dest)


@pytest.mark.parametrize("command, flag", [
    ("theory", "--classes"), ("theory", "--k"), ("train", "--name"), ("distill", "--name"),
    ("distill", "--arch")])
def test_a_flag_required_only_in_some_mode_says_so_in_its_help(command, flag):
    sub = dict(_commands(build_parser()))[command]
    action = next(action for action in sub._actions if flag in action.option_strings)
    assert "required" in action.help and not action.required


def test_the_model_names_in_the_help_are_the_models():
    from stingy.empirical.models import BUILDERS

    assert tuple(BUILDERS) == MODEL_NAMES


@pytest.mark.parametrize("argv, needle", [
    (["theory", "--temperature", "4"], "--classes"),
    (["theory", "--classes", "10", "--temperature", "4"], "--k or --ratio"),
    (["theory", "--classes", "10", "--k", "2"], "--temperature"),
    (["theory", "--topk", "rows.npz", "--k", "2", "--temperature", "4"], "drop --k"),
    (["train", "cifar10-cnn-scratch", "--teacher", "model.pt"], "--teacher"),
    (["distill", "cifar10-cnn-kd"], "--teacher"),
    (["teacher-theory"], "--teacher"),
    (["gpu-check", "--toy", "--data", "cifar"], "--toy"),
    (["sweep", "plan"], "--profile"),
    (["sweep", "run"], "--index"),
    (["figures"], "--results"),
    (["reproduce", "--reference", "results", "--no-reference"], "--no-reference"),
])
def test_bad_command_lines_are_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and needle in error, error


def test_quiet_is_accepted_by_every_command_and_sets_the_switch(capsys, monkeypatch):
    monkeypatch.setattr(progress, "QUIET", False)
    assert main(["theory", "--quiet", "--classes", "10", "--k", "2", "--temperature", "4"]) == 0
    assert progress.QUIET is True
    assert main(["theory", "--classes", "10", "--k", "2", "--temperature", "4"]) == 0
    assert progress.QUIET is False
    leaves = list(_leaf_commands(build_parser()))
    assert len(leaves) > 10
    for name, sub in leaves:
        assert any("--quiet" in action.option_strings for action in sub._actions), name


def test_every_command_writing_files_defaults_to_runs_slash_its_name():
    defaults = {name: sub.get_default("out") for name, sub in _leaf_commands(build_parser())
                if sub.get_default("out") is not None}
    sweep = {f"sweep {step}": "runs/sweep" for step in ("plan", "all", "run", "collect")}
    assert defaults == {"simulate": "runs/simulate", "train": "runs/train",
                        "distill": "runs/distill", "teacher-theory": "runs/teacher-theory",
                        "quick": "runs/quick", "gpu-check": "runs/gpu-check",
                        "reproduce": "runs/reproduce", "figures": "runs/figures",
                        "bench": "runs/bench/benchmarks.json", "lab": "runs/lab/lab.html",
                        "mechanism": "runs/mechanism", "separate": "runs/separate", "fixes": "runs/fixes",
                        "interventions": "runs/interventions", "robustness": "runs/robustness",
                        "harm-model": "runs/harm-model", "lm": "runs/lm",
                        "gap-growth": "runs/gap-growth", **sweep}


def test_bench_and_gpu_check_are_sub_commands():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"bench", "gpu-check"} <= set(commands)


def test_bench_with_a_bad_thread_count_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["bench", "--threads", "0", "--out", str(tmp_path / "b.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--threads" in error
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("verdicts, strict, code", [
    (["pass", "fail"], True, 1), (["pass", "pass"], True, 0), (["pass", "fail"], False, 0)])
def test_simulate_strict_exits_1_when_a_verdict_fails(verdicts, strict, code, monkeypatch,
                                                      capsys):
    from stingy.simulations import runner

    def fake_sweep(config, out, progress=True):
        return {"summary": [], "wall_time_s": 0.0, "runs": [], "verdicts": [
            {"check": name, "verdict": verdict, "noise": 0.0, "noise_kind": "symmetric",
             "statement": "s", "predicted": "p", "measured": 0.5, "ci95": [0.4, 0.6],
             "detail": "d"} for name, verdict in zip("ab", verdicts)]}

    monkeypatch.setattr(runner, "run_sweep", fake_sweep)
    assert main(["simulate", "--json", *(["--strict"] if strict else [])]) == code
    captured = capsys.readouterr()
    assert [v["verdict"] for v in json.loads(captured.out)] == verdicts
    assert ("verdict(s) failed" in captured.err) == (code == 1)


TINY_SWEEP = TINY + "[noise]\nrates = [0.0]\n"


def _simulate_stderr(tmp_path, terminal: bool, extra=()) -> str:
    """stderr of a tiny `stingy simulate`, written to a pseudo-terminal or a pipe."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SWEEP)
    command = [sys.executable, "-m", "stingy", "simulate", "--config", str(config), "--out",
               str(tmp_path / f"out-{terminal}-{len(extra)}"), *extra]
    if not terminal:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stderr
    leader, follower = pty.openpty()
    # a terminal of 24 x 80 characters (a new one has 0 columns, too narrow for any bar)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_the_progress_bar_shows_on_a_terminal_only_and_never_with_quiet(tmp_path):
    assert "simulate:" in _simulate_stderr(tmp_path, terminal=True)
    assert "simulate:" not in _simulate_stderr(tmp_path, terminal=True, extra=["--quiet"])
    assert _simulate_stderr(tmp_path, terminal=False) == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SWEEP)
    assert main(["simulate", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "wall time" in captured.out and captured.err == ""


def test_an_unwritable_out_folder_is_one_line_and_exit_2(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere: stand in the folder for a read-only mount
        locked = tmp_path / "file"
        locked.write_text("")
        out = locked / "below"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "below"
    code = main(["harm-model", "--seeds", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("stingy: error:")


def test_a_full_disk_is_one_line_and_exit_2(monkeypatch, capsys):
    import errno

    from stingy.simulations import cli as simulations_cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/full/result.json")

    monkeypatch.setattr(simulations_cli, "run_harm_model_command", full)
    code = main(["harm-model", "--seeds", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == ("stingy: error: No space left on device "
                                         "(/full/result.json)")
