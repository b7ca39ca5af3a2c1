"""`resbench reproduce`: train every selected entry and seed not yet finished, then write the
report.

An (entry, seed) is done when the store holds a FINISHED run of it with the same run key
(benchmarks/runkey.py: config hash, data checksum and limits, entry version, and the mode it
computes in: precision, pipeline, compilation); one whose key changed is trained again, and
`force` trains everything again. Planning reads the runs through `selection` (the
variant, matching and counted runs), never through the report. Before anything trains, the
pre-flight (benchmarks/check.py) tries each entry to be trained on generated batches and stops
on a broken one (`check=False` skips it). Each job is a `JobSpec` trained by `train_job`: one
after another in this process, as child processes, or as Ray tasks (benchmarks/jobs/). A run that
fails, diverges or loses its worker is reported and the rest go on. Last, the report is written.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from benchmarks import check as preflight_mod
from benchmarks import registry, runkey, selection
from benchmarks.jobs import executor, local
from benchmarks.jobs import ray as ray_jobs
from benchmarks.jobs.spec import JobSettings
from benchmarks.registry import Entry, RegistryError
from benchmarks.report import build, render
from benchmarks.report.commands import report_command
from benchmarks.report.table import TableRequest
from benchmarks.runkey import Mode
from resnet.data import Dataset
from tracking.tracker import connect


@dataclass(frozen=True)
class Job:
    """One (entry, seed) still to train, and why: "new", or "identity changed" (a finished run of
    its configuration exists under another key: code version, data, limits or mode)."""

    entry: Entry
    seed: int
    why: str = "new"


def plan(
    entries: list[Entry],
    seeds: int,
    runs: pd.DataFrame,
    variant: selection.Variant,
    source: str,
    force: bool,
    checksum: str | None = None,
    modes: Mapping[str, Mode] | None = None,
) -> tuple[list[Job], int]:
    """(jobs still to run, how many are already done).

    Done means a FINISHED run of the same key (benchmarks/runkey.py), given the data's `checksum`
    and each entry's mode in `modes` (by entry name; default fp32, fast, not compiled); without a
    checksum, of the same key in any data checksum.
    """
    todo, done = [], 0
    for e in entries:
        key = variant.key(e, source, checksum or "", (modes or {}).get(e.name, Mode()))
        mine = runs[runkey.same(runs, key, () if checksum is not None else (runkey.CHECKSUM,))]
        finished = set(selection.counted(mine)["seed"])
        config = runkey.same(runs, key, _CONFIG_ONLY)
        before = set(runs.loc[config & runs["status"].eq("FINISHED"), "seed"])
        for seed in range(seeds):
            if seed in finished and not force:
                done += 1
            else:
                changed = seed in before and seed not in finished
                todo.append(Job(e, seed, "identity changed" if changed else "new"))
    return todo, done


# A finished run of the entry in the same configuration, whatever else its key says.
_CONFIG_ONLY = (runkey.VERSION, runkey.DATA, runkey.CHECKSUM, runkey.LIMITS, runkey.MODE)


def planned_mode(shared: JobSettings, entry: Entry, ray: bool) -> Mode:
    """The mode `shared`'s jobs of `entry` run in: on this machine's device, or with Ray on the
    workers' (a GPU, unless the device asked for is the CPU)."""
    if ray:
        device = "cpu" if shared.ex.device == "cpu" else "cuda"
    else:
        device = shared.ex.torch_device().type
    return Mode.of(shared.ex, device, shared.variant.train(entry).optimizer)


def _preflight(todo: list[Job], shared: JobSettings, ray: bool, data: Dataset, log) -> None:
    """Check every entry about to train (raises CheckError on a broken one) and log the time it will
    take."""
    planned = Counter(job.entry.name for job in todo)
    entries = list({job.entry.name: job.entry for job in todo}.values())
    ex = shared.ex
    # the workers have the devices; this driver checks on its CPU
    if ray and not torch.cuda.is_available():
        ex = dataclasses.replace(ex, device="cpu")
    preflight_mod.preflight(
        entries,
        shared.variant.train,
        ex,
        len(data.train_y),
        len(data.test_y),
        runs_of=lambda e: planned[e.name],
        steps=1,
        log=log,
    )


def _registered(entries: list[Entry]) -> None:
    """Jobs name their entry; a worker finds it in the registry, so it must be the one
    registered."""
    for e in entries:
        if registry.get(e.name) != e:
            raise RegistryError(f"entry {e.name!r} differs from the one registered under that name")


def reproduce(
    entries: list[Entry],
    seeds: int,
    shared: JobSettings,
    output: Path,
    *,
    force: bool = False,
    placement: executor.ExecutorConfig = executor.ExecutorConfig(),
    check: bool = True,
    log=print,
) -> tuple[list[Path], list[str]]:
    """Run what is missing and write the report; returns (files written, runs that failed).

    `shared` is what every job shares (overrides, data, execution, store, checkpoints); each
    job completes it with its entry and seed.
    """
    _registered(entries)
    variant = shared.variant
    # e.g. a Ray cluster with a local store: refused first
    executor.check(placement, shared.ex, shared.tracking_uri)
    # creates the store once, before any child could race to
    connect(shared.tracking_uri, shared.experiment)
    data = shared.data.load()
    runs = selection.load_runs(shared.tracking_uri, shared.experiment)
    modes = {e.name: planned_mode(shared, e, placement.kind == "ray") for e in entries}
    todo, done = plan(entries, seeds, runs, variant, data.source, force, data.checksum, modes)
    changed = sum(job.why == "identity changed" for job in todo)
    log(
        f"{len(entries)} entries x {seeds} seed(s) on {data.source}: {done} already finished, "
        f"{len(todo)} to run" + (f" ({changed} because their identity changed)" if changed else "")
    )
    if check and todo:
        _preflight(todo, shared, placement.kind == "ray", data, log)
    specs, source = [shared.job(job.entry.name, job.seed) for job in todo], data.source
    if placement.parallel(len(specs)):
        del data  # the children or Ray workers load their own copy
        run = ray_jobs.run_ray if placement.kind == "ray" else local.run_children
        failed = run(placement, specs, log)
    else:
        failed = local.run_inline(specs, data, log)
    wanted = _shared_fields(list(modes.values()))
    table = TableRequest.of(variant, source, mode=wanted, planned=seeds)
    runs = selection.load_runs(shared.tracking_uri, shared.experiment)
    r = build.build(runs, shared.tracking_uri, shared.experiment, table)
    written = render.write(r, output)
    command = report_command(variant, source, shared.tracking_uri, shared.experiment, mode=wanted)
    log(f"tabulate: {command}")
    return written, failed


def _shared_fields(modes: list[Mode]) -> dict[str, str]:
    """The fields of a Mode that `modes` all agree on (what the report is asked to be about)."""
    fields = [asdict(m) for m in modes]
    return {k: v for k, v in fields[0].items() if all(f[k] == v for f in fields)} if fields else {}
