"""Training state that survives a crash: every random stream, atomic saves, weights-only loads."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from resnet.files import atomic_write


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save through `atomic_write`: never a half-written checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load(path: str | os.PathLike) -> dict:
    """A checkpoint or weights file; only tensors and plain containers load, never code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state(gen: torch.Generator) -> dict:
    """Every random stream a run draws from, in types `torch.load(weights_only=True)` accepts.

    On CUDA, `gen`'s device is the run's: its default stream is kept, not every visible GPU's, so
    a checkpoint resumes in a process that sees another number of GPUs (a `--devices` child)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "generator": gen.get_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
    }
    if gen.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(gen.device)
    return state


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["generator"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if "cuda" in state and gen.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], gen.device)
