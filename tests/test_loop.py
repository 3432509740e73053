"""The training loop on small data it makes itself: it learns, it stops cleanly on NaN, it repeats."""

from __future__ import annotations

import math

import pytest
import torch

from bn_study.data import Splits
from bn_study.train.loop import TrainSpec, fit, new_state
from bn_study.train.members import Members
from bn_study.train.step import eager_step
from bn_study.train.losses import member_loss
from bn_study.train.model import seeded_models
from bn_study.train.optim import build_optimizer

# conf/model/init/glorot_uniform.yaml and torch_default.yaml
GLOROT = {"weight": {"_target_": "torch.nn.init.xavier_uniform_"}, "bias": {"_target_": "torch.nn.init.zeros_"}}
TORCH_DEFAULT = {"weight": None, "bias": None}
MODEL = {"name": "tiny", "hidden": [16, 16], "head": "softmax", "init": GLOROT}
NO_NORM = {"kind": "none", "layers": 0, "position": "after"}
BN1 = {"kind": "batch", "layers": 1, "position": "after", "eps": 1e-3, "momentum": 0.01}
SGD = {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True}


def separable(n: int = 600, features: int = 12, classes: int = 4, seed: int = 0) -> Splits:
    """Four well-separated Gaussian blobs: any working loop gets them all right."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 4

    def draw(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(m) % classes
        return centres[y] + torch.randn(m, features, generator=g) * 0.5, y

    (tx, ty), (vx, vy) = draw(n), draw(200)
    return Splits(tx, ty, vx, vy, vx, vy, name="blobs", val_split="test")


def train(splits: Splits, *, seeds=(0,), epochs=5, norm=NO_NORM, optimizer=SGD, loss="ce",
          model=MODEL, act="relu", batch_size=32, shuffle=True, log_every=5):
    models = seeded_models(seeds, model, {"name": act}, norm, num_features=splits.num_features,
                           num_classes=splits.num_classes)
    members = Members(models)
    opt = build_optimizer(members.net.parameters(), optimizer)
    state = new_state(members, opt, seeds)
    spec = TrainSpec(epochs=epochs, batch_size=batch_size, seeds=tuple(seeds), loss=loss, shuffle=shuffle,
                     log_every=log_every)
    reports = list(fit(state, splits, spec, eager_step(members, member_loss(loss), opt)))
    return state, reports


@pytest.mark.parametrize("norm", [NO_NORM, BN1], ids=["none", "bn1"])
def test_loop_learns_a_separable_problem(norm):
    state, reports = train(separable(), norm=norm)
    assert [r.epoch for r in reports] == [1, 2, 3, 4, 5]
    first, last = reports[0].metrics[0], reports[-1].metrics[0]
    assert last["val_acc"] == 1.0 and last["train_acc"] > 0.99
    assert last["train_loss"] < first["train_loss"] / 5
    assert state.failures == [None]
    # step losses on the cadence: 600/32 → 19 steps per epoch, every 5th step logged
    steps = [s for r in reports for s, _ in r.step_losses]
    assert steps == list(range(5, 5 * 19 + 1, 5))


@pytest.mark.parametrize("loss,head", [("mse", "sigmoid"), ("bce", "sigmoid"), ("mse", "leaky_relu")])
def test_loop_learns_with_the_books_losses_and_heads(loss, head):
    _, reports = train(separable(), loss=loss, model={**MODEL, "head": head}, act="leaky_relu",
                       optimizer={"_target_": "torch.optim.Adam", "lr": 0.01}, epochs=8)
    assert reports[-1].metrics[0]["val_acc"] > 0.95


def test_dataset_order_when_shuffle_is_off_and_a_batch_of_one():
    splits = separable(n=40)
    _, reports = train(splits, batch_size=1, shuffle=False, epochs=2, log_every=1)
    steps = [s for r in reports for s, _ in r.step_losses]
    assert steps == list(range(1, 81))


def test_same_seed_repeats_bit_for_bit_and_another_seed_differs():
    splits = separable()
    runs = [train(splits, seeds=(s,), norm=BN1)[1] for s in (3, 3, 4)]
    history = [[({k: v for k, v in r.metrics[0].items() if k != "epoch_seconds"}, r.step_losses)
                for r in reports] for reports in runs]
    assert history[0] == history[1]
    assert history[0] != history[2]


def test_divergence_stops_cleanly_with_a_reason():
    state, reports = train(separable(), optimizer={"_target_": "torch.optim.SGD", "lr": 1e30, "momentum": 0.0}, epochs=5)
    assert state.failures[0] is not None
    assert "training loss became" in state.failures[0] or "epoch" in state.failures[0]
    assert any(word in state.failures[0] for word in ("nan", "inf"))
    assert len(reports) < 5  # it stopped early instead of grinding through NaNs
    assert reports[-1].failures == state.failures


def test_bn_skips_a_last_batch_of_one_sample():
    splits = separable(n=65)  # 65 = 2 × 32 + 1
    _, reports = train(splits, norm=BN1, batch_size=32, epochs=1)
    assert math.isfinite(reports[0].metrics[0]["train_loss"])
