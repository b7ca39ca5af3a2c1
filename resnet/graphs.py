"""Whole-step CUDA graphs: forward, loss, backward and the Adam step replayed as one graph.

At batch 128 these small ResNets are bound by kernel launches, not arithmetic: one step of
paper/final is several hundred small kernels, each costing the host a few microseconds.
Capturing the step once per (train/eval, batch shape) and replaying it removes that cost
without touching the arithmetic: the same kernels run in the same order on the same
tensors. What a replay cannot see is handled explicitly:

- the learning rate changes every epoch, so during capture the fused Adam reads it from a
  device tensor that is refilled whenever the scheduler changes the float in param_groups;
- a shape is run eagerly (real steps, on a side stream as CUDA graph capture requires) its
  first `eager_runs` times, so cuDNN's autotuning and lazy initialisation happen before
  capture, then captured and replayed; the last partial batch of each epoch simply gets
  its own graph two epochs later;
- BatchNorm updates its running statistics in place, so the eval graph sees them.

No torch.compile is involved, so there is nothing to compile: capture costs milliseconds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from resnet.model import ConfigError


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor  # static input, refilled before each replay
    y: torch.Tensor
    loss: torch.Tensor  # static outputs, overwritten by each replay
    out: torch.Tensor


class GraphedStep:
    """Runs training and test steps of `model` as replayed CUDA graphs (fused Adam only)."""

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        dtype: torch.dtype,
        eager_runs: int = 2,
    ):
        device = next(model.parameters()).device
        if device.type != "cuda":
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
        self.model, self.criterion, self.optimizer, self.dtype = model, criterion, optimizer, dtype
        self.eager_runs = eager_runs
        self.side = torch.cuda.Stream(device)
        self.graphs: dict[tuple, _Graph] = {}
        self.seen: Counter = Counter()
        self.lr = [torch.tensor(float(g["lr"]), device=device) for g in optimizer.param_groups]
        self.lr_value = [float(g["lr"]) for g in optimizer.param_groups]

    def train(self, mode: bool = True) -> GraphedStep:
        self.model.train(mode)
        return self

    def _compute(self, x, y, training: bool):
        # The autocast weight cache must be off under capture; each weight is cast once per step
        # anyway.
        autocast = torch.autocast(
            "cuda", dtype=self.dtype, enabled=self.dtype != torch.float32, cache_enabled=False
        )
        with torch.set_grad_enabled(training):
            with autocast:
                out = self.model(x)
                loss = self.criterion(out, y)
            if training:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        return loss.detach(), out.detach()

    def _eager(self, x, y, training: bool):
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            loss, out = self._compute(x, y, training)
        torch.cuda.current_stream().wait_stream(self.side)
        return loss, out

    def _sync_lr(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            if group["lr"] != self.lr_value[i]:
                self.lr[i].fill_(group["lr"])
                self.lr_value[i] = group["lr"]

    def _capture(self, x, y, training: bool) -> _Graph:
        static_x, static_y = x.clone(), y.clone()
        groups = self.optimizer.param_groups
        saved = [(g["lr"], g.get("capturable", False)) for g in groups]
        if training:
            self._sync_lr()
            self.optimizer.zero_grad(set_to_none=True)  # gradients then live in the graph's pool
            for g, lr in zip(groups, self.lr, strict=False):
                g["lr"], g["capturable"] = lr, True
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                loss, out = self._compute(static_x, static_y, training)
        finally:
            for g, (lr, capturable) in zip(groups, saved, strict=True):
                g["lr"], g["capturable"] = lr, capturable
        return _Graph(graph, static_x, static_y, loss, out)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, training: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on (x, y); returns (loss, logits), valid until the next step."""
        key = (training, tuple(x.shape), x.stride())
        entry = self.graphs.get(key)
        if entry is None:
            if self.seen[key] < self.eager_runs:
                self.seen[key] += 1
                return self._eager(x, y, training)
            entry = self.graphs[key] = self._capture(x, y, training)
        if training:
            self._sync_lr()
        entry.x.copy_(x)
        entry.y.copy_(y)
        entry.graph.replay()
        return entry.loss, entry.out
