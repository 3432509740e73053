"""What the PyTorch peers share: the command line, and MNIST as tensors (a sibling module of the scripts,
so ``python bench/peers/<peer>.py`` finds it)."""

from __future__ import annotations

import argparse
import os

from torch.utils.data import TensorDataset
from torchvision.datasets import MNIST


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-root", default=os.environ.get("BN_STUDY_DATA", "data"))
    parser.add_argument("--epochs", type=int, default=10)
    return parser.parse_args()


def tensors(root: str, train: bool) -> TensorDataset:
    """The whole split as one float tensor once: per-item ToTensor() would dominate the run."""
    ds = MNIST(root=root, train=train, download=False)
    return TensorDataset(ds.data.reshape(-1, 784).float() / 255, ds.targets)
