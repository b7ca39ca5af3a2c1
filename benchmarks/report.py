"""The paper's Table 1 regenerated from the runs in MLflow, beside what the paper printed.

A row counts only FINISHED runs of one configuration (the entry's own, or the same
overrides applied to every entry: a `Variant`) on one data source, the latest run per
seed. Everything else in the experiment is listed apart under "other runs", with the
reason it was left out. Output: Markdown, HTML (figures embedded), CSV and JSON, each
written to a temporary file and renamed; figures are PNG files beside them.
"""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchmarks import figures, registry
from benchmarks.registry import Entry
from benchmarks.runner import apply_overrides
from resnet.data import DataError
from resnet.train import TrainConfig
from tracking import names, query

REFERENCE = Path(__file__).resolve().parent / "reference" / "final-model-curve.csv"
REFERENCE_SOURCE = "github.com/Fieldwater/pytorch_cifar_resnet, Project1.ipynb"
FORMATS = {"markdown": "md", "html": "html", "csv": "csv", "json": "json"}
FIG_PANELS, FIG_FINAL = "test_accuracy.png", "final_vs_paper.png"
CURVE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
SOURCES = {"cifar10": "CIFAR-10 (official files, MD5-verified)",
           "cifar10-jpeg-rebuild": "cifar10-jpeg-rebuild: CIFAR-10 rebuilt from JPEG files, not the paper's data",
           "cifar10-unverified": "cifar10-unverified: files that do not match CIFAR-10's MD5 checksums",
           "synthetic": "synthetic: generated data, whose accuracies say nothing about the paper"}


@dataclass(frozen=True)
class Variant:
    """What a table is about: the same training overrides and data limits applied to every entry."""

    overrides: tuple[tuple[str, object], ...] = ()
    limit_train: int = 0
    limit_test: int = 0

    @classmethod
    def of(cls, overrides: dict | None = None, limit_train: int | None = 0, limit_test: int | None = 0) -> "Variant":
        return cls(tuple(sorted((overrides or {}).items())), limit_train or 0, limit_test or 0)

    def train(self, entry: Entry) -> TrainConfig:
        return apply_overrides(entry.train, dict(self.overrides))

    def config_hash(self, entry: Entry) -> str:
        return entry.config_hash(self.train(entry))

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.overrides] + [
            f"{k}={v}" for k, v in (("limit_train", self.limit_train), ("limit_test", self.limit_test)) if v]
        return ", ".join(parts)


@dataclass
class Report:
    experiment: str
    uri: str
    source: str
    variant: Variant
    table: pd.DataFrame                      # one row per entry, raw values
    other: pd.DataFrame                      # runs not counted in any row, with the reason
    curves: pd.DataFrame                     # per-epoch histories of the counted runs (+ entry)
    generated: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    def header(self) -> list[str]:
        config = self.variant.describe()
        if config:
            what = f"runs with overrides: {config}, data: {self.source} — not the paper's configuration"
        elif self.source != "cifar10":
            what = f"the entries' own configurations, data: {self.source} — not the paper's data"
        else:
            what = "each entry's own registered configuration, on CIFAR-10"
        return [f"Configuration: {what}.",
                f"Data: {SOURCES.get(self.source, self.source)}.",
                f"Runs: experiment {self.experiment!r} in {self.where()}; generated {self.generated}.",
                "Measured accuracy is the test accuracy at the last epoch, as the paper reports it: mean ± sample "
                "standard deviation over seeds (n seeds, the latest finished run of each). Only finished runs of "
                "this configuration and data count; every other run is listed under Other runs."]

    def where(self) -> str:
        db = query.sqlite_path(self.uri)
        return f"sqlite:///{db.resolve()}" if db is not None else self.uri


def load_runs(uri: str | None, experiment: str) -> pd.DataFrame:
    """resbench's training runs of `experiment`, one row each, with plain column names."""
    raw = query.search_runs(uri, experiment)
    col = lambda name, default=None: raw[name] if name in raw else pd.Series(default, index=raw.index)  # noqa: E731
    df = pd.DataFrame({
        "run_id": raw["run_id"], "run_name": col("tags.mlflow.runName"), "status": raw["status"],
        "start_time": raw["start_time"], "entry": col(f"tags.{names.TAG_ENTRY}"),
        "kind": col(f"tags.{names.TAG_KIND}", "train"),
        "seed": pd.to_numeric(col(f"tags.{names.TAG_SEED}"), errors="coerce"),
        "config_hash": col(f"tags.{names.TAG_CONFIG_HASH}"),
        "overrides": col(f"tags.{names.TAG_OVERRIDES}", "").fillna(""),
        "data": col(f"tags.{names.TAG_DATA_SOURCE}"),
        "limit_train": pd.to_numeric(col("params.limit_train", 0), errors="coerce").fillna(0).astype(int),
        "limit_test": pd.to_numeric(col("params.limit_test", 0), errors="coerce").fillna(0).astype(int),
        "diverged": col(f"tags.{names.TAG_DIVERGED_EPOCH}").notna(),
        "failure": col(f"tags.{names.TAG_FAILURE}", "").fillna(""),
        **{key: pd.to_numeric(col(f"metrics.{metric}"), errors="coerce") for key, metric in (
            ("acc", names.TEST_ACCURACY), ("best", names.BEST_TEST_ACCURACY), ("loss", names.TEST_LOSS),
            ("wall", names.WALL_SECONDS))},
    })
    # the overridden fields with the values the run used, from its params
    df["overrides"] = [", ".join(f"{k}={rec.get('params.' + k)}" for k in tag.split(",") if k)
                       for tag, rec in zip(df["overrides"], raw.to_dict("records"))]
    return df[df["entry"].notna() & df["kind"].fillna("train").eq("train")].reset_index(drop=True)


def matching(runs: pd.DataFrame, entry: Entry, variant: Variant, source: str) -> pd.Series:
    """Runs of `entry` in exactly this configuration and data (any status)."""
    return (runs["entry"].eq(entry.name) & runs["config_hash"].eq(variant.config_hash(entry))
            & runs["data"].eq(source) & runs["limit_train"].eq(variant.limit_train)
            & runs["limit_test"].eq(variant.limit_test))


def counted(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs that count: the latest one of each seed."""
    done = runs[runs["status"].eq("FINISHED")].sort_values("start_time")
    return done.drop_duplicates("seed", keep="last").sort_values("seed")


def resolve_source(runs: pd.DataFrame, entries: list[Entry], variant: Variant, data: str) -> str:
    """The data source a table is about. "cifar10" means the official files when any run used
    them, else the CIFAR-10 copy (rebuilt or unverified) with the most finished runs."""
    if data != "cifar10":
        used = set(runs["data"].dropna())
        if data not in SOURCES and data not in used:
            raise DataError(f"data source {data!r}: no run used it (sources here: {', '.join(sorted(used)) or 'none'})")
        return data
    mask = pd.Series(False, index=runs.index)
    for e in entries:
        mask |= runs["entry"].eq(e.name) & runs["config_hash"].eq(variant.config_hash(e))
    seen = runs[mask & runs["status"].eq("FINISHED") & runs["data"].fillna("").str.startswith("cifar10")]["data"]
    return "cifar10" if seen.empty or "cifar10" in set(seen) else seen.value_counts().index[0]


def params_note(printed: str | None, computed: int) -> str:
    """Empty when the computed count agrees with the print at the print's own precision."""
    if not printed:
        return ""
    text = printed.strip()
    if text.endswith("M"):
        digits = len(text[:-1].partition(".")[2])
        value = float(text[:-1])
        if round(computed / 1e6, digits) == value:
            return ""
        shown = f"{computed / 1e6:.{digits}f}M"
        if int(computed / 10 ** (6 - digits)) / 10 ** digits == value:
            return f"computed {computed:,} is {shown}; the paper's {text} truncates it"
        return f"computed {computed:,} ({shown}) disagrees with the paper's {text}"
    if int(text.replace(",", "")) == computed:
        return ""
    return f"computed {computed:,} disagrees with the paper's {text}"


def _status(runs: pd.DataFrame, n: int) -> str:
    statuses = set(runs["status"])
    if n:
        return "finished"
    if "RUNNING" in statuses:
        return "running"
    if runs["diverged"].any():
        return "diverged"
    if "FAILED" in statuses:
        return "failed"
    return "killed" if "KILLED" in statuses else "not run"


def _row(entry: Entry, variant: Variant, runs: pd.DataFrame) -> dict:
    use = counted(runs)
    n = len(use)
    m, p = entry.model, entry.paper
    acc = use["acc"].mean() if n else None
    params_differ = params_note(p.params, entry.param_count)
    notes = [params_differ]
    left = runs[~runs["run_id"].isin(use["run_id"])]
    for status, count in left["status"].value_counts().items():
        if status != "FINISHED":
            notes.append(f"{count} {status.lower()} run{'s' * (count > 1)} not counted")
    kernel = lambda v: v[0] if len(set(v)) == 1 else "[" + ",".join(map(str, v)) + "]"  # noqa: E731
    return {
        "num": p.num, "entry": entry.name, "paper_accuracy": p.accuracy, "paper_params": p.params,
        "params": entry.param_count, "params_agree": not params_differ, "layers": m.layers, "blocks": "[" + ",".join(map(str, m.blocks)) + "]",
        "channels": "[" + ",".join(map(str, m.channels)) + "]", "conv_kernel": kernel(m.conv_kernel),
        "skip_kernel": kernel(m.skip_kernel), "pool_kernel": m.pool_kernel, "epochs": variant.train(entry).epochs,
        "n": n, "acc_mean": acc, "acc_std": use["acc"].std() if n > 1 else None,
        "best_mean": use["best"].mean() if n else None,
        "delta": acc - p.accuracy if n and p.accuracy is not None else None,
        "test_loss": use["loss"].mean() if n else None, "wall_seconds": use["wall"].mean() if n else None,
        "status": _status(runs, n), "seeds": ",".join(str(int(s)) for s in use["seed"]),
        "notes": "; ".join(x for x in notes if x), "run_ids": ",".join(use["run_id"]),
    }


def _why(run: pd.Series, known: dict[str, Entry], variant: Variant, source: str) -> str:
    entry = known.get(run["entry"])
    if entry is None:
        return "entry not in the registry"
    why = []
    if run["data"] != source:
        why.append(f"other data ({run['data']})")
    if (run["config_hash"] != variant.config_hash(entry) or run["limit_train"] != variant.limit_train
            or run["limit_test"] != variant.limit_test):
        why.append("other configuration" if run["overrides"] else "the entry changed since this run")
    if run["status"] != "FINISHED":
        why.append("diverged" if run["diverged"] else
                   f"{run['status'].lower()}: {run['failure'][:80]}" if run["failure"] else run["status"].lower())
    return "; ".join(why) or "an earlier run of the same seed"


def build(runs: pd.DataFrame, uri: str, experiment: str, variant: Variant = Variant(), data: str = "cifar10",
          entries: list[Entry] | None = None) -> Report:
    """The report over `runs` (from load_runs); histories are read for the counted runs only."""
    entries = entries if entries is not None else registry.entries()
    source = resolve_source(runs, entries, variant, data)
    rows, used = [], set()
    for e in entries:
        row = _row(e, variant, runs[matching(runs, e, variant, source)])
        used.update(filter(None, row["run_ids"].split(",")))
        rows.append(row)
    table = pd.DataFrame(rows).astype({"num": "Int64"})
    known = {e.name: e for e in entries}
    rest = runs[~runs["run_id"].isin(used)].copy()
    rest["why"] = [_why(r, known, variant, source) for _, r in rest.iterrows()]
    rest["status"] = rest["status"].where(~(rest["diverged"] & rest["status"].eq("FAILED")), "DIVERGED")
    other = rest[["entry", "run_name", "overrides", "data", "status", "acc", "why", "run_id"]].reset_index(drop=True)
    ids = [(r["entry"], i) for _, r in table.iterrows() for i in filter(None, r["run_ids"].split(","))]
    curves = query.metric_histories(uri, [i for _, i in ids], CURVE_KEYS)
    curves.insert(0, "entry", curves["run_id"].map({i: name for name, i in ids}))
    return Report(experiment, uri, source, variant, table, other, curves)


# ---------------------------------------------------------------------------------------------- output

def _num(v, fmt: str = "{:.2f}", empty: str = "—") -> str:
    return empty if v is None or pd.isna(v) else fmt.format(v)


def _wall(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def display_table(r: Report) -> pd.DataFrame:
    """The table as people read it: formatted text, the paper's columns first."""
    t = r.table
    acc = [("—" if not n else f"{m:.2f} ± {s:.2f} (n={n})" if n > 1 else f"{m:.2f} (n=1)")
           for m, s, n in zip(t["acc_mean"], t["acc_std"], t["n"])]
    return pd.DataFrame({
        "Num": [_num(v, "{:.0f}", "") for v in t["num"]], "entry": t["entry"],
        "paper acc (%)": [_num(v) for v in t["paper_accuracy"]], "paper #params": t["paper_params"].fillna(""),
        "#params": [f"{v:,}" + ("" if agree else " *") for v, agree in zip(t["params"], t["params_agree"])],
        "res. layers": t["layers"], "blocks": t["blocks"], "channels": t["channels"], "conv kernel": t["conv_kernel"],
        "skip kernel": t["skip_kernel"], "pool kernel": t["pool_kernel"], "epochs": t["epochs"],
        "final test acc (%)": acc, "best-epoch acc (%)": [_num(v) for v in t["best_mean"]],
        "Δ vs paper": [_num(v, "{:+.2f}") for v in t["delta"]], "test loss": [_num(v, "{:.3f}" if pd.isna(v) or abs(v) < 1e3 else "{:.2e}") for v in t["test_loss"]],
        "wall time": [_wall(v) for v in t["wall_seconds"]], "status": t["status"],
    })


def notes(r: Report) -> list[str]:
    """One line per row that has notes; the * in the #params column points here."""
    return [f"{e}: {n}" for e, n in zip(r.table["entry"], r.table["notes"]) if n]


def display_other(r: Report) -> pd.DataFrame:
    o = r.other
    return pd.DataFrame({"entry": o["entry"], "run": o["run_name"], "overrides": o["overrides"].replace("", "none"),
                         "data": o["data"].fillna("?"), "status": o["status"].str.lower(),
                         "test acc (%)": [_num(v) for v in o["acc"]], "not counted because": o["why"]})


def figures_for(r: Report, folder: Path) -> dict[str, Path]:
    """The report's PNGs in `folder`: every row's test accuracy, and paper/final against the paper."""
    folder.mkdir(parents=True, exist_ok=True)
    order = list(r.table["entry"])
    paper = {e: a for e, a in zip(r.table["entry"], r.table["paper_accuracy"]) if pd.notna(a)}
    out = {"Test accuracy against epoch, every row": figures.accuracy_panels(
        r.curves, order, folder / FIG_PANELS, f"Test accuracy per epoch ({r.source})", paper)}
    if "paper/final" in order:
        final = r.curves[r.curves["entry"] == "paper/final"]
        out["paper/final: measured against the paper's own curve"] = figures.runs_vs_reference(
            final, pd.read_csv(REFERENCE), folder / FIG_FINAL,
            f"paper/final: {final['run_id'].nunique()} measured run(s) vs the authors' notebook",
            reference_label="paper")
    return out


def _md_table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, disable_numparse=True) if len(df) else "_none_"


def markdown(r: Report, figs: dict[str, Path] | None = None) -> str:
    parts = ["# Table 1, regenerated", "", "\n\n".join(r.header()), "",
             _md_table(display_table(r)), "",
             "Notes (\\* marks a computed parameter count that disagrees with the paper's print):", "",
             *(f"- {n}" for n in notes(r) or ["none"]), "",
             f"Paper figures: Table 1 and §3 of the paper; the final model's curve is from {REFERENCE_SOURCE}.", "",
             "## Other runs", "", _md_table(display_other(r)), ""]
    for title, path in (figs or {}).items():
        parts += [f"## {title}", "", f"![{title}]({path.name})", ""]
    return "\n".join(parts)


CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 5px;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f0f0f0;white-space:normal;text-align:center}td:nth-child(2),td:last-child{text-align:left}
li{margin:2px 0}.note{color:#555;max-width:1100px}img{max-width:100%;border:1px solid #ddd}
td.finished{background:#e6f4e6}td.failed,td.diverged,td.killed{background:#fbe3e3}td.running{background:#fff5d6}
td.not-run{color:#888}"""


def _html_table(df: pd.DataFrame, status_col: int | None = None, cls: str = "") -> str:
    if not len(df):
        return "<p><em>none</em></p>"
    text = df.to_html(index=False, escape=True, border=0, classes=cls or None)
    if status_col is not None:  # colour the status cells by their value
        for s in df.iloc[:, status_col].unique():
            text = text.replace(f"<td>{html.escape(s)}</td>", f'<td class="{s.replace(" ", "-")}">{html.escape(s)}</td>')
    return text


def to_html(r: Report, figs: dict[str, Path] | None = None) -> str:
    shown = display_table(r)
    body = ["<h1>Table 1, regenerated</h1>", *(f'<p class="note">{html.escape(h)}</p>' for h in r.header()),
            _html_table(shown, list(shown.columns).index("status"), "main"),
            "<p>Notes (* marks a computed parameter count that disagrees with the paper's print):</p><ul>",
            *(f"<li>{html.escape(n)}</li>" for n in notes(r) or ["none"]), "</ul>"]
    for title, path in (figs or {}).items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        body += [f"<h2>{html.escape(title)}</h2>", f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">']
    body += ["<h2>Other runs</h2>", _html_table(display_other(r), 4)]
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>resbench: Table 1</title><style>{CSS}</style>'
            f"</head><body>{''.join(body)}</body></html>\n")


def to_json(r: Report) -> str:
    clean = lambda df: json.loads(df.to_json(orient="records"))  # noqa: E731
    return json.dumps({"experiment": r.experiment, "tracking_uri": r.where(), "data": r.source,
                       "overrides": r.variant.describe(), "generated": r.generated, "header": r.header(),
                       "rows": clean(r.table), "other_runs": clean(r.other)}, indent=2) + "\n"


def render(r: Report, fmt: str, figs: dict[str, Path] | None = None) -> str:
    if fmt == "markdown":
        return markdown(r, figs)
    if fmt == "html":
        return to_html(r, figs)
    if fmt == "json":
        return to_json(r)
    return r.table.to_csv(index=False)


def write_text(path: Path, text: str) -> Path:
    """Write through a temporary file and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write(r: Report, output: Path, formats: list[str] | None = None) -> list[Path]:
    """Into folder `output`: report.<ext> for each format (default all) and the figures."""
    formats = formats or list(FORMATS)
    figs = figures_for(r, output) if {"markdown", "html"} & set(formats) else {}
    return [write_text(output / f"report.{FORMATS[f]}", render(r, f, figs)) for f in formats] + list(figs.values())
