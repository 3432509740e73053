"""How a training step runs: ``engine=auto|eager|graph|compile``.

Every engine runs the one step body of ``step.py`` — forward, per-member loss, backward of the summed
loss, optimizer step, BatchNorm running statistics updated in the modules' buffers — and differs only in
how that work reaches the hardware:

- ``eager``: PyTorch op by op, with PyTorch's default optimizer implementation — the reference.
- ``graph``: the whole step — the batch's gather from the resident data, forward, loss, backward,
  optimizer, BN statistics, the epoch's loss/accuracy sums — recorded once in a CUDA graph and
  replayed: one replay is one step, with no other launch (``GraphStep``). CUDA only.
- ``compile``: ``torch.compile`` of forward + loss (backward via AOTAutograd), optimizer eager. An
  option, never ``auto``'s choice: on the CPU it rarely wins and compiles once per batch shape.
- ``auto``: ``graph`` on CUDA; on the CPU the eager step with PyTorch's fused optimizer kernels for
  Adam and SGD with momentum (one pass over each parameter instead of several ops); plain SGD gains
  nothing from them and keeps the default. The fused kernels round differently (~1 ulp per step), so
  there ``auto`` is not bit for bit ``eager``; ``CPU_FUSED_OPTIMIZER = False`` makes it so.

docs/benchmarks.md has the measurements behind these choices.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import torch
from torch import Tensor

from bn_study.errors import UserError
from bn_study.train.loop import IndexedStep, Targets
from bn_study.train.members import Members
from bn_study.train.step import StepFn, eager_step, forward_loss, train_step
from bn_study.train.losses import MemberLoss, member_loss
from bn_study.train.optim import build_optimizer, fused_helps

ENGINES = ("auto", "eager", "graph", "compile")
WARMUP_STEPS = 3  # eager steps on a side stream before a batch shape is captured (PyTorch's advice)
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


class _Graphed:
    """One step body: run eagerly ``warmup`` times on a side stream, then captured and replayed.

    The body must only read and write tensors that outlive it (parameters, gradients, optimizer state,
    buffers, static inputs/outputs): a replay re-runs the recorded kernels on those same addresses.
    With ``capture=False`` (tests on the CPU) the body simply runs every time.
    """

    def __init__(self, body: Callable[[], None], warmup: int, device: torch.device, capture: bool) -> None:
        self.body, self.warmup, self.device, self.capture = body, warmup, device, capture
        self.runs = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side: torch.cuda.Stream | None = None

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if not self.capture:
            self.body()
            return
        if self.runs < self.warmup:  # real training steps, on a side stream as capture requires
            side = self.side = self.side or torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                self.body()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.runs += 1
            return
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels; nothing is computed yet
            self.body()
        self.graph = graph
        graph.replay()  # this call's step


class GraphStep:
    """The training step as a CUDA graph replay, for ``Members`` on one CUDA device.

    It is a ``loop.IndexedStep``, capturing lazily (after ``warmup`` eager steps of the same batch
    shape): the epoch's order ``[K, n]`` is copied into a static buffer and a device-side position
    counter picks each batch, so the gather ``x[order[:, pos:pos+B]]`` is inside the graph and one
    replay is one step. The full batch and the last partial batch each get their own graph (own private
    memory pool); the epoch's loss and accuracy sums are accumulated in-graph as well.

    Inside the graph: gradients are zeroed in place (``zero_grad(set_to_none=False)``) and backward
    accumulates into them, so every ``.grad`` keeps its address for all graphs and eager steps alike;
    the optimizer must be capturable (Adam: ``capturable=True``, its step counter on the device); BN
    running statistics are the modules' own buffers, updated in place by the recorded kernels.

    What a graph bakes in — the addresses of parameters, gradients, buffers, optimizer state and the
    training data — is checked at each epoch start; if any changed (``load_state_dict`` of the
    optimizer after capture, new data) the graphs are dropped and recorded again after a new warm-up.
    """

    def __init__(self, members: Members, loss_fn: MemberLoss, optimizer: torch.optim.Optimizer,
                 device: torch.device, *, warmup: int = WARMUP_STEPS, capture: bool | None = None) -> None:
        capture = device.type == "cuda" if capture is None else capture
        if capture and device.type != "cuda":
            raise UserError(f"engine=graph needs a CUDA device (this job runs on {device}); "
                            "use engine=auto or engine=eager on the CPU.")
        self.members, self.optimizer, self.device = members, optimizer, device
        self.forward = forward_loss(members, loss_fn)
        self.warmup, self.capture = warmup, capture
        k = members.count
        self.losses = torch.zeros(k, device=device)  # the latest step's per-member losses
        self.loss_sum = torch.zeros(k, device=device)  # this epoch's sums (indexed path)
        self.correct = torch.zeros(k, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)  # next index into the order
        self._order: Tensor | None = None
        self._data: Targets | None = None
        self._graphs: dict[Hashable, _Graphed] = {}
        self._pinned: tuple[int, ...] | None = None

    # -- the step itself, shared by the eager warm-up and the capture --------------------------------
    def _train(self, x: Tensor, labels: Tensor, onehot: Tensor | None) -> tuple[Tensor, Tensor]:
        losses, hits = train_step(self.forward, self.optimizer, x, labels, onehot, keep_grads=True)
        self.losses.copy_(losses)
        return losses, hits

    def _prepare(self) -> None:
        """Before steps (cheap, idempotent): gradients exist, so every graph and eager step shares them.
        (A checkpoint loaded into the optimizer keeps it capturable: ``optim.keep_implementation``.)"""
        for p in self.members.net.parameters():
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)

    def _fingerprint(self) -> tuple[int, ...]:
        tensors: list[Tensor] = list(self.members.net.parameters()) + list(self.members.net.buffers())
        tensors += [p.grad for p in self.members.net.parameters() if p.grad is not None]
        for state in self.optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, Tensor)]
        if self._data is not None:
            tensors += [t for t in (self._data.x, self._data.labels, self._data.onehot) if t is not None]
        return tuple(t.data_ptr() for t in tensors)

    def _check_pinned(self) -> None:
        """Drop the graphs if anything they recorded was replaced since the first capture."""
        if self._pinned is not None and self._fingerprint() != self._pinned:
            self.reset()

    def reset(self) -> None:
        """Forget every recorded graph (they are recorded again after a new warm-up)."""
        self._graphs.clear()
        self._pinned = None

    @property
    def captured(self) -> list[Hashable]:
        """The step shapes replayed from a CUDA graph so far."""
        return [key for key, g in self._graphs.items() if g.graph is not None]

    # -- loop.IndexedStep: the batch is gathered inside the graph ------------------------------------
    def start_epoch(self, data: Targets, order: Tensor) -> None:
        k, n = order.shape
        if self._data is not data or self._order is None or tuple(self._order.shape) != (k, n):
            self.reset()
            self._data = data
            self._order = torch.empty((k, n), dtype=torch.long, device=self.device)
        self._check_pinned()
        self._prepare()
        self._order.copy_(order)
        self.position.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()

    def step_at(self, lo: int, hi: int) -> Tensor:
        size = hi - lo
        graphed = self._graphs.get(("index", size))
        if graphed is None:
            graphed = self._graphs[("index", size)] = _Graphed(self._indexed_body(size), self.warmup, self.device,
                                                                self.capture)
        graphed()
        if self._pinned is None and graphed.graph is not None:
            self._pinned = self._fingerprint()
        return self.losses

    def epoch_totals(self) -> tuple[Tensor, Tensor]:
        return self.loss_sum.clone(), self.correct.clone()

    def _indexed_body(self, size: int) -> Callable[[], None]:
        data, order, position = self._data, self._order, self.position
        assert data is not None and order is not None
        offsets = torch.arange(size, device=self.device)

        def body() -> None:
            idx = order.index_select(1, position + offsets)  # [K, size]: each member's own samples
            position.add_(size)
            onehot = None if data.onehot is None else data.onehot[idx]
            losses, hits = self._train(data.x[idx], data.labels[idx], onehot)
            self.loss_sum.add_(losses * size)
            self.correct.add_(hits)

        return body
