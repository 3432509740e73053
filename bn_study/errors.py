"""The one exception type for mistakes a user can make, and how the entry point reports them.

Besides ``UserError`` (raised by the project's own checks), a user's mistake can surface as a Hydra or
OmegaConf error: a wrong type refused by the schema while Hydra composes (``shuffle=maybe``), a key that
does not exist, a malformed override. ``describe_config_error`` turns those into the same one sentence:
the key, the value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any


class UserError(Exception):
    """A bad value or an unusable environment that the user can fix.

    The message is one sentence naming the bad value and what is allowed; the entry point prints it
    without a traceback and exits with code 2 before anything (an MLflow run, a file) is written.
    """

    exit_code = 2


class SweepFailed(Exception):
    """A sweep that ran but has no result to give (every trial of a study failed): said in one line by the
    entry point, exit 1 (Hydra's Optuna plugin's exit code there)."""


def exit_for_user(err: Exception) -> None:
    """Print the one-sentence message and exit 2, without a traceback.

    Raised as SystemExit so it passes through Hydra's job runner, which would otherwise catch the
    error, print "Error executing job ..." and re-raise it later.
    """
    import sys

    from bn_study.util.redact import mask_userinfo

    # the net under every check's own masking: a message that quotes a URI never shows its password
    print(f"error: {mask_userinfo(one_line(str(err)))}", file=sys.stderr)
    raise SystemExit(UserError.exit_code)


def one_line(text: str) -> str:
    """A message on one line: its lines joined, indentation and blank lines dropped."""
    parts = [line.strip() for line in str(text).splitlines()]
    return " ".join(p for p in parts if p)


# --- Hydra's and OmegaConf's errors, as one sentence ------------------------------------------------

_OVERRIDE = (re.compile(r"Error merging override (.+)"), re.compile(r"To append to your config use \+(.+)"))
_VALUE = re.compile(r"Value '(.*?)'")


def describe_config_error(err: BaseException, config: Any = None) -> str:
    """One sentence for an error Hydra raised while composing the config (or OmegaConf while reading
    ``config``: then the value is quoted as written, e.g. an interpolation that resolves to nothing)."""
    from omegaconf.errors import OmegaConfBaseException

    cause = _omegaconf_cause(err, OmegaConfBaseException)
    override = _override_line(err)
    if cause is None:  # a Hydra error of its own (an unknown choice, a missing file): its text, on one line
        return _hydra_message(err)
    source = None if override else _source(err)
    if override is None and config is not None and getattr(cause, "full_key", None):
        raw = _raw_value(config, str(cause.full_key))
        override = None if raw is None else f"{cause.full_key}={raw}"
    message = _describe(cause, override, source)
    return f"{source}: {message}" if source else message


def _raw_value(config: Any, key: str) -> str | None:
    """``key``'s value in ``config`` as written, interpolations unresolved."""
    from omegaconf import OmegaConf

    try:
        node: Any = OmegaConf.to_container(config, resolve=False)
        for part in key.split("."):
            node = node[part]
    except Exception:  # noqa: BLE001 - a key path we cannot walk: the message names the key alone
        return None
    return None if isinstance(node, (dict, list)) else str(node)


def _source(err: BaseException) -> str | None:
    """The config file a composition error came from (``In 'experiment/mine': …``)."""
    found = re.match(r"In '([^']+)':", str(err))
    return f"{found.group(1)}.yaml" if found and found.group(1) != "config" else None


def _describe(cause: BaseException, override: str | None, source: str | None) -> str:
    from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue

    key = getattr(cause, "full_key", None) or (override.split("=", 1)[0].lstrip("+~") if override else "")
    given = override if override else _given(key, cause)
    reason = _first_line(getattr(cause, "msg", None) or str(cause))
    if isinstance(cause, ConfigKeyError) or reason.startswith("Key '") and " not in " in reason:
        return _unknown_key(key, given, cause, from_file=source is not None)
    if isinstance(cause, MissingMandatoryValue):
        return f"{key} has no value (???); give it one, e.g. {key}=..., or choose a config that sets it."
    if isinstance(cause, InterpolationResolutionError):
        return f"{given} cannot be resolved: {reason.rstrip('.')}."
    allowed = _allowed(cause, reason)
    element = "" if not override or override.split("=", 1)[0].lstrip("+~") == key else f"{key} "
    if allowed:
        return f"{given} is not allowed; {element or 'it '}must be {allowed}."
    return f"{given} is not allowed ({reason.rstrip('.')})."


def _omegaconf_cause(err: BaseException, kind: type) -> BaseException | None:
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _override_line(err: BaseException) -> str | None:
    text = str(err)
    for pattern in _OVERRIDE:
        found = pattern.search(text)
        if found:
            return found.group(1).strip()
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _given(key: str, cause: BaseException) -> str:
    found = _VALUE.search(str(getattr(cause, "msg", "") or cause))
    return f"{key}={found.group(1)!r}" if found else key


def _allowed(cause: BaseException, reason: str) -> str | None:
    """What the schema takes at the failing key, in words: from its declared type, else from the message."""
    declared = _declared_type(cause)
    if declared is not None:
        words = _type_words(declared)
        return f"{words}, not null" if "is not Optional" in reason else words
    if "is not a valid bool" in reason:
        return "true or false"
    if "converted to Integer" in reason:
        return "a whole number"
    if "converted to Float" in reason:
        return "a number"
    if "is not a ListConfig, list or tuple" in reason:
        return "a list, e.g. [a, b]"
    if "is not a subclass of" in reason or "is not a DictConfig" in reason:
        return "a group of keys (key.subkey=value), not a single value"
    return None


def _declared_type(cause: BaseException) -> Any:
    """The schema's type at the failing key: a dataclass field's, or a typed list's element type."""
    owner, key = getattr(cause, "object_type", None), getattr(cause, "key", None)
    if owner is list:
        ref = getattr(cause, "ref_type", None)
        ref = next((a for a in typing.get_args(ref) if a is not type(None)), ref) \
            if typing.get_origin(ref) is typing.Union else ref
        args = typing.get_args(ref)
        return args[0] if args and args[0] is not Any else None
    if owner is None or not dataclasses.is_dataclass(owner) or key is None:
        return None
    try:
        hints = typing.get_type_hints(owner)
    except Exception:  # noqa: BLE001 - a schema we cannot read: no type in the message, still one sentence
        return None
    declared = hints.get(str(key))
    return None if declared is Any else declared


def _type_words(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is typing.Union and len(args) == 1:
        return f"{_type_words(args[0])}, or null"
    if origin in (list, typing.List):
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        example = {int: "[1, 2]", float: "[0.5, 1.0]", str: "[a, b]"}.get(item, "[a, b]")
        return f"a list of {_plural(item)}, e.g. {example}"
    if origin in (dict, typing.Dict):
        return "a group of keys (key.subkey=value)"
    if dataclasses.is_dataclass(tp):
        return "a group of keys (key.subkey=value), not a single value"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(tp, "a value")


def _plural(tp: Any) -> str:
    return {int: "whole numbers", float: "numbers", bool: "booleans", str: "strings"}.get(tp, "values")


def _unknown_key(key: str, given: str, cause: BaseException, from_file: bool = False) -> str:
    owner = getattr(cause, "object_type", None)
    parent, _, leaf = key.rpartition(".")
    names = [f.name for f in dataclasses.fields(owner)] if owner is not None and dataclasses.is_dataclass(owner) else []
    where = f"{parent} has" if parent else "the config has"
    have = f"; its keys are: {', '.join(names)}" if names else ""
    hint = ""
    if key == "act.negative_slope":
        hint = (" (a leaky_relu file names its schema first: defaults: [/schema/act/leaky_relu@_here_, _self_])"
                if from_file else " (only act=leaky_relu has a negative_slope)")
    elif key in ("norm.eps", "norm.momentum"):
        hint = (" (a norm file with eps and momentum names its schema first: defaults: "
                "[/schema/norm/batch@_here_, _self_], or /schema/norm/layer for eps alone)" if from_file
                else " (norm=ln has eps, norm=bn1..bn4 eps and momentum)")
    return f"{given} is not allowed: {where} no key {leaf or key}{hint}{have}."


def _hydra_message(err: BaseException) -> str:
    """Hydra's own message on one line: an unknown choice keeps its list of options, not the search path."""
    text = str(err)
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}\n{cause}"
    text = text.split("\nConfig search path:", 1)[0]
    options = re.search(r"Available options in '([^']+)':\n((?:\t.*\n?)+)", text)
    if options:
        names = [line.strip() for line in options.group(2).splitlines() if line.strip()]
        head = one_line(text[:options.start()]).rstrip(".")
        return f"{head}; available options in '{options.group(1)}': {', '.join(names)}."
    return one_line(text)


class StoreError(RuntimeError):
    """The tracking or artifact store cannot take what a run writes (a full disk, a server that stays
    down); the message says which and where. The run is marked FAILED where the store still allows it."""


class TrackingUnavailable(StoreError):
    """The tracking store stayed unreachable past the retry budget; what could not be sent is on disk."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job, once its runs are closed as KILLED: says where it stopped, for the one line the
    entry point prints (``python -m bn_study`` exits 130 without a traceback)."""


def interrupted_line(err: KeyboardInterrupt) -> str:
    """What the user reads after Ctrl-C: where it stopped, and how to go on from there."""
    where = str(err) if isinstance(err, Interrupted) else "before a job's training started"
    return f"interrupted (Ctrl-C): {where}"

