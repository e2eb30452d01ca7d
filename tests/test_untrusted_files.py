"""Input files never run code: a pickle whose ``__reduce__`` would create a marker file is
planted in every entry point that reads a file, and the marker must never appear."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from stingy.cli import main
from stingy.empirical import data
from stingy.empirical.engine import RunControl
from stingy.empirical.recipes import build_recipe, load_recipe
from stingy.empirical.runs import CHECKPOINT, load_model_file
from stingy.empirical.train import train_recipe
from tests.empirical.test_data_formats import make_tar_gz, write_cifar10_python
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears iff code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "the planted payload ran"


def test_a_teacher_file_with_a_payload_is_refused_in_one_line(tmp_path, marker, capsys):
    teacher = tmp_path / "model.pt"
    torch.save({"model_name": "cnn", "num_classes": 10, "state_dict": {},
                "extra": Payload(marker)}, teacher)
    with pytest.raises(ValueError, match="--teacher"):
        load_model_file(teacher)
    code = main(["distill", "quick-kd", "--teacher", str(teacher), "--out",
                 str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--teacher" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content", ["truncated", "foreign"])
def test_a_truncated_or_foreign_teacher_file_is_one_line(content, tmp_path, capsys):
    teacher = tmp_path / "model.pt"
    if content == "truncated":
        torch.save({"model_name": "cnn", "state_dict": {"w": torch.zeros(1000)}}, teacher)
        teacher.write_bytes(teacher.read_bytes()[:200])
    else:
        teacher.write_bytes(b"not a torch file at all")
    code = main(["distill", "quick-kd", "--teacher", str(teacher)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--teacher" in err


def test_a_resume_checkpoint_with_a_payload_is_refused(tmp_path, marker):
    recipe = load_recipe("cifar10-cnn-scratch", TINY)
    train_recipe(recipe, dataset=tiny_dataset(), out=tmp_path, name="run", device="cpu",
                 control=RunControl(stop_after_epochs=1))
    torch.save({"epoch": 1, "model": {}, "run_id": Payload(marker)}, tmp_path / "run" / CHECKPOINT)
    with pytest.raises(ValueError, match="checkpoint"):
        train_recipe(recipe, dataset=tiny_dataset(), out=tmp_path, name="run", device="cpu",
                     resume=True)


def test_a_truncated_checkpoint_is_a_one_line_error(tmp_path):
    recipe = load_recipe("cifar10-cnn-scratch", TINY)
    train_recipe(recipe, dataset=tiny_dataset(), out=tmp_path, name="run", device="cpu",
                 control=RunControl(stop_after_epochs=1))
    path = tmp_path / "run" / CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated"):
        train_recipe(recipe, dataset=tiny_dataset(), out=tmp_path, name="run", device="cpu",
                     resume=True)


def test_a_dafl_checkpoint_with_a_payload_is_refused(tmp_path, marker):
    from stingy.empirical.dafl import distill_data_free
    from stingy.empirical.models import build_model

    path = tmp_path / "dafl.pt"
    torch.save({"step": Payload(marker)}, path)
    with pytest.raises(ValueError, match="DAFL checkpoint"):
        distill_data_free(build_model("cnn", 10), build_model("cnn", 10),
                          build_recipe({"method": {"name": "dafl_kd", "alpha": 1.0},
                                        "dafl": {"steps": 1, "batch_size": 2, "latent_dim": 8},
                                        "train": {"progress": False}}),
                          num_classes=10, checkpoint_path=path)


@pytest.mark.parametrize("planted", ["batches.meta", "data_batch_1"])
@pytest.mark.parametrize("as_archive", [False, True])
def test_a_cifar_pickle_with_a_payload_runs_nothing(planted, as_archive, tmp_path, marker):
    write_cifar10_python(tmp_path / "src")
    folder = tmp_path / "src" / "cifar-10-batches-py"
    (folder / planted).write_bytes(pickle.dumps({b"label_names": Payload(marker),
                                                 b"data": Payload(marker)}, protocol=2))
    source = make_tar_gz(folder, tmp_path / "cifar-10-python.tar.gz") if as_archive else folder
    with pytest.raises(ValueError, match="not allowed"):
        data.load_dataset("cifar10", data=source, cache_dir=tmp_path / "cache", progress=False)
    assert not list(tmp_path.glob("cache/*.npz"))  # nothing cached (no folder: nothing either)


def test_official_cifar_pickles_still_load_through_the_restricted_unpickler(tmp_path):
    written = write_cifar10_python(tmp_path / "src")
    dataset = data.load_dataset("cifar10", data=tmp_path / "src" / "cifar-10-batches-py",
                                cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(dataset.train_labels, written["train_labels"])


def test_a_data_cache_with_a_pickled_object_array_is_decoded_again(tmp_path, marker):
    write_cifar10_python(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-batches-py"
    cache = tmp_path / "cache"
    cache.mkdir()
    planted = cache / f"cifar10-{data.source_key(source)}.npz"
    with open(planted, "wb") as f:
        np.savez(f, classes=np.array([Payload(marker)], dtype=object))
    dataset = data.load_dataset("cifar10", data=source, cache_dir=cache, progress=False)
    assert dataset.classes[0] == "airplane"


def test_a_logit_file_holding_a_pickle_is_refused_in_one_line(tmp_path, marker, capsys):
    logits = tmp_path / "logits.npy"
    np.save(logits, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    code = main(["theory", "--classes", "3", "--k", "1", "--temperature", "2", "--logits",
                 str(logits)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1


def test_a_wrong_architecture_teacher_is_one_line_and_leaves_no_run(tmp_path, capsys,
                                                                    monkeypatch):
    from stingy.empirical.models import build_model
    from stingy.empirical.runs import save_model
    from tests.empirical.tiny import write_image_folder

    monkeypatch.setenv("STINGY_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "images")
    teacher = tmp_path / "model.pt"
    save_model(teacher, build_model("preresnet20", 10), model_name="cnn", num_classes=10,
               dataset="cifar10", recipe=build_recipe({}), test_accuracy=0.5)
    code = main(["distill", "cifar10-cnn-kd", "--teacher", str(teacher), "--data", str(folder),
                 "--out", str(tmp_path / "runs"), "--name", "s", "--device", "cpu"])
    err = [line for line in capsys.readouterr().err.split("\n") if line.strip()]
    assert code == 2 and len(err) == 1 and "do not fit a 'cnn'" in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_truncated_data_cache_is_decoded_again(tmp_path):
    write_cifar10_python(tmp_path / "src")
    source = tmp_path / "src" / "cifar-10-batches-py"
    first = data.load_dataset("cifar10", data=source, cache_dir=tmp_path / "cache",
                              progress=False)
    (cached,) = (tmp_path / "cache").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:300])
    again = data.load_dataset("cifar10", data=source, cache_dir=tmp_path / "cache",
                              progress=False)
    np.testing.assert_array_equal(again.train_images, first.train_images)


@pytest.mark.parametrize("content", ["payload", "truncated"])
def test_a_logit_bank_file_with_a_payload_or_truncated_is_refused(content, tmp_path, marker):
    from stingy.empirical.bank import AugmentStream, LogitBank
    from stingy.empirical.models import build_model
    from tests.empirical.test_bank import tiny_data

    torch.manual_seed(0)
    bank = LogitBank(tmp_path / "bank", build_model("cnn", 10), tiny_data(), AugmentStream(0, 16))
    bank.path(0).parent.mkdir(parents=True)
    torch.save({"key": Payload(marker), "epoch": 0, "logits": torch.zeros(1)}, bank.path(0))
    if content == "truncated":
        bank.path(0).write_bytes(bank.path(0).read_bytes()[:100])
    with pytest.raises(ValueError, match="logit bank file"):
        bank.epoch(0, "cpu")
