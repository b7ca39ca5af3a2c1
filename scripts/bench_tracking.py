"""Benchmark of resbench's tracking side at scale: wall time and peak memory of the
real CLI, each command run once in a child process, over generated stores.

    .venv/bin/python scripts/bench_tracking.py [--workdir DIR] [--sizes 8,100,1000]
        [--http-sizes 100,1000]

Stores of N finished runs (benchmarks/storegen.py: runs as `resbench run ENTRY --data synthetic
--epochs 80 --limit-train 64 --limit-test 32` writes them, 80 epochs of 7 metrics each) are made
once and kept in the work folder. It prints one Markdown table: `report` over SQLite and over an
`mlflow server` on 127.0.0.1, `--help`, `list`, and `reproduce` over the largest store when every
run is already done (planning, then the report it writes), plus planning alone. Peak memory is the
child's maximum resident set (os.wait4). One run each on a shared machine: read the trend.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from bench_procs import (
    ROOT,
    ensure_store,
    machine,
    measure,
    resbench_command,
    start_server,
    stop_server,
)

sys.path.insert(0, str(ROOT))
EXPERIMENT = "bench"
VARIANT = ["--data", "synthetic", "--epochs", "80", "--limit-train", "64", "--limit-test", "32"]
PLAN = """
import sys, time
t0 = time.perf_counter()
try:
    from benchmarks.jobs import reproduce as rp
except ImportError:
    from benchmarks import reproduce as rp
from benchmarks import registry, selection
t1 = time.perf_counter()
entries = registry.select(["table1/*", "paper/*"])
variant = selection.Variant.of({"epochs": 80}, 64, 32)
runs = selection.load_runs(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
try:  # the generated runs are what a GPU records: bf16
    from benchmarks.runkey import Mode
    modes = {e.name: Mode("bf16") for e in entries}
    extra = (modes,)
except ImportError:
    extra = ()
todo, done = rp.plan(
    entries, int(sys.argv[3]), runs, variant, "synthetic", False, "synthetic-64-32-0", *extra
)
t3 = time.perf_counter()
print(
    f"imports {t1 - t0:.2f} s, load_runs {t2 - t1:.2f} s, plan {t3 - t2:.2f} s: "
    f"{done} done, {len(todo)} to run"
)
"""


def row(what: str, runs: str, m: dict) -> dict:
    fail = "" if m["rc"] == 0 else f" (exit {m['rc']}: {m['tail']})"
    return {"what": what, "runs": runs, "wall": m["wall"], "rss_mb": m.get("rss_mb"), "note": fail}


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".cache" / "resbench" / "bench-tracking",
    show_default=True,
    help="Where the generated stores are kept between runs.",
)
@click.option(
    "--sizes", default="8,100,1000", show_default=True, help="Store sizes for the SQLite report."
)
@click.option(
    "--http-sizes",
    default="100,1000",
    show_default=True,
    help="Store sizes for the report over HTTP.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the measurements here.",
)
def main(workdir: Path, sizes: str, http_sizes: str, json_out: Path | None):
    """Print the table: report, --help, list and reproduce's planning, wall and peak
    memory."""
    sql_n = [int(s) for s in sizes.split(",") if s]
    http_n = [int(s) for s in http_sizes.split(",") if s]
    workdir.mkdir(parents=True, exist_ok=True)
    at_start = machine()
    stores = {n: ensure_store(workdir, n, EXPERIMENT) for n in sorted(set(sql_n + http_n))}
    cli, scratch = resbench_command(), workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    rows = [
        row("`python -c pass` (the floor)", "—", measure([sys.executable, "-c", "pass"], scratch)),
        row("`resbench --help`", "—", measure([*cli, "--help"], scratch)),
        row("`resbench list`", "—", measure([*cli, "list"], scratch)),
    ]
    report = [*cli, "report", *VARIANT, "--experiment", EXPERIMENT, "--tracking-uri"]
    for n in sql_n:
        rows.append(
            row("`resbench report` (SQLite)", f"{n:,}", measure([*report, stores[n]], scratch))
        )
    for n in http_n:
        server, url = start_server(stores[n], workdir / f"store-{n}")
        try:
            rows.append(
                row(
                    "`resbench report` (`mlflow server` on 127.0.0.1)",
                    f"{n:,}",
                    measure([*report, url], scratch),
                )
            )
        finally:
            stop_server(server)
    big = max(stores)
    from benchmarks.storegen import StoreSpec, chosen

    laps = len(chosen(StoreSpec(runs=big)))  # the stores lap over table1/* and paper/*
    seeds = str(-(-big // laps))  # one seed a lap
    rows.append(
        row(
            "`resbench reproduce`, all done (plan + report)",
            f"{big:,}",
            measure(
                [
                    *cli,
                    "reproduce",
                    "--only",
                    "table1/*",
                    "--only",
                    "paper/*",
                    "--seeds",
                    seeds,
                    *VARIANT,
                    "--device",
                    "cpu",
                    "--output",
                    str(scratch / "results"),
                    "--experiment",
                    EXPERIMENT,
                    "--tracking-uri",
                    stores[big],
                ],
                scratch,
            ),
        )
    )
    plan = measure([sys.executable, "-c", PLAN, stores[big], EXPERIMENT, seeds], scratch)
    rows.append(
        row("`reproduce`'s planning alone (load_runs + plan, in-process)", f"{big:,}", plan)
    )
    click.echo(
        f"\nMachine: {at_start} at the start, {machine().split(', ')[-1]} at the end; "
        f"one run each; stores of runs with 80 epochs of 7 metrics.\n"
    )
    click.echo("| what | runs in the store | wall | peak memory |\n|---|---|---|---|")
    for r in rows:
        mem = f"{r['rss_mb']:,.0f} MB" if r["rss_mb"] else "—"
        click.echo(f"| {r['what']} | {r['runs']} | {r['wall']:.2f} s{r['note']} | {mem} |")
    click.echo(f"\nplanning alone: {plan['tail']}")
    if json_out:
        json_out.write_text(
            json.dumps({"machine": at_start, "rows": rows, "plan": plan["tail"]}, indent=2)
        )


if __name__ == "__main__":
    main()
