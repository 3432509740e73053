"""The checkpoint file and its fit, in-process: what ``capture`` holds, what ``misfit`` refuses (each reason),
what ``Checkpoint`` does with a missing, foreign or unreadable file, and what ``Resumed`` brings back."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bn_study.train.checkpoint import FORMAT, Checkpoint, Resumed, capture, misfit
from bn_study.train.loop import new_state
from bn_study.train.members import Members
from bn_study.train.model import seeded_models
from bn_study.train.optim import build_optimizer

MODEL = {"hidden": [6, 5], "head": "softmax", "init": {"weight": None, "bias": None}}
BN1 = {"kind": "batch", "layers": 1, "position": "after", "eps": 1e-3, "momentum": 0.01}
ADAM = {"_target_": "torch.optim.Adam", "lr": 0.01}


def state(seeds=(0,), hidden=(6, 5)):
    models = seeded_models(seeds, {**MODEL, "hidden": list(hidden)}, {"name": "relu"}, BN1, num_features=4,
                           num_classes=3)
    members = Members(models)
    return new_state(members, build_optimizer(members.net.parameters(), ADAM), seeds)


def payload(s=None, **changes):
    s = s or state()
    s.epoch, s.global_step, s.failures = 2, 34, ["diverged"]
    captured = capture(s, job_hash="job", member_hashes=["m0"], run_ids=["r0"],
                       history=[{"epoch": 1, "seconds": 0.5, "metrics": [{"val_acc": 0.25}], "failures": [None]}],
                       probe_first=[[torch.ones(2, 3)]])
    return {**captured, **changes}


def test_capture_holds_everything_the_next_epoch_needs():
    s = state(seeds=(3, 4))
    p = payload(s)
    assert p["format"] == FORMAT and p["job_hash"] == "job" and p["member_hashes"] == ["m0"]
    assert p["run_ids"] == ["r0"] and p["epoch"] == 2 and p["global_step"] == 34 and p["failures"] == ["diverged"]
    assert set(p["net"]) == set(s.members.net.state_dict()) and "fc1.running_mean" not in p["net"]
    assert any(k.endswith("running_mean") for k in p["net"])
    assert p["optimizer"]["param_groups"][0]["lr"] == 0.01
    assert len(p["shufflers"]) == 2 and torch.equal(p["shufflers"][1], s.shufflers[1].get_state())
    assert torch.equal(p["probe_first"][0][0], torch.ones(2, 3))
    p["failures"].append("x")  # a copy, not the live list
    assert s.failures == ["diverged"]


def test_a_fitting_payload_has_no_misfit():
    assert misfit(state(), payload(), epochs=2) is None
    assert misfit(state(), payload(epoch=0), epochs=2) is None


@pytest.mark.parametrize("changes, reason", [
    ({"format": FORMAT - 1}, f"it is of another code version (format {FORMAT - 1}, this one writes {FORMAT})"),
    ({"format": None}, f"it is of another code version (format None, this one writes {FORMAT})"),
    ({"epoch": 3}, "it holds epoch 3 of a 2-epoch run"),
    ({"epoch": -1}, "it holds epoch -1 of a 2-epoch run"),
    ({"epoch": 1.0}, "it holds epoch 1.0 of a 2-epoch run"),
    ({"epoch": None}, "it holds epoch None of a 2-epoch run"),
])
def test_misfits_of_the_payload_itself(changes, reason):
    assert misfit(state(), payload(**changes), epochs=2) == reason


def test_a_payload_that_is_no_dict_is_another_version():
    assert misfit(state(), ["not", "a", "dict"], epochs=2) == \
        f"it is of another code version (format 'list', this one writes {FORMAT})"


def test_a_model_of_other_layers_or_shapes_does_not_fit():
    assert misfit(state(hidden=(6, 5, 4)), payload(), epochs=2) == "its model has other layers (2 differ)"
    assert misfit(state(), payload(net={}), epochs=2) == f"its model has other layers ({len(payload()['net'])} differ)"
    assert misfit(state(hidden=(7, 5)), payload(), epochs=2) == \
        "its model has other shapes (fc1.weight: (6, 4) here (7, 4))"


def test_a_model_entry_that_is_no_tensor_does_not_fit():
    p = payload()
    p["net"]["fc1.weight"] = "not a tensor"
    assert misfit(state(), p, epochs=2) == "its model has other shapes (fc1.weight: () here (6, 4))"


def test_another_optimizer_or_other_members_do_not_fit():
    p = payload()
    p["optimizer"]["param_groups"][0]["params"] = p["optimizer"]["param_groups"][0]["params"][:-1]
    assert misfit(state(), p, epochs=2) == "its optimizer holds other parameters"
    two_groups = payload()
    two_groups["optimizer"]["param_groups"].append(dict(two_groups["optimizer"]["param_groups"][0]))
    assert misfit(state(), two_groups, epochs=2) == "its optimizer holds other parameters"
    assert misfit(state(), payload(shufflers=[]), epochs=2) == "it holds 0 members' shuffles, this job 1"


def test_resumed_brings_back_state_history_and_the_probes_first_look():
    p = payload()
    # a saved state unlike a freshly built one in every part: weights, optimizer settings, shuffle position
    p["net"] = {k: v + 1 for k, v in p["net"].items()}
    p["optimizer"]["param_groups"][0]["lr"] = 0.5
    p["shufflers"] = [torch.Generator().manual_seed(99).get_state()]
    fresh = state()
    resumed = Resumed.restore(fresh, p)
    assert (fresh.epoch, fresh.global_step, fresh.failures) == (2, 34, ["diverged"])
    [report] = resumed.history
    assert (report.epoch, report.seconds, report.metrics, report.step_losses, report.failures) == \
        (1, 0.5, [{"val_acc": 0.25}], [], [None])
    assert torch.equal(resumed.probe_first[0][0], torch.ones(2, 3))
    for key, value in p["net"].items():
        assert torch.equal(fresh.members.net.state_dict()[key], value), key
    assert fresh.optimizer.state_dict()["param_groups"] == p["optimizer"]["param_groups"]
    assert torch.equal(fresh.shufflers[0].get_state(), p["shufflers"][0])


def test_a_checkpoint_file_round_trips_and_is_deleted_with_its_directory(tmp_path):
    where = tmp_path / "checkpoints"
    where.mkdir()
    ckpt = Checkpoint(where, "abc")
    assert ckpt.path == where / "abc.pt" and ckpt.epoch == 0
    assert ckpt.load() is None  # nothing saved yet: start fresh
    ckpt.save(payload())
    assert ckpt.epoch == 2
    again = Checkpoint(where, "abc")
    loaded = again.load()
    assert again.epoch == 2 and loaded["global_step"] == 34 and loaded["run_ids"] == ["r0"]
    other = Checkpoint(where, "other")
    other.save(payload())
    ckpt.delete()
    assert not ckpt.path.exists() and where.is_dir()  # another job's checkpoint is still there
    other.delete()
    assert not where.exists()
    other.delete()  # a second end of the job is no error


@pytest.mark.parametrize("content", [b"", b"\x80garbage", "a list"], ids=["empty", "garbage", "foreign"])
def test_an_unreadable_or_foreign_file_means_a_fresh_start_said_once(tmp_path, caplog, content):
    ckpt = Checkpoint(tmp_path, "abc")
    if content == "a list":
        torch.save([1, 2], ckpt.path)
    else:
        ckpt.path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="bn_study.train.checkpoint"):
        assert ckpt.load() is None
    assert ckpt.epoch == 0
    [record] = caplog.records
    assert record.getMessage().startswith(f"ignoring unreadable checkpoint {ckpt.path} (")
    assert record.getMessage().endswith("); starting the job fresh")
    if content == "a list":
        assert "(it holds a list, not a checkpoint)" in record.getMessage()


def test_a_payload_without_an_epoch_loads_as_epoch_zero(tmp_path: Path):
    ckpt = Checkpoint(tmp_path, "abc")
    torch.save({"format": FORMAT}, ckpt.path)
    assert ckpt.load() == {"format": FORMAT} and ckpt.epoch == 0


@pytest.mark.parametrize("action", ["save", "load"])
def test_saving_and_loading_remove_temp_files_a_dead_write_left(tmp_path, action):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".abc.pt.{int(dead.stdout)}.0a1b2c3d.tmp"  # what a write killed mid-way leaves
    stale.write_bytes(b"half a checkpoint")
    ckpt = Checkpoint(tmp_path, "abc")
    ckpt.save(payload()) if action == "save" else ckpt.load()
    assert not stale.exists()


def test_a_checkpoint_that_carries_code_is_refused_not_run(tmp_path, caplog):
    """Loaded with weights_only: a file whose unpickling would run a command is ignored, and nothing runs."""
    marker = tmp_path / "ran"
    ckpt = Checkpoint(tmp_path, "abc")
    ckpt.path.write_bytes(pickle.dumps(RunsCode(f"open({str(marker)!r}, 'w').close()")))
    with caplog.at_level(logging.WARNING, logger="bn_study.train.checkpoint"):
        assert ckpt.load() is None
    assert not marker.exists()
    assert "ignoring unreadable checkpoint" in caplog.text


class RunsCode:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def test_a_checkpoint_knows_the_job_it_belongs_to(tmp_path):
    assert Checkpoint(tmp_path, "abc").job_hash == "abc"
