"""PNG plots for reports: confusion matrix, ROC curves, LR range test, and image grids of the worst mistakes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medkit.io.atomic import atomic_path

__all__ = ["plot_confusion_matrix", "plot_roc", "plot_lr_find", "plot_image_grid", "save_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> str:
    """Save a matplotlib figure atomically (no half-written PNG) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str) -> str:
    """Confusion matrix (rows: truth, columns: prediction) with counts and row percentages."""
    plt = _pyplot()
    cm = np.asarray(cm)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.6 * n + 2, 1.4 * n + 1.5))
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    ax.imshow(cm / rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if cm[i, j] / rows[i, 0] > 0.5 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{100 * cm[i, j] / rows[i, 0]:.1f}%", ha="center", va="center", color=colour)
    ax.set_xticks(range(n), class_names, rotation=30, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix")
    return save_figure(fig, path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str) -> str:
    """ROC curves, one per class name: ``{name: (fpr, tpr, auc)}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    ax.set_title("ROC")
    return save_figure(fig, path)


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, suggested: float | None, path: str) -> str:
    """Loss against learning rate (log scale) from a range test, with the suggestion marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    if suggested:
        ax.axvline(suggested, color="red", linestyle="--", label=f"steepest descent {suggested:.2e}")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.set_title("learning-rate range test")
    return save_figure(fig, path)


def plot_image_grid(images: Sequence[np.ndarray], titles: Sequence[str], path: str, columns: int = 4) -> str:
    """A grid of grayscale ``(rows, columns)`` or RGB ``(rows, columns, 3)`` images with titles."""
    plt = _pyplot()
    n = max(len(images), 1)
    columns = min(columns, n)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(np.asarray(images[k]), cmap="gray")
        ax.set_title(titles[k], fontsize=8)
    return save_figure(fig, path)
