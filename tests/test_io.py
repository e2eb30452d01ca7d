"""stingy.io: durable atomic writes, one file mode, strict JSON, stale temp files, the lock."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from stingy import io as sio


def test_a_replace_is_followed_by_an_fsync_of_the_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(sio.os, "fsync", fsync)
    sio.write_json(tmp_path / "a.json", {"x": 1})
    assert synced == [False, True]  # the file, then its folder


def test_every_writer_gives_the_same_file_mode(tmp_path):
    expected = 0o666 & ~sio._umask()
    sio.write_json(tmp_path / "a.json", {})
    sio.write_text(tmp_path / "b.txt", "x")
    sio.save_torch(tmp_path / "c.pt", {"w": torch.zeros(1)})
    sio.append_jsonl(tmp_path / "d.jsonl", {"e": 1})
    sio.write_csv(tmp_path / "e.csv", [{"a": 1}])
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    assert set(modes.values()) == {expected}, modes


def test_json_is_strict_nan_and_infinities_become_null(tmp_path):
    record = {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.array([np.nan, 2.0]),
              "d": torch.tensor([float("-inf")]), "e": "nan"}
    sio.write_json(tmp_path / "a.json", record)
    sio.append_jsonl(tmp_path / "a.jsonl", record)
    for name in ("a.json", "a.jsonl"):
        parsed = json.loads((tmp_path / name).read_text(), parse_constant=_refuse)
        assert parsed == {"a": None, "b": [None, 1.5], "c": [None, 2.0], "d": [None],
                          "e": "nan"}
    assert math.isnan(record["a"])  # the caller's data is left alone


def _refuse(constant):
    raise ValueError(f"non-standard JSON constant {constant}")


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path):
    (tmp_path / ".checkpoint.pt.abc.tmp").write_bytes(b"")
    (tmp_path / "keep.tmp").write_text("mine")
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    removed = sio.remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".checkpoint.pt.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp", "metrics.jsonl"]


def test_a_second_holder_of_the_lock_fails_and_a_released_lock_is_free(tmp_path):
    first = sio.ExclusiveLock(tmp_path / ".lock", "run x")
    with pytest.raises(sio.LockHeld, match=f"pid {os.getpid()}"):
        sio.ExclusiveLock(tmp_path / ".lock", "run x")
    first.release()
    with sio.ExclusiveLock(tmp_path / ".lock", "run x") as again:
        assert again.stale_pid is None  # a clean release leaves no pid behind


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text("999999999\n")  # a pid that cannot be running
    with sio.ExclusiveLock(tmp_path / ".lock", "run x") as lock:
        assert lock.stale_pid == 999999999
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def test_a_bad_json_line_is_an_error_naming_the_file_and_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl line 2 is not valid JSON"):
        sio.read_jsonl(path)
    path.write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"m\.jsonl line 2 is not a JSON object"):
        sio.read_jsonl(path)
    path.write_bytes(b'{"epoch": 1}\n\xff\n')
    with pytest.raises(ValueError, match=r"m\.jsonl is not UTF-8"):
        sio.read_jsonl(path)


def test_only_a_last_line_cut_short_by_a_kill_is_left_out(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert sio.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epoch": 2}')  # whole, only its newline missing
    assert sio.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epo\n')  # a bad line with its newline is not torn
    with pytest.raises(ValueError, match="line 2"):
        sio.read_jsonl(path)


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x" * 200, None, 3, "/abs"])
def test_a_name_from_a_file_must_be_a_plain_name(name):
    with pytest.raises(ValueError, match="job id must be a plain name"):
        sio.plain_name(name, "job id")
    assert sio.plain_name("teacher-n0.0", "job id") == "teacher-n0.0"


def test_a_stored_torch_file_carries_its_checksum_and_a_changed_one_is_refused(tmp_path):
    path = tmp_path / "bank.pt"
    sio.save_torch(path, {"logits": torch.arange(6.0).reshape(2, 3)})
    assert sio.checksum_path(path).is_file()
    assert torch.equal(sio.load_torch(path, "a bank file")["logits"][1], torch.tensor([3., 4, 5]))
    # the same tensors permuted, written over the file without its checksum
    torch.save({"logits": torch.arange(6.0).reshape(2, 3).flip(0)}, path)
    with pytest.raises(ValueError, match="a bank file .* does not match its checksum"):
        sio.load_torch(path, "a bank file")
    sio.checksum_path(path).unlink()  # no checksum beside it: read as it is
    assert sio.load_torch(path, "a bank file")["logits"][0, 0] == 3.0


def test_a_changed_top_k_file_is_refused(tmp_path):
    from stingy.theory.topk import TopKTeacher, load_topk_teacher, save_topk_teacher

    path = tmp_path / "rows.npz"
    save_topk_teacher(path, TopKTeacher(torch.tensor([[0, 1]]), torch.tensor([[2.0, 1.0]]), 4))
    assert load_topk_teacher(path).num_classes == 4
    np.savez(path, indices=np.array([[1, 0]]), values=np.array([[2.0, 1.0]]), num_classes=4)
    with pytest.raises(ValueError, match="does not match its checksum"):
        load_topk_teacher(path)


def test_a_held_lock_is_waited_for_with_one_line_and_then_refused(tmp_path):
    first = sio.ExclusiveLock(tmp_path / ".lock", "job x")
    said = []
    with pytest.raises(sio.LockHeld, match="after 0.2 s"):
        sio.ExclusiveLock(tmp_path / ".lock", "job x", wait_seconds=0.2, log=said.append,
                          poll_seconds=0.05)
    assert len(said) == 1 and "job x" in said[0] and str(os.getpid()) in said[0]
    first.release()


def test_an_empty_lock_file_is_taken_at_once(tmp_path):
    (tmp_path / ".lock").write_text("")
    with sio.ExclusiveLock(tmp_path / ".lock", "job x", wait_seconds=60) as lock:
        assert lock.stale_pid is None


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.int32])
def test_a_top_k_file_with_unsigned_or_narrow_indices_reads_as_int64(tmp_path, dtype):
    from stingy.theory.topk import load_topk_teacher

    path = tmp_path / "rows.npz"
    np.savez(path, indices=np.array([[1, 0]], dtype=dtype),
             values=np.array([[2.0, 1.0]], dtype=np.float32), num_classes=np.int64(4))
    assert load_topk_teacher(path).indices.dtype == torch.int64


def test_a_top_k_file_with_float_indices_is_refused(tmp_path):
    from stingy.theory.topk import load_topk_teacher

    path = tmp_path / "rows.npz"
    np.savez(path, indices=np.array([[1.0, 0.0]]), values=np.array([[2.0, 1.0]]),
             num_classes=np.int64(4))
    with pytest.raises(ValueError, match="indices must be integers"):
        load_topk_teacher(path)
