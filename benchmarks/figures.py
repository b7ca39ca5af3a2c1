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
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)
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


def accuracy_by_entry(curves: dict[str, pd.DataFrame], path: str | Path, title: str) -> Path:
    """Test accuracy against epoch, one line per entry (mean over its runs)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, df in curves.items():
        mean = df.groupby("epoch")["test_acc"].mean()
        ax.plot(mean.index, mean.values, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)
