"""OmegaConf resolvers a config file may use (registered on import of ``bn_study.config``, before Hydra composes).

``${linear_scaling:BASE,REFERENCE,BATCH}``: the linear scaling rule for SGD (Goyal et al., 2017) — a learning
rate proportional to the batch size, BASE at batch REFERENCE, so lr × optimizer steps per epoch is the same
at every batch size (``conf/design/linear_lr.yaml``).
"""

from __future__ import annotations

from omegaconf import OmegaConf


def linear_scaling(base: float, reference: int, batch: int) -> float:
    for name, value in (("base", base), ("reference", reference), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"linear_scaling's {name} must be a number > 0, not {value!r}")
    return float(base) * float(batch) / float(reference)


def register() -> None:
    OmegaConf.register_new_resolver("linear_scaling", linear_scaling, replace=True)


register()
