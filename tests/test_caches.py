"""Every cache and stage key covers code, data identity and config; --force recomputes a
stage's caches too. One test per cache."""

from __future__ import annotations

import os
import time

from stingy.empirical import data
from stingy import pipeline, stages
from stingy.stages import Stage, run_stage
from stingy.simulations import config as sim_config
from stingy.io import write_text
from tests.empirical.test_data_formats import write_cifar10_python


def test_stage_key_covers_the_data_content_at_the_same_path(tmp_path, monkeypatch):
    monkeypatch.delenv("STINGY_DATA", raising=False)
    write_cifar10_python(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-batches-py"

    def quick_config():
        built = pipeline.build_stages("quick", tmp_path / "results", str(source))
        return next(stage.config for stage in built if stage.name == "cifar10_quick")

    before = quick_config()
    assert quick_config() == before
    batch = source / "data_batch_1"
    batch.write_bytes(batch.read_bytes())  # same path, new content identity (mtime)
    os.utime(batch, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert quick_config()["data"] != before["data"]


def test_stage_key_covers_the_code_of_every_package_it_runs(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(stages, "code_digest", lambda *packages: seen.append(packages) or "x")
    pipeline.build_stages("quick", tmp_path, None)
    assert ("simulations", "theory") in seen and ("empirical", "theory") in seen


def test_force_deletes_a_stages_caches_before_it_runs(tmp_path):
    write_text(tmp_path / "cache" / "old.json", "{}")
    seen = []

    def run():
        seen.append((tmp_path / "cache").exists())
        write_text(tmp_path / "out.txt", "x")
        return {}

    stage = Stage("s", {"a": 1}, run, outputs=("out.txt",), caches=("cache",))
    run_stage(stage, tmp_path, log=lambda line: None)
    run_stage(stage, tmp_path, force=True, log=lambda line: None)
    assert seen == [True, False]


def test_reproduce_force_retrains_the_cifar_runs(tmp_path, monkeypatch):
    results = tmp_path / "results"
    old_model = results / pipeline.QUICK_DIR / "runs" / "quick-teacher" / "model.pt"
    write_text(old_model, "old")
    seen = []

    def fake_quick(results_dir, data):
        seen.append(old_model.exists())
        write_text(results_dir / pipeline.QUICK_DIR / "summary.csv", "x\n")
        return {}

    monkeypatch.setattr(pipeline, "run_cifar10_quick", fake_quick)
    built = pipeline.build_stages("quick", results, None)
    quick = next(stage for stage in built if stage.name == "cifar10_quick")
    run_stage(quick, results, force=True, log=lambda line: None)
    assert seen == [False]


def test_simulation_setting_key_covers_the_code(monkeypatch):
    config = sim_config.load_config()
    before = sim_config.setting_hash(config, 0.0, "symmetric")
    monkeypatch.setattr(sim_config, "code_digest", lambda *packages: "changed")
    assert sim_config.setting_hash(config, 0.0, "symmetric") != before


def test_simulation_setting_cache_survives_strict_json(tmp_path):
    from stingy.io import write_json

    write_json(tmp_path / "s.json", {"runs": [{"ratio": float("nan"), "k": 3}],
                                     "gap_trajectory": [], "drive_rates": []})
    row = sim_config.read_setting(tmp_path / "s.json")["runs"][0]
    assert row["k"] == 3 and row["ratio"] != row["ratio"]  # NaN again
    (tmp_path / "bad.json").write_text("{truncated")
    assert sim_config.read_setting(tmp_path / "bad.json") is None


def test_decoded_data_cache_key_covers_the_decoder_code(tmp_path, monkeypatch):
    write_cifar10_python(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-batches-py"
    before = data.source_key(source)
    monkeypatch.setattr(data, "file_digest", lambda path: "another decoder")
    assert data.source_key(source) != before
