"""K seeds trained as one stacked model reproduce K separately trained runs.

Tolerance: the stacked model computes the same arithmetic with batched kernels (``baddbmm`` instead of
``addmm``, BatchNorm's formula written out instead of the fused kernel), so float32 results differ in
the last bits from the first step on, and training amplifies that slowly. Over 60 steps we require
every parameter, BN running statistic and per-step loss to agree within 1e-4 (relative, with a 1e-5
absolute floor) — several orders of magnitude below any effect the studies measure, and orders of
magnitude above float32 rounding (~1e-7), so a real bug (a member seeing another member's batch or
statistics, a shared optimizer state) fails it by far.
"""

from __future__ import annotations

import pytest
import torch

from bn_study.data import Splits
from bn_study.train.loop import TrainSpec, fit, new_state
from bn_study.train.members import Members
from bn_study.train.step import eager_step
from bn_study.train.losses import member_loss
from bn_study.train.model import seeded_models
from bn_study.train.optim import build_optimizer
from bn_study.train.stacked import unstack_member

RTOL, ATOL = 1e-4, 1e-5
# conf/model/init/glorot_uniform.yaml and torch_default.yaml
GLOROT = {"weight": {"_target_": "torch.nn.init.xavier_uniform_"}, "bias": {"_target_": "torch.nn.init.zeros_"}}
TORCH_DEFAULT = {"weight": None, "bias": None}
MODEL = {"name": "mini", "hidden": [32, 24, 16], "head": "softmax", "init": GLOROT}
NORMS = {
    "plain": {"kind": "none", "layers": 0, "position": "after"},
    "bn2": {"kind": "batch", "layers": 2, "position": "after", "eps": 1e-3, "momentum": 0.01},
    "bn1_before": {"kind": "batch", "layers": 1, "position": "before", "eps": 1e-3, "momentum": 0.1},
    "ln": {"kind": "layer", "layers": "all", "position": "after", "eps": 1e-5},
}
OPTIMIZERS = {
    "sgd_nesterov": {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "adam": {"_target_": "torch.optim.Adam", "lr": 0.003, "betas": [0.9, 0.999], "eps": 1e-7},
}
SEEDS = (0, 1, 2)


def data(n: int = 320, features: int = 20) -> Splits:
    g = torch.Generator().manual_seed(7)
    x = torch.rand(n, features, generator=g)
    y = (x[:, :5].sum(1) * 2).long().clamp(max=9)
    return Splits(x, y, x[:64], y[:64], x[:64], y[:64], name="synthetic", val_split="test")


def train(seeds, norm, optimizer, *, loss="ce", head="softmax", batch_size=32, shuffle=True, epochs=6):
    splits = data()
    models = seeded_models(seeds, {**MODEL, "head": head}, {"name": "sigmoid"}, norm,
                           num_features=splits.num_features, num_classes=splits.num_classes)
    members = Members(models)
    opt = build_optimizer(members.net.parameters(), optimizer)
    state = new_state(members, opt, seeds)
    spec = TrainSpec(epochs=epochs, batch_size=batch_size, seeds=tuple(seeds), loss=loss, shuffle=shuffle,
                     log_every=1)
    reports = list(fit(state, splits, spec, eager_step(members, member_loss(loss), opt)))
    return members, reports


def without_gradient(norm: dict) -> set[str]:
    """Parameters whose true gradient is zero, so both runs only random-walk on float noise (Adam
    rescales that noise to full-size steps): a Linear bias right before BatchNorm (BN subtracts it
    again), and the running mean that absorbs it. They cannot change any output; skip them."""
    if norm["kind"] != "batch" or norm["position"] != "before":
        return set()
    return {name for i in range(1, norm["layers"] + 1) for name in (f"fc{i}.bias", f"bn{i}.running_mean")}


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("norm_name", NORMS)
def test_stacked_members_match_separate_runs(norm_name, opt_name):
    norm, optimizer = NORMS[norm_name], OPTIMIZERS[opt_name]
    stacked, stacked_reports = train(SEEDS, norm, optimizer)
    assert stacked.count == 3 and sum(len(r.step_losses) for r in stacked_reports) == 60  # 6 epochs × 10 steps
    for k, seed in enumerate(SEEDS):
        alone, alone_reports = train((seed,), norm, optimizer)
        member = stacked.member(k)
        for (name, got), (_, want) in zip(member.state_dict().items(), alone.net.state_dict().items()):
            if name not in without_gradient(norm):
                assert close(got.float(), want.float()), f"seed {seed}: {name} differs"
        got_losses = torch.tensor([v[k] for r in stacked_reports for _, v in r.step_losses])
        want_losses = torch.tensor([v[0] for r in alone_reports for _, v in r.step_losses])
        assert close(got_losses, want_losses), f"seed {seed}: step losses differ"
        for got_epoch, want_epoch in zip(stacked_reports, alone_reports):
            assert got_epoch.metrics[k]["val_acc"] == pytest.approx(want_epoch.metrics[0]["val_acc"], abs=1 / 64 + 1e-6)
            assert got_epoch.metrics[k]["val_loss"] == pytest.approx(want_epoch.metrics[0]["val_loss"], rel=RTOL)
            # train accuracy counts member k's own hits (one image of 320 may flip on a rounding tie)
            assert got_epoch.metrics[k]["train_acc"] == pytest.approx(want_epoch.metrics[0]["train_acc"],
                                                                      abs=1 / 320 + 1e-6)
            assert got_epoch.metrics[k]["train_loss"] == pytest.approx(want_epoch.metrics[0]["train_loss"], rel=RTOL)


@pytest.mark.parametrize("loss,head", [("mse", "sigmoid"), ("bce", "sigmoid")])
def test_book_shape_batch_of_one_in_dataset_order(loss, head):
    """The book's regime: one sample per step, no shuffling, every member sees the same sample."""
    optimizer = {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.0, "nesterov": False}
    stacked, reports = train(SEEDS, NORMS["plain"], optimizer, loss=loss, head=head, batch_size=1, shuffle=False,
                             epochs=1)
    for k, seed in enumerate(SEEDS):
        alone, alone_reports = train((seed,), NORMS["plain"], optimizer, loss=loss, head=head, batch_size=1,
                                     shuffle=False, epochs=1)
        for (name, got), (_, want) in zip(stacked.member(k).state_dict().items(), alone.net.state_dict().items()):
            assert close(got, want), f"seed {seed}: {name} differs"


def test_members_really_differ_and_unstack_round_trips():
    stacked, _ = train(SEEDS, NORMS["bn2"], OPTIMIZERS["adam"], epochs=1)
    first, second = stacked.member(0), stacked.member(1)
    assert not torch.equal(first.fc1.weight, second.fc1.weight)
    assert not torch.equal(first.bn1.running_mean, second.bn1.running_mean)
    again = unstack_member(stacked.net, 1, stacked.template)
    for (_, a), (_, b) in zip(again.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b)
