"""Compiled training steps: whole-step CUDA graphs (GraphedStep), torch.compile (CompiledStep), and
their fall-back to eager steps when compiling or capturing fails.

At batch 128 these small ResNets are bound by kernel launches, not arithmetic: one step of
paper/final is several hundred small kernels, each costing the host a few microseconds.
GraphedStep captures the whole step (forward, loss, backward, fused Adam) once per (train/eval,
batch shape) and replays it, which removes that cost without touching the arithmetic: the same
kernels run in the same order on the same tensors. What a replay cannot see is handled explicitly:

- the learning rate changes every epoch, so during capture the fused Adam reads it from a
  device tensor (float32) that is refilled whenever the scheduler changes the float in
  param_groups; every eager step reads the same float32 value (`float32_lr`), so graphed and
  eager steps agree bit for bit;
- a shape is run eagerly (real steps, on a side stream as CUDA graph capture requires) its
  first `eager_runs` times, so cuDNN's autotuning and lazy initialisation happen before
  capture, then captured and replayed; the last partial batch of each epoch simply gets
  its own graph two epochs later;
- BatchNorm updates its running statistics in place, so the eval graph sees them.

What CUDA provides (a side stream, graph capture and replay) comes through `CudaGraphs`, so tests
can substitute stand-ins and run the step's logic on a CPU.

A step that fails to compile or capture does not fail the run: that step and every later one
run eagerly, one warning line is logged, and `on_fallback(reason)` lets the caller tag the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnet.model import ConfigError

log = logging.getLogger(__name__)


def float32_lr(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Make every step of `optimizer` read its learning rate rounded to float32.

    A captured fused Adam reads the rate from a float32 device tensor; an eager step would read
    the scheduler's Python double. Rounding the eager steps' rate too makes both the same value
    (the rate itself changes by at most 6e-8 relative). The schedule, its state and the logged
    rate keep the double: the rounding holds for the duration of each step only.
    """
    held: list = []

    def before(opt, args, kwargs):
        held[:] = [g["lr"] for g in opt.param_groups]
        for g in opt.param_groups:
            if not isinstance(g["lr"], torch.Tensor):
                g["lr"] = float(np.float32(g["lr"]))

    def after(opt, args, kwargs):
        for g, lr in zip(opt.param_groups, held, strict=True):
            g["lr"] = lr

    optimizer.register_step_pre_hook(before)
    optimizer.register_step_post_hook(after)
    return optimizer


class CudaGraphs:
    """What GraphedStep needs from CUDA: a side stream to run warm-up steps on, and graphs."""

    def __init__(self, device: torch.device):
        self.side = torch.cuda.Stream(device)

    def on_side_stream(self, fn: Callable):
        """fn(), run on the side stream (capture needs warm-up work off the default stream)."""
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            result = fn()
        torch.cuda.current_stream().wait_stream(self.side)
        return result

    def capture(self, fn: Callable) -> tuple[Callable[[], None], tuple]:
        """Capture fn() as a CUDA graph: (replay, fn's outputs, which each replay overwrites)."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = fn()
        return graph.replay, outputs


@dataclass
class _Graph:
    replay: Callable[[], None]
    x: torch.Tensor  # static input, refilled before each replay
    y: torch.Tensor
    loss: torch.Tensor  # static outputs, overwritten by each replay
    out: torch.Tensor


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"[:300]


class Step:
    """A compiled step that falls back to `eager` for good on its first failure."""

    def __init__(self, model, criterion, optimizer, dtype, on_fallback=None):
        self.model, self.criterion, self.optimizer, self.dtype = model, criterion, optimizer, dtype
        self.device = next(model.parameters()).device
        self.on_fallback = on_fallback
        self.fallback: str | None = None  # why steps run eagerly; None while compiled

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def _compute(self, model, x, y, training: bool, cache: bool = True):
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=cache)
            if self.dtype != torch.float32
            else nullcontext()
        )
        with torch.set_grad_enabled(training):
            with autocast:
                out = model(x)
                loss = self.criterion(out, y)
            if training:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        return loss.detach(), out.detach()

    def _fall_back(self, what: str, err: BaseException) -> None:
        self.fallback = f"{what} failed ({_reason(err)}); eager steps from here on"
        log.warning("warning: %s", self.fallback)
        if self.on_fallback is not None:
            self.on_fallback(self.fallback)


class CompiledStep(Step):
    """Steps of a torch.compile'd model; compiling happens at a shape's first call, and a failure
    there turns this and every later step eager."""

    def __init__(self, model, compiled, criterion, optimizer, dtype, on_fallback=None):
        super().__init__(model, criterion, optimizer, dtype, on_fallback)
        self.compiled = compiled

    def step(self, x, y, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fallback is None:
            try:
                return self._compute(self.compiled, x, y, training)
            except Exception as err:  # the compiler's errors have no common base class
                self._fall_back("torch.compile", err)
        return self._compute(self.model, x, y, training)


class GraphedStep(Step):
    """Runs training and test steps of `model` as replayed CUDA graphs (fused Adam only)."""

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        dtype: torch.dtype,
        eager_runs: int = 2,
        cuda: CudaGraphs | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ):
        super().__init__(model, criterion, optimizer, dtype, on_fallback)
        if cuda is None and self.device.type != "cuda":
            raise ConfigError(
                "compile_mode: cudagraph needs a CUDA device; use inductor on the CPU"
            )
        if not isinstance(optimizer, torch.optim.Adam) or not all(
            g.get("fused") for g in optimizer.param_groups
        ):
            raise ConfigError(
                "compile_mode: cudagraph captures only the fused Adam step (its learning rate can "
                "live on the device); use inductor for other optimisers"
            )
        self.eager_runs = eager_runs
        self.cuda = cuda or CudaGraphs(self.device)
        self.graphs: dict[tuple, _Graph] = {}
        self.seen: Counter = Counter()
        self.lr = [torch.tensor(float(g["lr"]), device=self.device) for g in optimizer.param_groups]
        self.lr_value = [float(g["lr"]) for g in optimizer.param_groups]

    def _graphed(self, x, y, training: bool):
        """The step as captured: Adam reads its rate from the device tensors (capturable)."""
        groups = self.optimizer.param_groups
        saved = [(g["lr"], g.get("capturable", False)) for g in groups]
        if training:
            for g, lr in zip(groups, self.lr, strict=True):
                g["lr"], g["capturable"] = lr, True
        try:
            # the autocast weight cache must be off under capture; each weight is cast once per
            # step anyway
            return self._compute(self.model, x, y, training, cache=False)
        finally:
            for g, (lr, capturable) in zip(groups, saved, strict=True):
                g["lr"], g["capturable"] = lr, capturable

    def _eager(self, x, y, training: bool):
        return self.cuda.on_side_stream(
            lambda: self._compute(self.model, x, y, training, cache=False)
        )

    def _sync_lr(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            if group["lr"] != self.lr_value[i]:
                self.lr[i].fill_(group["lr"])
                self.lr_value[i] = group["lr"]

    def _capture(self, x, y, training: bool) -> _Graph:
        static_x, static_y = x.clone(), y.clone()
        if training:
            self._sync_lr()
            self.optimizer.zero_grad(set_to_none=True)  # gradients then live in the graph's pool
        replay, (loss, out) = self.cuda.capture(lambda: self._graphed(static_x, static_y, training))
        return _Graph(replay, static_x, static_y, loss, out)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, training: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on (x, y); returns (loss, logits), valid until the next step."""
        if self.fallback is not None:
            return self._eager(x, y, training)
        key = (training, tuple(x.shape), x.stride())
        entry = self.graphs.get(key)
        if entry is None:
            if self.seen[key] < self.eager_runs:
                self.seen[key] += 1
                return self._eager(x, y, training)
            try:  # a capture runs nothing, so a failed one leaves the state as it was
                entry = self.graphs[key] = self._capture(x, y, training)
            except Exception as err:  # CUDA's capture errors have no common base class
                self._fall_back("CUDA graph capture", err)
                return self._eager(x, y, training)
        if training:
            self._sync_lr()
        entry.x.copy_(x)
        entry.y.copy_(y)
        entry.replay()
        return entry.loss, entry.out
