"""The report written out: Markdown, HTML (figures embedded), CSV and JSON.

Reads a `Report` (benchmarks/report/build.py), its rows' cards (cards.py) and figures
(figures.py). Markdown and HTML show the summary line, the results with their verdicts and
run links, the verdict rule, the architectures with their budgets, the figures, one
reproducibility card per row and the runs left out. CSV is the flat table (`Report.table`:
run ids, config hash, identity, code version, data checksum included); JSON adds the cards
and the summary. Every file goes through `resnet.files.atomic_write`: no reader sees half a
report. Store values (run names, tags, params) render as text in every format: HTML escapes
them, Markdown and CSV go through benchmarks/report/escape.py, links go out only to http(s) URLs.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from benchmarks.registry import BEST, FINAL
from benchmarks.report import cards as cards_mod
from benchmarks.report.build import Report
from benchmarks.report.escape import csv_text, md_text, safe_url
from benchmarks.report.figures import REFERENCE_SOURCE, figures_for
from benchmarks.report.verdicts import PERCENT, RULE
from resnet.files import atomic_write

FORMATS = {"markdown": "md", "html": "html", "csv": "csv", "json": "json"}
MAX_LINKS = 5  # run links shown in a table cell; the card lists them all
JUDGED = {BEST: "best epoch", FINAL: "final epoch"}  # the verdict's metric, in the table


def _num(v, fmt: str = "{:.2f}", empty: str = "—") -> str:
    return empty if v is None or pd.isna(v) else fmt.format(v)


def display_table(r: Report) -> pd.DataFrame:
    """The results as people read them: formatted text, one row per entry."""
    rows = r.rows
    out = (
        pd.DataFrame({"rank": [_num(x.rank, "{:.0f}", "") for x in rows]})
        if r.ranked
        else pd.DataFrame()
    )
    cols = {
        "Num": [_num(x.entry.paper.num, "{:.0f}", "") for x in rows],
        "entry": [x.entry.name for x in rows],
        "epochs": [x.train.epochs for x in rows],
        "paper acc (%)": [x.entry.paper.accuracy_text or "—" for x in rows],
        f"final-epoch acc (%), mean ± {PERCENT} CI": [x.final.text() for x in rows],
        f"best-epoch acc (%), mean ± {PERCENT} CI": [x.best.text() for x in rows],
        "judged on": [
            JUDGED[x.verdict.metric] if x.entry.paper.accuracy is not None else "—" for x in rows
        ],
        "Δ vs paper": [
            _num(
                x.interval.mean - x.entry.paper.accuracy
                if x.n and x.entry.paper.accuracy is not None
                else None,
                "{:+.2f}",
            )
            for x in rows
        ],
        "verdict": [x.verdict.text for x in rows],
        "test loss / image": [_loss(x.mean_of("loss")) for x in rows],
        "test loss / batch (authors')": [_loss(x.mean_of("loss_batchmean")) for x in rows],
        "paper test loss": [_num(x.entry.paper.test_loss, "{:g}", "") for x in rows],
        "wall time / run": [cards_mod.duration(x.mean_of("wall")) for x in rows],
        "status": [x.status for x in rows],
        "runs": [" ".join(i[:8] for i in x.run_ids[:MAX_LINKS]) or "—" for x in rows],
    }
    for k, v in cols.items():
        out[k] = list(v)
    return out


def _loss(v) -> str:
    return _num(v, "{:.3f}" if v is None or pd.isna(v) or abs(v) < 1e3 else "{:.2e}")


def display_arch(r: Report) -> pd.DataFrame:
    """The rows as configured: the paper's architecture columns and the budget columns."""
    t = r.table
    return pd.DataFrame(
        {
            "Num": [_num(v, "{:.0f}", "") for v in t["num"]],
            "entry": t["entry"],
            "res. layers": t["layers"],
            "blocks": t["blocks"],
            "channels": t["channels"],
            "conv kernel": t["conv_kernel"],
            "skip kernel": t["skip_kernel"],
            "pool kernel": t["pool_kernel"],
            "paper #params": t["paper_params"].fillna(""),
            "#params": [
                f"{v:,}" + ("" if agree else " *")
                for v, agree in zip(t["params"], t["params_agree"], strict=False)
            ],
            "params vs print": t["params_verdict"],
            "fwd MFLOPs/img": [f"{v:,.1f}" for v in t["mflops"]],
            "≤ 5M params": t["fits_5m"].map({True: "yes", False: "no"}),
        }
    )


def notes(r: Report) -> list[str]:
    """One line per row that has notes; the * in the #params column points here."""
    return [f"{x.entry.name}: {'; '.join(x.notes)}" for x in r.rows if x.notes]


def display_other(r: Report) -> pd.DataFrame:
    o = r.other
    return pd.DataFrame(
        {
            "entry": o["entry"],
            "run": o["run_name"],
            "overrides": o["overrides"].replace("", "none"),
            "data": o["data"].fillna("?"),
            "status": o["status"].astype(str).str.lower(),
            "test acc (%)": [_num(v) for v in o["acc"]],
            "not counted because": o["why"],
            "run id": o["run_id"],
        }
    )


def cards(r: Report) -> list[cards_mod.Card]:
    return [cards_mod.card(x, r.variant.describe(), r.source) for x in r.rows]


def _links_hint(r: Report, quote=str) -> str:
    if r.ui_url:
        return f"Run ids link to the MLflow UI at {quote(r.ui_url)}."
    return (
        "Run ids are MLflow run ids (the first 8 characters in the table, in full in the cards); "
        "`resbench ui` "
        "serves them, and `resbench report --ui-url URL` turns them into links."
    )


# ----------------------------------------------------------------------------------------- Markdown


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
        _links_hint(r, md_text),
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


# --------------------------------------------------------------------------------------------- HTML

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
        f'<p class="note">{_e(_links_hint(r))} Each entry links to its reproducibility card '
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


# --------------------------------------------------------------------------------------------- data


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
