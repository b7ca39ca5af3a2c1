"""resnet/graphs.py's steps on a CPU: graphed against eager steps, bit for bit, through stand-ins
for CUDA's stream and graphs; the learning rate's refresh across epochs; a resume; the production
mode (bf16 autocast, channels_last, fused Adam, partial batches); and the fall-back to eager steps
when capturing or compiling fails.

The stand-in graph behaves as a CUDA graph does where it matters: capturing runs nothing (the step
runs once for its output tensors, then every parameter, buffer and optimiser state is put back),
and a replay runs the captured step again, reading the learning rate from the device tensor and
writing into the captured outputs.
"""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
from torch import nn

from resnet.config import ExecConfig, TrainConfig
from resnet.data import synthetic
from resnet.graphs import CompiledStep, GraphedStep, float32_lr
from resnet.model import ResNetConfig
from resnet.network import build_model
from resnet.passes import run_pass
from resnet.pipeline import DeviceLoader
from resnet.train import train

CPU = torch.device("cpu")
TINY = ResNetConfig(
    layers=2, blocks=(1, 1), channels=(4, 8), conv_kernel=3, skip_kernel=1, pool_kernel=4
)
BATCH = 16  # 40 training images: 2 full batches and one of 8; 20 test images: 16 and 4


class ReplayGraphs:
    """Stand-ins for resnet.graphs.CudaGraphs on a CPU."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self.captures = self.replays = 0

    def on_side_stream(self, fn):
        return fn()

    def capture(self, fn):
        self.captures += 1
        state = [v for s in self.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
        tensors = [*self.model.parameters(), *self.model.buffers(), *state]
        saved = [t.detach().clone() for t in tensors]
        outputs = fn()
        with torch.no_grad():
            for t, s in zip(tensors, saved, strict=True):
                t.copy_(s)

        def replay():
            self.replays += 1
            for out, new in zip(outputs, fn(), strict=True):
                out.copy_(new)

        return replay, outputs


class FailingGraphs(ReplayGraphs):
    def capture(self, fn):
        raise RuntimeError("operation not permitted when stream is capturing\nsecond line")


def adam(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The CUDA recipe's optimiser on a CPU: fused Adam, its rate rounded to float32 each step."""
    return float32_lr(torch.optim.Adam(model.parameters(), lr=lr, fused=True))


def loaders(channels_last: bool):
    data = synthetic(40, 20, seed=2)
    train_loader = DeviceLoader(
        data.train_x,
        data.train_y,
        BATCH,
        CPU,
        train=True,
        generator=torch.Generator(CPU).manual_seed(3),
        channels_last=channels_last,
    )
    test_loader = DeviceLoader(
        data.test_x, data.test_y, BATCH, CPU, train=False, channels_last=channels_last
    )
    return train_loader, test_loader


def base_model(channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(TINY)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def epochs(
    model,
    graphs,
    dtype,
    channels_last,
    n,
    lr=0.1,
    state=None,
    rounded=True,
    fail=False,
):
    """n epochs of graphed (graphs=True) or eager steps; returns (history, weights, state, step).

    `state` resumes from another call's returned state (model, optimiser, scheduler, generator).
    """
    optimizer = adam(model, lr) if rounded else torch.optim.Adam(model.parameters(), lr, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    train_loader, test_loader = loaders(channels_last)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        train_loader.generator.set_state(state["generator"])
    criterion = nn.CrossEntropyLoss()
    step = model
    if graphs:
        cuda = (FailingGraphs if fail else ReplayGraphs)(model, optimizer)
        step = GraphedStep(model, criterion, optimizer, dtype, cuda=cuda)
    history = []
    for _ in range(n):
        history.append(run_pass(step, train_loader, criterion, CPU, dtype, optimizer))
        history.append(run_pass(step, test_loader, criterion, CPU, dtype))
        scheduler.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    state = {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "generator": train_loader.generator.get_state(),
    }
    return history, weights, state, step


@pytest.mark.parametrize(
    "dtype, channels_last", [(torch.float32, False), (torch.bfloat16, True)], ids=["fp32", "bf16"]
)
def test_graphed_steps_equal_eager_steps_bit_for_bit(dtype, channels_last):
    # 4 epochs: each shape runs eagerly twice, so the partial batches are captured in the third;
    # the rate changes every epoch, so replays must read the refreshed device tensor
    base = base_model(channels_last)
    eager = epochs(copy.deepcopy(base), False, dtype, channels_last, 4)
    graphed = epochs(copy.deepcopy(base), True, dtype, channels_last, 4)
    step = graphed[3]
    assert len(step.graphs) == 4 and step.cuda.captures == 4  # train/test x full/partial
    assert step.cuda.replays > 0 and step.fallback is None
    assert step.lr_value[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * 3 / 5)) / 2)
    assert graphed[0] == eager[0]
    assert torch.equal(graphed[1], eager[1])


def test_eager_steps_read_the_rate_rounded_to_float32_as_the_graph_does():
    # without the rounding, the eager arm reads the scheduler's double and the weights part
    base = base_model(False)
    graphed = epochs(copy.deepcopy(base), True, torch.float32, False, 3)
    unrounded = epochs(copy.deepcopy(base), False, torch.float32, False, 3, rounded=False)
    assert not torch.equal(graphed[1], unrounded[1])


def test_the_optimisers_rate_stays_the_schedulers_double():
    model = base_model(False)
    optimizer = adam(model, 0.1)
    model(torch.zeros(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    assert optimizer.param_groups[0]["lr"] == 0.1  # float32(0.1) != 0.1, held only for the step


@pytest.mark.parametrize(
    "dtype, channels_last", [(torch.float32, False), (torch.bfloat16, True)], ids=["fp32", "bf16"]
)
def test_a_resumed_graphed_run_equals_an_uninterrupted_one(dtype, channels_last):
    base = base_model(channels_last)
    straight = epochs(copy.deepcopy(base), True, dtype, channels_last, 4)
    first = epochs(copy.deepcopy(base), True, dtype, channels_last, 2)
    # a new process: new model, optimiser and graphs, the saved state loaded before the first step
    second = epochs(base_model(channels_last), True, dtype, channels_last, 2, state=first[2])
    assert first[0] + second[0] == straight[0]
    assert torch.equal(second[1], straight[1])


def test_a_failed_capture_falls_back_to_eager_steps(caplog):
    base = base_model(False)
    eager = epochs(copy.deepcopy(base), False, torch.float32, False, 3)
    with caplog.at_level(logging.WARNING, logger="resnet.graphs"):
        graphed = epochs(copy.deepcopy(base), True, torch.float32, False, 3, fail=True)
    step = graphed[3]
    assert step.graphs == {} and step.fallback.startswith("CUDA graph capture failed")
    assert "second line" not in step.fallback
    assert [r.getMessage() for r in caplog.records] == [f"warning: {step.fallback}"]
    assert graphed[0] == eager[0] and torch.equal(graphed[1], eager[1])  # no step lost


def test_a_failed_compile_falls_back_to_eager_steps_and_is_reported():
    base = base_model(False)
    eager = epochs(copy.deepcopy(base), False, torch.float32, False, 2)

    def broken(x):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error")

    model = copy.deepcopy(base)
    optimizer = adam(model, 0.1)
    reasons = []
    step = CompiledStep(
        model, broken, nn.CrossEntropyLoss(), optimizer, torch.float32, reasons.append
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    train_loader, test_loader = loaders(False)
    history = []
    for _ in range(2):
        history.append(
            run_pass(step, train_loader, nn.CrossEntropyLoss(), CPU, torch.float32, optimizer)
        )
        history.append(run_pass(step, test_loader, nn.CrossEntropyLoss(), CPU, torch.float32))
        scheduler.step()
    assert reasons == [step.fallback] and "torch.compile failed (RuntimeError" in reasons[0]
    assert history == eager[0]


def test_train_goes_on_eagerly_when_compiling_fails(monkeypatch):
    def broken_compile(model, **kwargs):
        def call(x):
            raise RuntimeError("BackendCompilerFailed: inductor raised")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    data = synthetic(40, 20, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=16)
    reasons = []
    ex = ExecConfig(device="cpu", compile=True)
    result = train(TINY, cfg, data, ex=ex, progress=False, on_fallback=reasons.append)
    plain = train(TINY, cfg, data, ex=ExecConfig(device="cpu"), progress=False)
    assert len(reasons) == 1 and "BackendCompilerFailed" in reasons[0]
    assert [h.train_loss for h in result.history] == [h.train_loss for h in plain.history]


def test_production_mode_resumes_bit_for_bit():
    # bf16 autocast and channels_last through `train`, partial batches, with a resume in between
    data = synthetic(40, 20, seed=1)  # 2 full batches of 16 and one of 8; test 16 + 4
    cfg = TrainConfig(epochs=2, batch_size=16)
    ex = ExecConfig(device="cpu", precision="bf16", channels_last=True)
    states = []
    straight = train(TINY, cfg, data, ex=ex, progress=False)
    train(
        TINY,
        TrainConfig(epochs=1, batch_size=16),
        data,
        ex=ex,
        progress=False,
        on_epoch=lambda stats, snapshot: states.append(copy.deepcopy(snapshot())),
    )
    resumed = train(TINY, cfg, data, ex=ex, progress=False, resume=states[-1])
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in straight.history]
    assert result_weights(resumed) == result_weights(straight)
    assert resumed.dtype == torch.bfloat16 and len(resumed.history) == 2


def result_weights(result) -> list:
    return [p.detach().flatten().tolist() for p in result.model.parameters()]


@pytest.mark.slow
def test_inductor_compiles_the_step_on_a_cpu():
    # the suite's one inductor compile (about a minute here): a compiled run trains without
    # falling back, and its losses follow the eager run's within rounding (inductor fuses
    # BatchNorm, ReLU and the adds, which rounds differently)
    data = synthetic(40, 20, seed=1)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3)
    reasons = []
    ex = ExecConfig(device="cpu", compile=True, compile_mode="inductor")
    compiled = train(TINY, cfg, data, ex=ex, progress=False, on_fallback=reasons.append)
    eager = train(TINY, cfg, data, ex=ExecConfig(device="cpu"), progress=False)
    assert reasons == []
    for a, b in zip(compiled.history, eager.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)
        assert a.test_loss == pytest.approx(b.test_loss, rel=1e-3)
