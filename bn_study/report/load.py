"""Reading a study's ``report:`` section (``spec.py`` says what it holds) from its experiment file, found in
the user's config directories first, then in the shipped catalogue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Union

from omegaconf import OmegaConf

from bn_study.config.sources import conf_dir
from bn_study.report.parse import parse_spec, spec_error
from bn_study.report.spec import ReportSpec
from bn_study.util.overrides import bare_key

# The shipped experiment catalogue: conf/experiment of the checkout, or bn_study/conf/experiment of an
# install (found like every config, through conf_dir(); without importing the Hydra app, which pulls in torch).
EXPERIMENT_DIR = conf_dir() / "experiment"

# Where experiment files are looked for: one directory, or several searched in order (the first hit wins).
ExperimentDirs = Union[Path, Sequence[Path]]


def experiment_dirs(config_dirs: Sequence[Path | str] = ()) -> tuple[Path, ...]:
    """Where experiments are searched, first hit wins: ``DIR/experiment`` for each user config directory in
    the given order (Hydra's ``--config-dir DIR`` means the same: ``+experiment=NAME`` reads
    ``DIR/experiment/NAME.yaml``), then the shipped catalogue."""
    return (*(Path(d) / "experiment" for d in config_dirs), conf_dir() / "experiment")


def _as_dirs(directory: ExperimentDirs) -> tuple[Path, ...]:
    return (Path(directory),) if isinstance(directory, (str, Path)) else tuple(Path(d) for d in directory)


def catalogue(directory: ExperimentDirs = EXPERIMENT_DIR) -> dict[str, Path]:
    """Every experiment name with the file it is read from (an earlier directory shadows a later one), by name."""
    found: dict[str, Path] = {}
    for d in _as_dirs(directory):
        for path in sorted(d.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def experiment_file(name: str, directory: ExperimentDirs = EXPERIMENT_DIR) -> Path:
    """The file of experiment ``name``: the first directory that has it, else where the first one would."""
    dirs = _as_dirs(directory)
    for d in dirs:
        if (d / f"{name}.yaml").is_file():
            return d / f"{name}.yaml"
    return dirs[0] / f"{name}.yaml"


def known_experiments(directory: ExperimentDirs = EXPERIMENT_DIR) -> list[str]:
    return list(catalogue(directory))


def load_spec(name: str, directory: ExperimentDirs = EXPERIMENT_DIR) -> ReportSpec:
    """The experiment file's ``report:`` section; a study without a file (or section) gets the defaults."""
    path = experiment_file(name, directory)
    if not path.is_file():
        return ReportSpec(experiment=name, title=name, has_file=False)
    conf = OmegaConf.load(path)
    raw = OmegaConf.to_container(conf, resolve=False)
    assert isinstance(raw, dict)
    order = _sweep_order(raw)
    logs_to = (raw.get("tracking") or {}).get("experiment")
    section = raw.get("report")
    if section is None:
        return ReportSpec(experiment=name, title=name, sweep_order=order, logs_to=logs_to, file=path)
    section = _extended(section, directory, where=str(path), seen=(name,))
    return replace(parse_spec(name, section, order, where=str(path)), logs_to=logs_to, file=path)


def _extended(section: Any, directory: ExperimentDirs, *, where: str, seen: tuple[str, ...]) -> Any:
    """``report.extends: OTHER``: OTHER's report section (itself possibly extending), with this section's
    keys replacing its own."""
    if not isinstance(section, Mapping) or section.get("extends") is None:
        return section
    base = str(section["extends"])
    if base in seen:
        raise spec_error(where, "extends", f"goes round in a circle ({' → '.join((*seen, base))})")
    path = experiment_file(base, directory)
    other = OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None
    if not isinstance(other, Mapping) or not isinstance(other.get("report"), Mapping):
        raise spec_error(where, "extends", f"names {base!r}, which has no experiment file with a report section")
    inherited = _extended(other["report"], directory, where=str(path), seen=(*seen, base))
    return {**inherited, **{k: v for k, v in section.items() if k != "extends"}}


def _sweep_order(raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each swept key's values in the file's order: the grid's ``params`` and a tuned study's ``arms``
    (a search space such as ``tag(log, interval(1e-4, 1))`` is no list of choices and is skipped)."""
    sweeper = (raw.get("hydra") or {}).get("sweeper") or {}
    order: dict[str, tuple[str, ...]] = {}
    for section in ("arms", "params"):
        for key, value in (sweeper.get(section) or {}).items():
            if value is None or "(" in str(value):
                continue
            order.setdefault(bare_key(str(key)), tuple(v.strip() for v in str(value).split(",")))
    return order


def spec_from_config(config: Any) -> ReportSpec | None:
    """The ``report:`` section of a composed job config (what ``+experiment=NAME`` put there), or None."""
    section = config.get("report") if hasattr(config, "get") else None
    if section is None:
        return None
    raw = OmegaConf.to_container(section, resolve=False) if OmegaConf.is_config(section) else section
    name = str(config.tracking.experiment)
    sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=False) if "hydra" in config else {}
    order = _sweep_order({"hydra": {"sweeper": sweeper}})
    raw = _extended(raw, experiment_dirs(), where=f"+experiment ({name})", seen=(name,))
    return parse_spec(name, raw, order, where=f"report of {name}")
