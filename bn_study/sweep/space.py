"""Hydra's override grammar → Optuna 5 distributions, with the semantics of Hydra's Optuna plugin.

=================================  ==========================================================
override                           distribution
=================================  ==========================================================
``choice(a, b, …)``, ``a,b``       ``CategoricalDistribution([a, b, …])``
``shuffle(range(…))``              ``CategoricalDistribution`` of the range's items
``range(1, 3)``                    ``IntDistribution(1, 3)`` — both bounds included (see below)
``range(0.5, 5.5, step=1)``        ``FloatDistribution(0.5, 5.5, step=1)`` (a float anywhere)
``interval(1, 5)``                 ``FloatDistribution(1.0, 5.0)`` — Hydra reads bounds as floats
``int(interval(1, 5))``            ``IntDistribution(1, 5)``
``tag(log, interval(1e-4, 1))``    ``FloatDistribution(1e-4, 1.0, log=True)``
``tag(log, int(interval(1, 5)))``  ``IntDistribution(1, 5, log=True)``
anything else (``epochs=3``)       fixed: passed to every trial as written, not searched
=================================  ==========================================================

Optuna's bounds are closed, and Hydra's Optuna plugin handed ``range``'s stop to Optuna as ``high``, so
``range(1, 3)`` searches 1, 2 *and* 3 — unlike the grid sweeper's ``range``, which stops before 3. This
sweeper keeps the plugin's reading (a search space written for it means the same here). Its grid sampler,
like the plugin's, takes the points *before* ``high`` (``range(1, 3)`` → 1, 2, as Python's range would;
``hydra.sweeper.grid_includes_stop=true`` walks every point the distribution holds).

When a key is both fixed and searched (``x: 5`` in ``hydra.sweeper.params``, ``x=choice(1,2)`` on the
command line), the fixed value wins wherever it was written, as in the plugin;
``hydra.sweeper.last_override_wins=true`` lets the later override win whatever its kind.

``create_optuna_distribution_from_override`` and ``create_params_from_overrides`` are the plugin's
functions, with its signatures and return values, for code written against them.
"""

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from bn_study.errors import UserError
from bn_study.util.overrides import bare_key, override_key

log = logging.getLogger(__name__)

CATEGORY_TYPES = (str, int, float, bool, type(None))


def distribution_from_override(override: Override) -> BaseDistribution | None:
    """The distribution a sweep override stands for; None for a fixed value. A space Optuna would refuse
    (bounds the wrong way round, a log scale through 0, a step <= 0, no values) is a ``UserError``."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    key = override.get_key_element()
    given = _written(override)
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        # encode: strings keep the quoting they need to be passed back as an override
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        bad = [c for c in choices if not isinstance(c, CATEGORY_TYPES)]
        if bad:
            raise UserError(f"{key}: choice {bad[0]!r} is not allowed in an Optuna search; "
                            "use numbers, strings, booleans or null.")
        if not choices:
            raise UserError(f"{given} is not allowed: it has no values to choose from; give at least one, "
                            "e.g. choice(1, 2) or shuffle(range(1, 4)).")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if stop is None:  # range(5) = range(0, 5)
            start, stop = 0, start
        _check_bounds(given, start, stop, step=step)
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(stop), step=float(step))
        return IntDistribution(int(start), int(stop), step=int(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        integer = isinstance(value.start, int) and isinstance(value.end, int)
        _check_bounds(given, value.start, value.end, log=log, integer=integer)
        if integer:
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise UserError(f"{override.input_line!r} cannot be searched by Optuna; use choice, range or interval.")


def _written(override: Override) -> str:
    """The override as the user wrote it (``key=interval(1, 0.1)``), for messages."""
    if override.input_line:
        return override.input_line
    return f"{override.get_key_element()}={override.get_value_element_as_str()}"


def _check_bounds(given: str, low: Any, high: Any, *, step: Any = None, log: bool = False,
                  integer: bool = False) -> None:
    """What Optuna's distributions require of a range, said before Optuna raises."""
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in numbers):
        raise UserError(f"{given} is not allowed: its bounds must be finite numbers.")
    if low > high:
        raise UserError(f"{given} is not allowed: its lower bound {low} is above its upper bound {high}; "
                        "write the lower bound first, e.g. interval(0.001, 0.1).")
    if step is not None and not step > 0:
        raise UserError(f"{given} is not allowed: its step {step} must be > 0.")
    if log and integer and low < 1:
        raise UserError(f"{given} is not allowed: a log scale over whole numbers needs a lower bound >= 1 "
                        f"(got {low}).")
    if log and not low > 0:
        raise UserError(f"{given} is not allowed: a log scale needs a lower bound > 0 (got {low}), "
                        "e.g. tag(log, interval(1e-4, 1)).")


def create_optuna_distribution_from_override(override: Override) -> Any:
    """Hydra's Optuna plugin's function: the distribution of a sweep override, or a fixed override's value
    as written (a string)."""
    distribution = distribution_from_override(override)
    return override.get_value_element_as_str() if distribution is None else distribution


def create_params_from_overrides(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any], list[str]]:
    """Hydra's Optuna plugin's function: the search space, the fixed values (strings, as written) and the
    deletions (``~key``, ``~key=value``, as written). A key keeps its last override of each kind; the sweep
    then drops fixed keys from the space (``split_overrides``)."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    deletions: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if override.is_delete():
            deletions.append(_written(override))
            continue
        value = create_optuna_distribution_from_override(override)
        if isinstance(value, BaseDistribution):
            space[override.get_key_element()] = value
        else:
            fixed[override.get_key_element()] = value
    return space, fixed, deletions


def split_overrides(arguments: Sequence[str], last_wins: bool = False
                    ) -> tuple[dict[str, BaseDistribution], dict[str, tuple[str | None, str]]]:
    """The search space, and each fixed override's value and text as the user wrote it (a deletion's value
    is ``None`` unless it names one, ``~key=value``).

    ``+x``, ``++x`` and ``x`` are one key. A key that is fixed anywhere is not searched (Hydra's plugin);
    with ``last_wins``, a later override of a key replaces an earlier one, whatever its kind.
    """
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, tuple[str | None, str]] = {}
    shadowed: dict[str, str] = {}  # searched key → the text of its search, where a fixed value won
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        name = override.get_key_element()
        distribution = distribution_from_override(override)
        searched_after_fixed = distribution is not None and not last_wins and \
            any(bare_key(k) == bare_key(name) for k in fixed)
        if searched_after_fixed:
            shadowed[bare_key(name)] = _written(override)
            continue
        tables = (space, fixed) if last_wins or distribution is None else (space,)
        for table in tables:
            for other in [k for k in table if bare_key(k) == bare_key(name)]:
                del table[other]
        if distribution is not None:
            space[name] = distribution
        else:
            value = None if override.is_delete() and override.value() is None \
                else override.get_value_element_as_str()
            fixed[name] = (value, override.input_line or as_override(name, value))
    for key, search in shadowed.items():
        kept = next(text for k, (_, text) in fixed.items() if bare_key(k) == key)
        log.warning("%s is not searched: %s fixes it (hydra.sweeper.last_override_wins=true lets the later "
                    "override win)", search, kept)
    return space, fixed


def as_override(name: str, value: Any) -> str:
    """``name=value`` in the grammar the job's config loader parses back to the same value."""
    if value is None and name.startswith("~"):
        return name
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return f"{name}={text}"


def merge_overrides(*layers: Iterable[str]) -> list[str]:
    """One override list from several; a later layer's value for a key replaces an earlier one."""
    merged: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            key = override_key(item)
            merged.pop(key, None)
            merged[key] = item
    return list(merged.values())


def load_custom_search_space(path: str | None) -> Callable[[Any, Any], None] | None:
    """The function ``hydra.sweeper.custom_search_space`` names, called as f(config, trial) after the space is
    sampled. A leading "." (the plugin's README writes ``.custom-search-space-objective.configure``) is dropped:
    the module is then found on sys.path, where the app's own directory is when it runs as a script."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        return get_method(str(path).lstrip("."))
    except Exception as err:
        cause = err.__cause__ or err
        reason = str(cause).splitlines()[0] if str(cause) else ""
        raise UserError(f"hydra.sweeper.custom_search_space={path!r} cannot be loaded ({type(cause).__name__}: "
                        f"{reason}); give the dotted path of a function f(cfg, trial), e.g. my_app.configure.") from None


def grid_values(name: str, distribution: BaseDistribution, includes_stop: bool = False) -> list[Any]:
    """The points of a discrete distribution for Optuna's GridSampler: every choice; of a range, the
    points from ``low`` in steps before ``high`` (Hydra's plugin), or up to and including it."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, (IntDistribution, FloatDistribution)) and distribution.step is not None:
        low, high, step = distribution.low, distribution.high, distribution.step
        if includes_stop:
            count = math.floor((high - low) / step + 1e-9) + 1
        else:
            count = int((high - low) // step)  # the plugin's count, float rounding included
        if count < 1:
            raise UserError(f"{name}: the grid has no point from {low} before {high} in steps of {step}; "
                            "widen the range, or set hydra.sweeper.grid_includes_stop=true to include its stop.")
        return [low + i * step for i in range(count)]
    raise UserError(f"{name}: the grid sampler needs discrete values (choice, range, int(interval)), "
                    f"not {distribution}.")


def grid_size(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(v) for v in grid.values())


def take_arms(arguments: Sequence[str], keys: Sequence[str] | None) -> tuple[list[str], list[list[str]]]:
    """Pull the arms out of the overrides: ``keys`` name overrides that are compared, not searched.

    Each arm key's last override gives its values (``act=sigmoid,relu`` two; ``act=relu`` from the
    command line, after ``hydra.sweeper.arms``, one); the arms are every combination, as lists of fixed
    overrides. Returns the other overrides and the arms.
    """
    if not keys:
        return list(arguments), [[]]
    wanted = [bare_key(str(k)) for k in keys]
    rest: list[str] = []
    found: dict[str, Override] = {}
    for text, override in zip(arguments, OverridesParser.create().parse_overrides(list(arguments))):
        key = bare_key(override.get_key_element())
        if key in wanted:
            found[key] = override
        else:
            rest.append(text)
    missing = [k for k in wanted if k not in found]
    if missing:
        raise UserError(f"the arm {', '.join(missing)} has no values; give them as a list, e.g. "
                        "hydra.sweeper.arms: {act: sigmoid,relu}.")
    axes = []
    for key in wanted:
        override = found[key]
        if override.is_interval_sweep():
            raise UserError(f"{override.input_line} is not allowed for an arm; an arm takes fixed values, "
                            "as a list like sigmoid,relu.")
        values = list(override.sweep_iterator(transformer=Transformer.encode)) if override.is_sweep_override() \
            else [override.get_value_element_as_str()]
        axes.append([as_override(override.get_key_element(), v) for v in values])
    return rest, [list(arm) for arm in itertools.product(*axes)]


def representative_values(distribution: BaseDistribution) -> list[Any]:
    """The values worth checking before a search starts: both ends of a range, every choice."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    low, high = distribution.low, distribution.high  # type: ignore[attr-defined]
    return [low] if low == high else [low, high]


def probe_points(space: dict[str, BaseDistribution]) -> list[dict[str, Any]]:
    """A few parameter sets that together touch every choice and every bound of the space once."""
    reps = {name: representative_values(d) for name, d in space.items()}
    base = {name: values[0] for name, values in reps.items()}
    points = [base]
    for name, values in reps.items():
        points.extend({**base, name: v} for v in values[1:])
    return points
