"""`resbench reproduce`: train every selected entry and seed not yet finished, then write the report.

An (entry, seed) is done when the store holds a FINISHED run of it with the same configuration
(config hash and data limits) on the same data source; `force` trains it again. Runs go one
after another in this process, or through an executor (benchmarks/executors.py): `jobs` at a
time per GPU as `python -m benchmarks.cli run` children, or as Ray tasks on a cluster. A run
that fails, diverges or loses its worker is reported and the rest go on.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks import executors, report
from benchmarks.registry import Entry
from benchmarks.runner import DataSpec, run_entry
from resnet.data import Dataset
from resnet.train import ExecConfig
from tracking import Tracker, TrackingError, connect, resolve_uri


@dataclass(frozen=True)
class Job:
    entry: Entry
    seed: int

    @property
    def name(self) -> str:
        return f"{self.entry.name} seed={self.seed}"


def plan(entries: list[Entry], seeds: int, runs, variant: report.Variant, source: str,
         force: bool) -> tuple[list[Job], int]:
    """(jobs still to run, how many are already done)."""
    todo, done = [], 0
    for e in entries:
        finished = set(report.counted(runs[report.matching(runs, e, variant, source)])["seed"])
        for seed in range(seeds):
            if seed in finished and not force:
                done += 1
            else:
                todo.append(Job(e, seed))
    return todo, done


def _inline(jobs: list[Job], tracker: Tracker, data: Dataset, spec: DataSpec, overrides: dict, ex: ExecConfig,
            checkpoint_dir, log) -> list[str]:
    failed = []
    for i, job in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] {job.name}: training on {data.source} ({len(data.train_y)} train images)")
        try:
            run_id = run_entry(job.entry, tracker, data, spec, seed=job.seed, overrides=overrides, ex=ex,
                               checkpoint_dir=checkpoint_dir)
        except TrackingError:
            raise  # the store is gone: nothing after this could be logged either
        except Exception as err:  # run_entry has marked the run FAILED; the others still deserve a chance
            failed.append(job.name)
            log(f"error: {job.name}: {err}")
            continue
        log(f"[{i}/{len(jobs)}] {job.name}: finished run {run_id}")
    return failed


def child_command(job: Job, uri: str, experiment: str, overrides: dict, spec: DataSpec, ex: ExecConfig,
                  checkpoint_dir=None) -> list[str]:
    """The `resbench run` command line that trains `job` exactly as `_inline` would."""
    cmd = [sys.executable, "-m", "benchmarks.cli", "run", job.entry.name, "--seed", str(job.seed),
           "--data", spec.source, "--device", ex.device, "--pipeline", ex.pipeline, "--precision", ex.precision,
           "--compile" if ex.compile else "--no-compile", "--download" if spec.download else "--no-download",
           "--tracking-uri", uri, "--experiment", experiment]
    cmd += [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    cmd += ["--data-dir", str(spec.data_dir)] if spec.data_dir else []
    cmd += ["--checkpoint-dir", str(checkpoint_dir)] if checkpoint_dir else []
    cmd += ["--deterministic"] if ex.deterministic else []
    cmd += [a for flag, n in (("--limit-train", spec.limit_train), ("--limit-test", spec.limit_test)) if n
            for a in (flag, str(n))]
    return cmd


def reproduce(entries: list[Entry], seeds: int, overrides: dict, spec: DataSpec, ex: ExecConfig,
              uri: str | None, experiment: str, output: Path, force: bool = False, jobs: int = 1,
              checkpoint_dir=None, log=print,
              executor: executors.ExecutorConfig | None = None) -> tuple[list[Path], list[str]]:
    """Run what is missing and write the report; returns (files written, runs that failed)."""
    variant = report.Variant.of(overrides, spec.limit_train, spec.limit_test)
    for e in entries:  # every override checked before anything trains
        variant.train(e)
    ex.torch_device()
    uri = resolve_uri(uri)
    executor = executor or executors.ExecutorConfig(jobs=jobs)
    executors.check(executor, ex, uri)  # e.g. a Ray cluster with a local store: refused before it is created
    tracker = connect(uri, experiment)  # creates the store once, before any child could race to
    data = spec.load()
    runs = report.load_runs(uri, experiment)
    todo, done = plan(entries, seeds, runs, variant, data.source, force)
    log(f"{len(entries)} entries x {seeds} seed(s) on {data.source}: {done} already finished, {len(todo)} to run")
    source = data.source
    if executor.parallel(len(todo)):
        del data  # the children or Ray workers load their own copy
        work = executors.Work(uri, experiment, overrides, spec, ex, checkpoint_dir)
        failed = executors.run(executor, todo, work, lambda job: child_command(
            job, uri, experiment, overrides, spec, ex, checkpoint_dir), log)
    else:
        failed = _inline(todo, tracker, data, spec, overrides, ex, checkpoint_dir, log)
    r = report.build(report.load_runs(uri, experiment), uri, experiment, variant, source)
    return report.write(r, output), failed
