"""The network built from config: structure for every norm/act/position/head choice, and init."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from bn_study.train.model import build_model, hidden_activation_names, seeded_models

# conf/model/init/glorot_uniform.yaml and torch_default.yaml
GLOROT = {"weight": {"_target_": "torch.nn.init.xavier_uniform_"}, "bias": {"_target_": "torch.nn.init.zeros_"}}
TORCH_DEFAULT = {"weight": None, "bias": None}
ARTICLE = {"name": "article", "hidden": [512, 256, 128, 64], "head": "softmax", "init": GLOROT}
BOOK = {"name": "book", "hidden": [200], "head": "sigmoid", "init": TORCH_DEFAULT}
ACT_TYPES = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}


def norm(kind: str, layers, position: str = "after") -> dict:
    return {"kind": kind, "layers": layers, "position": position, "eps": 1e-3, "momentum": 0.01}


def expected_names(depth: int, short: str, k: int, position: str) -> list[str]:
    names = []
    for i in range(1, depth + 1):
        names.append(f"fc{i}")
        if i <= k and position == "before":
            names += [f"{short}{i}", f"act{i}"]
        elif i <= k:
            names += [f"act{i}", f"{short}{i}"]
        else:
            names.append(f"act{i}")
    return names + ["head"]


@pytest.mark.parametrize("act,position,k", itertools.product(ACT_TYPES, ("after", "before"), range(0, 5)))
def test_article_structure_for_every_act_bn_depth_and_position(act, position, k):
    cfg = norm("batch", k, position) if k else norm("none", 0, position)
    net = build_model(ARTICLE, {"name": act, "negative_slope": 0.02}, cfg)
    names = [n for n, _ in net.named_children()]
    assert names == expected_names(4, "bn", k, position)
    widths = [512, 256, 128, 64]
    for i, width in enumerate(widths, start=1):
        assert isinstance(getattr(net, f"act{i}"), ACT_TYPES[act])
        fc = getattr(net, f"fc{i}")
        assert (fc.out_features, fc.in_features) == (width, [784, *widths][i - 1])
        if i <= k:
            bn = getattr(net, f"bn{i}")
            assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == width
            assert bn.eps == 1e-3 and bn.momentum == 0.01 and bn.affine
    assert net.head.out_features == 10 and net.head.in_features == 64
    assert hidden_activation_names(net) == ["act1", "act2", "act3", "act4"]
    assert net(torch.rand(3, 784)).shape == (3, 10)


@pytest.mark.parametrize("position", ["after", "before"])
def test_layer_norm_goes_after_every_hidden_layer(position):
    net = build_model(ARTICLE, {"name": "relu"}, {"kind": "layer", "layers": "all", "position": position, "eps": 1e-5})
    assert [n for n, _ in net.named_children()] == expected_names(4, "ln", 4, position)
    assert all(isinstance(getattr(net, f"ln{i}"), nn.LayerNorm) for i in range(1, 5))


def test_book_layernorm_variant_matches_the_book():
    net = build_model(BOOK, {"name": "leaky_relu", "negative_slope": 0.02},
                      {"kind": "layer", "layers": "all", "position": "after", "eps": 1e-5})
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.LayerNorm, nn.Linear, nn.Sigmoid]
    assert net.act1.negative_slope == 0.02 and net.ln1.normalized_shape == (200,)


@pytest.mark.parametrize("head,last", [("softmax", nn.Linear), ("sigmoid", nn.Sigmoid), ("leaky_relu", nn.LeakyReLU)])
def test_heads(head, last):
    net = build_model({**BOOK, "head": head}, {"name": "leaky_relu", "negative_slope": 0.02}, norm("none", 0))
    assert isinstance(list(net)[-1], last)
    if head == "leaky_relu":
        assert net.out.negative_slope == 0.02


def test_glorot_uniform_weights_and_zero_biases():
    torch.manual_seed(0)
    net = build_model(ARTICLE, {"name": "sigmoid"}, norm("none", 0))
    for fc in (m for m in net if isinstance(m, nn.Linear)):
        fan_in, fan_out = fc.in_features, fc.out_features
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert fc.weight.abs().max() <= bound
        assert fc.weight.abs().max() > 0.95 * bound  # uniform over the whole range, not a narrower init
        assert torch.count_nonzero(fc.bias) == 0


def test_torch_default_init_keeps_nonzero_biases():
    torch.manual_seed(0)
    net = build_model(BOOK, {"name": "sigmoid"}, norm("none", 0))
    assert torch.count_nonzero(net.fc1.bias) > 0
    assert net.fc1.weight.abs().max() <= 1 / 784 ** 0.5


def test_seeded_models_are_reproducible_and_distinct():
    a = seeded_models([0, 1], ARTICLE, {"name": "relu"}, norm("batch", 1))
    b = seeded_models([0], ARTICLE, {"name": "relu"}, norm("batch", 1))
    assert torch.equal(a[0].fc1.weight, b[0].fc1.weight)
    assert not torch.equal(a[0].fc1.weight, a[1].fc1.weight)
