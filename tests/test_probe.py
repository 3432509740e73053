"""The activation probe: each hidden layer's mean, std and inactive fraction (relu: zero activations, and dead
units — zero on every probe image) on activations known in advance,
measured in eval mode (BatchNorm on its running statistics, left untouched), and the model handed back in
the mode it came in — training goes on in train mode. The pre-activation probe: the percentiles of the
inputs of the nonlinearities at fixed units, the right tensor with BN before or after the activation, each
stacked member its own, the running statistics untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bn_study.train.members import Members
from bn_study.train.model import make_activation, seeded_models
from bn_study.train.probe import ActivationProbe, PreActivationProbe, probed_units

NO_NORM = {"kind": "none", "layers": 0, "position": "after"}
BN1 = {"kind": "batch", "layers": 1, "position": "after", "eps": 1e-3, "momentum": 0.01}
TORCH_DEFAULT = {"weight": None, "bias": None}

# the first layer's weights are zeroed, so every sample's pre-activation is exactly these biases
BIASES = [-10.0, -0.5, 0.0, 0.5, 3.0, 10.0]
ACTS = {
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), "saturated", lambda a: (a < 0.01) | (a > 0.99)),
    "tanh": (np.tanh, "saturated", lambda a: np.abs(a) > 0.99),
    "relu": (lambda z: np.maximum(z, 0), "zero_frac", lambda a: a == 0),
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
    relu_only = ("dead_units",) if act == "relu" else ()  # the units zero on every image: relu's alone
    assert set(stats) == {f"act{i}_{s}" for i in (1, 2) for s in ("mean", "std", kind, *relu_only)}
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


def test_zero_activations_and_dead_relu_units_are_two_numbers():
    """``zero_frac`` counts (image, unit) activations that are 0; ``dead_units`` counts units that are 0 on every
    probe image. Unit 0 is dead (bias −10), unit 1 is 0 for the images whose first input is ≤ 0 (about half:
    relu's normal sparsity, not death), units 2 and 3 are never 0 (bias +10)."""
    from collections import OrderedDict

    fc = torch.nn.Linear(8, 4)
    with torch.no_grad():
        fc.weight.zero_()
        fc.weight[1, 0] = 1.0
        fc.bias.copy_(torch.tensor([-10.0, 0.0, 10.0, 10.0]))
    net = torch.nn.Sequential(OrderedDict(fc1=fc, act1=torch.nn.ReLU()))
    x = inputs(50)
    [stats] = ActivationProbe(net, "relu", x).measure(lambda v: net(v[0]).unsqueeze(0), 1)
    half = float((x[:, 0] <= 0).float().mean())
    assert 0.3 < half < 0.7
    assert stats["act1_zero_frac"] == pytest.approx((1 + half) / 4)
    assert stats["act1_dead_units"] == 0.25  # one unit of four, whatever the images
    assert "act1_dead" not in stats  # the old, dishonest name of zero_frac


def test_a_sigmoid_layer_logs_no_dead_units():
    net = net_with_known_first_layer("sigmoid")
    [stats] = ActivationProbe(net, "sigmoid", inputs()).measure(Members([net]), 1)
    assert not [k for k in stats if k.endswith(("_dead_units", "_zero_frac", "_dead"))]


def test_dead_units_of_each_stacked_member_are_its_own():
    nets = [net_with_known_first_layer("relu", 0), net_with_known_first_layer("relu", 1, biases=[-1.0] * 6)]
    members = Members(nets)
    stats = ActivationProbe(members.net, "relu", inputs()).measure(members, 2)
    assert stats[0]["act1_dead_units"] == pytest.approx(3 / 6)  # biases −10, −0.5, 0: zero on every image
    assert stats[1]["act1_dead_units"] == 1.0 and stats[1]["act1_zero_frac"] == 1.0


# --- the pre-activation probe ------------------------------------------------------------------------------

def identity_net(act: str = "sigmoid", width: int = 4) -> torch.nn.Sequential:
    """fc1 passes its input through unchanged, so the input of act1 is exactly the batch fed in."""
    from collections import OrderedDict

    fc = torch.nn.Linear(width, width)
    with torch.no_grad():
        fc.weight.copy_(torch.eye(width))
        fc.bias.zero_()
    return torch.nn.Sequential(OrderedDict(fc1=fc, act1=make_activation(act), head=torch.nn.Linear(width, 2)))


def known_columns(n: int = 20, width: int = 4) -> torch.Tensor:
    """Column j holds (j + 1) · 0..n-1 in a scrambled order (the percentiles must not depend on the order)."""
    g = torch.Generator().manual_seed(3)
    return torch.stack([torch.randperm(n, generator=g).float() * (j + 1) for j in range(width)], dim=1)


def test_the_percentiles_of_a_units_input_are_numpys_on_known_values():
    x = known_columns()
    members = Members([identity_net()])
    [stats] = PreActivationProbe(members, x, units=2, every=1)()
    assert probed_units(4, 2) == [1, 3]
    assert set(stats) == {f"act1_pre_u{u}_p{p}" for u in (1, 3) for p in (15, 50, 85)}
    for unit in (1, 3):
        scale = unit + 1
        # by hand, linear interpolation between order statistics: rank q·(n-1) of 0..19, i.e. 2.85, 9.5, 16.15
        want = {15: 2.85 * scale, 50: 9.5 * scale, 85: 16.15 * scale}
        numpy = np.percentile(x[:, unit].double().numpy(), [15, 50, 85])
        for p, value in want.items():
            assert stats[f"act1_pre_u{unit}_p{p}"] == pytest.approx(value, rel=1e-12, abs=1e-12), (unit, p)
        assert [stats[f"act1_pre_u{unit}_p{p}"] for p in (15, 50, 85)] == pytest.approx(numpy, rel=1e-12)


@pytest.mark.parametrize("width, count, units", [
    (512, 3, [85, 256, 426]), (64, 3, [10, 32, 53]), (5, 1, [2]), (4, 4, [0, 1, 2, 3]), (200, 2, [50, 150]),
])
def test_the_probed_units_are_evenly_spread_and_distinct(width, count, units):
    assert probed_units(width, count) == units


def bn_net(position: str, seed: int = 0) -> torch.nn.Sequential:
    norm = {"kind": "batch", "layers": 1, "position": position, "eps": 1e-3, "momentum": 0.01}
    [net] = seeded_models([seed], {"hidden": [6, 5], "head": "softmax", "init": TORCH_DEFAULT}, {"name": "sigmoid"},
                          norm, num_features=8, num_classes=3)
    with torch.no_grad():  # running statistics far from the batch's: a look on them would disagree
        net.bn1.running_mean.fill_(5.0)
        net.bn1.running_var.fill_(0.25)
    return net


def percentiles_of(z: torch.Tensor, units: list[int]) -> dict[int, list[float]]:
    return {u: list(np.percentile(z[:, u].double().numpy(), [15, 50, 85])) for u in units}


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_input_of_the_nonlinearity_with_bn_before_or_after_it(position, mode):
    """BN before the activation: act1 is fed BN's output (on the batch's own statistics, the network as it
    trains); BN after: act1 is fed the Linear's output, and act2 the next Linear's output of BN's. The model
    comes back in its mode with its running statistics untouched."""
    net = bn_net(position)
    net.train(mode == "train")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = inputs()
    probe = PreActivationProbe(Members([net]), x, units=2, every=1)
    [stats] = probe()

    assert all(m.training == (mode == "train") for m in net.modules())
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        z1 = net.fc1(x)
        normed = torch.nn.functional.batch_norm(z1, None, None, net.bn1.weight, net.bn1.bias, True, 0.0, 1e-3)
        if position == "before":
            fed = {"act1": normed, "act2": net.fc2(torch.sigmoid(normed))}
        else:
            normed = torch.nn.functional.batch_norm(torch.sigmoid(z1), None, None, net.bn1.weight, net.bn1.bias,
                                                    True, 0.0, 1e-3)
            fed = {"act1": z1, "act2": net.fc2(normed)}
    assert probe.units == {"act1": [1, 4], "act2": [1, 3]}
    for layer, z in fed.items():
        for unit, want in percentiles_of(z, probe.units[layer]).items():
            got = [stats[f"{layer}_pre_u{unit}_p{p}"] for p in (15, 50, 85)]
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (layer, unit)
    if position == "before":  # on the batch's statistics: about centred, though the running mean says 5
        assert abs(stats["act1_pre_u1_p50"]) < 1.5


def test_each_stacked_member_gets_its_own_percentiles():
    nets = [bn_net("before", seed=0), bn_net("before", seed=1)]
    alone = [PreActivationProbe(Members([n]), inputs(), units=3, every=1)()[0] for n in nets]
    members = Members(nets)
    stacked = PreActivationProbe(members, inputs(), units=3, every=1)()
    assert len(stacked) == 2
    for k in range(2):
        assert set(stacked[k]) == set(alone[k])
        for name, value in alone[k].items():
            assert stacked[k][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (k, name)
    assert stacked[0] != pytest.approx(stacked[1], rel=1e-3)


def test_a_failing_look_still_hands_the_model_and_its_statistics_back():
    class DyingMembers(Members):
        def __call__(self, x):
            self.net.bn1(self.net.fc1(x[0]))  # the running statistics moved, then the forward died
            raise RuntimeError("out of memory")

    net = bn_net("before")
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError):
        PreActivationProbe(DyingMembers([net]), inputs(), units=1, every=1)()
    assert net.training
    assert all(not m._forward_pre_hooks for m in net.modules())
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_the_percentile_figure_has_a_panel_per_layer_with_each_units_median_and_band():
    from bn_study.tracking import figures

    steps = [0, 100, 200, 300]
    layers = {"act1": {85: figures.Percentiles(steps, [-1, -2, -3, -4], [0, 0.5, 1, 1.5], [1, 2, 3, 4]),
                       256: figures.Percentiles(steps, [0] * 4, [1] * 4, [2] * 4)},
              "act2": {42: figures.Percentiles(steps, [5, 6, 7, 8], [6, 7, 8, 9], [7, 8, 9, 10])}}
    fig = figures.pre_activation_percentiles({"": layers}, "tanh", "a run")
    try:
        assert [ax.get_title() for ax in fig.axes] == ["act1", "act2"]
        assert {ax.get_ylabel() for ax in fig.axes} == {"input to tanh"} and fig.axes[0].get_xlabel() == "step"
        medians = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].get_lines()
                   if line.get_linestyle() == "-"}
        assert medians == {"unit 85": [0, 0.5, 1, 1.5], "unit 256": [1] * 4}
        dashed = sorted(list(line.get_ydata()) for line in fig.axes[0].get_lines() if line.get_linestyle() == "--")
        assert dashed == sorted([[-1, -2, -3, -4], [1, 2, 3, 4], [0] * 4, [2] * 4])  # each band's p15 and p85
        assert all(float(t).is_integer() for ax in fig.axes for t in ax.get_xticks())
    finally:
        figures.close(fig)
