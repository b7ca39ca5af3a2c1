"""The `resbench` command line (click). Known failures print one line and exit non-zero."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pandas as pd

from benchmarks import registry
from benchmarks import report as report_mod
from benchmarks import selection
from benchmarks import sweep as sweep_mod
from benchmarks.cli_options import (_overrides, data_options, exec_options, one_line_errors,
                                    tracking_options, variant_options)
from benchmarks.registry import RegistryError
from benchmarks.runner import DataSpec, run_entry
from benchmarks.selection import apply_overrides
from resnet.train import COMPILE_MODES, Diverged, ExecConfig
from tracking import connect, resolve_uri


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """resbench: the paper's Table 1 as benchmarks, trained and tracked in MLflow."""


@main.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--max-params", type=click.FloatRange(min=0), default=None,
              help="Only entries with at most this many parameters, e.g. 5e6 (the paper's budget).")
@click.option("--group", "groups", multiple=True, help="Only entries of this group (repeatable).")
@one_line_errors
def list_cmd(fmt, max_params, groups):
    """Every registered entry: architecture, parameters, FLOPs and the paper's figures."""
    rows = [r for r in (registry.describe_entry(e) for e in registry.entries())
            if (max_params is None or r["params"] <= max_params) and (not groups or r["group"] in groups)]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no entries match")
        return
    df = pd.DataFrame(rows).drop(columns=["description", "group", "train_gflops"])
    for col in ("blocks", "channels", "F", "K"):
        df[col] = df[col].map(lambda v, c=col: ",".join(map(str, v)) if len(set(v)) > 1 or c in ("blocks", "channels")
                              else str(v[0]))
    df["params"] = df["params"].map("{:,}".format)
    df["fits_5M"] = df["fits_5M"].map({True: "yes", False: "NO"})
    df["paper_acc"] = df["paper_acc"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}%")
    df = df.fillna("")
    click.echo(df.to_string(index=False))


@main.command()
@click.argument("names_", metavar="NAME...", nargs=-1, required=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the entry's epochs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Override any training field, e.g. --set lr=0.01 --set optimizer=sgd.")
@data_options
@exec_options
@tracking_options
@one_line_errors
def run(names_, epochs, seed, sets, data_source, data_dir, download, limit_train, limit_test, device, pipeline,
        precision, compile, deterministic, checkpoint_dir, tracking_uri, experiment):
    """Train each entry NAME (names or globs such as 'table1/*') and log it to MLflow."""
    overrides = _overrides(epochs, sets)
    chosen = registry.select(names_)
    for e in chosen:  # check every override before anything trains
        apply_overrides(e.train, overrides)
    ex = ExecConfig(pipeline=pipeline, precision=precision, compile=compile, device=device,
                    deterministic=deterministic)
    ex.torch_device()
    spec = DataSpec(data_source, data_dir, limit_train or 0, limit_test or 0, download)
    tracker = connect(tracking_uri, experiment)
    data = spec.load()
    failed = 0
    for e in chosen:
        click.echo(f"{e.name} seed={seed}: training on {data.source} ({len(data.train_y)} train images)", err=True)
        try:
            run_id = run_entry(e, tracker, data, spec, seed=seed, overrides=overrides, ex=ex,
                               checkpoint_dir=checkpoint_dir)
        except Diverged as err:
            failed += 1
            click.echo(f"error: {e.name}: {err}; run marked FAILED", err=True)
            continue
        click.echo(f"{e.name} seed={seed}: finished run {run_id}")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--format", "fmt", type=click.Choice(list(report_mod.FORMATS)), default=None,
              help="Output format [default: from --output's suffix, else markdown].")
@click.option("--output", type=click.Path(), default=None,
              help="A file, or a folder (existing, or ending in /) for every format plus the figures. "
                   "Omitted: print to stdout.")
@variant_options
@click.option("--data", "data_source", default="cifar10", show_default=True,
              help="Data source of the runs to tabulate: cifar10 (the official files, else a rebuilt copy), "
                   "synthetic, or a source name such as cifar10-jpeg-rebuild.")
@click.option("--limit-train", type=click.IntRange(min=1), default=None, help="Tabulate runs limited to N training images.")
@click.option("--limit-test", type=click.IntRange(min=1), default=None, help="Tabulate runs limited to N test images.")
@click.option("--group", default=None, help="Only the entries of this group (a sweep's group, say).")
@click.option("--rank", is_flag=True, help="Sort the rows by measured accuracy, best first.")
@click.option("--ui-url", default=None, metavar="URL",
              help="MLflow UI to link runs into, e.g. http://127.0.0.1:5000 from `resbench ui` "
                   "[default: the tracking URI when it is an http(s) server].")
@tracking_options
@one_line_errors
def report(fmt, output, epochs, sets, data_source, limit_train, limit_test, group, rank, ui_url, tracking_uri,
           experiment):
    """Regenerate Table 1 from the runs in MLflow, beside what the paper printed.

    A row counts only finished runs of one identity: the entry's own configuration (or, with
    --epochs/--set/--limit-*, that same variant for every entry), code version and data; other runs
    are listed apart. Each row gets a 95% interval, a verdict, links to its runs and a card.
    """
    variant = selection.Variant.of(_overrides(epochs, sets), limit_train, limit_test)
    entries = report_mod.group_entries(group)
    for e in entries:
        variant.train(e)
    uri = resolve_uri(tracking_uri)
    r = report_mod.build(selection.load_runs(uri, experiment), uri, experiment, variant, data_source, entries,
                         group=group, rank=rank, ui_url=ui_url)
    suffixes = {f".{ext}": name for name, ext in report_mod.FORMATS.items()}
    if output is None:
        click.echo(report_mod.render(r, fmt or "markdown"), nl=False)
        return
    out = Path(output)
    if out.is_dir() or output.endswith(("/", os.sep)) or (not out.suffix and fmt is None):
        written = report_mod.write(r, out, [fmt] if fmt else None)
    else:
        fmt = fmt or suffixes.get(out.suffix.lower(), "markdown")
        figs = report_mod.figures_for(r, out.parent) if fmt in ("markdown", "html") else {}
        written = [report_mod.write_text(out, report_mod.render(r, fmt, figs)), *figs.values()]
    for path in written:
        click.echo(str(path))


def executor_options(fn):
    """Where reproduce's runs train: this machine's GPUs, or a Ray cluster."""
    for opt in reversed([
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: child processes on this machine; ray: one Ray task per run."),
        click.option("--devices", default=None, metavar="0,1,...",
                     help="local: spread runs over these CUDA GPUs, --jobs at a time on each."),
        click.option("--address", default=None,
                     help="ray: an existing cluster ('auto', or ray://HOST:10001) [default: start a local Ray]."),
        click.option("--gpus-per-run", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
                     help="ray: share of a GPU each run asks for (0.25: four small runs per GPU)."),
        click.option("--cpus-per-run", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
                     help="ray: CPUs each run asks for."),
        click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True,
                     help="ray: resubmissions of a run whose worker died (it resumes from its checkpoint "
                          "when it lands on the same machine)."),
    ]):
        fn = opt(fn)
    return fn


@main.command()
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Seeds 0..N-1 per entry [default: 3 on a GPU, 1 on the CPU].")
@click.option("--only", multiple=True, metavar="PATTERN", help="Train only these entries (names or globs); "
              "the report still has every row.")
@click.option("--force", is_flag=True, help="Train again even what has already finished.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once, as child processes (several runs can share one GPU); per GPU with --devices.")
@click.option("--output", type=click.Path(file_okay=False), default="results", show_default=True,
              help="Folder for the report and its figures.")
@click.option("--check/--no-check", "preflight", default=True, show_default=True,
              help="Pre-flight every entry to be trained (as `resbench check`) and stop on a broken one.")
@executor_options
@variant_options
@data_options
@exec_options
@tracking_options
@one_line_errors
def reproduce(seeds, only, force, jobs, output, preflight, executor, devices, address, gpus_per_run, cpus_per_run, max_retries,
              epochs, sets, data_source, data_dir, download, limit_train, limit_test,
              device, pipeline, precision, compile, deterministic, checkpoint_dir, tracking_uri, experiment):
    """Train every entry and seed not yet finished in this configuration, then write the report."""
    from benchmarks.executors import ExecutorConfig, parse_devices
    from benchmarks.reproduce import reproduce as run_all

    placement = ExecutorConfig(executor, jobs, parse_devices(devices), address, gpus_per_run, cpus_per_run,
                               max_retries)
    chosen = registry.select(only) if only else registry.entries()
    ex = ExecConfig(pipeline=pipeline, precision=precision, compile=compile, device=device,
                    deterministic=deterministic)
    if seeds is None:  # mean ± std needs n >= 3; a CPU cannot afford that for the whole table
        # with Ray the workers' devices matter, not this driver's (which may have no GPU)
        on_gpu = ex.device.startswith("cuda") if executor == "ray" else ex.torch_device().type == "cuda"
        seeds = 3 if on_gpu else 1
        if seeds == 1:
            click.echo("warning: no GPU, so 1 seed per entry (no spread); pass --seeds 3 for mean ± std", err=True)
    spec = DataSpec(data_source, data_dir, limit_train or 0, limit_test or 0, download)
    written, failed = run_all(chosen, seeds, _overrides(epochs, sets), spec, ex, tracking_uri, experiment,
                              Path(output), force=force, jobs=jobs, checkpoint_dir=checkpoint_dir,
                              log=lambda msg: click.echo(msg, err=True), executor=placement, check=preflight)
    for path in written:
        click.echo(str(path))
    if failed:
        click.echo(f"error: {len(failed)} run(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@tracking_options
@one_line_errors
def ui(host, port, tracking_uri, experiment):
    """Browse the runs in the MLflow UI (runs until Ctrl-C)."""
    from tracking import ui as mlflow_ui

    mlflow_ui.serve(tracking_uri, host, port, experiment, echo=click.echo)


@main.command()
@click.argument("name", default="paper/final", required=False)
@click.option("--pipelines", default="fast,reference", show_default=True,
              help="Comma-separated pipelines to time, in this order.")
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True, help="Timed training steps.")
@click.option("--warmup", type=click.IntRange(min=1), default=20, show_default=True,
              help="Untimed training steps first (with --compile, the rest of that epoch too).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the entry's batch size.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="Fast pipeline's precision (auto: bf16 on CUDA); the reference always runs fp32.")
@click.option("--compile/--no-compile", default=False, show_default=True, help="Compile the fast pipeline's step.")
@click.option("--compile-mode", type=click.Choice(list(COMPILE_MODES)), default="auto", show_default=True,
              help="auto: cudagraph on CUDA, inductor elsewhere; see docs/PERFORMANCE.md.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="NHWC activations in the fast pipeline.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Reference pipeline's DataLoader workers (the authors used 2).")
@data_options
@tracking_options
@one_line_errors
def speed(name, pipelines, steps, warmup, batch_size, seed, device, precision, compile, compile_mode, channels_last,
          workers, data_source, data_dir, download, limit_train, limit_test, tracking_uri, experiment):
    """Time training steps and a test pass of NAME per pipeline, print the table, log a speed run."""
    from benchmarks import speed as speed_mod

    entry = registry.get(name)
    sc = speed_mod.SpeedConfig(steps=steps, warmup=warmup, batch_size=batch_size or 0,
                               pipelines=speed_mod.parse_pipelines(pipelines), seed=seed)
    fast = ExecConfig(pipeline="fast", precision=precision, compile=compile, compile_mode=compile_mode,
                      channels_last=channels_last, num_workers=workers, device=device)
    fast.torch_device()
    spec = DataSpec(data_source, data_dir, limit_train or 0, limit_test or 0, download)
    tracker = connect(tracking_uri, experiment)
    data = spec.load()
    click.echo(f"{entry.name}: timing {', '.join(sc.pipelines)} on {data.source} "
               f"({len(data.train_y)} train, {len(data.test_y)} test images)", err=True)
    df, flops = speed_mod.speed_table(entry, data, fast, sc)
    click.echo(speed_mod.format_table(df, flops))
    run_id = speed_mod.log_speed(tracker, entry, data, spec, fast, sc, df, flops)
    click.echo(f"logged speed run {run_id}", err=True)


@main.command()
@click.option("--base", default="paper/final", show_default=True, help="The entry to vary around.")
@click.option("--group", required=True, help="Group name of the generated entries (a new one).")
@click.option("--vary", default=",".join(sweep_mod.HYPERPARAMETERS), show_default=True,
              help="Hyperparameters to vary, one at a time: N, B, C, F, K, P.")
@click.option("--max-params", type=click.FloatRange(min=1), default=registry.BUDGET, show_default=True,
              help="Parameter budget every variant must fit.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the generated entries file [default: benchmarks/entries/].")
@click.option("--run", "run_now", is_flag=True, help="Train the sweep now (as `reproduce --only GROUP/*`).")
@variant_options
@data_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@tracking_options
@click.pass_context
@one_line_errors
def sweep(ctx, base, group, vary, max_params, out_dir, run_now, epochs, sets, data_source, data_dir, download,
          limit_train, limit_test, device, tracking_uri, experiment):
    """Generate entries varying one hyperparameter at a time around BASE under a parameter budget."""
    base_entry = registry.get(base)
    if any(e.group == group for e in registry.entries()):
        raise RegistryError(f"group {group!r} already has entries; pick another name or delete its file")
    variants = sweep_mod.enumerate_sweep(base_entry, [v.strip() for v in vary.split(",") if v.strip()],
                                         int(max_params))
    command = f"resbench sweep --base {base} --group {group} --vary {vary} --max-params {int(max_params)}"
    path = sweep_mod.write(group, sweep_mod.render(group, base_entry, variants, command),
                           Path(out_dir) if out_dir else sweep_mod.ENTRIES_DIR)
    registry.load_file(path)
    click.echo(f"wrote {len(variants)} entries of group {group!r} to {path}")
    if not run_now:
        click.echo(f"train them:  resbench reproduce --only '{group}/*'\nrank them:   resbench report --group {group} --rank")
        return
    ctx.invoke(reproduce, only=(f"{group}/*",), epochs=epochs, sets=sets, data_source=data_source,
               data_dir=data_dir, download=download, limit_train=limit_train, limit_test=limit_test,
               device=device, tracking_uri=tracking_uri, experiment=experiment)


@main.command("check")
@click.argument("names_", metavar="[NAME...]", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Check every registered entry.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed training steps per entry (after one untimed).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per entry the total is for.")
@variant_options
@click.option("--limit-train", type=click.IntRange(min=1), default=None,
              help="Estimate for runs on the first N training images [default: 50,000].")
@click.option("--limit-test", type=click.IntRange(min=1), default=None,
              help="Estimate for runs on the first N test images [default: 10,000].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--pipeline", type=click.Choice(["fast", "reference"]), default="fast", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True)
@click.option("--compile/--no-compile", default=False, show_default=True, help="Compile the step, as a run would.")
@one_line_errors
def check_cmd(names_, all_, steps, seeds, epochs, sets, limit_train, limit_test, device, pipeline, precision,
              compile):
    """Pre-flight: build each entry NAME (or --all), compare its parameter count with the paper's print,
    run one training and one test batch of generated data on the device, and estimate the full run's
    wall time from a few timed steps. Exits 1 when an entry is broken."""
    from benchmarks import check as check_mod

    if bool(names_) == all_:
        raise click.UsageError("give entry NAMEs (or globs such as 'table1/*'), or --all")
    chosen = registry.entries() if all_ else registry.select(names_)
    variant = selection.Variant.of(_overrides(epochs, sets), limit_train, limit_test)
    for e in chosen:  # every override checked before anything runs
        variant.train(e)
    ex = ExecConfig(pipeline=pipeline, precision=precision, compile=compile, device=device)
    ex.torch_device()
    df = check_mod.run_checks(chosen, variant.train, ex, steps, limit_train or check_mod.FULL_TRAIN,
                              limit_test or check_mod.FULL_TEST, runs_of=lambda e: seeds,
                              log=lambda msg: click.echo(msg, err=True))
    click.echo(check_mod.format_table(df, steps))
    broken = df.loc[df["status"] == check_mod.BROKEN, "entry"]
    if len(broken):
        click.echo(f"error: {len(broken)} broken entr{'y' if len(broken) == 1 else 'ies'}: {', '.join(broken)}",
                   err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
