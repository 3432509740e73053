"""The network, built from config as one plain ``nn.Sequential``.

Module names say what each piece is (``fc1``, ``act1``, ``bn1``, ``ln1``, ``head``, ``out``) so the
activation probe and a reader of ``print(model)`` find the hidden layers without guessing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bn_study.config.sources import conf_dir
from bn_study.errors import UserError
from bn_study.util.targets import keyword_args, locate

ACTIVATIONS = ("sigmoid", "relu", "leaky_relu", "tanh")
HEADS = ("softmax", "sigmoid", "leaky_relu")
NORM_KINDS = ("none", "batch", "layer")
POSITIONS = ("after", "before")


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
    initialise(net, model.get("init") or {})
    return net


def _init_fn(spec: Mapping[str, Any] | None) -> Callable[[Tensor], Any] | None:
    if spec is None:
        return None
    fn, kwargs = locate(spec.get("_target_")), keyword_args(spec)
    return lambda tensor: fn(tensor, **kwargs)


def initialise(net: nn.Sequential, init: Mapping[str, Any]) -> None:
    """Re-initialise every Linear's weight and bias with ``init.weight`` / ``init.bias`` (a torch.nn.init
    function as ``_target_`` plus its keyword arguments); null keeps PyTorch's default for that tensor."""
    weight, bias = _init_fn(init.get("weight")), _init_fn(init.get("bias"))
    for module in net.modules():
        if isinstance(module, nn.Linear):
            if weight is not None:
                weight(module.weight)
            if bias is not None:
                bias(module.bias)


def check_init(init: Any) -> None:
    """Raise ``UserError`` unless ``model.init`` is {weight, bias}, each null or a function that initialises
    a tensor in place with the given keyword arguments (tried on a throwaway tensor)."""
    if not isinstance(init, Mapping) or set(init) - {"weight", "bias"}:
        shipped = ", ".join(sorted(f.stem for f in (conf_dir() / "model" / "init").glob("*.yaml")))
        raise UserError(f"model.init={init!r} is not allowed; it is {{weight: ..., bias: ...}} — choose a file "
                        f"with model/init=NAME, one of {shipped}.")
    for part in ("weight", "bias"):
        spec = init.get(part)
        if spec is None:
            continue
        target = spec.get("_target_") if isinstance(spec, Mapping) else None
        if not callable(locate(target)):
            raise UserError(f"model.init.{part}._target_={target!r} is not a function; name one of torch.nn.init, "
                            "e.g. torch.nn.init.xavier_uniform_ or torch.nn.init.zeros_.")
        try:
            _init_fn(spec)(torch.empty(4, 3) if part == "weight" else torch.empty(4))  # type: ignore[misc]
        except (TypeError, ValueError) as err:
            raise UserError(f"model.init.{part} ({target}) refuses its arguments: {err}.") from None


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
