"""The pickle stack machine that builds a CIFAR-10 batch, and nothing else.

It is cut down to the opcodes a batch uses (`ALLOWED`): strings, numbers, lists, tuples and
dicts, and the one numpy array, through the few numpy and codec calls that pickles of arrays use
(Python 2's `_reconstruct` + raw string, Python 3's `_codecs.encode(..., "latin1")`, protocol 5's
`_frombuffer`). Any other global is refused before it is built, and what is built is bounded: the
memo, the array's size and shape, and the bytes that calls may make. Errors (`BatchError`) name
opcodes, types and sizes, never the file's contents.
"""

from __future__ import annotations

import math

import numpy as np

# Bounds, from what an official batch holds: 10,000 images of 3 x 32 x 32 bytes,
# 10,000 labels and 10,000 file names (about 31,000 opcodes in all).
MAX_IMAGES = 10_000
IMAGE_BYTES = 3 * 32 * 32
MAX_ARRAY_BYTES = MAX_IMAGES * IMAGE_BYTES
MAX_OPCODES = 100_000
MAX_DIMS = 32

# the callables a pickled uint8 array names, and what each stands for here
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",
}
_VALUES = {"NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False}
_VALUES.update(EMPTY_DICT=dict, EMPTY_LIST=list, EMPTY_TUPLE=tuple)
# opcodes whose argument is the value itself (decoded by pickletools, within the file's bytes)
_LITERALS = {
    "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING",
    "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8",
}  # fmt: skip
_STRUCTURE = {
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK",
    "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "LIST", "DICT",
    "APPEND", "APPENDS", "SETITEM", "SETITEMS",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
}  # fmt: skip
ALLOWED = _STRUCTURE | _LITERALS | set(_VALUES)
_KEY_TYPES = (str, bytes, int, type(None))  # cheap to hash, whatever they hold


class BatchError(ValueError):
    """A file that is not a CIFAR-10 batch; the message names types and sizes, not contents."""


class _Global:
    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind


class Pending:
    """`_reconstruct`'s empty array, waiting for its BUILD state."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None


def type_name(value) -> str:
    """The name of `value`'s type: what errors show instead of the value."""
    return type(value).__name__


class Machine:
    """The pickle stack machine, cut down to what a batch uses, with every allocation bounded."""

    def __init__(self):
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.made_bytes = 0  # bytes that encode calls have made

    def pop(self):
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise BatchError("a pickle that pops an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            raise BatchError("a pickle that pops a mark it never set")
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at:]
        return items

    def peek(self):
        if not self.stack or (self.marks and len(self.stack) <= self.marks[-1]):
            raise BatchError("a pickle that reads an empty stack")
        return self.stack[-1]

    def top(self, kind: type):
        if type(self.peek()) is not kind:
            raise BatchError(
                f"a pickle that fills a {type_name(self.stack[-1])} as a {kind.__name__}"
            )
        return self.stack[-1]

    def set_items(self, items: list) -> None:
        if len(items) % 2:
            raise BatchError("a pickle with a dict key and no value")
        target = self.top(dict)
        for key, value in zip(items[::2], items[1::2], strict=True):
            if not isinstance(key, _KEY_TYPES):
                raise BatchError(f"a pickle with a dict key of type {type_name(key)}")
            target[key.decode("latin1") if type(key) is bytes else key] = value

    def step(self, name: str, arg) -> None:
        if name in _LITERALS:
            self.stack.append(arg)
        elif name in _VALUES:
            self.stack.append(_VALUES[name]())
        elif name == "MARK":
            self.marks.append(len(self.stack))
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = len(self.memo) if name == "MEMOIZE" else arg
            if index > MAX_OPCODES:
                raise BatchError(f"a memo index of {index:,} (a batch uses fewer than 100,000)")
            self.memo[index] = self.peek()
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise BatchError(f"a memo index of {arg:,} that was never set")
            self.stack.append(self.memo[arg])
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self.pop() for _ in range(int(name[-1]))]
            self.stack.append(tuple(reversed(items)))
        elif name == "TUPLE":
            self.stack.append(tuple(self.pop_mark()))
        elif name == "LIST":
            self.stack.append(self.pop_mark())
        elif name == "DICT":
            items = self.pop_mark()
            self.stack.append({})
            self.set_items(items)
        elif name == "APPEND":
            value = self.pop()
            self.top(list).append(value)
        elif name == "APPENDS":
            items = self.pop_mark()
            self.top(list).extend(items)
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            self.set_items([key, value])
        elif name == "SETITEMS":
            self.set_items(self.pop_mark())
        elif name == "POP":
            self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "GLOBAL":
            self.stack.append(_global(*(arg.split(" ", 1) + [""])[:2]))
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            if type(attr) is not str or type(module) is not str:
                raise BatchError("a pickle that names a global with something other than text")
            self.stack.append(_global(module, attr))
        elif name == "REDUCE":
            args, func = self.pop(), self.pop()
            self.stack.append(self.call(func, args))
        elif name == "BUILD":
            state = self.pop()
            self.build(self.peek(), state)
        elif name not in ("PROTO", "FRAME"):
            raise BatchError(f"opcode {name}, which no CIFAR-10 batch uses")

    def call(self, func, args):
        if type(func) is not _Global or type(args) is not tuple:
            raise BatchError(f"a pickle that calls a {type_name(func)}")
        if func.kind == "reconstruct" and len(args) == 3 and type(args[0]) is _Global:
            if args[0].kind == "ndarray":
                return Pending()
        elif func.kind == "dtype" and args[:1] in (("u1",), (b"u1",), ("|u1",)):
            return np.dtype(np.uint8)
        elif func.kind == "encode" and len(args) == 2:
            if args[1] not in ("latin1", "latin-1") or type(args[0]) is not str:
                raise BatchError("a pickle that calls _codecs.encode other than on text to latin1")
            self.made_bytes += len(args[0])
            if self.made_bytes > MAX_ARRAY_BYTES:
                raise BatchError(f"a pickle that encodes more than {MAX_ARRAY_BYTES:,} bytes")
            try:
                return args[0].encode("latin1")
            except UnicodeEncodeError:
                raise BatchError("a pickle whose array text is not latin1") from None
        elif func.kind == "frombuffer" and len(args) == 4:
            return _array(args[1], args[2], args[0], args[3] == "F")
        raise BatchError(f"a pickle that calls {func.kind} with {len(args)} arguments it refuses")

    def build(self, target, state) -> None:
        if isinstance(target, np.dtype) and type(state) is tuple:
            return  # uint8 has no byte order or fields to set
        if type(target) is not Pending or target.array is not None:
            raise BatchError(f"a pickle that sets the state of a {type_name(target)}")
        if type(state) is not tuple or len(state) not in (4, 5):
            raise BatchError(f"an array state of type {type_name(state)} that is not numpy's")
        shape, dtype, fortran, raw = state[-4:]
        if type(raw) is str:
            self.made_bytes += len(raw)
            if self.made_bytes > MAX_ARRAY_BYTES:
                raise BatchError(f"a pickle that encodes more than {MAX_ARRAY_BYTES:,} bytes")
            try:
                raw = raw.encode("latin1")
            except UnicodeEncodeError:
                raise BatchError("a pickle whose array text is not latin1") from None
        target.array = _array(dtype, shape, raw, fortran is True)
        self.stack[-1] = target.array


def _global(module: str, name: str) -> _Global:
    kind = _GLOBALS.get((module, name))
    if kind is None:
        what = f"{module}.{name}"
        shown = what if len(what) <= 80 and what.isprintable() else f"a name of {len(what):,} chars"
        raise BatchError(f"refusing to load {shown}")
    return _Global(kind)


def _array(dtype, shape, raw, fortran: bool) -> np.ndarray:
    """A uint8 array of `shape` over `raw`, refused unless it is one batch's worth or less."""
    if not isinstance(dtype, np.dtype) or dtype != np.uint8:
        raise BatchError(f"an array whose dtype is a {type_name(dtype)} other than uint8")
    if not (
        type(shape) is tuple
        and len(shape) <= MAX_DIMS
        and all(type(n) is int and 0 <= n <= MAX_ARRAY_BYTES for n in shape)
    ):
        raise BatchError(f"an array shape of type {type_name(shape)} that is not a few sizes")
    nbytes = math.prod(shape)
    if nbytes > MAX_ARRAY_BYTES:
        raise BatchError(
            f"an array of {nbytes:,} bytes (a batch holds at most {MAX_ARRAY_BYTES:,})"
        )
    if type(raw) not in (bytes, bytearray) or len(raw) != nbytes:
        raise BatchError(f"array data of {type_name(raw)} that is not {nbytes:,} raw bytes")
    return np.frombuffer(raw, np.uint8).reshape(shape, order="F" if fortran else "C")
