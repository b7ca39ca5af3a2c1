"""The registry of benchmark entries, in the style of timm's `register_model`.

An entry is one decorated function in any module of `benchmarks/entries/`; its docstring
is the one-line description and it returns the model and training configs:

    @entry("table1/row3", paper=Paper(accuracy=91.78, params="4.9M", epochs=50))
    def row3():
        "Table 1 row 3: one block per layer at 64-512 channels."
        return arch(blocks=[1, 1, 1, 1], channels=[64, 128, 256, 512]), TrainConfig(epochs=50)

Files are discovered on first use: the paper's own entries first, then the others by name,
then any `*.py` in the folders listed in $RESBENCH_ENTRIES_PATH (entries kept outside the package).
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.util
import json
import os
import pkgutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from resnet.flops import flops_per_image
from resnet.model import ConfigError, ResNetConfig, count_parameters
from resnet.train import TrainConfig


BUDGET = 5_000_000  # the paper's parameter budget
ENV_PATH = "RESBENCH_ENTRIES_PATH"


class RegistryError(LookupError):
    """An unknown, duplicate or malformed entry."""


@dataclass(frozen=True)
class Paper:
    """What the paper printed for this entry (None where it printed nothing)."""

    accuracy: float | None = None   # test accuracy, percent
    params: str | None = None       # parameter count exactly as printed ("4.9M", "4,902,186")
    epochs: int | None = None
    test_loss: float | None = None
    num: int | None = None          # the row number in Table 1
    tolerance: float = 1.0          # accuracy points either side of `accuracy` that count as reproduced


@dataclass(frozen=True)
class Entry:
    name: str                       # "group/name", unique
    description: str                # one line
    model: ResNetConfig
    train: TrainConfig
    paper: Paper = field(default_factory=Paper)
    version: int = 1                # bump when code the configs don't capture changes what the entry computes

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def param_count(self) -> int:
        return count_parameters(self.model)

    def config_hash(self, train: TrainConfig | None = None) -> str:
        return config_hash(self.model, train or self.train)

    def identity(self, train: TrainConfig, data_checksum: str, limit_train: int = 0, limit_test: int = 0) -> str:
        return identity(self.config_hash(train), data_checksum, self.version, limit_train, limit_test)


def describe_entry(e: Entry) -> dict:
    """One entry as plain values: architecture, budget columns, recipe and the paper's figures."""
    m, flops = e.model, flops_per_image(e.model)
    return {
        "name": e.name, "group": e.group, "N": m.layers, "blocks": list(m.blocks), "channels": list(m.channels),
        "F": list(m.conv_kernel), "K": list(m.skip_kernel), "P": m.pool_kernel, "optimizer": e.train.optimizer,
        "epochs": e.train.epochs, "params": e.param_count, "fits_5M": e.param_count <= BUDGET,
        "mflops": round(flops.forward / 1e6, 1), "train_gflops": round(flops.train / 1e9, 3),
        "paper_params": e.paper.params, "paper_acc": e.paper.accuracy, "description": e.description,
    }


def config_hash(model: ResNetConfig, train: TrainConfig) -> str:
    """Identity of what a run computes: the model and the training recipe, nothing else."""
    blob = json.dumps({"model": model.flat(), "train": asdict(train)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def identity(config: str, data_checksum: str, version: int = 1, limit_train: int = 0, limit_test: int = 0) -> str:
    """Identity of a run: its config hash, the data it read (checksum and limits), the entry's version."""
    blob = json.dumps([config, data_checksum, int(version), int(limit_train), int(limit_test)])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def arch(layers: int = 4, blocks=(2, 2, 2, 2), channels=(64, 128, 256, 512), conv_kernel=3,
         skip_kernel=1, pool_kernel: int = 4) -> ResNetConfig:
    """A ResNetConfig in the paper's terms: N, B_i, C_i, F_i, K_i, P (scalars for every layer)."""
    return ResNetConfig(layers=layers, blocks=blocks, channels=channels, conv_kernel=conv_kernel,
                        skip_kernel=skip_kernel, pool_kernel=pool_kernel)


_ENTRIES: dict[str, Entry] = {}
_loaded = False


def entry(name: str, paper: Paper | None = None, version: int = 1) -> Callable:
    """Register the decorated function's configs under `name`; `version` is the entry's code version."""

    def decorate(fn: Callable[[], tuple[ResNetConfig, TrainConfig]]):
        if name in _ENTRIES:
            raise RegistryError(f"duplicate entry name {name!r} (in {fn.__module__})")
        if "/" not in name or not all(name.split("/")):
            raise RegistryError(f"entry {name!r}: names are 'group/name'")
        doc = (fn.__doc__ or "").strip().splitlines()
        try:
            model, train = fn()
        except (ConfigError, TypeError, ValueError) as e:
            raise RegistryError(f"entry {name!r} is malformed: {e}") from None
        if not isinstance(model, ResNetConfig) or not isinstance(train, TrainConfig):
            raise RegistryError(f"entry {name!r} must return (ResNetConfig, TrainConfig)")
        _ENTRIES[name] = Entry(name, doc[0] if doc else name, model, train, paper or Paper(), version)
        return fn

    return decorate


def _discover() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import benchmarks.entries as pkg

    mods = sorted((m.name for m in pkgutil.iter_modules(pkg.__path__)), key=lambda m: (m != "paper", m))
    for mod in mods:
        importlib.import_module(f"{pkg.__name__}.{mod}")
    for folder in filter(None, os.environ.get(ENV_PATH, "").split(os.pathsep)):
        for path in sorted(Path(folder).glob("*.py")):
            load_file(path)


def load_file(path: str | os.PathLike) -> None:
    """Register the entries of one more file (a generated sweep, or one outside the package)."""
    _discover()
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"resbench_entries_{path.stem}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def entries() -> list[Entry]:
    """Every registered entry, in registry order."""
    _discover()
    return list(_ENTRIES.values())


def get(name: str) -> Entry:
    _discover()
    if name not in _ENTRIES:
        close = [n for n in _ENTRIES if name in n] or list(_ENTRIES)[:3]
        raise RegistryError(f"unknown entry {name!r} (try: {', '.join(close)}; `resbench list` shows all)")
    return _ENTRIES[name]


def select(patterns: list[str] | tuple[str, ...]) -> list[Entry]:
    """Entries matching any of the names or glob patterns, in registry order; unknown names fail."""
    _discover()
    chosen = set()
    for pat in patterns:
        hits = [n for n in _ENTRIES if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            get(pat)  # raises with a suggestion
        chosen.update(hits)
    return [e for e in _ENTRIES.values() if e.name in chosen]
