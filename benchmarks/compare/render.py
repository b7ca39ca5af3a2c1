"""The comparison written out: Markdown (the default), JSON, CSV, and HTML with one figure.

Reads the `Line`s of benchmarks/compare/lines.py and the names of the two sides. Markdown and
HTML show, for two rows, the rows side by side (metric, mean and interval, seeds, collapsed and
diverged runs, parameters, forward FLOPs, wall time, data) and the verdict line; for two result
sets, one table line per row with its status, the notes below it and a one-line summary. JSON and
CSV carry each line as flat columns (`record`). HTML adds one dot-and-interval plot of the
differences. Every value read from a report or a store is rendered as text.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter

import pandas as pd

from benchmarks.compare.lines import GONE, IDENTITY, MOVED_DOWN, MOVED_UP, NEW, UNCHANGED, Line
from benchmarks.compare.sides import Side
from benchmarks.compare.stats import PAIRED, TOO_FEW, WELCH, describe
from benchmarks.report.escape import csv_text, md_text
from benchmarks.report.verdicts import LEVEL, METRIC_TEXT, PERCENT

FORMATS = ("markdown", "json", "csv", "html")
TESTS = (
    f"{PAIRED} over the seeds both sides ran when they share two or more, else {WELCH} "
    f"(Welch–Satterthwaite degrees of freedom); a side with one run gives no interval"
)


def _num(value, fmt: str = "{:.2f}") -> str:
    return "—" if value is None or pd.isna(value) else fmt.format(value)


def _seeds(seeds) -> str:
    return ", ".join(map(str, seeds)) or "—"


def _wall(seconds) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _side_cells(s: Side) -> dict[str, str]:
    seeds = sorted(s.sample.by_seed) if s.sample.by_seed is not None else None
    return {
        "judged on": METRIC_TEXT[s.metric],
        f"mean ± {PERCENT} interval": s.sample.interval.text(),
        "seeds": _seeds(seeds) if seeds is not None else f"{s.n} (not listed)",
        "collapsed (counted)": _seeds(s.collapsed),
        "diverged (not pooled)": ", ".join(s.diverged) or "—",
        "parameters": _num(s.params, "{:,}"),
        "forward MFLOPs per image": _num(s.mflops, "{:.1f}"),
        "wall time per run": _wall(s.wall),
        "data": f"{s.data}" + (f" ({s.variant})" if s.variant else ""),
        "mode": s.key.mode.describe() if s.key and s.keyed else "not recorded",
        "git commit": (s.git_commit or "—")[:12],
    }


def _headline(line: Line, what: str) -> str:
    return f"**{line.status}**: {what} = {describe(line.difference)}"


def _rows_markdown(line: Line) -> list[str]:
    a, b = line.first, line.second
    cells_a, cells_b = _side_cells(a), _side_cells(b)
    out = [
        f"# {md_text(a.entry)} against {md_text(b.entry)}",
        "",
        f"| | {md_text(a.entry)} | {md_text(b.entry)} |",
        "|---|---|---|",
        *(f"| {k} | {md_text(cells_a[k])} | {md_text(cells_b[k])} |" for k in cells_a),
        "",
        _headline(line, f"{md_text(a.entry)} − {md_text(b.entry)}"),
        "",
    ]
    notes = [f"- {md_text(n)}" for n in line.notes]
    return out + notes + ([""] if notes else []) + [f"Test: {TESTS}.", ""]


def _set_table(lines: list[Line]) -> pd.DataFrame:
    def mean(s: Side | None) -> str:
        return "—" if s is None or not s.n else s.sample.interval.text()

    return pd.DataFrame(
        {
            "entry": [x.name for x in lines],
            "metric": [METRIC_TEXT[(x.first or x.second).metric] for x in lines],
            "old": [mean(x.second) for x in lines],
            "new": [mean(x.first) for x in lines],
            "change": [_num(x.difference and x.difference.mean, "{:+.2f}") for x in lines],
            f"{PERCENT} interval": [
                "—"
                if x.difference is None or x.difference.low is None
                else f"[{x.difference.low:+.2f}, {x.difference.high:+.2f}]"
                for x in lines
            ],
            "test": [(x.difference and x.difference.test) or "—" for x in lines],
            "status": [x.status for x in lines],
        }
    )


def summary(lines: list[Line]) -> str:
    """One line: how many rows moved (each way), stayed within noise, appeared, went."""
    counts = Counter(IDENTITY if x.status.startswith(IDENTITY) else x.status for x in lines)
    order = [MOVED_DOWN, MOVED_UP, UNCHANGED, TOO_FEW, IDENTITY, NEW, GONE]
    parts = [f"{counts[s]} {s}" for s in order if counts[s]]
    return (", ".join(parts) or "no row ran in either set") + "."


def _sets_markdown(lines: list[Line], labels: tuple[str, str], neither: list[str]) -> list[str]:
    table = _set_table(lines)
    out = [
        f"# {md_text(labels[1])} against {md_text(labels[0])}",
        "",
        f"Change = new − old, in points of each row's judged metric, with its {PERCENT} interval.",
        f"Old: {md_text(labels[0])}. New: {md_text(labels[1])}.",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
        *("| " + " | ".join(md_text(v) for v in r) + " |" for r in table.itertuples(index=False)),
        "",
        f"Summary: {summary(lines)}",
        "",
    ]
    notes = [
        f"- {md_text(x.name)}: {md_text(n)}"
        for x in lines
        for n in x.notes
        if x.status not in (NEW, GONE)
    ]
    if neither:
        notes.append(f"- no finished run in either set: {md_text(', '.join(neither))}")
    return out + notes + ([""] if notes else []) + [f"Test: {TESTS}.", ""]


def markdown(lines: list[Line], labels: tuple[str, str] | None, neither: list[str] = ()) -> str:
    """Two rows (`labels` None: the one line's entries name the sides) or two result sets."""
    if labels is None:
        return "\n".join(_rows_markdown(lines[0]))
    return "\n".join(_sets_markdown(lines, labels, list(neither)))


def _side_record(prefix: str, s: Side | None) -> dict:
    if s is None:
        s_fields = dict.fromkeys(
            (
                "entry",
                "metric",
                "n",
                "mean",
                "std",
                "seeds",
                "collapsed_seeds",
                "diverged_runs",
                "params",
                "mflops",
                "wall_seconds",
                "data",
                "git_commit",
            )
        )
    else:
        by_seed = s.sample.by_seed
        s_fields = {
            "entry": s.entry,
            "metric": s.metric,
            "n": s.n,
            "mean": s.sample.mean,
            "std": s.sample.std,
            "seeds": None if by_seed is None else ",".join(map(str, sorted(by_seed))),
            "collapsed_seeds": ",".join(map(str, s.collapsed)),
            "diverged_runs": ",".join(s.diverged),
            "params": s.params,
            "mflops": s.mflops,
            "wall_seconds": s.wall,
            "data": s.data,
            "mode": s.key.mode.describe() if s.key and s.keyed else None,
            "git_commit": s.git_commit,
        }
    return {f"{prefix}_{k}": v for k, v in s_fields.items()}


def record(line: Line, prefixes: tuple[str, str]) -> dict:
    """One line as flat columns: the two sides (prefixed), the difference, status and notes."""
    d = line.difference
    return {
        "name": line.name,
        "status": line.status,
        "difference": d and d.mean,
        "ci_low": d and d.low,
        "ci_high": d and d.high,
        "ci_level": LEVEL,
        "test": d and d.test,
        "paired_seeds": ",".join(map(str, d.seeds)) if d else "",
        "settle_seeds": d and d.settle,
        "identity_changes": "; ".join(line.changes),
        **_side_record(prefixes[0], line.first),
        **_side_record(prefixes[1], line.second),
        "notes": "; ".join(line.notes),
    }


def table(lines: list[Line], prefixes: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame([record(x, prefixes) for x in lines])


def to_json(lines: list[Line], prefixes: tuple[str, str], about: dict) -> str:
    records = json.loads(table(lines, prefixes).to_json(orient="records"))
    return json.dumps({**about, "test": TESTS, "lines": records}, indent=2) + "\n"


def to_csv(lines: list[Line], prefixes: tuple[str, str]) -> str:
    """The records, a text cell a spreadsheet would take for a formula quoted (`csv_text`)."""
    return table(lines, prefixes).map(csv_text).to_csv(index=False)


def _plain(text: str) -> str:
    """Text matplotlib draws as written: a `$` would start its math mode."""
    return str(text).replace("$", r"\$")


def plot(lines: list[Line], title: str, what: str) -> str | None:
    """The differences (`what`, e.g. "new − old") as dots with their intervals, one per line that
    has one: a PNG, base64."""
    shown = [x for x in lines if x.difference is not None and x.difference.mean is not None]
    if not shown:
        return None
    from benchmarks.report.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(shown) + 1.2))
    for i, x in enumerate(reversed(shown)):
        d = x.difference
        colour = "tab:gray" if x.changes else "tab:blue"
        if d.low is not None:
            ax.plot([d.low, d.high], [i, i], color=colour, lw=2)
        ax.plot([d.mean], [i], "o" if d.low is not None else "x", color=colour)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(shown)), [_plain(x.name) for x in reversed(shown)])
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_xlabel(_plain(f"{what}, accuracy points ({PERCENT} interval; × = one run, no interval)"))
    ax.set_title(_plain(title))
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def to_html(lines: list[Line], labels: tuple[str, str] | None, neither: list[str] = ()) -> str:
    """The Markdown's content as a page: tables and notes escaped, and the plot."""
    e = lambda v: html.escape(str(v))  # noqa: E731
    if labels is None:
        line = lines[0]
        a, b = line.first, line.second
        ca, cb = _side_cells(a), _side_cells(b)
        title, what = f"{a.entry} against {b.entry}", f"{a.entry} − {b.entry}"
        body = (
            f"<table><tr><th></th><th>{e(a.entry)}</th><th>{e(b.entry)}</th></tr>"
            + "".join(f"<tr><th>{e(k)}</th><td>{e(ca[k])}</td><td>{e(cb[k])}</td></tr>" for k in ca)
            + "</table>"
            + f"<p><b>{e(line.status)}</b>: {e(a.entry)} − {e(b.entry)} = "
            + f"{e(describe(line.difference))}</p>"
        )
        notes = list(line.notes)
    else:
        title, what = f"{labels[1]} against {labels[0]}", "new − old"
        body = (
            _set_table(lines).to_html(index=False, escape=True)
            + f"<p>Summary: {e(summary(lines))}</p>"
        )
        notes = [f"{x.name}: {n}" for x in lines for n in x.notes if x.status not in (NEW, GONE)]
        if neither:
            notes.append(f"no finished run in either set: {', '.join(neither)}")
    png = plot(lines, title, what)
    figure = (
        f'<p><img alt="differences with their intervals" src="data:image/png;base64,{png}"></p>'
        if png
        else ""
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title></head><body>'
        f"<h1>{e(title)}</h1>{body}{figure}"
        + (f"<ul>{''.join(f'<li>{e(n)}</li>' for n in notes)}</ul>" if notes else "")
        + f"<p>Test: {e(TESTS)}.</p></body></html>\n"
    )
