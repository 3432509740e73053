"""Train/validation/test tensors for one run, decoded from the raw files once per process."""

from __future__ import annotations

import operator
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from bn_study.data import idx
from bn_study.data.acquire import DEFAULT_SOURCES, ensure_raw
from bn_study.data.catalog import HOLDOUT_SIZE, IMAGE_SIDE, NUM_CLASSES, NUM_FEATURES, RAW_FILES, DatasetSpec, get_dataset
from bn_study.data.paths import normalize_root
from bn_study.errors import UserError
from bn_study.train.device import resolve_device

VAL_SPLITS = ("test", "holdout")


# eq=False: dataclass equality would compare tensors elementwise and raise; identity is the honest meaning.
@dataclass(frozen=True, eq=False, repr=False)
class Splits:
    """Features float32 [N, F] in [0, 1] and labels int64 [N], all on the run's device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    name: str  # "mnist" | "fashion_mnist" | anything for synthetic data
    val_split: str  # "test" (val is the test set) | "holdout"

    def __post_init__(self) -> None:
        # Synthetic data is built by hand elsewhere; catch shape mix-ups here rather than deep in a training step.
        if self.val_split not in VAL_SPLITS:
            raise ValueError(f"val_split must be one of {VAL_SPLITS}, got {self.val_split!r}")
        features = self.train_x.shape[-1] if self.train_x.dim() == 2 else None
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if x.dim() != 2 or not x.is_floating_point() or x.shape[1] != features:
                raise ValueError(f"{part}_x must be float [N, {features}], got {x.dtype} {tuple(x.shape)}")
            if y.dim() != 1 or y.dtype != torch.int64 or y.shape[0] != x.shape[0]:
                raise ValueError(f"{part}_y must be int64 [{x.shape[0]}], got {y.dtype} {tuple(y.shape)}")

    @cached_property
    def num_classes(self) -> int:
        # From the labels rather than a constant so synthetic data with fewer classes stays honest; 10 for
        # MNIST. Cached because on a GPU it costs a device sync.
        return int(max(int(y.max()) for y in (self.train_y, self.val_y, self.test_y) if y.numel())) + 1

    @property
    def num_features(self) -> int:
        return int(self.train_x.shape[1])

    def __repr__(self) -> str:
        return (
            f"Splits(name={self.name!r}, val_split={self.val_split!r}, train={len(self.train_y)}, "
            f"val={len(self.val_y)}, test={len(self.test_y)}, device={self.train_x.device})"
        )


@dataclass(frozen=True)
class _Decoded:
    # uint8 pixels [N, 784] and int64 labels, on the CPU; never handed out, only sliced and copied from.
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


_CACHE: dict[tuple[str, Path, bool], _Decoded] = {}
_CACHE_LOCK = threading.Lock()


def load_splits(
    name: str,
    root: str | os.PathLike[str],
    *,
    val: str = "test",
    limit_train: int | None = None,
    device: str | torch.device = "cpu",
    sources: Sequence[str] = DEFAULT_SOURCES,
    verify: bool = True,
) -> Splits:
    """Load dataset ``name`` from ``root`` (fetching it first if needed) as float32 pixels / 255 on ``device``.

    val="test": train = all 60k training images, val = the 10k test images (val *is* the test set).
    val="holdout": train = the first 50k, val = the last 10k training images, test = the test set.
    limit_train keeps the first N images of the train split that results. verify: the files must be the
    real dataset's (sha256; see ``ensure_raw``); labels must lie in 0..9 either way.
    """
    spec = get_dataset(name)
    if val not in VAL_SPLITS:
        raise UserError(f"data.val {val!r} is not allowed; use one of {', '.join(repr(v) for v in VAL_SPLITS)}")
    target = device if isinstance(device, torch.device) else resolve_device(device)
    data = _decoded(spec, root, sources, verify)

    if val == "holdout":
        cut = data.train_x.shape[0] - HOLDOUT_SIZE
        train = (data.train_x[:cut], data.train_y[:cut])
        valid = (data.train_x[cut:], data.train_y[cut:])
    else:
        train = (data.train_x, data.train_y)
        valid = (data.test_x, data.test_y)
    if limit_train is not None:
        n = _check_limit(limit_train, train[0].shape[0], val)
        train = (train[0][:n], train[1][:n])

    train_x, train_y = _to_run(*train, target)
    val_x, val_y = _to_run(*valid, target)
    test_x, test_y = _to_run(data.test_x, data.test_y, target)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, name=spec.name, val_split=val)


def _to_run(pixels: torch.Tensor, labels: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Move the bytes first (4x less to copy to a GPU), then widen there. Both results are fresh tensors, so
    # no caller can write into the process-wide cache through them.
    x = pixels.to(device).to(torch.float32).div_(255)
    y = labels.to(device, copy=True)
    return x, y


def _check_limit(limit: object, available: int, val: str) -> int:
    try:
        if isinstance(limit, bool):  # True would otherwise pass as 1
            raise TypeError
        n = operator.index(limit)
    except TypeError:
        raise UserError(f"data.limit_train {limit!r} must be a whole number from 1 to {available}, or null") from None
    if not 1 <= n <= available:
        raise UserError(
            f"data.limit_train {n} is out of range; with data.val={val!r} it must be from 1 to {available}, or null"
        )
    return n


def _decoded(spec: DatasetSpec, root: str | os.PathLike[str], sources: Sequence[str], verify: bool) -> _Decoded:
    key = (spec.name, normalize_root(root), verify)
    # Held across the decode so concurrent callers in one process read the files once, not once each.
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            raw = ensure_raw(spec.name, key[1], sources, verify=verify)
            cached = _CACHE[key] = _decode(spec, key[1], raw)
        return cached


def _decode(spec: DatasetSpec, root: Path, raw: Path) -> _Decoded:
    # Read here rather than through torchvision.datasets, whose import alone costs a run more than the
    # decoding; the files are the ones torchvision would read (it checks nothing more than their shapes).
    arrays = {}
    for name in RAW_FILES:
        try:
            arrays[name] = idx.decode((raw / name).read_bytes())
        except (OSError, ValueError) as exc:
            raise UserError(f"the files under '{raw}' are not readable IDX files ({name}: {exc}); delete them to "
                            "fetch them again") from exc
    images = {"train": arrays["train-images-idx3-ubyte"], "test": arrays["t10k-images-idx3-ubyte"]}
    labels = {"train": arrays["train-labels-idx1-ubyte"], "test": arrays["t10k-labels-idx1-ubyte"]}
    for split, size in (("train", spec.train_size), ("test", spec.test_size)):
        if images[split].shape != (size, IMAGE_SIDE, IMAGE_SIDE) or labels[split].shape != (size,):
            raise UserError(
                f"the {split} files under '{raw}' hold {images[split].shape} images and {labels[split].shape} "
                f"labels, expected ({size}, 28, 28) and ({size},); delete them to fetch them again"
            )
        if labels[split].size and int(labels[split].max()) >= NUM_CLASSES:  # a 201-class model would train
            raise UserError(
                f"the {split} labels under '{raw}' go up to {int(labels[split].max())}, outside 0..{NUM_CLASSES - 1}; "
                "delete the files to fetch them again"
            )
    return _Decoded(
        torch.from_numpy(images["train"].reshape(spec.train_size, NUM_FEATURES).copy()),
        torch.from_numpy(labels["train"].astype(np.int64)),
        torch.from_numpy(images["test"].reshape(spec.test_size, NUM_FEATURES).copy()),
        torch.from_numpy(labels["test"].astype(np.int64)),
    )
