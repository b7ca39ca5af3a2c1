"""The report as one HTML page: the Markdown's sections, the figures embedded as PNG data, the
verdict and status cells coloured, each entry linked to its card.

Every store value is HTML-escaped; links go out only to http(s) URLs (benchmarks/report/escape.py's
`safe_url`). The tables' cells come from benchmarks/report/display.py.
"""

from __future__ import annotations

import base64
import html
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
from benchmarks.report.escape import safe_url
from benchmarks.report.table import Report
from benchmarks.report.verdicts import RULE

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 14px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f0f0f0;white-space:normal;text-align:center}td.l{text-align:left}
td.wrap{white-space:normal;text-align:left;max-width:520px}
p.summary{font-size:17px;font-weight:600;padding:8px 12px;background:#f4f7fb;border-left:4px solid #4a78b5}
li{margin:2px 0}.note{color:#555;max-width:1100px;margin:4px 0}img{max-width:100%;border:1px solid #ddd}
td.reproduced,td.finished{background:#e3f3e3}td.not-reproduced,td.failed,td.diverged,td.collapsed,td.killed{background:#fbe3e3}
td.inconclusive,td.running{background:#fff3cf}td.other-data,td.other-configuration{background:#e6eefb}
td.not-run,td.no-paper-figure{color:#888}a{color:#2a5db0}code{font-size:11px}
details.card{border:1px solid #ddd;border-radius:4px;margin:8px 0;padding:4px 10px;max-width:1300px}
details.card summary{cursor:pointer;font-size:14px;padding:4px 0}details.card table{width:100%}
details.card th{width:150px;text-align:left;background:#fafafa}details.card td{white-space:normal;text-align:left}
details.card ul{margin:0;padding-left:18px}"""  # noqa: E501 (CSS rules, one a line)


def _e(v) -> str:
    return html.escape(str(v))


def _cls(text: str) -> str:
    return text.split(":")[0].split(" (")[0].replace(" ", "-")


def _html_table(
    df: pd.DataFrame, raw: dict[str, list[str]] | None = None, left=(), status=()
) -> str:
    """`raw` columns hold ready HTML; `left` columns align left; `status` cells get a class from
    their text."""
    if not len(df):
        return "<p><em>none</em></p>"
    raw = raw or {}
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for i, (_, row) in enumerate(df.iterrows()):
        cells = []
        for c in df.columns:
            classes = [_cls(str(row[c]))] if c in status else []
            classes += ["l"] if c in left else []
            attr = f' class="{_e(" ".join(classes))}"' if classes else ""
            cells.append(f"<td{attr}>{raw[c][i] if c in raw else _e(row[c])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _run_links(ids: list[str], urls: list[str | None], short: bool = True) -> str:
    out = []
    for i, u in zip(ids, urls, strict=False):
        label = _e(i[:8] if short else i)
        target = safe_url(u)
        out.append(
            f'<a href="{_e(target)}" title="{_e(i)}">{label}</a>'
            if target
            else f'<code title="{_e(i)}">{label}</code>'
        )
    return " ".join(out) or "—"


def _html_card(c: cards_mod.Card, open_: bool) -> str:
    rows = [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in c.fields]
    runs = (
        "<br>".join(f"{_run_links([i], [u], short=False)} — {_e(label)}" for i, u, label in c.runs)
        or "none"
    )
    devs = (
        "<ul>" + "".join(f"<li>{_e(d)}</li>" for d in c.deviations) + "</ul>"
        if c.deviations
        else "none"
    )
    rows += [
        f"<tr><th>Runs</th><td>{runs}</td></tr>",
        f"<tr><th>Deviations from the paper</th><td>{devs}</td></tr>",
    ]
    return (
        f'<details class="card" id="{c.anchor}"{" open" if open_ else ""}>'
        f'<summary><b>{_e(c.entry)}</b>: '
        f"{_e(c.headline)}</summary><table>{''.join(rows)}</table></details>"
    )


def to_html(r: Report, figs: dict[str, Path] | None = None) -> str:
    shown = display_table(r)
    raw = {
        "entry": [
            f'<a href="#{cards_mod.anchor(x.entry.name)}">{_e(x.entry.name)}</a>' for x in r.rows
        ],
        "runs": [_run_links(list(x.run_ids[:MAX_LINKS]), list(x.urls)) for x in r.rows],
    }
    body = [
        "<h1>Table 1, regenerated</h1>",
        *(
            [f'<p class="summary">{_e(r.notice()[0])}</p>']
            + [f"<pre><code>{_e(c)}</code></pre>" for c in r.notice()[1:]]
            if r.elsewhere
            else []
        ),
        f'<p class="summary">{_e(r.summary())}</p>',
        *(f'<p class="note">{_e(h)}</p>' for h in r.header()),
        _html_table(shown, raw, left=("entry", "verdict", "runs"), status=("verdict", "status")),
        f'<p class="note">{_e(links_hint(r))} Each entry links to its reproducibility card '
        f'below.</p>',
        f'<p class="note">{_e(RULE).replace("*", "")}</p>',
        "<h2>Architectures and budgets</h2>",
        _html_table(display_arch(r), left=("entry",)),
        "<p>Notes (* marks a computed parameter count that disagrees with the paper's "
        "print):</p><ul>",
        *(f"<li>{_e(n)}</li>" for n in notes(r) or ["none"]),
        "</ul>",
    ]
    for title, path in (figs or {}).items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        body += [
            f"<h2>{_e(title)}</h2>",
            f'<img alt="{_e(title)}" src="data:image/png;base64,{data}">',
        ]
    body += [
        "<h2>Reproducibility cards</h2>",
        *(_html_card(c, open_=bool(c.runs)) for c in cards(r)),
    ]
    other = display_other(r)
    body += [
        "<h2>Other runs</h2>",
        _html_table(other, left=("entry", "run", "not counted because"), status=("status",)),
    ]
    return (
        f'<!doctype html><html><head><meta charset="utf-8">'
        f'<title>resbench: Table 1</title><style>{CSS}</style>'
        f"</head><body>{''.join(body)}</body></html>\n"
    )
