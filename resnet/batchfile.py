"""One CIFAR-10 python batch file, read without an unpickler.

A batch is a pickle of a fixed layout: a dict of `data` (uint8, N x 3072), `labels` (N ints
0-9), `batch_label` and `filenames`. `read` walks the file's opcodes with `pickletools`' opcode
table, refusing any outside the allow-list before its argument is read, and hands them to the
cut-down stack machine of resnet/batchpickle.py, which builds only that. The file size and the
number of opcodes are bounded here, the rest there: a file under the size cap therefore costs at
most a few times its size in memory and well under a second. Errors name opcodes, types and
sizes, never the file's contents.
"""

from __future__ import annotations

import pickletools
from pathlib import Path

import numpy as np

from resnet.batchpickle import (
    ALLOWED,
    IMAGE_BYTES,
    MAX_IMAGES,
    MAX_OPCODES,
    BatchError,
    Machine,
    Pending,
    type_name,
)

MAX_FILE_BYTES = 64 << 20  # an official batch is ~31 MB on disk
MAX_NAME = 256  # a GLOBAL's module or name, read up to a newline


class _File:
    """The file as pickletools reads it: no read asks for more than is left, whatever a length
    says, and no line is longer than a global's name."""

    def __init__(self, f, size: int):
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(self._left if n < 0 else min(n, self._left))
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(min(MAX_NAME, self._left))
        self._left -= len(line)
        return line

    def tell(self) -> int:
        return self._f.tell()


def _opcodes(f: _File):
    """(opcode, argument, byte offset) of each opcode, as `pickletools.genops` gives them, but
    refusing an opcode outside the allow-list before its argument is read."""
    while True:
        pos = f.tell()
        code = f.read(1)
        op = pickletools.code2op.get(code.decode("latin-1"))
        if op is None or op.name not in ALLOWED:
            what = "the end of the file" if not code else f"opcode {op.name if op else code[0]}"
            raise BatchError(f"{what}, which no CIFAR-10 batch has there")
        yield op, None if op.arg is None else op.arg.reader(f), pos


def _parse(f, size: int):
    machine = Machine()
    pos = 0
    try:
        for count, (op, arg, at) in enumerate(_opcodes(_File(f, size)), 1):
            pos = at
            if count > MAX_OPCODES:
                raise BatchError(f"more than {MAX_OPCODES:,} opcodes (a batch has about 31,000)")
            if op.name == "STOP":
                if len(machine.stack) != 1 or machine.marks:
                    raise BatchError("a pickle that stops with more than one object")
                return machine.stack[0]
            machine.step(op.name, arg)
    except BatchError as e:
        raise BatchError(f"{e} (at byte {pos or 0:,})") from None
    except Exception as e:  # pickletools' own errors can quote the bytes they choked on: not shown
        raise BatchError(f"a malformed pickle ({type_name(e)} at byte {pos or 0:,})") from None


def _checked(batch) -> tuple[np.ndarray, np.ndarray]:
    if type(batch) is not dict or "data" not in batch or "labels" not in batch:
        raise BatchError(f"a {type_name(batch)}, not a dict with 'data' and 'labels'")
    x, labels = batch["data"], batch["labels"]
    if type(x) is Pending:
        x = x.array
    if not (
        type(x) is np.ndarray
        and x.ndim == 2
        and x.shape[1] == IMAGE_BYTES
        and 0 < x.shape[0] <= MAX_IMAGES
    ):
        raise BatchError(
            f"'data' ({type_name(x)}) is not a uint8 array of at most {MAX_IMAGES} rows "
            f"of {IMAGE_BYTES} bytes"
        )
    if type(labels) not in (list, tuple) or len(labels) != len(x):
        raise BatchError(f"'labels' ({type_name(labels)}) is not a list of {len(x)} labels")
    if not all(type(v) is int and 0 <= v <= 9 for v in labels):
        raise BatchError("'labels' holds something other than the integers 0-9")
    return x.reshape(-1, 3, 32, 32).copy(), np.array(labels, dtype=np.int64)


def read(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The images (uint8 N x 3 x 32 x 32) and labels (int64 N) of one batch file at `path`."""
    path = Path(path)
    with open(path, "rb") as f:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BatchError(f"a file of {size:,} bytes (a batch is at most {MAX_FILE_BYTES:,})")
        batch = _parse(f, size)
    return _checked(batch)
