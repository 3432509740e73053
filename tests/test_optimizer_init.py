"""Configs as the extension point: any torch.optim class or torch.nn.init function is one YAML file, checked
against its own signature before anything runs; the engines keep their fused/capturable choices."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from bn_study.config.sources import conf_dir
from bn_study.errors import UserError
from bn_study.train.engines import build_engine
from bn_study.train.members import Members
from bn_study.train.model import build_model, check_init
from bn_study.train.optim import build_optimizer, check_optimizer

QUICK = ("data.limit_train=600", "epochs=1", "probe.samples=100", "tracking.figures=false")
ARTICLE = {"name": "article", "hidden": [512, 256, 128, 64], "head": "softmax"}
SIGMOID, NO_NORM = {"name": "sigmoid"}, {"kind": "none"}


def shipped(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(conf_dir() / group / f"{name}.yaml"))


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("sgd_plain", torch.optim.SGD),
                                       ("adam", torch.optim.Adam), ("adam_keras", torch.optim.Adam),
                                       ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)])
def test_each_shipped_optimizer_builds_its_class_with_its_numbers(name, cls):
    cfg = shipped("optimizer", name)
    check_optimizer(cfg)
    opt = build_optimizer(params(), cfg)
    assert type(opt) is cls
    for key, value in cfg.items():
        if not key.startswith("_"):
            got = opt.defaults[key]
            assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_a_users_own_optimizer_file_trains_through_the_entry_point(cli, tmp_path, runs_in):
    """A new optimizer is one YAML file in the user's config dir: no code."""
    mine = tmp_path / "my_conf" / "optimizer"
    mine.mkdir(parents=True)
    (mine / "adagrad.yaml").write_text("_target_: torch.optim.Adagrad\nlr: 0.05\n")
    launch = tmp_path / "launch"
    launch.mkdir()
    result = cli("--config-dir", str(tmp_path / "my_conf"), "optimizer=adagrad", "act=relu", "norm=bn1",
                 "batch_size=32", *QUICK, cwd=launch)
    assert result.code == 0, result.err
    [run] = runs_in(launch)[1]
    assert run.data.params["optimizer._target_"] == "torch.optim.Adagrad"
    assert run.data.params["optimizer.lr"] == "0.05"
    assert run.data.metrics["val_acc"] > 0.4  # 19 steps of 32 images: it learned (chance is 0.1)


@pytest.mark.parametrize("override, fragments", [
    ("optimizer.momentum=abc", ["optimizer.momentum='abc'", "finite number"]),
    ("optimizer.weight_decay=-1", ["optimizer.weight_decay=-1", ">= 0"]),
    ("optimizer.lr=inf", ["optimizer.lr=inf", "finite number"]),
    ("optimizer.lr=0", ["optimizer.lr=0", "> 0"]),
    ("+optimizer.foo=1", ["optimizer.foo", "not an argument of torch.optim.sgd.SGD", "momentum"]),
    ("+optimizer.fused=true", ["optimizer.fused", "chosen by the engine"]),
    ("optimizer._target_=torch.optim.Nope", ["optimizer._target_='torch.optim.Nope'", "torch optimizer class"]),
    ("optimizer.nesterov=1", ["optimizer.nesterov=1", "true or false"]),
    ("optimizer.momentum=0", ["torch.optim.sgd.SGD refuses", "Nesterov"]),
])
def test_a_bad_sgd_setting_is_refused_before_anything_runs(cli, tmp_path, override, fragments):
    result = cli(override, *QUICK)
    assert result.code == 2, result.err
    for fragment in fragments:
        assert fragment in result.err
    assert "Traceback" not in result.err and result.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("override, fragments", [
    ("optimizer.betas=[2,3]", ["optimizer.betas=[2, 3]", "[0, 1)"]),
    ("optimizer.betas=[0.9]", ["optimizer.betas=[0.9]", "a list of 2 finite numbers"]),
    ("optimizer.eps=-1e-8", ["refuses", "epsilon"]),
])
def test_a_bad_adam_setting_is_refused_before_anything_runs(cli, tmp_path, override, fragments):
    result = cli("optimizer=adam", override, *QUICK)
    assert result.code == 2, result.err
    for fragment in fragments:
        assert fragment in result.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("engine_cfg, fused", [("sgd", True), ("adam", True), ("adamw", True),
                                               ("sgd_plain", None), ("rmsprop", None)])
def test_auto_on_the_cpu_fuses_where_pytorch_has_a_faster_kernel(engine_cfg, fused):
    members = Members([build_model(ARTICLE, SIGMOID, NO_NORM, num_features=8, num_classes=3)])
    opt, _ = build_engine("auto", members, "ce", shipped("optimizer", engine_cfg), torch.device("cpu"))
    assert opt.defaults.get("fused") == fused
    eager, _ = build_engine("eager", members, "ce", shipped("optimizer", engine_cfg), torch.device("cpu"))
    assert not eager.defaults.get("fused")


def test_glorot_init_is_xavier_weights_and_zero_biases_bit_for_bit():
    torch.manual_seed(0)
    net = build_model({**ARTICLE, "init": shipped("model/init", "glorot_uniform")}, SIGMOID, NO_NORM)
    torch.manual_seed(0)
    plain = build_model(ARTICLE, SIGMOID, NO_NORM)
    for module in plain.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            torch.nn.init.zeros_(module.bias)
    for a, b in zip(net.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name, weight_std", [("he_normal", lambda fan_in: math.sqrt(2 / fan_in)),
                                              ("he_uniform", lambda fan_in: math.sqrt(6 / fan_in) / math.sqrt(3)),
                                              ("small_gaussian", lambda fan_in: 0.01),
                                              ("normal", lambda fan_in: 0.05),
                                              ("uniform", lambda fan_in: 0.05 / math.sqrt(3))])
def test_other_inits_draw_the_distribution_they_name(name, weight_std):
    torch.manual_seed(0)
    net = build_model({**ARTICLE, "init": shipped("model/init", name)}, SIGMOID, NO_NORM)
    fc1 = net.fc1
    assert fc1.weight.std().item() == pytest.approx(weight_std(784), rel=0.02)
    assert torch.count_nonzero(fc1.bias) == 0


@pytest.mark.parametrize("name, bound", [("he_uniform", math.sqrt(6 / 784)), ("uniform", 0.05)])
def test_uniform_inits_stay_inside_their_bound_and_fill_it(name, bound):
    torch.manual_seed(0)
    weight = build_model({**ARTICLE, "init": shipped("model/init", name)}, SIGMOID, NO_NORM).fc1.weight
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.999 * bound  # 401 408 draws: the extremes come within 0.1 %


def test_a_users_std_reaches_the_normal_init(cli, tmp_path):
    result = cli("model/init=normal", "model.init.weight.std=0.2", "--cfg", "job")
    assert result.code == 0, result.err
    assert "std: 0.2" in result.out.split("init:")[1].split("bias:")[0]


def test_torch_default_init_leaves_pytorchs_own_initialisation():
    torch.manual_seed(0)
    net = build_model({**ARTICLE, "init": shipped("model/init", "torch_default")}, SIGMOID, NO_NORM)
    torch.manual_seed(0)
    plain = torch.nn.Linear(784, 512)
    assert torch.equal(net.fc1.weight, plain.weight)


@pytest.mark.parametrize("init, fragment", [
    ({"weight": {"_target_": "torch.nn.init.nope_"}, "bias": None}, "model.init.weight._target_"),
    ({"weight": {"_target_": "torch.nn.init.normal_", "sdt": 1}, "bias": None}, "refuses its arguments"),
    ({"weight": None, "bias": None, "extra": 1}, "model.init="),
])
def test_a_bad_init_is_a_user_error(init, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        check_init(init)


def test_a_bad_init_on_the_command_line_exits_2_with_nothing_written(cli, tmp_path):
    result = cli("+model.init.weight.sdt=1", "model/init=small_gaussian", *QUICK)
    assert result.code == 2, result.err
    assert "model.init.weight" in result.err and "sdt" in result.err
    assert list(tmp_path.iterdir()) == []
