"""Matplotlib figures: a run's learning curve and the report's comparison plots."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training hosts
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def learning_curve(history: pd.DataFrame, path: str | Path, title: str,
                   reference: pd.DataFrame | None = None, reference_label: str = "paper") -> Path:
    """Accuracy and loss against epoch (like the paper's Figures 8 and 9).

    `history` has columns epoch, train_acc, test_acc, train_loss, test_loss; an optional
    `reference` with the same columns is drawn dashed beside it.
    """
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            ax.plot(history["epoch"], history[f"{split}_{kind}"], color=colour, label=f"{split}")
            if reference is not None:
                ax.plot(reference["epoch"], reference[f"{split}_{kind}"], color=colour, ls="--",
                        alpha=0.7, label=f"{split} ({reference_label})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _marker(df: pd.DataFrame) -> str | None:
    """Dots when there are too few epochs for a line to show."""
    return "o" if df["epoch"].nunique() <= 5 else None


def _epoch_axis(ax, last_epoch) -> None:
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if last_epoch is not None and last_epoch < 5:  # a lone point would get a ±0.05 axis
        ax.set_xlim(-0.5, max(last_epoch, 1) + 0.5)


def accuracy_panels(curves: pd.DataFrame, order: list[str], path: str | Path, title: str,
                    paper: dict[str, float] | None = None) -> Path:
    """Test accuracy against epoch, one small panel per entry in `order`.

    `curves` has columns entry, run_id, epoch, test_acc: each run is drawn thin, the mean
    over runs bold, and the paper's final accuracy (from `paper`, by entry) as a dashed line.
    """
    cols = min(4, max(1, len(order)))
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, order):
        df = curves[curves["entry"] == name]
        if len(df):
            m = _marker(df)
            for _, run in df.groupby("run_id"):
                ax.plot(run["epoch"], run["test_acc"], color="tab:blue", alpha=0.35, lw=1, marker=m, ms=3)
            mean = df.groupby("epoch")["test_acc"].mean()
            ax.plot(mean.index, mean.values, color="tab:blue", lw=2, marker=m, label=f"mean of {df['run_id'].nunique()}")
        else:
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="grey")
        if paper and paper.get(name) is not None:
            ax.axhline(paper[name], color="tab:red", ls="--", lw=1, label=f"paper {paper[name]:.2f}%")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        _epoch_axis(ax, df["epoch"].max() if len(df) else None)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(order):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def runs_vs_reference(curves: pd.DataFrame, reference: pd.DataFrame, path: str | Path, title: str,
                      reference_label: str = "paper") -> Path:
    """Accuracy and loss against epoch: each measured run (solid) beside a reference curve (dashed).

    `curves` has columns run_id, epoch, train_acc, test_acc, train_loss, test_loss (it may be
    empty); `reference` has the same columns but run_id.
    """
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    m = _marker(curves) if len(curves) else None
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            ax.plot(reference["epoch"], reference[f"{split}_{kind}"], color=colour, ls="--", alpha=0.8,
                    label=f"{split} ({reference_label})")
            for i, (_, run) in enumerate(curves.groupby("run_id")):
                ax.plot(run["epoch"], run[f"{split}_{kind}"], color=colour, lw=1.2, marker=m, ms=4,
                        label=f"{split} (measured)" if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        _epoch_axis(ax, None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if len(curves) and curves[["train_loss", "test_loss"]].max().max() > 100 * reference["test_loss"].max():
        loss.set_yscale("log")  # a blown-up measured loss would flatten the paper's curve to nothing
    fig.suptitle(title)
    return _save(fig, path)
