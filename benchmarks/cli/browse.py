"""Commands that show: `report` (Table 1 from the runs in MLflow), `deviations` (every known
departure from the authors' run) and `ui` (the MLflow UI on the store). `list` is catalog.py's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from benchmarks import registry
from benchmarks.cli.options import tracking_options
from benchmarks.cli.table import table_options
from benchmarks.cli.variant import checked
from benchmarks.report.render import FORMATS
from benchmarks.report.table import TableRequest

SUFFIXES = {f".{ext}": name for name, ext in FORMATS.items()}


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default=None,
    help="Output format [default: from --output's suffix, else markdown].",
)
@click.option(
    "--output",
    type=click.Path(),
    default=None,
    help="A file, or a folder (existing, or ending in /) for every format plus the figures. "
    "Omitted: print to stdout.",
)
@table_options()
@tracking_options
def report(fmt, output, table: TableRequest, tracking_uri, experiment):
    """Regenerate Table 1 from the runs in MLflow, beside what the paper printed.

    A row counts only finished runs of one run key: the entry's own configuration (or, with
    --epochs/--set/--limit-*, that same variant for every entry), code version, data and mode
    (--precision/--pipeline/--compile; by default the mode with the most finished runs); other
    runs are listed apart. Each row gets final- and best-epoch accuracies with 90% intervals, a
    verdict on the one the paper's figure is (TOST at alpha 0.05), links to its runs and a card.
    """
    from benchmarks import selection
    from benchmarks.report import build, render

    entries = checked(build.group_entries(table.group), table.variant)
    # a group's table lists only that group's runs: the store is asked for those alone
    names = [f"{table.group}/*"] if table.group else None
    runs = selection.load_runs(tracking_uri, experiment, entries=names)
    r = build.build(runs, tracking_uri, experiment, table, entries)
    if output is None:
        click.echo(render.render(r, fmt or "markdown"), nl=False)
    else:
        out = Path(output)
        if out.is_dir() or output.endswith(("/", os.sep)) or (not out.suffix and fmt is None):
            written = render.write(r, out, [fmt] if fmt else None)
        else:
            suffix = SUFFIXES.get(out.suffix.lower(), "markdown")
            written = render.write_file(r, out, fmt or suffix)
        for path in written:
            click.echo(str(path))
    for line in r.notice():  # the table's first lines, repeated where a terminal shows them last
        click.echo(line, err=True)


@click.command()
@click.argument("name", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
def deviations(name, fmt):
    """Every known way a run departs from the authors' run, with its measured effect and the command
    that measured it, or "not measured". With NAME, those that apply to that entry."""
    from benchmarks import deviation_formats as formats
    from benchmarks import deviations as table

    chosen = table.applicable(registry.get(name)) if name else list(table.DEVIATIONS)
    if fmt == "json":
        click.echo(json.dumps(formats.records(chosen), indent=2))
    else:
        click.echo(
            formats.markdown(chosen) if fmt == "markdown" else formats.text(chosen), nl=False
        )


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; anything but loopback (0.0.0.0 = all) also needs --public.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--public",
    is_flag=True,
    help="Allow a network --host: the UI has no login, anyone who can "
    "reach the port can read and edit the runs.",
)
@tracking_options
def ui(host, port, public, tracking_uri, experiment):
    """Browse the runs in the MLflow UI (runs until Ctrl-C)."""
    from tracking import ui as mlflow_ui

    mlflow_ui.serve(tracking_uri, host, port, experiment, echo=click.echo, public=public)
