"""The network, built from config as one plain ``nn.Sequential``.

Module names say what each piece is (``fc1``, ``act1``, ``bn1``, ``ln1``, ``head``, ``out``) so the
activation probe and a reader of ``print(model)`` find the hidden layers without guessing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

ACTIVATIONS = ("sigmoid", "relu", "leaky_relu", "tanh")
HEADS = ("softmax", "sigmoid", "leaky_relu")
NORM_KINDS = ("none", "batch", "layer")
POSITIONS = ("after", "before")
INITS = ("glorot_uniform", "torch_default")


def make_activation(name: str, negative_slope: float = 0.02) -> nn.Module:
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}")


def normalized_layer_count(norm: Mapping[str, Any], num_hidden: int) -> int:
    """How many of the first hidden layers get a norm layer (``layers: all`` = every one)."""
    if norm["kind"] == "none":
        return 0
    layers = norm["layers"]
    return num_hidden if layers == "all" else int(layers)


def _norm_layer(norm: Mapping[str, Any], width: int) -> nn.Module:
    if norm["kind"] == "batch":
        return nn.BatchNorm1d(width, eps=float(norm["eps"]), momentum=float(norm["momentum"]))
    return nn.LayerNorm(width, eps=float(norm["eps"]))


def build_model(
    model: Mapping[str, Any],
    act: Mapping[str, Any],
    norm: Mapping[str, Any],
    *,
    num_features: int = 784,
    num_classes: int = 10,
) -> nn.Sequential:
    """Hidden layers ``fc{i} → act{i}`` with an optional norm layer after (or before) the activation
    of the first K of them, then ``head`` (a Linear) and the output activation ``out``.

    A softmax head ends with the logits: the softmax lives in the cross-entropy loss, exactly as
    Keras's softmax + categorical_crossentropy computes it.
    """
    hidden: Sequence[int] = list(model["hidden"])
    slope = float(act.get("negative_slope", 0.02))
    n_norm = normalized_layer_count(norm, len(hidden))
    short = {"batch": "bn", "layer": "ln"}.get(norm["kind"], "")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = num_features
    for i, size in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, size)
        activation = make_activation(act["name"], slope)
        if i <= n_norm and norm["position"] == "before":
            layers[f"{short}{i}"] = _norm_layer(norm, size)
            layers[f"act{i}"] = activation
        else:
            layers[f"act{i}"] = activation
            if i <= n_norm:
                layers[f"{short}{i}"] = _norm_layer(norm, size)
        width = size
    layers["head"] = nn.Linear(width, num_classes)
    if model["head"] == "sigmoid":
        layers["out"] = nn.Sigmoid()
    elif model["head"] == "leaky_relu":
        layers["out"] = nn.LeakyReLU(slope)
    net = nn.Sequential(layers)
    if model["init"] == "glorot_uniform":
        for module in net.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
    return net


def hidden_activation_names(net: nn.Sequential) -> list[str]:
    """Names of the hidden layers' activation modules, in order (what the probe watches)."""
    return [name for name, _ in net.named_children() if name.startswith("act")]


def seeded_models(
    seeds: Sequence[int],
    model: Mapping[str, Any],
    act: Mapping[str, Any],
    norm: Mapping[str, Any],
    *,
    num_features: int = 784,
    num_classes: int = 10,
) -> list[nn.Sequential]:
    """One model per seed, each initialised exactly as a separate run with that seed would be."""
    nets = []
    for seed in seeds:
        torch.manual_seed(int(seed))
        nets.append(build_model(model, act, norm, num_features=num_features, num_classes=num_classes))
    return nets
