"""Stage reuse: a finished stage is skipped, a changed config or a missing output reruns,
--force reruns, and an unavailable stage leaves no marker."""

from __future__ import annotations

from stingy.stages import Stage, StageUnavailable, marker_path, run_stage
from stingy.io import write_text


def _counting_stage(results, config, calls, name="fake"):
    def run():
        calls.append(config)
        write_text(results / "fake" / "out.txt", "done")
        return {"value": len(calls)}
    return Stage(name, config, run, outputs=("fake/out.txt",))


def test_a_finished_stage_with_the_same_config_is_skipped(tmp_path):
    calls, lines = [], []
    assert run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path)["status"] == "done"
    record = run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path, log=lines.append)
    assert record["status"] == "reused" and len(calls) == 1
    assert any("skipped" in line for line in lines)


def test_a_changed_config_reruns_the_stage(tmp_path):
    calls = []
    run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path)
    record = run_stage(_counting_stage(tmp_path, {"a": 2}, calls), tmp_path)
    assert record["status"] == "done" and calls == [{"a": 1}, {"a": 2}]


def test_a_missing_output_reruns_the_stage(tmp_path):
    calls = []
    run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path)
    (tmp_path / "fake" / "out.txt").unlink()
    assert run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path)["status"] == "done"
    assert len(calls) == 2


def test_force_reruns_a_finished_stage(tmp_path):
    calls = []
    run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path)
    assert run_stage(_counting_stage(tmp_path, {"a": 1}, calls), tmp_path,
                     force=True)["status"] == "done"
    assert len(calls) == 2


def test_a_failing_stage_writes_no_marker_and_raises(tmp_path):
    def fail():
        raise RuntimeError("boom")
    try:
        run_stage(Stage("broken", {}, fail), tmp_path)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the stage's error must propagate")
    assert not marker_path(tmp_path, "broken").exists()


def test_an_unavailable_stage_prints_one_line_and_is_tried_again_next_time(tmp_path):
    lines, calls = [], []

    def no_data():
        calls.append(1)
        raise StageUnavailable("CIFAR-10 data not found: pass --data PATH")
    for _ in range(2):
        record = run_stage(Stage("cifar", {}, no_data), tmp_path, log=lines.append)
        assert record["status"] == "unavailable"
    assert len(calls) == 2 and not marker_path(tmp_path, "cifar").exists()
    assert sum("not run: CIFAR-10 data not found" in line for line in lines) == 2


def test_source_digest_changes_with_the_code_and_is_stable_otherwise():
    from stingy.stages import source_digest

    assert source_digest("figures") == source_digest("figures")
    assert source_digest("figures") != source_digest("theory")
    assert len(source_digest("figures")) == 16
