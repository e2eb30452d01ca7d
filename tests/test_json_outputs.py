"""Every JSON file the commands write parses under a strict parser (no NaN, no Infinity)."""

from __future__ import annotations

import json

from stingy.cli import main
from tests.empirical.tiny import single_thread, write_image_folder  # noqa: F401 (fixture)
from tests.simulations.test_cli import TINY as TINY_SWEEP

SMALL = ["--set", "schedule.epochs=1", "--set", "train.batch_size=16",
         "--set", "train.progress=false", "--device", "cpu"]


def _refuse(constant):
    raise ValueError(f"non-standard JSON constant {constant}")


def strict_parse(path):
    text = path.read_text()
    lines = text.splitlines() if path.suffix == ".jsonl" else [text]
    return [json.loads(line, parse_constant=_refuse) for line in lines]


def test_every_json_output_is_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "images")
    runs = tmp_path / "runs"
    common = ["--data", str(folder), "--out", str(runs), *SMALL]
    assert main(["train", "cifar10-cnn-scratch", "--name", "teacher", *common]) == 0
    assert main(["distill", "cifar10-cnn-stingy", "--teacher", str(runs / "teacher"),
                 "--name", "stingy", *common]) == 0
    assert main(["teacher-theory", "--teacher", str(runs / "teacher"), "--data", str(folder),
                 "--out", str(tmp_path / "theory"), "--device", "cpu"]) == 0
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SWEEP)
    assert main(["simulate", "--config", str(config), "--noise", "0", "0.3",
                 "--out", str(tmp_path / "sim"), "--json"]) == 0
    written = sorted(p for p in tmp_path.rglob("*") if p.suffix in (".json", ".jsonl"))
    assert len(written) >= 12
    for path in written:
        strict_parse(path)
    rows = strict_parse(tmp_path / "sim" / "runs.json")[0]
    assert any(row["ratio"] is None for row in rows)  # dense methods: NaN became null
