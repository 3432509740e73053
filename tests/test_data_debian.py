"""Fashion-MNIST from Debian's package: the chain on a small generated .deb (an ``ar`` archive holding a
``data.tar.xz``), tampering refused and deleted, the offline error, and the real package fetched once."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision

from bn_study.data import ensure_raw, load_splits
from bn_study.data.acquire import acquire_raw
from bn_study.data.catalog import RAW_FILES
from bn_study.data.debian import FASHION_MNIST_DEB, DebianSource
from bn_study.data.failures import SourceFailed
from bn_study.data.idx import encode_images, encode_labels
from bn_study.errors import UserError

REPO = Path(__file__).resolve().parent.parent
MEMBER_DIR = "./usr/share/datasets/fashion-mnist"
CLOSED_PORT = "http://127.0.0.1:9/"  # fails at once, where the real mirrors would need DNS


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_idx() -> dict[str, bytes]:
    rng = np.random.default_rng(3)
    return {
        "train-images-idx3-ubyte": encode_images(rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte": encode_labels(np.arange(12, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte": encode_images(rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": encode_labels(np.array([9, 2, 1, 1], dtype=np.uint8)),
    }


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.write(data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def tar_xz(files: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def make_deb(idx: dict[str, bytes], *, link: str | None = None) -> bytes:
    files = {f"{MEMBER_DIR}/{name}.gz": gzip.compress(data) for name, data in idx.items() if name != link}
    files["./usr/share/doc/dataset-fashion-mnist/copyright"] = b"MIT\n"
    data = tar_xz(files, links=(f"{MEMBER_DIR}/{link}.gz",) if link else ())
    control = tar_xz({"./control": b"Package: dataset-fashion-mnist\n"})
    return ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", data)])


@dataclasses.dataclass
class Apt:
    """Stands in for ``apt-get download``: puts the given .deb into the scratch dir, counting calls."""

    deb: bytes
    calls: int = 0
    seen: list[Path] = dataclasses.field(default_factory=list)

    def __call__(self, spec: str, dest: Path) -> Path:
        self.calls += 1
        assert spec == "dataset-fashion-mnist=1.0-test"
        path = dest / "dataset-fashion-mnist_1.0-test_all.deb"
        path.write_bytes(self.deb)
        self.seen.append(path)
        return path


def source(deb: bytes, idx: dict[str, bytes], tmp_path: Path, **changes: object) -> tuple[DebianSource, Apt]:
    apt = Apt(deb)
    src = DebianSource(package="dataset-fashion-mnist", version="1.0-test", deb_sha256=sha256(deb),
                       member_dir=MEMBER_DIR, idx_sha256={n: sha256(d) for n, d in idx.items()},
                       installed_root=tmp_path / "system", download=apt)
    return dataclasses.replace(src, **changes), apt


@pytest.fixture(autouse=True)
def offline_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", [CLOSED_PORT])


def published(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "FashionMNIST" / "raw").glob("*")) if (root / "FashionMNIST").exists() else []


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".bn_study-") or p.suffix in (".deb", ".tmp"))


def test_apt_chain_writes_the_idx_files_torchvision_reads(tmp_path: Path) -> None:
    idx = tiny_idx()
    src, apt = source(make_deb(idx), idx, tmp_path)
    root = tmp_path / "data"
    raw = acquire_raw("fashion_mnist", root, ("local", "torchvision", "debian", "apt"), debian=src, verify=False)
    assert apt.calls == 1 and not apt.seen[0].exists()  # fetched once; the .deb does not stay behind
    assert published(root) == sorted(RAW_FILES)
    assert all((raw / name).read_bytes() == data for name, data in idx.items())
    assert leftovers(root) == []
    train = torchvision.datasets.FashionMNIST(str(root), train=True, download=False)
    test = torchvision.datasets.FashionMNIST(str(root), train=False, download=False)
    assert len(train) == 12 and len(test) == 4
    assert train.targets.tolist() == list(np.arange(12) % 10) and test.targets.tolist() == [9, 2, 1, 1]
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    acquire_raw("fashion_mnist", root, ("local", "torchvision", "debian", "apt"), debian=src, verify=False)
    assert apt.calls == 1  # the second call finds the files


def test_installed_package_files_are_used_and_checked_never_changed(tmp_path: Path) -> None:
    idx = tiny_idx()
    src, apt = source(make_deb(idx), idx, tmp_path)
    system = src.installed_dir
    system.mkdir(parents=True)
    for name, data in idx.items():
        (system / f"{name}.gz").write_bytes(gzip.compress(data))
    root = tmp_path / "data"
    raw = acquire_raw("fashion_mnist", root, ("local", "debian", "apt"), debian=src, verify=False)
    assert apt.calls == 0
    assert all((raw / name).read_bytes() == data for name, data in idx.items())
    # a tampered installed file: refused, and left where the package manager put it
    shutil.rmtree(root)
    (system / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + b"\0" * 5))
    with pytest.raises(UserError, match=r"debian: .*t10k-labels-idx1-ubyte\.gz decompresses to sha256 \w+, expected"):
        acquire_raw("fashion_mnist", root, ("debian",), debian=src, verify=False)
    assert (system / "t10k-labels-idx1-ubyte.gz").exists() and published(root) == []


def test_a_tampered_deb_is_refused_deleted_and_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = tiny_idx()
    good = make_deb(idx)
    src, apt = source(good, idx, tmp_path)
    apt.deb = good[:-1] + bytes([good[-1] ^ 1])  # one bit of the archive flipped
    opened: list[object] = []
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: opened.append(a))
    root = tmp_path / "data"
    with pytest.raises(UserError, match=r"apt: dataset-fashion-mnist_1\.0-test_all\.deb has sha256 \w+, expected "
                                        rf"{sha256(good)}; it was deleted"):
        acquire_raw("fashion_mnist", root, ("apt",), debian=src, verify=False)
    assert opened == [] and not apt.seen[0].exists()
    assert published(root) == [] and leftovers(root) == []


@pytest.mark.parametrize("tamper", ["content", "symlink", "missing"])
def test_a_tampered_member_is_refused_and_nothing_is_published(tmp_path: Path, tamper: str) -> None:
    idx = tiny_idx()
    if tamper == "content":
        bad = dict(idx, **{"train-labels-idx1-ubyte": encode_labels(np.zeros(12, dtype=np.uint8))})
        deb, want = make_deb(bad), r"train-labels-idx1-ubyte\.gz decompresses to sha256 \w+, expected"
    elif tamper == "symlink":
        deb, want = make_deb(idx, link="t10k-images-idx3-ubyte"), "t10k-images-idx3-ubyte.gz in the package is not a regular file"
    else:
        deb = make_deb({k: v for k, v in idx.items() if k != "train-images-idx3-ubyte"})
        want = "the package has no ./usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    src, apt = source(deb, idx, tmp_path, deb_sha256=sha256(deb))  # the archive itself matches its pin
    root = tmp_path / "data"
    with pytest.raises(UserError, match=want):
        acquire_raw("fashion_mnist", root, ("apt",), debian=src, verify=False)
    assert published(root) == [] and leftovers(root) == [] and not apt.seen[0].exists()


@pytest.mark.parametrize(("archive", "want"), [
    (b"PK\x03\x04 a zip", "the .deb is not an ar archive"),
    (ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", b"x")]), "the .deb has no data.tar.* member"),
    (ar_archive([("data.tar.xz", b"not xz at all")]), "cannot read the package's data archive"),
])
def test_what_is_not_a_package_is_refused(tmp_path: Path, archive: bytes, want: str) -> None:
    idx = tiny_idx()
    src, _ = source(archive, idx, tmp_path)
    with pytest.raises(UserError, match=want):
        acquire_raw("fashion_mnist", tmp_path / "data", ("apt",), debian=src, verify=False)


def test_offline_with_no_source_names_each_one_and_writes_no_data(tmp_path: Path) -> None:
    idx = tiny_idx()

    def offline(spec: str, dest: Path) -> Path:
        raise SourceFailed(f"apt-get download {spec} failed (Failed to fetch http://deb.debian.org/…; "
                           "Temporary failure resolving 'deb.debian.org')")

    src, _ = source(make_deb(idx), idx, tmp_path, download=offline)
    root = tmp_path / "data"
    with pytest.raises(UserError) as info:
        acquire_raw("fashion_mnist", root, ("local", "torchvision", "debian", "apt"), debian=src, verify=False)
    message = str(info.value)
    assert "\n" not in message
    for part in ("local: no files there", "torchvision: download failed", f"debian: dataset-fashion-mnist is not "
                 f"installed (no {src.installed_dir})", "apt: apt-get download dataset-fashion-mnist=1.0-test failed",
                 "allow the 'apt' source"):
        assert part in message
    assert published(root) == [] and leftovers(root) == []


def test_offline_through_the_entry_point_is_exit_2_and_nothing_written(cli, tmp_path: Path) -> None:
    """The user's view: one sentence, exit 2, no run dir, no mlflow.db (the data root stays empty)."""
    empty = tmp_path / "empty-root"
    result = cli("data=fashion_mnist", f"data.root={empty}", "data.sources=[local,debian]", "epochs=1")
    assert result.code == 2
    lines = [ln for ln in result.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "could not get fashion_mnist" in lines[0] and "debian: " in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-root"]
    assert not any(p.name.endswith("ubyte") for p in empty.rglob("*"))


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian or Ubuntu)")
def test_the_real_package_through_apt_is_the_real_fashion_mnist() -> None:
    """The project's own chain fetches the real set once into the shared data root (the study reads it)."""
    root = Path(os.environ.get("BN_STUDY_DATA") or REPO / "data")
    ensure_raw("fashion_mnist", root, ("local", "apt"))
    splits = load_splits("fashion_mnist", root, val="test", sources=("local",))
    assert splits.train_x.shape == (60_000, 784) and splits.test_x.shape == (10_000, 784)
    assert splits.train_y.bincount().tolist() == [6000] * 10 and splits.test_y.bincount().tolist() == [1000] * 10
    assert splits.test_y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    raw = root / "FashionMNIST" / "raw"
    assert {n: hashlib.sha256((raw / n).read_bytes()).hexdigest() for n in RAW_FILES} == dict(FASHION_MNIST_DEB.idx_sha256)


def test_the_record_figure_names_the_classes_it_shows() -> None:
    from bn_study.data.catalog import DIGITS, FASHION_CLASSES
    from bn_study.tracking.figures import close, record_outputs

    fig = record_outputs(np.linspace(0, 1, 10), 9, 19, "run", FASHION_CLASSES)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(FASHION_CLASSES)
    assert ax.get_title() == "test record 19 (label 9: Ankle boot)" and ax.get_xlabel() == "output node (class)"
    close(fig)
    fig = record_outputs(np.linspace(0, 1, 10), 7, 19, "run", DIGITS)
    assert fig.axes[0].get_title() == "test record 19 (label 7)" and fig.axes[0].get_xlabel() == "output node (digit)"
    close(fig)
