"""Hydra's override grammar → Optuna 5 distributions: the table of Hydra's Optuna plugin, ported."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from bn_study.errors import UserError
from bn_study.sweep import space as optuna_space


def parse(text: str):
    return OverridesParser.create().parse_overrides([text])[0]


def same(expected: BaseDistribution, actual: BaseDistribution | None) -> None:
    if isinstance(expected, CategoricalDistribution):
        assert isinstance(actual, CategoricalDistribution)
        assert set(actual.choices) == set(expected.choices)  # shuffle() randomises the order
    else:
        assert actual == expected


# The plugin's own table is tests/test_hydra_optuna_plugin_suite.py::test_create_optuna_distribution_from_override;
# beyond it: the simple a,b form, the project's own search space, a stepped int range.
@pytest.mark.parametrize("override, expected", [
    ("norm=none,bn1", CategoricalDistribution(["none", "bn1"])),
    ("optimizer.lr=tag(log, interval(1e-4, 1))", FloatDistribution(1e-4, 1.0, log=True)),
    ("batch_size=choice(32, 64, 128, 256, 512)", CategoricalDistribution([32, 64, 128, 256, 512])),
    ("key=range(0, 10, step=2)", IntDistribution(0, 10, step=2)),
])
def test_override_to_distribution(override: str, expected: BaseDistribution) -> None:
    same(expected, optuna_space.distribution_from_override(parse(override)))


def test_int_versus_float() -> None:
    # interval reads its bounds as floats unless cast; range is int unless a float appears anywhere
    assert isinstance(optuna_space.distribution_from_override(parse("k=interval(1, 5)")), FloatDistribution)
    assert isinstance(optuna_space.distribution_from_override(parse("k=int(interval(1, 5))")), IntDistribution)
    assert isinstance(optuna_space.distribution_from_override(parse("k=range(1, 5)")), IntDistribution)
    assert isinstance(optuna_space.distribution_from_override(parse("k=range(1, 5, step=0.5)")), FloatDistribution)


def test_bounds_are_inclusive() -> None:
    # Optuna's bounds are closed: both ends of an interval can be drawn, and range's stop is searched
    # (as with Hydra's plugin), while shuffle(range) enumerates like Python's range.
    lr = optuna_space.distribution_from_override(parse("lr=tag(log, interval(1e-4, 1))"))
    assert lr._contains(lr.to_internal_repr(1e-4)) and lr._contains(lr.to_internal_repr(1.0))
    ints = optuna_space.distribution_from_override(parse("k=range(1,3)"))
    floats = optuna_space.distribution_from_override(parse("k=range(-1.0, 1.0, step=1)"))
    # the grid, like Hydra's plugin's, stops before high; grid_includes_stop walks every point
    assert optuna_space.grid_values("k", ints) == [1, 2]
    assert optuna_space.grid_values("k", ints, includes_stop=True) == [1, 2, 3]
    assert optuna_space.grid_values("k", floats) == [-1.0, 0.0]
    assert optuna_space.grid_values("k", floats, includes_stop=True) == [-1.0, 0.0, 1.0]
    with pytest.raises(UserError, match="no point from 1 before 1"):
        optuna_space.grid_values("k", optuna_space.distribution_from_override(parse("k=range(1,1)")))
    assert sorted(optuna_space.distribution_from_override(parse("k=shuffle(range(1,3))")).choices) == [1, 2]


def test_a_later_override_replaces_an_earlier_one() -> None:
    # hydra.sweeper.params first, the command line after: y=0 fixes what the config searches, ~z deletes
    space, fixed = optuna_space.split_overrides(["x=range(-5.5, 5.5, step=0.5)", "y=choice(-5, 0, 5)",
                                                 "x=choice(0, 1, 2)", "y=0", "~z", "+experiment=fair_bn"])
    assert space == {"x": CategoricalDistribution([0, 1, 2])}
    assert fixed == {"y": ("0", "y=0"), "~z": (None, "~z"), "+experiment": ("fair_bn", "+experiment=fair_bn")}


def test_a_fixed_key_is_not_searched_unless_the_last_override_wins() -> None:
    arguments = ["x=5", "+x=choice(1, 2)", "y=choice(1, 2)", "y=3"]
    space, fixed = optuna_space.split_overrides(arguments)
    assert space == {} and fixed == {"x": ("5", "x=5"), "y": ("3", "y=3")}
    space, fixed = optuna_space.split_overrides(arguments, last_wins=True)
    assert space == {"+x": CategoricalDistribution([1, 2])} and fixed == {"y": ("3", "y=3")}


def test_values_go_back_as_the_same_override() -> None:
    assert optuna_space.as_override("lr", 1e-05) == "lr=1e-05"
    assert optuna_space.as_override("flag", True) == "flag=true"
    assert optuna_space.as_override("x", None) == "x=null"
    assert optuna_space.as_override("norm", "bn1") == "norm=bn1"
    # the job's config loader reads them back as the same values
    for item, value in (("lr=1e-05", 1e-05), ("flag=true", True), ("x=null", None), ("b=64", 64)):
        assert parse(item).value() == value


def test_merge_lets_the_later_layer_win() -> None:
    assert optuna_space.merge_overrides(["epochs=3", "data.val=test", "+experiment=fair_bn"],
                                        ["act=relu"], ["data.val=holdout", "epochs=10"]) == \
        ["+experiment=fair_bn", "act=relu", "data.val=holdout", "epochs=10"]


def test_arms_are_a_grid_of_fixed_overrides() -> None:
    arguments = ["optimizer.lr=tag(log, interval(1e-4, 1))", "act=sigmoid,relu", "norm=none,bn1", "epochs=3"]
    rest, arms = optuna_space.take_arms(arguments, ["act", "norm"])
    assert rest == ["optimizer.lr=tag(log, interval(1e-4, 1))", "epochs=3"]
    assert arms == [["act=sigmoid", "norm=none"], ["act=sigmoid", "norm=bn1"], ["act=relu", "norm=none"],
                    ["act=relu", "norm=bn1"]]
    # the command line narrows an arm to one value; no arms: one study
    assert optuna_space.take_arms([*arguments, "act=relu"], ["act", "norm"])[1] == [["act=relu", "norm=none"],
                                                                                   ["act=relu", "norm=bn1"]]
    assert optuna_space.take_arms(arguments, None) == (arguments, [[]])
    with pytest.raises(UserError, match="arm takes fixed values"):
        optuna_space.take_arms(arguments, ["optimizer.lr"])
    with pytest.raises(UserError, match="the arm model has no values"):
        optuna_space.take_arms(arguments, ["model"])


def test_probe_points_touch_every_choice_and_bound() -> None:
    space = {"lr": FloatDistribution(1e-4, 1, log=True), "b": CategoricalDistribution([32, 64, 128])}
    points = optuna_space.probe_points(space)
    assert {p["lr"] for p in points} == {1e-4, 1.0}
    assert {p["b"] for p in points} == {32, 64, 128}
    assert len(points) == 4


def test_unusable_spaces_are_user_errors() -> None:
    with pytest.raises(UserError, match="lower bound > 0"):
        optuna_space.distribution_from_override(parse("lr=tag(log, interval(0, 1))"))
    with pytest.raises(UserError, match="discrete values"):
        optuna_space.grid_values("lr", FloatDistribution(0, 1))
