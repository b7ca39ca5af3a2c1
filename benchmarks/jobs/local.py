"""Jobs on this machine: one after another in this process, or as child processes side by side.

In this process (`resbench run`, and `reproduce` one job at a time) each job goes to `train_job`
with the data loaded once. As children (`reproduce --jobs N`, `--devices`), each job's spec is
written to a JSON file and trained by `python -m benchmarks.jobs SPEC.json`, `jobs` at a time on
each GPU given (each child sees only its GPU through CUDA_VISIBLE_DEVICES; the indices count
within this process's own CUDA_VISIBLE_DEVICES, as torch's do). Either way a job that
fails is reported in one line and the others go on. The store's URI, which may hold a password,
reaches a child through its environment (`URI_ENV`), never its command line or spec file, which
other users of the machine can see (`ps`) or might read.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from benchmarks.jobs.executor import ExecutorConfig, ExecutorError
from benchmarks.jobs.spec import JobSpec
from benchmarks.jobs.train import JobFailed, train_job
from resnet.data import Dataset
from tracking.credentials import redact

# a child's store URI, credentials included (its spec file has it masked)
URI_ENV = "RESBENCH_JOB_TRACKING_URI"


def run_inline(
    specs: list[JobSpec],
    data: Dataset,
    log: Callable[[str], None],
    out: Callable[[str], None] | None = None,
) -> list[str]:
    """Train `specs` one after another on `data` (their spec's data, loaded); returns the names that
    failed.

    Progress goes to `log`, each finished run's line to `out` (default: `log`).
    """
    out = out or log
    failed = []
    for i, spec in enumerate(specs, 1):
        log(
            f"[{i}/{len(specs)}] {spec.name}: training on {data.source} ({len(data.train_y)} train "
            f"images)"
        )
        try:
            run_id = train_job(spec, data)
        except JobFailed as err:  # its run is FAILED; the others still deserve a chance
            failed.append(spec.name)
            log(f"error: {spec.name}: {err}")
            continue
        out(f"[{i}/{len(specs)}] {spec.name}: finished run {run_id}")
    return failed


def job_command(spec_file: Path) -> list[str]:
    """The child process that trains the spec in `spec_file` (benchmarks/jobs/__main__.py)."""
    return [sys.executable, "-m", "benchmarks.jobs", str(spec_file)]


def visible_device(index: int, environ=None) -> str:
    """The CUDA_VISIBLE_DEVICES value that gives a child this process's GPU `index`: the index-th
    entry of this process's own CUDA_VISIBLE_DEVICES (an index, a UUID or a MIG name), else the
    index itself."""
    environ = os.environ if environ is None else environ
    parent = environ.get("CUDA_VISIBLE_DEVICES")
    if parent is None:
        return str(index)
    visible = [d.strip() for d in parent.split(",") if d.strip()]
    if index >= len(visible):
        raise ExecutorError(
            f"--devices {index}: this process sees {len(visible)} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES={parent!r})"
        )
    return visible[index]


def run_children(
    cfg: ExecutorConfig,
    specs: list[JobSpec],
    log: Callable[[str], None],
    command: Callable[[Path], list[str]] = job_command,
) -> list[str]:
    """Train `specs` as child processes, `cfg.jobs` at a time on each of `cfg.devices`; returns the
    names that failed."""
    devices = [visible_device(d) for d in cfg.devices] or [None]
    slots: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(cfg.jobs):  # round-robin, so the first runs spread over every device
        for d in devices:
            slots.put(d)
    width = len(devices) * cfg.jobs
    env = dict(os.environ)
    # `width` trainings sharing the CPU's cores rather than each taking all of them
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // width)))

    def one(spec: JobSpec, path: Path) -> subprocess.CompletedProcess:
        path.write_text(replace(spec, tracking_uri=redact(spec.tracking_uri)).to_json())
        device = slots.get()
        try:
            child_env = {**env, URI_ENV: spec.tracking_uri}
            if device is not None:
                child_env["CUDA_VISIBLE_DEVICES"] = device
            return subprocess.run(command(path), env=child_env, capture_output=True, text=True)
        finally:
            slots.put(device)

    where = f" on GPU(s) {','.join(devices)}, {cfg.jobs} per GPU" if cfg.devices else ""
    log(f"training {len(specs)} runs, {width} at a time{where}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="resbench-jobs-") as tmp:
        pool = ThreadPoolExecutor(max_workers=width)
        try:
            futures = {
                pool.submit(one, spec, Path(tmp) / f"job-{n}.json"): spec
                for n, spec in enumerate(specs)
            }
            for i, fut in enumerate(as_completed(futures), 1):
                spec, proc = futures[fut], fut.result()
                if proc.returncode == 0:
                    log(
                        f"[{i}/{len(specs)}] "
                        f"{(proc.stdout.strip().splitlines() or [spec.name + ': finished'])[-1]}"
                    )
                    continue
                failed.append(spec.name)
                lines = [
                    ln.removeprefix("error: ") for ln in proc.stderr.splitlines() if ln.strip()
                ]
                log(
                    redact(
                        f"error: {spec.name}: "
                        f"{lines[-1] if lines else f'exit status {proc.returncode}'}"
                    )
                )
        finally:  # on Ctrl-C start nothing new; the running children got the same signal
            pool.shutdown(wait=True, cancel_futures=True)
    return failed
