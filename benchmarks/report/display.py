"""The report's tables as people read them: formatted text cells, shared by Markdown and HTML.

From a `Report` (benchmarks/report/table.py): the results with their verdicts (`display_table`),
the architectures and budgets (`display_arch`), the runs left out (`display_other`), the notes the
* in the #params column points to, the rows' reproducibility cards (benchmarks/report/cards.py)
and the line saying where run ids lead. Cells hold plain text; each page escapes them its way.
"""

from __future__ import annotations

import pandas as pd

from benchmarks.registry import BEST, FINAL
from benchmarks.report import cards as cards_mod
from benchmarks.report.table import Report
from benchmarks.report.verdicts import PERCENT
from benchmarks.text import duration

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
        "wall time / run": [duration(x.mean_of("wall")) for x in rows],
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


def links_hint(r: Report, quote=str) -> str:
    if r.ui_url:
        return f"Run ids link to the MLflow UI at {quote(r.ui_url)}."
    return (
        "Run ids are MLflow run ids (the first 8 characters in the table, in full in the cards); "
        "`resbench ui` "
        "serves them, and `resbench report --ui-url URL` turns them into links."
    )
