"""Samplers that Hydra's Optuna plugin offered and Optuna no longer has."""

from typing import Any, NoReturn

from bn_study.errors import UserError


def motpe_removed(*_args: Any, **_kwargs: Any) -> NoReturn:
    """``hydra/sweeper/sampler=motpe``: Optuna 4.0 folded MOTPESampler into TPESampler."""
    raise UserError("hydra/sweeper/sampler=motpe is not available: The 'motpe' sampler was removed in Optuna 4.0; "
                    "use hydra/sweeper/sampler=tpe, which handles multi-objective optimization.")
