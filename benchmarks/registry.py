"""The registry of benchmark entries, in the style of timm's `register_model`.

An entry is one decorated function in any module of `benchmarks/entries/`; its docstring
is the one-line description and it returns the model and training configs:

    @entry("table1/row3", paper=Paper(accuracy=91.78, params="4.9M", epochs=50))
    def row3():
        "Table 1 row 3: one block per layer at 64-512 channels."
        return arch(blocks=[1, 1, 1, 1], channels=[64, 128, 256, 512]), TrainConfig(epochs=50)

Files are discovered on first use: the paper's own entries first, then the others by name,
then any `*.py` in the folders listed in $RESBENCH_ENTRIES_PATH (entries kept outside the package).
A file that cannot be executed (a syntax error, say) is a RegistryError naming the file and line.
`temporary()` gives tests a registry of their own for a block, restored afterwards.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.util
import json
import os
import pkgutil
import stat
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from resnet.config import TrainConfig
from resnet.model import ConfigError, ResNetConfig, count_parameters

BUDGET = 5_000_000  # the paper's parameter budget
ENV_PATH = "RESBENCH_ENTRIES_PATH"


class RegistryError(LookupError):
    """An unknown, duplicate or malformed entry."""


# which epoch's test accuracy a paper figure is: the best one, or the last one
BEST, FINAL = "best", "final"
METRICS = (BEST, FINAL)


@dataclass(frozen=True)
class Paper:
    """What the paper printed for this entry (None where it printed nothing)."""

    accuracy: float | None = None  # test accuracy, percent
    params: str | None = None  # parameter count exactly as printed ("4.9M", "4,902,186")
    epochs: int | None = None
    # as the authors computed it: per-batch mean losses averaged over batches
    test_loss: float | None = None
    num: int | None = None  # the row number in Table 1
    tolerance: float = 1.0  # accuracy points either side of `accuracy` that count as reproduced
    metric: str = FINAL  # `accuracy` is the best epoch's (BEST) or the last epoch's (FINAL)
    notes: tuple[str, ...] = ()  # sources and caveats behind the claim, shown on the entry's card
    digits: int | None = None  # decimals `accuracy` was printed with (89.10: 2); None: as written

    @property
    def accuracy_text(self) -> str | None:
        """`accuracy` as the paper printed it, at its own precision: 84.8, 89.10, 91.78."""
        if self.accuracy is None:
            return None
        return (
            f"{self.accuracy:.{self.digits}f}" if self.digits is not None else repr(self.accuracy)
        )

    def __post_init__(self):
        if self.metric not in METRICS:
            raise RegistryError(f"Paper.metric: one of {', '.join(METRICS)}, got {self.metric!r}")
        if isinstance(self.notes, str):  # a lone string would be shown one character a line
            raise RegistryError("Paper.notes: a tuple of strings, not one string")


@dataclass(frozen=True)
class Entry:
    name: str  # "group/name", unique
    description: str  # one line
    model: ResNetConfig
    train: TrainConfig
    paper: Paper = field(default_factory=Paper)
    version: int = 1  # bump when code the configs don't capture changes what the entry computes

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def param_count(self) -> int:
        return count_parameters(self.model)

    def config_hash(self, train: TrainConfig | None = None) -> str:
        return config_hash(self.model, train or self.train)


def config_hash(model: ResNetConfig, train: TrainConfig) -> str:
    """Identity of what a run computes: the model and the training recipe, nothing else."""
    blob = json.dumps({"model": model.flat(), "train": asdict(train)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def arch(
    layers: int = 4,
    blocks=(2, 2, 2, 2),
    channels=(64, 128, 256, 512),
    conv_kernel=3,
    skip_kernel=1,
    pool_kernel: int = 4,
) -> ResNetConfig:
    """A ResNetConfig in the paper's terms: N, B_i, C_i, F_i, K_i, P (scalars for every layer)."""
    return ResNetConfig(
        layers=layers,
        blocks=blocks,
        channels=channels,
        conv_kernel=conv_kernel,
        skip_kernel=skip_kernel,
        pool_kernel=pool_kernel,
    )


_ENTRIES: dict[str, Entry] = {}
_loaded = False


def _add(e: Entry) -> None:
    if e.name in _ENTRIES:
        raise RegistryError(f"duplicate entry name {e.name!r}")
    _ENTRIES[e.name] = e


def entry(name: str, paper: Paper | None = None, version: int = 1) -> Callable:
    """Register the decorated function's configs under `name`; `version` is the entry's code
    version."""

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
        _add(Entry(name, doc[0] if doc else name, model, train, paper or Paper(), version))
        return fn

    return decorate


def _broken(path: str, e: Exception) -> RegistryError:
    """A file of entries that cannot be executed, as one line naming the file, the line and the
    message."""
    if isinstance(e, SyntaxError):
        return RegistryError(f"{e.filename or path}:{e.lineno}: {type(e).__name__}: {e.msg}")
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
    line = f":{frames[-1].lineno}" if frames else ""
    return RegistryError(f"{path}{line}: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")


def _execute(path: Path, module: str, reload: bool = False) -> None:
    """Run one file of entries (a module of the package, or a file elsewhere); its decorators
    register."""
    try:
        if module in sys.modules and reload:
            importlib.reload(sys.modules[module])
        elif module.startswith("benchmarks.entries."):
            importlib.import_module(module)
        else:
            spec = importlib.util.spec_from_file_location(module, path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except RegistryError:
        raise
    except Exception as e:  # a syntax error, a bad import, a typo: whatever the file's author left
        raise _broken(str(path), e) from None


def _discover(reload: bool = False) -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import benchmarks.entries as pkg

    mods = sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: (m.name != "paper", m.name))
    for mod in mods:
        _execute(
            Path(mod.module_finder.path) / f"{mod.name}.py", f"{pkg.__name__}.{mod.name}", reload
        )
    for folder in filter(None, os.environ.get(ENV_PATH, "").split(os.pathsep)):
        for path in sorted(_trusted(Path(folder)).glob("*.py")):
            load_file(_trusted(path))


def _trusted(path: Path) -> Path:
    """`path` from $RESBENCH_ENTRIES_PATH, refused unless only you (or root) can change what runs.

    Every *.py there is executed as your code, so a relative folder (it moves with the working
    directory), or one that another user owns or can write to (or can swap, through a parent
    folder), would let them run code as you. Sticky parents such as /tmp cannot be used to swap.
    """
    if not path.is_absolute():
        raise RegistryError(
            f"${ENV_PATH}: {path} is relative; list absolute folders (their *.py files run as code)"
        )
    real = path.resolve()
    for p in [real, *real.parents]:
        if not p.exists():
            continue
        st = p.stat()
        sticky_parent = p != real and st.st_mode & stat.S_ISVTX
        if st.st_uid not in (os.geteuid(), 0):
            problem = f"owned by another user (uid {st.st_uid})"
        elif st.st_mode & 0o022 and not sticky_parent:
            problem = f"writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
        else:
            continue
        raise RegistryError(
            f"${ENV_PATH}: {p} is {problem}; its *.py files run as your code, "
            f"so only you (or root) may own and write it"
        )
    return path


def load_file(path: str | os.PathLike) -> None:
    """Register the entries of one more file (a generated sweep, or one outside the package)."""
    _discover()
    path = Path(path)
    _execute(path, f"resbench_entries_{path.stem}")


@contextmanager
def temporary(extra: Iterable[Entry] = (), fresh: bool = False) -> Iterator[None]:
    """A registry for the duration of the block, put back as it was afterwards (for tests).

    It holds the registered entries plus `extra`, and whatever `load_file` registers inside the
    block; with `fresh`, the entry files as a new process would find them now (the package's
    and $RESBENCH_ENTRIES_PATH's) instead of the entries registered so far.
    """
    global _ENTRIES, _loaded
    _discover()
    saved = _ENTRIES, _loaded
    _ENTRIES, _loaded = ({}, False) if fresh else (dict(saved[0]), True)
    try:
        _discover(reload=True)
        for e in extra:
            _add(e)
        yield
    finally:
        _ENTRIES, _loaded = saved


def entries() -> list[Entry]:
    """Every registered entry, in registry order."""
    _discover()
    return list(_ENTRIES.values())


def get(name: str) -> Entry:
    _discover()
    if name not in _ENTRIES:
        close = [n for n in _ENTRIES if name in n] or list(_ENTRIES)[:3]
        raise RegistryError(
            f"unknown entry {name!r} (try: {', '.join(close)}; `resbench list` shows all)"
        )
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
