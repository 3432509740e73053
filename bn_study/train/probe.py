"""What each hidden layer outputs at test time (the Keras article's "take each layer's output"), and what its
nonlinearity is fed while the network trains (the BatchNorm paper's figure 1).

``ActivationProbe``: at every epoch end the model runs in eval mode on a fixed batch of validation images,
and each hidden activation is summarised: mean, std, and the fraction of its (image, unit) activations that
pass almost no gradient — ``saturated`` for sigmoid (output < 0.01 or > 0.99) and tanh (|output| > 0.99),
``zero_frac`` for relu (exactly 0: about half of them in an untrained net, relu's normal sparsity, not
death), ``negative`` for leaky relu (its units never die; this is how many sit on the leaky side). For relu
also ``dead_units``: the fraction of the layer's units that are 0 on every probe image — units that pass no
gradient at all for these images. Every one of them is a fraction in [0, 1], in MLflow and in the reports.
Runs logged before ``zero_frac`` had its name logged the same number as ``dead`` (``probe_names.LEGACY_NAMES``).

``PreActivationProbe``: every ``probe.every_steps`` optimizer steps, and at step 0 before training, the
same fixed batch goes through the model as it trains, and the input of each hidden nonlinearity (a forward
pre-hook on ``act{i}``: with BN before the activation that is BN's output, with BN after it the Linear's) is
read at ``probe.units`` fixed units per layer — evenly spread over the layer's width, the same units in
every run. For each unit the 15th, 50th and 85th percentiles over the batch are logged as
``act{i}_pre_u{unit}_p{15,50,85}`` at the global step. Neither probe changes what is trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from bn_study.train.members import Members
from bn_study.train.model import hidden_activation_names
from bn_study.train.probe_names import DEAD_UNITS, NEGATIVE, SATURATED, ZERO_FRACTION

PERCENTILES = (15, 50, 85)


def _inactive_fraction(act: str) -> tuple[str, Callable[[Tensor], Tensor]]:
    if act == "sigmoid":
        return SATURATED, lambda a: (a < 0.01) | (a > 0.99)
    if act == "tanh":
        return SATURATED, lambda a: a.abs() > 0.99
    if act == "relu":
        return ZERO_FRACTION, lambda a: a == 0
    return NEGATIVE, lambda a: a < 0


def _look(net: nn.Module, layers: Sequence[str], forward: Callable[[Tensor], Tensor], x: Tensor, *,
          inputs: bool, train: bool) -> dict[str, Tensor]:
    """One forward of ``x`` without gradients, returning what each named module received (``inputs``) or
    gave; the model comes back in its mode and buffers, with its hooks removed, even when the forward fails."""
    with torch.no_grad():  # (a block, not the decorator: mutmut skips decorated functions, docs/mutation.md)
        captured: dict[str, Tensor] = {}
        modules = [(name, getattr(net, name)) for name in layers]
        if inputs:
            hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: captured.__setitem__(name, args[0]))
                     for name, m in modules]
        else:
            hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
                     for name, m in modules]
        was_training = net.training
        saved = [b.clone() for b in net.buffers()]  # BN's running statistics and counter: train mode moves them
        net.train(train)
        try:
            forward(x)
        finally:
            net.train(was_training)
            for buffer, value in zip(net.buffers(), saved):
                buffer.copy_(value)  # in place: the tensors a CUDA graph recorded keep their addresses
            for hook in hooks:
                hook.remove()
        return captured


class ActivationProbe:
    """Hooks the hidden activations of a (plain or stacked) model; ``measure`` returns per-member stats."""

    def __init__(self, net: nn.Sequential, act: str, inputs: Tensor) -> None:
        self.net = net
        self.inputs = inputs  # [n, features], the fixed evaluation batch
        self.layers = hidden_activation_names(net)
        self.kind, self._inactive = _inactive_fraction(act)
        self.first: list[list[np.ndarray]] | None = None  # [member][layer] before training
        self.last: list[list[np.ndarray]] | None = None  # [member][layer] at the latest measure

    def measure(self, forward: Callable[[Tensor], Tensor], members: int) -> list[dict[str, float]]:
        captured = _look(self.net, self.layers, forward, self.inputs.unsqueeze(0).expand(members, -1, -1),
                         inputs=False, train=False)
        stats: list[dict[str, float]] = [{} for _ in range(members)]
        snapshot: list[list[np.ndarray]] = [[] for _ in range(members)]
        for name in self.layers:
            out = captured[name]
            out = out.reshape(members, -1, out.shape[-1])  # a plain model yields [n, C]
            flat = out.flatten(1).float()
            mean = flat.mean(1)
            std = flat.std(1)
            off = self._inactive(out.float())  # [members, samples, units]
            inactive = off.flatten(1).float().mean(1)
            dead = off.all(1).float().mean(1) if self.kind == ZERO_FRACTION else None
            for k in range(members):
                stats[k][f"{name}_mean"] = float(mean[k])
                stats[k][f"{name}_std"] = float(std[k])
                stats[k][f"{name}_{self.kind}"] = float(inactive[k])
                if dead is not None:  # a unit is dead when no probe image makes it non-zero
                    stats[k][f"{name}_{DEAD_UNITS}"] = float(dead[k])
                snapshot[k].append(out[k].cpu().numpy())
        if self.first is None:
            self.first = snapshot
        self.last = snapshot
        return stats


def probed_units(width: int, count: int) -> list[int]:
    """``count`` distinct units of a layer ``width`` wide, evenly spaced and centred (one unit: the middle)."""
    return [(2 * i + 1) * width // (2 * count) for i in range(count)]


def pre_activation_name(layer: str, unit: int, percentile: int) -> str:
    return f"{layer}_pre_u{unit}_p{percentile}"


def _input_widths(net: nn.Sequential, layers: Sequence[str]) -> dict[str, int]:
    """Each named activation's width: that of the last Linear before it (a norm layer keeps the width)."""
    widths: dict[str, int] = {}
    width = 0
    for name, module in net.named_children():
        if isinstance(module, nn.Linear):
            width = module.out_features
        if name in layers:
            widths[name] = width
    return widths


class PreActivationProbe:
    """The percentiles of the inputs of the hidden nonlinearities at fixed units; a ``loop.StepProbe``."""

    def __init__(self, members: Members, inputs: Tensor, units: int, every: int) -> None:
        self.members, self.every = members, every
        self.inputs = inputs.unsqueeze(0).expand(members.count, -1, -1)  # [K, n, features], the fixed batch
        self.layers = hidden_activation_names(members.template)
        widths = _input_widths(members.template, self.layers)
        self.units = {name: probed_units(widths[name], units) for name in self.layers}
        self._q = torch.tensor([p / 100 for p in PERCENTILES], dtype=torch.float64, device=inputs.device)

    @property
    def names(self) -> list[str]:
        """Every metric this probe logs, in the order ``__call__`` fills them."""
        return [pre_activation_name(layer, u, p) for layer in self.layers for u in self.units[layer]
                for p in PERCENTILES]

    def __call__(self) -> list[dict[str, float]]:
        """Per member, each probed unit's percentiles over the fixed batch, in train mode — what the
        nonlinearity is fed as the network trains (BN on the batch's own statistics, not on running ones
        that lag behind); the running statistics are put back afterwards."""
        k = self.members.count
        captured = _look(self.members.net, self.layers, self.members, self.inputs, inputs=True, train=True)
        stats: list[dict[str, float]] = [{} for _ in range(k)]
        for name in self.layers:
            units = self.units[name]
            x = captured[name].reshape(k, -1, captured[name].shape[-1])[..., units].double()  # [K, n, U]
            q = torch.quantile(x, self._q, dim=1).cpu().tolist()  # [P][K][U], linear interpolation as numpy's
            for m in range(k):
                for j, unit in enumerate(units):
                    for i, p in enumerate(PERCENTILES):
                        stats[m][pre_activation_name(name, unit, p)] = q[i][m][j]
        return stats
