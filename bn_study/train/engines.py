"""How a training step runs: ``engine=auto|eager|graph|compile``.

Every engine runs the one step body of ``step.py`` — forward, per-member loss, backward of the summed
loss, optimizer step, BatchNorm running statistics updated in the modules' buffers — and differs only in
how that work reaches the hardware:

- ``eager``: PyTorch op by op, with PyTorch's default optimizer implementation — the reference.
- ``graph``: the whole step — the batch's gather from the resident data, forward, loss, backward,
  optimizer, BN statistics, the epoch's loss/accuracy sums — recorded once in a CUDA graph and
  replayed: one replay is one step, with no other launch (``graph.GraphStep``). CUDA only. A graph
  that cannot be recorded or launched is said in one line and the job goes on op by op.
- ``compile``: ``torch.compile`` of forward + loss (backward via AOTAutograd), optimizer eager. An
  option, never ``auto``'s choice: on the CPU it rarely wins and compiles once per batch shape.
- ``auto``: ``graph`` on CUDA; on the CPU the eager step with PyTorch's fused optimizer kernels for
  Adam and SGD with momentum (one pass over each parameter instead of several ops); plain SGD gains
  nothing from them and keeps the default. The fused kernels round differently (~1 ulp per step), so
  there ``auto`` is not bit for bit ``eager``; ``CPU_FUSED_OPTIMIZER = False`` makes it so.

docs/benchmarks.md has the measurements behind these choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bn_study.errors import UserError
from bn_study.train.graph import GraphStep
from bn_study.train.members import Members
from bn_study.train.step import StepFn, eager_step, forward_loss
from bn_study.train.losses import MemberLoss, member_loss
from bn_study.train.optim import build_optimizer, fused_helps

ENGINES = ("auto", "eager", "graph", "compile")
CPU_FUSED_OPTIMIZER = True  # engine=auto on the CPU: fused optimizer kernels (see the module docstring)


def resolve_engine(engine: str, device: torch.device) -> str:
    """The engine that will run: ``auto`` becomes ``graph`` on CUDA and ``eager`` elsewhere."""
    if engine not in ENGINES:
        raise UserError(f"engine={engine!r} is not allowed; choose one of: {', '.join(ENGINES)}.")
    if engine == "auto":
        return "graph" if device.type == "cuda" else "eager"
    if engine == "graph" and device.type != "cuda":
        raise UserError(f"engine=graph needs a CUDA device (this job runs on {device}); "
                        "use engine=auto or engine=eager on the CPU.")
    return engine


def build_engine(engine: str, members: Members, loss: str, optimizer_cfg: Mapping[str, Any],
                 device: torch.device) -> tuple[torch.optim.Optimizer, StepFn]:
    """The optimizer over ``members`` (moved to ``device``) and the step function of the chosen engine.

    Nothing is captured or compiled here: a CUDA graph is recorded lazily after the first steps, so a
    checkpoint's model and optimizer state may be loaded between this call and the first step.
    """
    kind = resolve_engine(engine, device)
    members.net.to(device)
    loss_fn = member_loss(loss)
    fused = True if engine == "auto" and device.type == "cpu" and CPU_FUSED_OPTIMIZER \
        and fused_helps(optimizer_cfg) else None
    optimizer = build_optimizer(members.net.parameters(), optimizer_cfg, capturable=kind == "graph", fused=fused)
    if kind == "graph":
        return optimizer, GraphStep(members, loss_fn, optimizer, device)
    if kind == "compile":
        return optimizer, compiled_step(members, loss_fn, optimizer)
    return optimizer, eager_step(members, loss_fn, optimizer)


def compiled_step(members: Members, loss_fn: MemberLoss, optimizer: torch.optim.Optimizer) -> StepFn:
    """The step with its forward + loss compiled by ``torch.compile`` (one specialisation per batch shape:
    the full batch and the last partial one), compiled at the first call of a shape."""
    return eager_step(members, loss_fn, optimizer, torch.compile(forward_loss(members, loss_fn), dynamic=False))
