"""K independent copies of one MLP evaluated as one model: weights stacked on a leading member axis.

Why stacked weights and ``bmm`` rather than ``torch.func.vmap`` over ``functional_call``: vmap cannot
update BatchNorm running statistics per member (an in-place update of an unbatched buffer), and the
project needs those statistics exactly as each separate run would keep them. A stacked layer is one
``baddbmm`` kernel for all members, keeps every tensor static (CUDA-graph friendly), and lets the
stock optimizers train all members at once: SGD and Adam are elementwise, so member k's update
depends on member k's gradients only, and the loss is a sum of per-member losses.

Inputs and outputs carry the member axis first: ``[K, batch, features]``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StackedLinear(nn.Module):
    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        # [K, in, out]: nn.Linear's [out, in] transposed, so both bmm passes read it contiguously
        # (the transposed layout costs ~2x on the CPU in copies inside bmm's backward).
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)  # [K, out]

    @classmethod
    def stack(cls, layers: Sequence[nn.Linear]) -> StackedLinear:
        return cls(
            torch.stack([m.weight.detach().t() for m in layers]).contiguous(),
            torch.stack([m.bias.detach() for m in layers]).clone(),
        )

    def forward(self, x: Tensor) -> Tensor:
        # One baddbmm for all members. (Measured against K ordinary addmm/mm products per layer on the
        # CPU: slower at every batch size tried, most under a busy machine — docs/benchmarks.md.)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class StackedBatchNorm1d(nn.Module):
    """``nn.BatchNorm1d`` per member: batch statistics over each member's own batch, own running stats."""

    def __init__(self, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor,
                 num_batches_tracked: Tensor, eps: float, momentum: float) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.register_buffer("running_mean", running_mean)
        self.register_buffer("running_var", running_var)
        self.register_buffer("num_batches_tracked", num_batches_tracked)

    @classmethod
    def stack(cls, layers: Sequence[nn.BatchNorm1d]) -> StackedBatchNorm1d:
        first = layers[0]
        return cls(
            torch.stack([m.weight.detach() for m in layers]).clone(),
            torch.stack([m.bias.detach() for m in layers]).clone(),
            torch.stack([m.running_mean for m in layers]).clone(),
            torch.stack([m.running_var for m in layers]).clone(),
            first.num_batches_tracked.clone(),
            first.eps,
            first.momentum,
        )

    def forward(self, x: Tensor) -> Tensor:
        # Member k's channel c is channel k*C + c of one ordinary BatchNorm over [B, K*C]: PyTorch's fused
        # kernel then does all members at once, with the arithmetic (and the running-statistics update,
        # written straight into the [K, C] buffers through flat views) of each member's own nn.BatchNorm1d.
        # (Measured on the CPU: var_mean over dim 1 of [K, B, C] alone cost 2x the fused kernel.)
        k, b, c = x.shape
        flat = x.transpose(0, 1).reshape(b, k * c)
        y = F.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1),
                         self.bias.view(-1), self.training, self.momentum, self.eps)
        if self.training:
            self.num_batches_tracked.add_(1)
        return y.view(b, k, c).transpose(0, 1)


class StackedLayerNorm(nn.Module):
    def __init__(self, weight: Tensor, bias: Tensor, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def stack(cls, layers: Sequence[nn.LayerNorm]) -> StackedLayerNorm:
        return cls(
            torch.stack([m.weight.detach() for m in layers]).clone(),
            torch.stack([m.bias.detach() for m in layers]).clone(),
            layers[0].eps,
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return y * self.weight.unsqueeze(1) + self.bias.unsqueeze(1)


_STACKERS = {nn.Linear: StackedLinear, nn.BatchNorm1d: StackedBatchNorm1d, nn.LayerNorm: StackedLayerNorm}


def stack_models(models: Sequence[nn.Sequential]) -> nn.Sequential:
    """One ``nn.Sequential`` (same child names) computing all members at once."""
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for name, module in models[0].named_children():
        stacker = _STACKERS.get(type(module))
        if stacker is None:  # elementwise activations act on [K, B, C] as they are
            children[name] = copy.deepcopy(module)
        else:
            children[name] = stacker.stack([getattr(m, name) for m in models])
    return nn.Sequential(children)


def unstack_member(stacked: nn.Sequential, k: int, template: nn.Sequential) -> nn.Sequential:
    """Member k as a plain model (a copy of ``template`` holding member k's parameters and buffers)."""
    plain = copy.deepcopy(template)
    for name, module in plain.named_children():
        source = getattr(stacked, name)
        for key, tensor in module.state_dict().items():
            value = getattr(source, key)
            if key == "num_batches_tracked":
                tensor.copy_(value)
            elif isinstance(source, StackedLinear) and key == "weight":
                tensor.copy_(value[k].t())
            else:
                tensor.copy_(value[k])
    return plain
