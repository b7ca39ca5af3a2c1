"""The report as Markdown: summary, results with run links, verdict rule, architectures, figures,
cards and other runs.

Every store value (run names, tags, params) goes through benchmarks/report/escape.py's `md_text`,
so it renders as text; links go out only to http(s) URLs (`safe_url`). The tables' cells come
from benchmarks/report/display.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report import cards as cards_mod
from benchmarks.report.display import (
    MAX_LINKS,
    cards,
    display_arch,
    display_other,
    display_table,
    links_hint,
    notes,
)
from benchmarks.report.escape import md_text, safe_url
from benchmarks.report.figures import REFERENCE_SOURCE
from benchmarks.report.table import Report
from benchmarks.report.verdicts import RULE


def _md_table(df: pd.DataFrame, raw: dict[str, list[str]] | None = None) -> str:
    """`df` with each cell as text (md_text), but the `raw` columns, which hold ready Markdown."""
    if not len(df):
        return "_none_"
    shown = df.map(md_text)
    for column, cells in (raw or {}).items():
        shown[column] = cells
    shown.columns = [md_text(c) for c in df.columns]
    return shown.to_markdown(index=False, disable_numparse=True)


def _md_link(label: str, url) -> str:
    target = safe_url(url)
    return f"[{md_text(label)}]({target})" if target else md_text(label)


def _md_runs(r: Report) -> dict[str, list[str]]:
    return {
        "runs": [
            " ".join(
                _md_link(i[:8], u) for i, u in zip(x.run_ids[:MAX_LINKS], x.urls, strict=False)
            )
            or "—"
            for x in r.rows
        ]
    }


def _md_card(c: cards_mod.Card) -> list[str]:
    runs = ", ".join(f"{_md_link(i, u)} ({md_text(label)})" for i, u, label in c.runs) or "none"
    return [
        f"### {md_text(c.entry)}: {md_text(c.headline)}",
        "",
        *(f"- **{md_text(k)}**: {md_text(v)}" for k, v in c.fields),
        f"- **Runs**: {runs}",
        "- **Deviations from the paper**:" + ("" if c.deviations else " none"),
        *(f"    - {md_text(d)}" for d in c.deviations),
        "",
    ]


def markdown(r: Report, figs: dict[str, Path] | None = None) -> str:
    notice = r.notice()
    parts = [
        "# Table 1, regenerated",
        "",
        *(
            [f"**{md_text(notice[0])}**", ""]
            + [f"    {' '.join(c.splitlines())}" for c in notice[1:]]  # an indented code block
            + [""]
            if notice
            else []
        ),
        f"**{md_text(r.summary())}**",
        "",
        "\n\n".join(md_text(h) for h in r.header()),
        "",
        _md_table(display_table(r), _md_runs(r)),
        "",
        links_hint(r, md_text),
        "",
        RULE,
        "",
        "## Architectures and budgets",
        "",
        _md_table(display_arch(r)),
        "",
        "Notes (\\* marks a computed parameter count that disagrees with the paper's print):",
        "",
        *(f"- {md_text(n)}" for n in notes(r) or ["none"]),
        "",
        f"Paper figures: Table 1 and §3 of the paper; the final model's curve is from "
        f"{REFERENCE_SOURCE}.",
        "",
    ]
    for title, path in (figs or {}).items():
        parts += [f"## {title}", "", f"![{title}]({path.name})", ""]
    parts += ["## Reproducibility cards", ""]
    for c in cards(r):
        parts += _md_card(c)
    parts += ["## Other runs", "", _md_table(display_other(r)), ""]
    return "\n".join(parts)
