"""Writing files so that a reader never sees half of one: the project's one atomic-write helper.

Everything resbench writes for others to read (checkpoints, reports, figures, generated entry
files) goes through `atomic_write`: a temporary file beside the target, flushed and fsynced, then
renamed over it. A crash or a full disk leaves the previous file intact and no temporary file.
The temporary file is made by `tempfile.mkstemp` (a new, unguessable name, opened exclusively), so
a symlink planted in a shared folder is never written through; a target that is a symlink is
replaced by the new regular file, and the file it pointed to is left alone.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file beside `path` for writing (`mode` "w" or "wb"); on success it
    replaces `path`, on any error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp)
    try:
        with open(fd, mode, encoding=None if "b" in mode else encoding) as f:
            os.fchmod(fd, 0o666 & ~_umask())  # what open() would give; mkstemp makes it 0600
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
