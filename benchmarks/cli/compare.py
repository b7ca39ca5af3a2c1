"""`resbench compare`: two rows of one store, or two result sets, with intervals on the difference.

Reads its inputs (report JSON files, or the report of the current store built in memory as
`report --format json` would write it), hands them to benchmarks/compare and prints the result.
"""

from __future__ import annotations

import json

import click

from benchmarks.cli.options import tracking_options
from benchmarks.cli.variant import checked, variant_options
from benchmarks.compare.render import FORMATS
from benchmarks.compare.sides import JUDGED, CompareError
from benchmarks.registry import BEST, FINAL
from benchmarks.report.table import TableRequest


def _current(uri, experiment, table: TableRequest, entries) -> dict:
    """The store's report over `entries`, as the dictionary `report --format json` writes."""
    from benchmarks import selection
    from benchmarks.report import build, render

    entries = checked(entries, table.variant)
    names = [f"{table.group}/*"] if table.group else [e.name for e in entries]
    runs = selection.load_runs(uri, experiment, entries=names)
    return json.loads(render.to_json(build.build(runs, uri, experiment, table, entries)))


def _store_label(report: dict) -> str:
    return f"the store ({report.get('tracking_uri')}, experiment {report.get('experiment')!r})"


@click.command()
@click.argument("inputs", nargs=-1, metavar="[FIRST SECOND]")
@click.option(
    "--baseline",
    metavar="OLD.json",
    default=None,
    help="Compare the current store's report against this report JSON, row by row.",
)
@click.option(
    "--metric",
    type=click.Choice([JUDGED, BEST, FINAL]),
    default=JUDGED,
    show_default=True,
    help="judged: each row on the metric its verdict is judged on; best or final: both on that.",
)
@click.option(
    "--fail-on",
    "fail_on",
    type=click.FloatRange(min=0),
    default=None,
    metavar="POINTS",
    help="Exit 1 when a row is worse by more than POINTS with confidence (its whole interval "
    "below -POINTS): new against old, or FIRST against SECOND. Rows whose identity changed are "
    "shown, not gated.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True)
@variant_options(limits="Compare runs limited to")
@click.option(
    "--data",
    "data_source",
    default="cifar10",
    show_default=True,
    help="Data source of the store's runs to compare, as for `report`.",
)
@click.option(
    "--group",
    default=None,
    help="With --baseline: the store's rows of this group [default: the baseline's group].",
)
@tracking_options
def compare(
    inputs, baseline, metric, fail_on, fmt, variant, data_source, group, tracking_uri, experiment
):
    """Is one row better than another, and did a change move any row?

    \b
    resbench compare mine/wide3 table1/row3     two rows of the store: FIRST - SECOND
    resbench compare OLD.json NEW.json          two report JSONs (report --format json): NEW - OLD
    resbench compare --baseline OLD.json        the store's current report against OLD.json

    Each row is compared on the metric its verdict is judged on, as a difference of means with
    its 90% interval: paired t over the seeds both sides ran when they share two or more, else
    Welch t. A side with one run gives no interval ("too few seeds"). Collapsed seeds are counted
    and named, diverged ones named; runs on other data or in another configuration are compared
    only with that said in the line.
    """
    from benchmarks import registry
    from benchmarks.compare import lines as lines_mod
    from benchmarks.compare import render, sides
    from benchmarks.report.build import group_entries

    files = [x for x in inputs if x.lower().endswith(".json")]
    if baseline is not None and not inputs:
        old = sides.read(baseline)
        group = group or old.get("group")
        table = TableRequest(variant, data_source, group)
        new = _current(tracking_uri, experiment, table, group_entries(group))
        labels = (baseline, _store_label(new))
    elif baseline is None and len(inputs) == 2 and len(files) == 2:
        old, new = sides.read(inputs[0]), sides.read(inputs[1])
        labels = (inputs[0], inputs[1])
    elif baseline is None and len(inputs) == 2 and not files:
        first, second = (registry.get(name) for name in inputs)
        if first.name == second.name:
            raise CompareError(f"{first.name} against itself: name two different rows")
        table = TableRequest(variant, data_source)
        report = _current(tracking_uri, experiment, table, [first, second])
        found = sides.sides(report, metric)
        line = lines_mod.rows(found[first.name], found[second.name])
        about = {"comparison": "rows", "first": first.name, "second": second.name}
        _emit([line], None, [], fmt, ("first", "second"), about | {"store": _store_label(report)})
        _gate([line], fail_on)
        return
    else:
        raise CompareError(
            "compare takes two entries, two report JSON files, or --baseline OLD.json alone"
        )
    found, neither = lines_mod.sets(sides.sides(old, metric), sides.sides(new, metric))
    about = {"comparison": "sets", "old": labels[0], "new": labels[1]}
    _emit(found, labels, neither, fmt, ("new", "old"), about | {"summary": render.summary(found)})
    _gate(found, fail_on)


def _emit(lines, labels, neither, fmt, prefixes, about) -> None:
    from benchmarks.compare import render

    if fmt == "json":
        text = render.to_json(lines, prefixes, about | {"no_run_in_either": neither})
    elif fmt == "csv":
        text = render.to_csv(lines, prefixes)
    elif fmt == "html":
        text = render.to_html(lines, labels, neither)
    else:
        text = render.markdown(lines, labels, neither)
    click.echo(text, nl=False)


def _gate(lines, fail_on) -> None:
    """Exit 1 when `--fail-on` finds a row worse by more than its points with confidence."""
    from benchmarks.compare.lines import regressions

    if fail_on is None:
        return
    worse = regressions(lines, fail_on)
    if worse:
        named = ", ".join(
            f"{x.name} ({x.difference.mean:+.2f}, interval [{x.difference.low:+.2f}, "
            f"{x.difference.high:+.2f}])"
            for x in worse
        )
        click.echo(f"fail-on {fail_on:g}: worse by more than {fail_on:g} points: {named}", err=True)
        raise click.exceptions.Exit(1)
