"""``engine=graph``: the whole training step recorded once in a CUDA graph and replayed.

A graph that cannot be recorded or launched (an op that is not capturable, a driver that refuses the
graph, an allocation during capture) is not a reason to lose the job: ``GraphStep`` says so in one
line and runs the same step body op by op from then on — the eager engine's work, from the same state
(a failed capture computed nothing; a launch that fails ran no kernel).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable
from typing import Protocol

import torch
from torch import Tensor

from bn_study.train.loop import Targets
from bn_study.train.losses import MemberLoss
from bn_study.train.members import Members
from bn_study.train.step import forward_loss, train_step

log = logging.getLogger("bn_study")

WARMUP_STEPS = 3  # eager steps on a side stream before a batch shape is captured (PyTorch's advice)
Body = Callable[[], None]


class Recorder(Protocol):
    """How a step body becomes a graph: warm-up runs, then one recording that returns its replay."""

    def warm(self, body: Body) -> None:
        """Run ``body`` once for real, the way a later capture needs it to have run."""

    def record(self, body: Body) -> Body:
        """Record ``body`` without computing it; the returned function replays the recording."""


class CudaRecorder:
    """``torch.cuda.CUDAGraph``: warm-up on a side stream (as capture requires), capture, replay."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.side: torch.cuda.Stream | None = None

    def warm(self, body: Body) -> None:
        side = self.side = self.side or torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            body()
        torch.cuda.current_stream(self.device).wait_stream(side)

    def record(self, body: Body) -> Body:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels; nothing is computed yet
            body()
        return graph.replay

    def settle(self) -> None:
        """After a failed capture or launch: wait for the device; raises if the failure broke the context
        (then nothing can continue on it, eagerly or not)."""
        torch.cuda.synchronize(self.device)


class GraphFailure(Exception):
    """Recording or launching a graph failed (``__cause__`` says how); the step's state is untouched."""


class _Graphed:
    """One step body: run for real ``warmup`` times, then recorded and replayed; without a recorder (the
    CPU, or after a fallback) simply run every time. Only the recording and the replay are graph work: an
    error there is a ``GraphFailure``; an error of a warm-up or plain run is the step's own."""

    def __init__(self, body: Body, warmup: int, recorder: Recorder | None) -> None:
        self.body, self.warmup, self.recorder = body, warmup, recorder
        self.runs = 0
        self.replay: Body | None = None

    def __call__(self) -> None:
        if self.replay is not None:
            try:
                self.replay()
            except Exception as err:
                raise GraphFailure() from err
        elif self.recorder is None:
            self.body()
        elif self.runs < self.warmup:  # real training steps
            self.recorder.warm(self.body)
            self.runs += 1
        else:
            try:
                replay = self.recorder.record(self.body)
                replay()  # this call's step
            except Exception as err:
                raise GraphFailure() from err
            self.replay = replay


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

    ``recorder`` replaces how graphs are made (tests inject failures through it); ``capture=False`` runs
    the same logic with no graph at all. ``fallback`` holds why graphs were given up, once they were.
    """

    def __init__(self, members: Members, loss_fn: MemberLoss, optimizer: torch.optim.Optimizer,
                 device: torch.device, *, warmup: int = WARMUP_STEPS, capture: bool | None = None,
                 recorder: Recorder | None = None) -> None:
        capture = (device.type == "cuda" or recorder is not None) if capture is None else capture
        if capture and device.type != "cuda" and recorder is None:  # engines.resolve_engine tells users
            raise ValueError(f"CUDA graphs need a CUDA device, not {device}")
        self.members, self.optimizer, self.device = members, optimizer, device
        self.forward = forward_loss(members, loss_fn)
        self.warmup = warmup
        self.recorder: Recorder | None = (recorder or CudaRecorder(device)) if capture else None
        self.fallback: str | None = None
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
        return [key for key, g in self._graphs.items() if g.replay is not None]

    def _give_up_graphs(self, err: BaseException, size: int) -> None:
        """From now on every step runs op by op; said once, in one line."""
        settle = getattr(self.recorder, "settle", None)
        if settle is not None:
            try:
                settle()
            except Exception as broken:  # the device is gone: no engine can go on
                raise broken from err
        first_line = (str(err).strip().splitlines() or [""])[0]
        self.fallback = f"{type(err).__name__}: {first_line}"
        log.warning("engine=graph: the CUDA graph of the %d-sample step failed (%s); continuing on the eager "
                    "engine from the same state", size, self.fallback)
        self.recorder = None
        self.reset()

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
            graphed = self._graphs[("index", size)] = _Graphed(self._indexed_body(size), self.warmup, self.recorder)
        try:
            graphed()
        except GraphFailure as failure:
            self._give_up_graphs(failure.__cause__ or failure, size)
            graphed = self._graphs[("index", size)] = _Graphed(self._indexed_body(size), self.warmup, None)
            graphed()
        if self._pinned is None and graphed.replay is not None:
            self._pinned = self._fingerprint()
        return self.losses

    def epoch_totals(self) -> tuple[Tensor, Tensor]:
        return self.loss_sum.clone(), self.correct.clone()

    def _indexed_body(self, size: int) -> Body:
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
