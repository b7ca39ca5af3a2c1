"""The report's figures: every row's test accuracy, the final model against the authors' curve,
Adam against SGD (the paper's Figures 3-6) and the 120-epoch run (Figure 7).

Drawn from the report's rows and the counted runs' curves; each only when the runs behind it
are in the report. All are PNG files written through `resnet.files.atomic_write`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resnet.files import atomic_write

REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "final-model-curve.csv"
REFERENCE_SOURCE = "github.com/Fieldwater/pytorch_cifar_resnet, Project1.ipynb"
FIG_PANELS, FIG_FINAL = "test_accuracy.png", "final_vs_paper.png"
FIG_OPTIMIZERS, FIG_LONG = "adam_vs_sgd.png", "epochs120.png"
ADAM, SGD, LONG = "paper/final", "paper/sgd", "paper/epochs120"
PAPER_STOP = 80  # the epoch at which the paper stopped, having seen the 120-epoch run overfit


def pyplot():
    """matplotlib on its file-only backend, imported when a figure is drawn: reports that draw none
    (to stdout, CSV, JSON) do not pay for it. No display on the hosts that write reports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, dpi=110, bbox_inches="tight", format="png")
    finally:
        pyplot().close(fig)
    return path


def _marker(df: pd.DataFrame) -> str | None:
    """Dots when there are too few epochs for a line to show."""
    return "o" if df["epoch"].nunique() <= 5 else None


def _epoch_axis(ax, last_epoch) -> None:
    ax.xaxis.set_major_locator(pyplot().MaxNLocator(integer=True))
    if last_epoch is not None and last_epoch < 5:  # a lone point would get a ±0.05 axis
        ax.set_xlim(-0.5, max(last_epoch, 1) + 0.5)


def accuracy_panels(
    curves: pd.DataFrame,
    order: list[str],
    path: str | Path,
    title: str,
    paper: dict[str, str] | None = None,
) -> Path:
    """Test accuracy against epoch, one small panel per entry in `order`.

    `curves` has columns entry, run_id, epoch, test_acc: each run is drawn thin, the mean
    over runs bold, and the paper's accuracy (from `paper`, by entry, as printed) as a dashed line.
    """
    cols = min(4, max(1, len(order)))
    rows = -(-len(order) // cols)
    fig, axes = pyplot().subplots(
        rows, cols, figsize=(3.4 * cols, 2.7 * rows), sharey=True, squeeze=False
    )
    for ax, name in zip(axes.flat, order, strict=False):
        df = curves[curves["entry"] == name]
        if len(df):
            m = _marker(df)
            for _, run in df.groupby("run_id"):
                ax.plot(
                    run["epoch"],
                    run["test_acc"],
                    color="tab:blue",
                    alpha=0.35,
                    lw=1,
                    marker=m,
                    ms=3,
                )
            mean = df.groupby("epoch")["test_acc"].mean()
            ax.plot(
                mean.index,
                mean.values,
                color="tab:blue",
                lw=2,
                marker=m,
                label=f"mean of {df['run_id'].nunique()}",
            )
        else:
            ax.text(
                0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="grey"
            )
        if paper and paper.get(name) is not None:
            ax.axhline(
                float(paper[name]), color="tab:red", ls="--", lw=1, label=f"paper {paper[name]}%"
            )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        _epoch_axis(ax, df["epoch"].max() if len(df) else None)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(order) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def runs_vs_reference(
    curves: pd.DataFrame,
    reference: pd.DataFrame,
    path: str | Path,
    title: str,
    reference_label: str = "paper",
) -> Path:
    """Accuracy and loss against epoch: each measured run (solid) beside a reference curve (dashed).

    `curves` has columns run_id, epoch, train_acc, test_acc, train_loss, test_loss (it may be
    empty); `reference` has the same columns but run_id.
    """
    fig, (acc, loss) = pyplot().subplots(1, 2, figsize=(10, 3.8))
    m = _marker(curves) if len(curves) else None
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            ax.plot(
                reference["epoch"],
                reference[f"{split}_{kind}"],
                color=colour,
                ls="--",
                alpha=0.8,
                label=f"{split} ({reference_label})",
            )
            for i, (_, run) in enumerate(curves.groupby("run_id")):
                ax.plot(
                    run["epoch"],
                    run[f"{split}_{kind}"],
                    color=colour,
                    lw=1.2,
                    marker=m,
                    ms=4,
                    label=f"{split} (measured)" if i == 0 else None,
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        _epoch_axis(ax, None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if (
        len(curves)
        and curves[["train_loss", "test_loss"]].max().max() > 100 * reference["test_loss"].max()
    ):
        # a blown-up measured loss would flatten the paper's curve to nothing
        loss.set_yscale("log")
    fig.suptitle(title)
    return _save(fig, path)


def _mean(df: pd.DataFrame, key: str) -> pd.Series:
    return df.groupby("epoch")[key].mean()


def _axes(ax, unit: str) -> None:
    ax.set_xlabel("epoch")
    ax.set_ylabel(unit)
    ax.xaxis.set_major_locator(pyplot().MaxNLocator(integer=True))
    low, high = ax.dataLim.y0, ax.dataLim.y1
    if unit == "cross-entropy" and low > 0 and high / low > 100:
        ax.set_yscale("log")  # one blown-up loss would flatten every other curve to a line at zero
        ax.set_ylabel(unit + " (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def optimizers(curves: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Accuracy and loss against epoch for each optimiser (mean over its runs): train dashed, test
    solid."""
    fig, (acc, loss) = pyplot().subplots(1, 2, figsize=(10, 3.8))
    colours = dict(zip(curves, ("tab:blue", "tab:red", "tab:green"), strict=False))
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for label, df in curves.items():
            marker = "o" if df["epoch"].nunique() <= 5 else None
            for split, style in (("train", "--"), ("test", "-")):
                m = _mean(df, f"{split}_{kind}")
                ax.plot(
                    m.index,
                    m.values,
                    color=colours[label],
                    ls=style,
                    marker=marker,
                    ms=3,
                    label=(
                        f"{label}, {split} ({df['run_id'].nunique()} "
                        f"run{'s' * (df['run_id'].nunique() > 1)})"
                    ),
                )
        _axes(ax, unit)
    fig.suptitle(title)
    return _save(fig, path)


def long_run(curves: pd.DataFrame, path: Path, title: str, stop: int = PAPER_STOP) -> Path:
    """Accuracy and loss of the long run (mean over runs), with a marker where the paper stopped."""
    fig, (acc, loss) = pyplot().subplots(1, 2, figsize=(10, 3.8))
    last = int(curves["epoch"].max())
    marker = "o" if curves["epoch"].nunique() <= 5 else None
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            m = _mean(curves, f"{split}_{kind}")
            ax.plot(m.index, m.values, color=colour, marker=marker, ms=3, label=split)
        if last >= stop:
            ax.axvline(
                stop, color="tab:red", ls=":", lw=1.5, label=f"epoch {stop}: the paper stopped here"
            )
        _axes(ax, unit)
    if last < stop:
        fig.text(
            0.5,
            -0.06,
            f"These runs end at epoch {last}; the paper's stop at epoch {stop} lies beyond them.",
            ha="center",
            fontsize=8,
            color="tab:red",
        )
    fig.suptitle(title)
    return _save(fig, path)


def figures_for(r, folder: Path) -> dict[str, Path]:
    """The report's PNGs in `folder`, by title: those whose runs the report `r` has."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = [row.entry.name for row in r.rows]
    paper = {
        row.entry.name: row.entry.paper.accuracy_text
        for row in r.rows
        if row.entry.paper.accuracy is not None
    }
    c = r.curves
    out = {
        "Test accuracy against epoch, every row": accuracy_panels(
            c, order, folder / FIG_PANELS, f"Test accuracy per epoch ({r.source})", paper
        )
    }
    if ADAM in order:
        final = c[c["entry"] == ADAM]
        # the notebook's test loss is a mean over batches: compare like with like
        if "test_loss_batchmean" in final:
            final = final.assign(test_loss=final["test_loss_batchmean"].fillna(final["test_loss"]))
        out[f"{ADAM}: measured against the paper's own curve"] = runs_vs_reference(
            final,
            pd.read_csv(REFERENCE),
            folder / FIG_FINAL,
            f"{ADAM}: {final['run_id'].nunique()} measured run(s) vs the authors' notebook "
            f"(test loss: mean over batches, as theirs)",
            reference_label="paper",
        )
    if (c["entry"] == ADAM).any() and (c["entry"] == SGD).any():
        out["Adam against SGD (the paper's Figures 3-6)"] = optimizers(
            {"Adam (paper/final)": c[c["entry"] == ADAM], "SGD (paper/sgd)": c[c["entry"] == SGD]},
            folder / FIG_OPTIMIZERS,
            f"Adam vs SGD, same lr, schedule and model ({r.source}); "
            "the paper: SGD stays below 80%",
        )
    if (c["entry"] == LONG).any():
        out["The 120-epoch run (the paper's Figure 7)"] = long_run(
            c[c["entry"] == LONG],
            folder / FIG_LONG,
            f"{LONG}: the final model past epoch {PAPER_STOP} ({r.source})",
        )
    return out
