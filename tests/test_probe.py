"""The activation probe: each hidden layer's mean, std and inactive fraction on activations known in advance,
measured in eval mode (BatchNorm on its running statistics, left untouched), and the model handed back in
the mode it came in — training goes on in train mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bn_study.train.members import Members
from bn_study.train.model import seeded_models
from bn_study.train.probe import ActivationProbe

NO_NORM = {"kind": "none", "layers": 0, "position": "after"}
BN1 = {"kind": "batch", "layers": 1, "position": "after", "eps": 1e-3, "momentum": 0.01}
TORCH_DEFAULT = {"weight": None, "bias": None}

# the first layer's weights are zeroed, so every sample's pre-activation is exactly these biases
BIASES = [-10.0, -0.5, 0.0, 0.5, 3.0, 10.0]
ACTS = {
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), "saturated", lambda a: (a < 0.01) | (a > 0.99)),
    "tanh": (np.tanh, "saturated", lambda a: np.abs(a) > 0.99),
    "relu": (lambda z: np.maximum(z, 0), "dead", lambda a: a == 0),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.02 * z), "negative", lambda a: a < 0),
}


def net_with_known_first_layer(act: str, seed: int = 0, norm=NO_NORM, biases=BIASES) -> torch.nn.Sequential:
    [net] = seeded_models([seed], {"hidden": [len(biases), 5], "head": "softmax", "init": TORCH_DEFAULT},
                          {"name": act}, norm, num_features=8, num_classes=3)
    with torch.no_grad():
        net.fc1.weight.zero_()
        net.fc1.bias.copy_(torch.tensor(biases))
    return net


def inputs(n: int = 50) -> torch.Tensor:
    return torch.randn(n, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("act", list(ACTS))
def test_first_layer_statistics_equal_the_known_activations(act):
    f, kind, inactive = ACTS[act]
    net = net_with_known_first_layer(act)
    probe = ActivationProbe(net, act, inputs())
    [stats] = probe.measure(Members([net]), 1)
    values = np.tile(f(np.array(BIASES)), (50, 1))  # [samples, units]
    assert stats["act1_mean"] == pytest.approx(values.mean(), rel=1e-6)
    assert stats["act1_std"] == pytest.approx(values.std(ddof=1), rel=1e-5)
    assert stats[f"act1_{kind}"] == pytest.approx(inactive(values).mean())
    assert set(stats) == {f"act{i}_{s}" for i in (1, 2) for s in ("mean", "std", kind)}
    # what each kind counts, spelled out for these biases
    expected_fraction = {"sigmoid": 2 / 6, "tanh": 3 / 6, "relu": 3 / 6, "leaky_relu": 2 / 6}[act]
    assert stats[f"act1_{kind}"] == pytest.approx(expected_fraction)
    assert probe.first is not None and probe.first[0][0].shape == (50, 6)
    np.testing.assert_allclose(probe.last[0][0], values, rtol=1e-6)


def test_each_member_of_a_stacked_model_is_measured_on_its_own():
    nets = [net_with_known_first_layer("sigmoid", 0), net_with_known_first_layer("sigmoid", 1, biases=[10.0] * 6)]
    members = Members(nets)
    stats = ActivationProbe(members.net, "sigmoid", inputs()).measure(members, 2)
    assert stats[0]["act1_saturated"] == pytest.approx(2 / 6) and stats[1]["act1_saturated"] == 1.0
    assert stats[1]["act1_std"] == 0.0
    assert [layer.shape for layer in probe_last(members)] == [(50, 6), (50, 6)]  # [samples, units] per member


def probe_last(members):
    probe = ActivationProbe(members.net, "sigmoid", inputs())
    probe.measure(members, members.count)
    return [probe.last[k][0] for k in range(members.count)]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_probe_measures_in_eval_mode_and_hands_the_model_back_in_its_mode(mode):
    net = net_with_known_first_layer("relu", norm=BN1)
    with torch.no_grad():  # running statistics far from any batch's, so the two modes disagree
        net.bn1.running_mean.fill_(5.0)
        net.bn1.running_var.fill_(0.25)
    net.train(mode == "train")
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    x = inputs()
    probe = ActivationProbe(net, "relu", x)
    [stats] = probe.measure(Members([net]), 1)

    assert all(m.training == (mode == "train") for m in net.modules())
    for key, value in net.state_dict().items():  # eval mode: BN's running statistics were not updated
        assert torch.equal(value, buffers[key]), key
    with torch.no_grad():
        net.eval()
        want = net.act2(net.fc2(net.bn1(net.act1(net.fc1(x)))))
        net.train()
        in_train_mode = net.act2(net.fc2(net.bn1(net.act1(net.fc1(x)))))
    assert stats["act2_mean"] == pytest.approx(float(want.mean()), rel=1e-6)
    assert stats["act2_mean"] != pytest.approx(float(in_train_mode.mean()), rel=1e-3)


def test_a_failing_forward_still_hands_the_model_back_and_removes_its_hooks():
    net = net_with_known_first_layer("relu")
    net.train()
    probe = ActivationProbe(net, "relu", inputs())

    def broken(_x):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        probe.measure(broken, 1)
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("act, values, fraction", [
    # exactly at a threshold is not inactive: the rules are strict inequalities
    ("sigmoid", [0.01, 0.99, 0.5, 0.0099, 0.9901], 2 / 5),
    ("tanh", [0.99, -0.99, 0.991, -0.991, 0.0], 2 / 5),
    ("relu", [0.0, 0.0, 0.5, 1e-6, 3.0], 2 / 5),
    ("leaky_relu", [-1e-6, 0.0, 0.5, -2.0, 3.0], 2 / 5),
])
def test_the_inactive_rules_at_their_thresholds(act, values, fraction):
    """The activation's output set by hand (an identity in the activation's place, fed by a constant layer)."""
    from collections import OrderedDict

    fc = torch.nn.Linear(2, len(values))
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.copy_(torch.tensor(values))
    net = torch.nn.Sequential(OrderedDict(fc1=fc, act1=torch.nn.Identity()))
    probe = ActivationProbe(net, act, torch.zeros(3, 2))
    assert probe.first is None and probe.last is None  # nothing measured yet
    [stats] = probe.measure(lambda x: net(x[0]).unsqueeze(0), 1)
    kind = ACTS[act][1]
    assert stats[f"act1_{kind}"] == pytest.approx(fraction)
