"""The report written out: Markdown, HTML (figures embedded), CSV and JSON.

`render` turns a `Report` (benchmarks/report/table.py) into one format's text: Markdown
(markdown.py) and HTML (page.py) with the figures (figures.py); CSV is the flat table
(`Report.table`: run ids, config hash, identity, code version, data checksum included), its
cells through benchmarks/report/escape.py's `csv_text`; JSON adds the cards and the summary.
`write` and `write_file` put them on disk through `resnet.files.atomic_write`: no reader sees
half a report.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report.display import cards
from benchmarks.report.escape import csv_text
from benchmarks.report.figures import figures_for
from benchmarks.report.markdown import markdown
from benchmarks.report.page import to_html
from benchmarks.report.table import Report
from benchmarks.report.verdicts import RULE
from resnet.files import atomic_write

FORMATS = {"markdown": "md", "html": "html", "csv": "csv", "json": "json"}


def to_json(r: Report) -> str:
    clean = lambda df: json.loads(df.to_json(orient="records"))  # noqa: E731
    return (
        json.dumps(
            {
                "experiment": r.experiment,
                "tracking_uri": r.where(),
                "ui_url": r.ui_url,
                "data": r.source,
                "overrides": r.variant.describe(),
                "group": r.group,
                "ranked": r.ranked,
                "generated": r.generated,
                "summary": r.summary(),
                "elsewhere": [{"command": c, "runs": n} for c, n in r.elsewhere],
                "verdict_rule": RULE,
                "header": r.header(),
                "rows": clean(r.table),
                "cards": {
                    c.entry: {
                        "headline": c.headline,
                        **dict(c.fields),
                        "deviations": c.deviations,
                        "runs": [{"run_id": i, "url": u, "what": w} for i, u, w in c.runs],
                    }
                    for c in cards(r)
                },
                "other_runs": clean(r.other),
            },
            indent=2,
        )
        + "\n"
    )


def render(r: Report, fmt: str, figs: dict[str, Path] | None = None) -> str:
    if fmt == "markdown":
        return markdown(r, figs)
    if fmt == "html":
        return to_html(r, figs)
    if fmt == "json":
        return to_json(r)
    return r.table.map(csv_text).to_csv(index=False)


def _write_text(path: Path, text: str) -> Path:
    with atomic_write(path) as f:
        f.write(text)
    return path


def write_file(r: Report, path: Path, fmt: str) -> list[Path]:
    """`path` in format `fmt`, and beside it the figures Markdown and HTML show."""
    figs = figures_for(r, path.parent) if fmt in ("markdown", "html") else {}
    return [_write_text(path, render(r, fmt, figs)), *figs.values()]


def write(r: Report, output: Path, formats: list[str] | None = None) -> list[Path]:
    """Into folder `output`: report.<ext> for each format (default all) and the figures."""
    formats = formats or list(FORMATS)
    figs = figures_for(r, output) if {"markdown", "html"} & set(formats) else {}
    return [
        _write_text(output / f"report.{FORMATS[f]}", render(r, f, figs)) for f in formats
    ] + list(figs.values())
