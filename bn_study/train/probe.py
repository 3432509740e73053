"""What each hidden layer outputs at test time (the Keras article's "take each layer's output").

At every epoch end the probe runs the model in eval mode on a fixed batch of validation images and
summarises each hidden activation: mean, std, and the fraction of units that cannot pass a gradient
well — saturated for sigmoid (output < 0.01 or > 0.99) and tanh (|output| > 0.99), dead for relu
(exactly 0), negative for leaky relu (its units never die; this is how many sit on the leaky side).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from bn_study.train.model import hidden_activation_names


def _inactive_fraction(act: str) -> tuple[str, Callable[[Tensor], Tensor]]:
    if act == "sigmoid":
        return "saturated", lambda a: (a < 0.01) | (a > 0.99)
    if act == "tanh":
        return "saturated", lambda a: a.abs() > 0.99
    if act == "relu":
        return "dead", lambda a: a == 0
    return "negative", lambda a: a < 0


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
        with torch.no_grad():  # (a block, not the decorator: mutmut skips decorated functions, docs/mutation.md)
            captured: dict[str, Tensor] = {}
            hooks = [
                getattr(self.net, name).register_forward_hook(
                    lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach())
                )
                for name in self.layers
            ]
            was_training = self.net.training
            self.net.eval()
            try:
                forward(self.inputs.unsqueeze(0).expand(members, -1, -1))
            finally:
                self.net.train(was_training)
                for hook in hooks:
                    hook.remove()
            stats: list[dict[str, float]] = [{} for _ in range(members)]
            snapshot: list[list[np.ndarray]] = [[] for _ in range(members)]
            for name in self.layers:
                out = captured[name]
                out = out.reshape(members, -1, out.shape[-1])  # a plain model yields [n, C]
                flat = out.flatten(1).float()
                mean = flat.mean(1)
                std = flat.std(1)
                inactive = self._inactive(flat).float().mean(1)
                for k in range(members):
                    stats[k][f"{name}_mean"] = float(mean[k])
                    stats[k][f"{name}_std"] = float(std[k])
                    stats[k][f"{name}_{self.kind}"] = float(inactive[k])
                    snapshot[k].append(out[k].cpu().numpy())
            if self.first is None:
                self.first = snapshot
            self.last = snapshot
            return stats
