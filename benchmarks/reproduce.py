"""`resbench reproduce`: train every selected entry and seed not yet finished, then write the report.

An (entry, seed) is done when the store holds a FINISHED run of it with the same identity
(config hash, data checksum and limits, entry version); one whose identity changed is trained
again, and `force` trains everything again. Before anything trains, the pre-flight
(benchmarks/check.py) tries each entry to be trained on generated batches and stops on a
broken one (`check=False` skips it). Runs go one after another in this process, or through an
executor (benchmarks/executors.py): `jobs` at a time per GPU as `python -m benchmarks.cli run`
children, or as Ray tasks on a cluster. A run that fails, diverges or loses its worker is
reported and the rest go on.
"""
from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import check as preflight_mod
from benchmarks import executors, report, selection
from benchmarks.registry import Entry
from benchmarks.runner import DataSpec, run_entry
from resnet.data import Dataset
from resnet.train import ExecConfig
from tracking import Tracker, TrackingError, connect, resolve_uri


@dataclass(frozen=True)
class Job:
    entry: Entry
    seed: int
    why: str = "new"  # or "identity changed": a finished run exists, of another identity

    @property
    def name(self) -> str:
        return f"{self.entry.name} seed={self.seed}"


def plan(entries: list[Entry], seeds: int, runs, variant: selection.Variant, source: str,
         force: bool, checksum: str | None = None) -> tuple[list[Job], int]:
    """(jobs still to run, how many are already done).

    Done means a FINISHED run of the same identity, given the data's `checksum`; without one,
    of the same configuration, entry version and data source.
    """
    todo, done = [], 0
    for e in entries:
        mine = runs[selection.matching(runs, e, variant, source)]
        if checksum is not None:
            mine = mine[mine["identity"].eq(variant.identity(e, checksum))]
        finished = set(selection.counted(mine)["seed"])
        before = set(runs.loc[runs["entry"].eq(e.name) & runs["status"].eq("FINISHED")
                              & runs["config_hash"].eq(variant.config_hash(e)), "seed"])
        for seed in range(seeds):
            if seed in finished and not force:
                done += 1
            else:
                todo.append(Job(e, seed, "identity changed" if seed in before and seed not in finished else "new"))
    return todo, done


def _preflight(todo: list[Job], variant: selection.Variant, ex: ExecConfig, ray: bool, data: Dataset, log) -> None:
    """Check every entry about to train (raises CheckError on a broken one) and log the time it will take."""
    planned = Counter(job.entry.name for job in todo)
    entries = list({job.entry.name: job.entry for job in todo}.values())
    if ray and not torch.cuda.is_available():  # the workers have the devices; this driver checks on its CPU
        ex = dataclasses.replace(ex, device="cpu")
    preflight_mod.preflight(entries, variant.train, ex, len(data.train_y), len(data.test_y),
                            runs_of=lambda e: planned[e.name], steps=1, log=log)


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
              executor: executors.ExecutorConfig | None = None, check: bool = True) -> tuple[list[Path], list[str]]:
    """Run what is missing and write the report; returns (files written, runs that failed)."""
    variant = selection.Variant.of(overrides, spec.limit_train, spec.limit_test)
    for e in entries:  # every override checked before anything trains
        variant.train(e)
    executor = executor or executors.ExecutorConfig(jobs=jobs)
    if executor.kind != "ray":  # with Ray the workers' devices matter, not this driver's
        ex.torch_device()
    uri = resolve_uri(uri)
    executors.check(executor, ex, uri)  # e.g. a Ray cluster with a local store: refused before it is created
    tracker = connect(uri, experiment)  # creates the store once, before any child could race to
    data = spec.load()
    runs = selection.load_runs(uri, experiment)
    todo, done = plan(entries, seeds, runs, variant, data.source, force, data.checksum)
    changed = sum(job.why == "identity changed" for job in todo)
    log(f"{len(entries)} entries x {seeds} seed(s) on {data.source}: {done} already finished, {len(todo)} to run"
        + (f" ({changed} because their identity changed)" if changed else ""))
    if check and todo:
        _preflight(todo, variant, ex, executor.kind == "ray", data, log)
    source = data.source
    if executor.parallel(len(todo)):
        del data  # the children or Ray workers load their own copy
        work = executors.Work(uri, experiment, overrides, spec, ex, checkpoint_dir)
        failed = executors.run(executor, todo, work, lambda job: child_command(
            job, uri, experiment, overrides, spec, ex, checkpoint_dir), log)
    else:
        failed = _inline(todo, tracker, data, spec, overrides, ex, checkpoint_dir, log)
    r = report.build(selection.load_runs(uri, experiment), uri, experiment, variant, source)
    return report.write(r, output), failed
