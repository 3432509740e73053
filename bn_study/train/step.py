"""The training step, written once: forward, per-member loss, backward of the summed loss, optimizer
step. Every engine (``engines.py``) runs this same body and differs only in how it reaches the
hardware: called op by op, with its forward compiled, or recorded once in a CUDA graph and replayed."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bn_study.train.losses import MemberLoss
from bn_study.train.members import Members

# (x [K,B,F], labels [K,B], one-hot [K,B,C] or None) -> (per-member loss [K], correct count [K])
StepFn = Callable[[Tensor, Tensor, "Tensor | None"], "tuple[Tensor, Tensor]"]


def forward_loss(members: Members, loss_fn: MemberLoss) -> StepFn:
    """The step's differentiable part: per-member losses (with their graph) and correct counts."""

    def forward(x: Tensor, labels: Tensor, onehot: Tensor | None) -> tuple[Tensor, Tensor]:
        out = members(x)
        return loss_fn(out, labels, onehot), (out.detach().argmax(-1) == labels).sum(1)

    return forward


def train_step(forward: StepFn, optimizer: torch.optim.Optimizer, x: Tensor, labels: Tensor,
               onehot: Tensor | None, *, keep_grads: bool = False) -> tuple[Tensor, Tensor]:
    """One update of every member. ``keep_grads`` zeroes gradients in place instead of freeing them, so
    their addresses stay fixed (what a CUDA graph replays into)."""
    losses, correct = forward(x, labels, onehot)
    optimizer.zero_grad(set_to_none=not keep_grads)
    losses.sum().backward()  # member k's gradients depend on member k's loss only
    optimizer.step()
    return losses.detach(), correct


def eager_step(members: Members, loss_fn: MemberLoss, optimizer: torch.optim.Optimizer,
               forward: StepFn | None = None) -> StepFn:
    """``train_step`` as a function of the batch; ``forward`` replaces the plain forward (a compiled one)."""
    forward = forward or forward_loss(members, loss_fn)

    def step(x: Tensor, labels: Tensor, onehot: Tensor | None) -> tuple[Tensor, Tensor]:
        return train_step(forward, optimizer, x, labels, onehot)

    return step
