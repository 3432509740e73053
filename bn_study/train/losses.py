"""Losses computed per member: ``[K, batch, classes]`` outputs → ``[K]`` losses, each the mean its
own separate run would compute (``CrossEntropyLoss``, ``MSELoss``, ``BCELoss`` with reduction mean)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

LOSSES = ("ce", "mse", "bce")

# (outputs [K, B, C], labels [K, B], one-hot targets [K, B, C] or None) -> [K]
MemberLoss = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def _ce(out: Tensor, labels: Tensor, onehot: Tensor | None) -> Tensor:
    per_sample = F.cross_entropy(out.flatten(0, 1), labels.flatten(), reduction="none")
    return per_sample.view(labels.shape).mean(1)


def _mse(out: Tensor, labels: Tensor, onehot: Tensor | None) -> Tensor:
    return F.mse_loss(out, onehot, reduction="none").mean((1, 2))


def _bce(out: Tensor, labels: Tensor, onehot: Tensor | None) -> Tensor:
    return F.binary_cross_entropy(out, onehot, reduction="none").mean((1, 2))


def member_loss(name: str) -> MemberLoss:
    return {"ce": _ce, "mse": _mse, "bce": _bce}[name]


def needs_onehot(name: str) -> bool:
    """MSE and BCE compare the 10 outputs with one-hot targets (the book); CE takes class indices."""
    return name in ("mse", "bce")
