"""Commands that train: `run` (entries, now, in this process), `reproduce` (what is missing, then
the report) and `sweep` (generate entries around one, and optionally reproduce them).

Each builds one JobSettings of what its jobs share (options.job_options) and hands it down whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from benchmarks import registry
from benchmarks import sweep as sweep_mod
from benchmarks.cli.options import executor_options, job_options
from benchmarks.cli.variant import checked
from benchmarks.jobs.executor import ExecutorConfig
from benchmarks.jobs.spec import JobSettings
from benchmarks.registry import RegistryError


def _echo_err(msg: str) -> None:
    click.echo(msg, err=True)


@click.command()
@click.argument("names_", metavar="NAME...", nargs=-1, required=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@job_options(epochs_help="Override the entry's epochs.")
def run(names_, seed, job: JobSettings):
    """Train each entry NAME (names or globs such as 'table1/*') and log it to MLflow."""
    from benchmarks.jobs.local import run_inline
    from benchmarks.report.commands import report_command
    from tracking.tracker import connect

    chosen = checked(registry.select(names_), job.variant)
    # the store first: a bad one is bad input, before the data loads
    connect(job.tracking_uri, job.experiment)
    data = job.data.load()
    failed = run_inline([job.job(e.name, seed) for e in chosen], data, _echo_err, click.echo)
    if len(failed) < len(chosen):
        command = report_command(job.variant, data.source, job.tracking_uri, job.experiment)
        click.echo(f"tabulate: {command}")
    if failed:
        click.echo(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


def _reproduce(
    only: tuple[str, ...],
    seeds: int | None,
    job: JobSettings,
    output: str,
    force: bool = False,
    placement: ExecutorConfig = ExecutorConfig(),
    check: bool = True,
) -> None:
    from benchmarks.reproduce import reproduce as reproduce_all

    chosen = checked(registry.select(only) if only else registry.entries(), job.variant)
    if placement.kind != "ray":  # with Ray the workers' devices matter, not this machine's
        job.ex.torch_device()
    if seeds is None:  # mean ± std needs n >= 3; a CPU cannot afford that for the whole table
        # with Ray the workers' devices matter, not this driver's (which may have no GPU)
        on_gpu = (
            job.ex.device.startswith("cuda")
            if placement.kind == "ray"
            else job.ex.torch_device().type == "cuda"
        )
        seeds = 3 if on_gpu else 1
        if seeds == 1:
            _echo_err(
                "warning: no GPU, so 1 seed per entry (no spread); pass --seeds 3 for mean ± std"
            )
    written, failed = reproduce_all(
        chosen,
        seeds,
        job,
        Path(output),
        force=force,
        placement=placement,
        check=check,
        log=_echo_err,
    )
    for path in written:
        click.echo(str(path))
    if failed:
        click.echo(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@click.command()
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Seeds 0..N-1 per entry [default: 3 on a GPU, 1 on the CPU].",
)
@click.option(
    "--only",
    multiple=True,
    metavar="PATTERN",
    help="Train only these entries (names or globs); the report still has every row.",
)
@click.option("--force", is_flag=True, help="Train again even what has already finished.")
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default="results",
    show_default=True,
    help="Folder for the report and its figures.",
)
@click.option(
    "--check/--no-check",
    "preflight",
    default=True,
    show_default=True,
    help="Pre-flight every entry to be trained (as `resbench check`) and stop on a broken one.",
)
@executor_options
@job_options(here=False)
def reproduce(seeds, only, force, output, preflight, placement: ExecutorConfig, job: JobSettings):
    """Train every entry and seed not yet finished in this configuration, then write the report."""
    _reproduce(only, seeds, job, output, force, placement, preflight)


@click.command()
@click.option("--base", default="paper/final", show_default=True, help="The entry to vary around.")
@click.option("--group", required=True, help="Group name of the generated entries (a new one).")
@click.option(
    "--vary",
    default=",".join(sweep_mod.HYPERPARAMETERS),
    show_default=True,
    help="Hyperparameters to vary, one at a time: N, B, C, F, K, P.",
)
@click.option(
    "--max-params",
    type=click.FloatRange(min=1),
    default=registry.BUDGET,
    show_default=True,
    help="Parameter budget every variant must fit.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the generated entries file [default: benchmarks/entries/].",
)
@click.option(
    "--run", "run_now", is_flag=True, help="Train the sweep now (as `reproduce --only GROUP/*`)."
)
@job_options(exec_fields=("device",), checkpoints=False, here=False)
def sweep(base, group, vary, max_params, out_dir, run_now, job: JobSettings):
    """Generate entries varying one hyperparameter at a time around BASE under a parameter
    budget."""
    base_entry = registry.get(base)
    if any(e.group == group for e in registry.entries()):
        raise RegistryError(
            f"group {group!r} already has entries; pick another name or delete its file"
        )
    variants = sweep_mod.enumerate_sweep(
        base_entry, [v.strip() for v in vary.split(",") if v.strip()], int(max_params)
    )
    command = (
        f"resbench sweep --base {base} --group {group} --vary {vary} --max-params {int(max_params)}"
    )
    path = sweep_mod.write(
        group,
        sweep_mod.render(group, base_entry, variants, command),
        Path(out_dir) if out_dir else sweep_mod.ENTRIES_DIR,
    )
    registry.load_file(path)
    click.echo(f"wrote {len(variants)} entries of group {group!r} to {path}")
    if not run_now:
        click.echo(
            f"train them:  resbench reproduce --only '{group}/*'\nrank them:   resbench report "
            f"--group {group} --rank"
        )
        return
    _reproduce((f"{group}/*",), None, job, "results")
