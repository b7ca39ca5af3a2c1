"""Commands that measure before training: `speed` (throughput per input pipeline, logged as a speed
run) and `check` (the pre-flight: build, one batch, a time estimate per entry)."""

from __future__ import annotations

import sys

import click

from benchmarks import registry
from benchmarks.cli.group import group
from benchmarks.cli.options import data_options, exec_options, tracking_options
from benchmarks.cli.variant import checked, variant_options
from benchmarks.jobs.spec import DataSpec
from benchmarks.selection import Variant
from resnet.config import ExecConfig


def _speed_config(pipelines, steps, warmup, batch_size, seed) -> dict:
    from benchmarks import speed as speed_mod

    return {
        "sc": speed_mod.SpeedConfig(
            steps=steps,
            warmup=warmup,
            batch_size=batch_size or 0,
            pipelines=speed_mod.parse_pipelines(pipelines),
            seed=seed,
        )
    }


speed_options = group(
    [
        click.option(
            "--pipelines",
            default="fast,reference",
            show_default=True,
            help="Comma-separated pipelines to time, in this order.",
        ),
        click.option(
            "--steps",
            type=click.IntRange(min=1),
            default=100,
            show_default=True,
            help="Timed training steps.",
        ),
        click.option(
            "--warmup",
            type=click.IntRange(min=1),
            default=20,
            show_default=True,
            help="Untimed training steps first (with --compile, the rest of that epoch too).",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=None,
            help="Override the entry's batch size.",
        ),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
    ],
    _speed_config,
)


@click.command()
@click.argument("name", default="paper/final", required=False)
@speed_options
@exec_options(
    ("device", "precision", "compile", "compile_mode", "channels_last", "num_workers"),
    fixed={"pipeline": "fast"},
    precision="Fast pipeline's precision (auto: bf16 on CUDA); the reference runs IEEE fp32.",
    compile="Compile the fast pipeline's step.",
)
@data_options
@tracking_options
def speed(name, sc, ex: ExecConfig, data: DataSpec, tracking_uri, experiment):
    """Time training steps and a test pass of NAME per pipeline, print the table, log a speed
    run."""
    from benchmarks import speed as speed_mod
    from tracking.tracker import connect

    entry = registry.get(name)
    tracker = connect(tracking_uri, experiment)
    loaded = data.load()
    click.echo(
        f"{entry.name}: timing {', '.join(sc.pipelines)} on {loaded.source} "
        f"({len(loaded.train_y)} train, {len(loaded.test_y)} test images)",
        err=True,
    )
    df, flops = speed_mod.speed_table(entry, loaded, ex, sc)
    click.echo(speed_mod.format_table(df, flops))
    run_id = speed_mod.log_speed(tracker, entry, loaded, data, ex, sc, df, flops)
    click.echo(f"logged speed run {run_id}", err=True)


@click.command("check")
@click.argument("names_", metavar="[NAME...]", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Check every registered entry.")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Timed training steps per entry (after one untimed).",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs per entry the total is for.",
)
@variant_options(limits="Estimate for runs on")
@exec_options(
    ("device", "pipeline", "precision", "compile"), compile="Compile the step, as a run would."
)
def check_cmd(names_, all_, steps, seeds, variant: Variant, ex: ExecConfig):
    """Pre-flight: build each entry NAME (or --all), compare its parameter count with the paper's
    print, run one training and one test batch of generated data on the device, and estimate the
    full run's wall time from a few timed steps. Exits 1 when an entry is broken."""
    from benchmarks import check as check_mod

    if bool(names_) == all_:
        raise click.UsageError("give entry NAMEs (or globs such as 'table1/*'), or --all")
    chosen = checked(registry.entries() if all_ else registry.select(names_), variant)
    df = check_mod.run_checks(
        chosen,
        variant.train,
        ex,
        steps,
        variant.limit_train or check_mod.FULL_TRAIN,
        variant.limit_test or check_mod.FULL_TEST,
        runs_of=lambda e: seeds,
        log=lambda msg: click.echo(msg, err=True),
    )
    click.echo(check_mod.format_table(df, steps))
    broken = df.loc[df["status"] == check_mod.BROKEN, "entry"]
    if len(broken):
        click.echo(
            f"error: {len(broken)} broken entr{'y' if len(broken) == 1 else 'ies'}: "
            f"{', '.join(broken)}",
            err=True,
        )
        sys.exit(1)
