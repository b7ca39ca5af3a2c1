"""A run's learning curve: accuracy and loss against epoch, as a matplotlib figure to log with the
run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on training hosts
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def learning_curve(history: pd.DataFrame, title: str):
    """Accuracy and loss against epoch (like the paper's Figures 8 and 9), train and test.

    `history` has columns epoch, train_acc, test_acc, train_loss, test_loss. The caller closes
    the figure (`plt.close`) once it is logged.
    """
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, kind, unit in ((acc, "acc", "accuracy (%)"), (loss, "loss", "cross-entropy")):
        for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
            ax.plot(history["epoch"], history[f"{split}_{kind}"], color=colour, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def close(fig) -> None:
    plt.close(fig)
