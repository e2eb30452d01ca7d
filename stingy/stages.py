"""Stages that are reused when finished: the bookkeeping behind `stingy reproduce`.

A stage has a name, a config (JSON-able data) and a function that writes its result files
atomically and returns a small JSON-able summary. After it succeeds, a completion marker
``<results>/stages/<name>.json`` is written (atomically) holding the config, its digest, the
outputs, the time taken and the summary. Next time, a stage whose marker has the same config
digest and whose outputs all exist is skipped with a printed line; a changed config, a missing
output or ``force`` runs it again. A stage's config holds everything its result depends on:
the code (:func:`source_digest`), the data's identity (:func:`stingy.pipeline.data_identity`)
and its settings. ``force`` also deletes the stage's own caches (``Stage.caches``: per-setting
results, finished runs), so the stage recomputes everything. A stage that cannot run here
(``StageUnavailable``, e.g. no data) prints one line and writes no marker, so a later run
tries again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stingy.io import code_digest, write_json

MARKER_DIR = "stages"


class StageUnavailable(Exception):
    """A stage cannot run on this machine now (e.g. its data is missing); not an error."""


@dataclass
class Stage:
    name: str
    config: dict
    run: Callable[[], dict | None]
    outputs: tuple[str, ...] = ()  # paths relative to the results folder
    description: str = field(default="")
    caches: tuple[str, ...] = ()  # files or folders (relative) that --force deletes first


def config_digest(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_digest(*packages: str) -> str:
    """sha256 of the .py and .toml files of the named stingy sub-packages (the code a stage
    runs), so that a stage reruns when its layer's code or packaged config changes."""
    return code_digest(*packages)


def marker_path(results_dir: Path, name: str) -> Path:
    return Path(results_dir) / MARKER_DIR / f"{name}.json"


def read_marker(results_dir: Path, name: str) -> dict | None:
    path = marker_path(results_dir, name)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def reusable(stage: Stage, results_dir: Path) -> dict | None:
    """The finished marker if ``stage`` can be skipped, else None."""
    marker = read_marker(results_dir, stage.name)
    if marker is None or marker.get("config_digest") != config_digest(stage.config):
        return None
    if any(not (Path(results_dir) / name).exists() for name in stage.outputs):
        return None
    return marker


def run_stage(stage: Stage, results_dir, force: bool = False, log=print) -> dict:
    """Run ``stage`` unless a finished marker with the same config exists; return a record
    with status 'reused', 'done' or 'unavailable' (and the reason)."""
    results_dir = Path(results_dir)
    label = f"[{stage.name}]"
    previous = None if force else reusable(stage, results_dir)
    if force:
        for cache in stage.caches:
            path = results_dir / cache
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    if previous is not None:
        log(f"{label} skipped: finished {previous['finished']} with the same config "
            "(--force to redo)")
        return {**previous, "status": "reused"}
    old = read_marker(results_dir, stage.name)
    if old is not None and not force:
        log(f"{label} config or outputs changed since {old.get('finished')}: running again")
    log(f"{label} running{': ' + stage.description if stage.description else ''}")
    start = time.perf_counter()
    try:
        summary = stage.run()
    except StageUnavailable as err:
        log(f"{label} not run: {err}")
        return {"stage": stage.name, "status": "unavailable", "reason": str(err),
                "config": stage.config}
    record = {
        "stage": stage.name,
        "status": "done",
        "config": stage.config,
        "config_digest": config_digest(stage.config),
        "outputs": list(stage.outputs),
        "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - start, 2),
        "summary": summary or {},
    }
    write_json(marker_path(results_dir, stage.name), record)
    log(f"{label} done in {record['seconds']:.1f} s")
    return record
