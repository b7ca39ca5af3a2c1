"""The report's figures: every row's test accuracy, the final model against the authors' curve,
Adam against SGD (the paper's Figures 3-6) and the 120-epoch run (Figure 7).

Each is drawn only when the runs behind it are in the report; all are PNG files written
through a temporary file and renamed.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks import figures
from benchmarks.figures import plt  # matplotlib with the file-only backend figures.py selects

REFERENCE = Path(__file__).resolve().parent / "reference" / "final-model-curve.csv"
REFERENCE_SOURCE = "github.com/Fieldwater/pytorch_cifar_resnet, Project1.ipynb"
FIG_PANELS, FIG_FINAL = "test_accuracy.png", "final_vs_paper.png"
FIG_OPTIMIZERS, FIG_LONG = "adam_vs_sgd.png", "epochs120.png"
ADAM, SGD, LONG = "paper/final", "paper/sgd", "paper/epochs120"
PAPER_STOP = 80  # the epoch at which the paper stopped, having seen the 120-epoch run overfit


def _mean(df: pd.DataFrame, key: str) -> pd.Series:
    return df.groupby("epoch")[key].mean()


def _axes(ax, unit: str) -> None:
    ax.set_xlabel("epoch")
    ax.set_ylabel(unit)
    ax.xaxis.set_major_locator(figures.matplotlib.ticker.MaxNLocator(integer=True))
    low, high = ax.dataLim.y0, ax.dataLim.y1
    if unit == "cross-entropy" and low > 0 and high / low > 100:
        ax.set_yscale("log")  # one blown-up loss would flatten every other curve to a line at zero
        ax.set_ylabel(unit + " (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def optimizers(curves: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Accuracy and loss against epoch for each optimiser (mean over its runs): train dashed, test solid."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = dict(zip(curves, ("tab:blue", "tab:red", "tab:green")))
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for label, df in curves.items():
            marker = "o" if df["epoch"].nunique() <= 5 else None
            for split, style in (("train", "--"), ("test", "-")):
                m = _mean(df, f"{split}_{kind}")
                ax.plot(m.index, m.values, color=colours[label], ls=style, marker=marker, ms=3,
                        label=f"{label}, {split} ({df['run_id'].nunique()} run{'s' * (df['run_id'].nunique() > 1)})")
        _axes(ax, unit)
    fig.suptitle(title)
    return figures._save(fig, path)


def long_run(curves: pd.DataFrame, path: Path, title: str, stop: int = PAPER_STOP) -> Path:
    """Accuracy and loss of the long run (mean over runs), with a marker where the paper stopped."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    last = int(curves["epoch"].max())
    marker = "o" if curves["epoch"].nunique() <= 5 else None
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            m = _mean(curves, f"{split}_{kind}")
            ax.plot(m.index, m.values, color=colour, marker=marker, ms=3, label=split)
        if last >= stop:
            ax.axvline(stop, color="tab:red", ls=":", lw=1.5, label=f"epoch {stop}: the paper stopped here")
        _axes(ax, unit)
    if last < stop:
        fig.text(0.5, -0.06, f"These runs end at epoch {last}; the paper's stop at epoch {stop} lies beyond them.",
                 ha="center", fontsize=8, color="tab:red")
    fig.suptitle(title)
    return figures._save(fig, path)


def figures_for(r, folder: Path) -> dict[str, Path]:
    """The report's PNGs in `folder`, by title: those whose runs the report has."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = list(r.table["entry"])
    paper = {e: a for e, a in zip(r.table["entry"], r.table["paper_accuracy"]) if pd.notna(a)}
    c = r.curves
    out = {"Test accuracy against epoch, every row": figures.accuracy_panels(
        c, order, folder / FIG_PANELS, f"Test accuracy per epoch ({r.source})", paper)}
    if ADAM in order:
        final = c[c["entry"] == ADAM]
        out[f"{ADAM}: measured against the paper's own curve"] = figures.runs_vs_reference(
            final, pd.read_csv(REFERENCE), folder / FIG_FINAL,
            f"{ADAM}: {final['run_id'].nunique()} measured run(s) vs the authors' notebook",
            reference_label="paper")
    if (c["entry"] == ADAM).any() and (c["entry"] == SGD).any():
        out["Adam against SGD (the paper's Figures 3-6)"] = optimizers(
            {"Adam (paper/final)": c[c["entry"] == ADAM], "SGD (paper/sgd)": c[c["entry"] == SGD]},
            folder / FIG_OPTIMIZERS, f"Adam vs SGD, same lr, schedule and model ({r.source}); "
                                     "the paper: SGD stays below 80%")
    if (c["entry"] == LONG).any():
        out["The 120-epoch run (the paper's Figure 7)"] = long_run(
            c[c["entry"] == LONG], folder / FIG_LONG, f"{LONG}: the final model past epoch {PAPER_STOP} ({r.source})")
    return out
