"""Writing files so that a reader never sees half of one: the project's one atomic-write helper.

Everything resbench writes for others to read (checkpoints, reports, figures, generated entry
files) goes through `atomic_write`: a temporary file beside the target, flushed and fsynced, then
renamed over it. A crash or a full disk leaves the previous file intact and no temporary file.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file beside `path` for writing (`mode` "w" or "wb"); on success it
    replaces `path`, on any error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
