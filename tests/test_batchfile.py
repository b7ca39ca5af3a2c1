"""Hostile CIFAR-10 batch files: every one under the size cap is refused in under 2 s with a peak
under 200 MB, measured in a child process as the reader's real cost.

The peak is the child's VmHWM (its own resident high-water mark): on Linux `ru_maxrss` carries the
forking parent's resident size across fork and exec, so a big test runner would inflate it."""

import json
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest

from resnet import batchfile

PEAK_BYTES = 200 << 20
SECONDS = 2.0

# Reads each file named on the command line with resnet.data.read_batch and prints one JSON line
# per file, then the process's peak resident memory. The address space is capped so that a reader
# that does blow up fails this test with a MemoryError instead of swapping the machine.
CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
from pathlib import Path
from resnet import data
for name in sys.argv[1:]:
    start = time.perf_counter()
    try:
        x, y = data.read_batch(Path(name))
        outcome = {"loaded": list(x.shape)}
    except data.DataError as e:
        outcome = {"error": str(e)}
    except BaseException as e:
        outcome = {"crash": type(e).__name__}
    outcome["seconds"] = time.perf_counter() - start
    print(json.dumps(outcome), flush=True)
status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
print(json.dumps({"peak": int(status.split()[0]) * 1024}))
"""


def read_in_child(*paths) -> tuple[list[dict], int]:
    """What reading each file did, and the child's peak resident bytes over all of them."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and lines and "peak" in lines[-1], done.stderr[-2000:]
    return lines[:-1], lines[-1]["peak"]


def assert_refused_small_and_fast(outcome: dict, path) -> None:
    assert "error" in outcome, outcome
    message = outcome["error"]
    assert f"{path} is not a readable CIFAR-10 batch" in message
    assert "\n" not in message and len(message) < len(str(path)) + 400  # types and sizes only
    assert outcome["seconds"] < SECONDS


class Reduce:
    """Pickles as `func(*args)` (then `BUILD state`)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) + (() if self.state is None else (self.state,))


def nested(depth: int, width: int = 10, kind=list):
    """`width ** depth` zeros in a few hundred bytes of pickle: each level repeats one object."""
    level = kind([0] * width)
    for _ in range(depth - 1):
        level = kind([level] * width)
    return level


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]


def batch_pickle(n: int = 20, protocol: int = 2, **fields) -> bytes:
    batch = {
        "data": np.zeros((n, 3072), np.uint8),
        "labels": [i % 10 for i in range(n)],
        "batch_label": "testing batch 1 of 1",
        "filenames": [f"{i}.png" for i in range(n)],
    }
    return pickle.dumps({**batch, **fields}, protocol=protocol)


def _hostile() -> dict[str, bytes]:
    from numpy._core.multiarray import scalar

    wide = nested(6, width=40)  # 40**6 = 4.1e9 zeros in ~1 KB
    return {
        # the shape, dtype or labels that an error message would once repr() whole
        "nested-lists-as-shape": batch_pickle(data=Reduce(_RECONSTRUCT, (np.ndarray, wide, b"b"))),
        "nested-lists-as-labels": batch_pickle(labels=wide),
        "nested-tuples-as-dict-key": pickle.dumps({nested(9, kind=tuple): 0}, protocol=2),
        "nested-lists-in-state": batch_pickle(
            data=Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, wide, np.dtype("u1"), 0, b""))
        ),
        # LONG_BINPUT to index 2**28 - 1: an unpickler grows its memo table to that size
        "memo-index": b"\x80\x02Nr\xff\xff\xff\x0f.",
        "numpy-scalar": batch_pickle(data=Reduce(scalar, (np.dtype("V1000000000"),))),
        "numpy-scalar-subarray": batch_pickle(
            data=Reduce(scalar, (np.dtype(("u1", (1000, 1000, 1000))),))
        ),
        "huge-array-shape": batch_pickle(
            data=Reduce(_RECONSTRUCT, (np.ndarray, (100_000, 100_000), b"b"))
        ),
        "object-array": batch_pickle(
            data=Reduce(
                _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10**8,), np.dtype("O"), 0, [0])
            )
        ),
        # lengths that claim far more than the file holds
        "bytes8-length": b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b"x.",
        "unicode8-length": b"\x80\x04\x8d" + (1 << 40).to_bytes(8, "little") + b"x.",
        # a GLOBAL whose name never ends, and an opcode flood: NONE, POP repeated
        "endless-global-name": b"\x80\x02c" + b"m" * (8 << 20),
        "opcode-flood": b"\x80\x02" + b"N0" * (8 << 20) + b"N.",
        # one big string used as the array's text three times over
        "encode-repeated": b"\x80\x02"
        + b"X"
        + (20 << 20).to_bytes(4, "little")
        + b"a" * (20 << 20)
        + b"q\x00"
        + (b"c_codecs\nencode\nh\x00X\x06\x00\x00\x00latin1\x86R0") * 3
        + b"N.",
        # text just under the size cap, as the array's bytes: read, decoded, encoded once
        "cap-sized-text": b"\x80\x02c_codecs\nencode\nX"
        + (60 << 20).to_bytes(4, "little")
        + "\u00e9".encode() * (30 << 20)
        + b"X\x06\x00\x00\x00latin1\x86R.",
        "list-holding-itself": b"\x80\x02]q\x00h\x00a.",
        "text-protocol-string": b"S" + b"\xff" * (8 << 20) + b"\n.",
        "random-bytes": random.Random(0).randbytes(1 << 20),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_batch_is_refused_small_and_fast(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    assert path.stat().st_size < batchfile.MAX_FILE_BYTES
    [outcome], peak = read_in_child(path)
    assert_refused_small_and_fast(outcome, path)
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MB"


def test_the_cited_shapes_are_tiny():
    assert len(HOSTILE["memo-index"]) == 9
    assert len(HOSTILE["nested-lists-as-shape"]) < 5000
    assert len(HOSTILE["numpy-scalar"]) < 1000


def py2_batch(x: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle (protocol 2) wrote the official files: byte-string keys
    and the raw image bytes as one BINSTRING."""
    out = [b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03"]
    out.append(b"cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01")
    out.append(b"K" + bytes([x.shape[0]]) + b"M\x00\x0c\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01")
    out.append(b"\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
    out.append(
        b"T" + len(x.tobytes()).to_bytes(4, "little") + x.tobytes() + b"tbU\x06labels]q\x08("
    )
    out.append(b"".join(b"K" + bytes([v]) for v in labels) + b"eU\x0bbatch_labelU\x01tu.")
    return b"".join(out)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_of_every_protocol_load_exactly(tmp_path, protocol):
    x = np.random.default_rng(protocol).integers(0, 256, (30, 3072), dtype=np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": x, "labels": [3] * 30}, protocol=protocol))
    images, labels = batchfile.read(path)
    assert np.array_equal(images.reshape(30, 3072), x) and labels.tolist() == [3] * 30
    assert images.flags.writeable


def test_python2_batches_load_exactly(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 3072), dtype=np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(py2_batch(x, list(range(10)) + [0, 1]))
    images, labels = batchfile.read(path)
    assert np.array_equal(images.reshape(12, 3072), x)
    assert labels.tolist() == list(range(10)) + [0, 1]


def test_a_full_size_batch_loads_in_bounds(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (10_000, 3072), dtype=np.uint8)
    good = tmp_path / "good"
    good.write_bytes(batch_pickle(10_000, protocol=4, data=x))
    py2 = tmp_path / "py2"
    py2.write_bytes(py2_batch(x[:200], [0] * 200))
    [loaded, loaded_py2], peak = read_in_child(good, py2)
    assert loaded["loaded"] == [10_000, 3, 32, 32] and loaded_py2["loaded"] == [200, 3, 32, 32]
    assert loaded["seconds"] < SECONDS and peak < PEAK_BYTES


def _mutants(seed: int, seeds: list[bytes], count: int):
    rng = random.Random(seed)
    for _ in range(count):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(b))
            action = rng.random()
            if action < 0.4:
                b[at] = rng.randrange(256)
            elif action < 0.6:
                b[at:at] = rng.randbytes(rng.randint(1, 9))
            elif action < 0.8:
                end = min(len(b), at + rng.randint(1, 64))
                b[at:at] = b[at:end] * rng.randint(1, 1000)  # repeat a stretch of opcodes
            else:
                del b[at:]
                b += rng.randbytes(rng.randint(0, 16))
        yield bytes(b)


def test_fuzzed_batches_are_refused_or_loaded_within_bounds(tmp_path):
    seeds = [batch_pickle(protocol=p) for p in (2, 4, 5)]
    seeds.append(py2_batch(np.zeros((5, 3072), np.uint8), [1] * 5))
    seeds += [HOSTILE["memo-index"], HOSTILE["nested-lists-as-shape"], HOSTILE["numpy-scalar"]]
    paths = []
    for i, mutant in enumerate(_mutants(23, seeds, 400)):
        paths.append(tmp_path / f"m{i}")
        paths[-1].write_bytes(mutant)
    outcomes, peak = read_in_child(*paths)
    assert len(outcomes) == len(paths)
    for path, outcome in zip(paths, outcomes, strict=True):
        assert "crash" not in outcome, (path, outcome)
        if "error" in outcome:
            assert_refused_small_and_fast(outcome, path)
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MB"
