"""Figures of the leaderboard (matplotlib `Figure`s, no pyplot state): per-class bars and
per-item score distributions. Used by the Leaderboard tab and `python -m leaderboard report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["per_class_figure", "ecdf_figure", "save_png"]


def _figure(width: float = 7.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def per_class_figure(frame: pd.DataFrame, label: str) -> Any:
    """Grouped bars: classes on x, one bar per entry (columns of `frame` after 'Class')."""
    fig = _figure(9, 4)
    ax = fig.add_subplot()
    entries = [c for c in frame.columns if c != "Class"]
    if frame.empty or not entries:
        ax.text(0.5, 0.5, "no scored entries yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    x = np.arange(len(frame))
    width = 0.8 / len(entries)
    for k, name in enumerate(entries):
        values = pd.to_numeric(frame[name], errors="coerce").fillna(0.0).to_numpy()
        ax.bar(x + (k - (len(entries) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, frame["Class"], rotation=45, ha="right")
    ax.set_ylabel(f"{label} (higher is better)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small", ncols=2)
    return fig


def ecdf_figure(distributions: dict[str, np.ndarray], baselines: set[str], label: str) -> Any:
    """Empirical CDFs of per-item scores; baselines dashed."""
    fig = _figure()
    ax = fig.add_subplot()
    if not distributions:
        ax.text(0.5, 0.5, "no scored entries yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for name, values in distributions.items():
        values = np.sort(values)
        y = np.arange(1, len(values) + 1) / len(values)
        style = "--" if name in baselines else "-"
        ax.step(values, y, style, where="post", label=name)
    ax.set_xlabel(f"per-item {label} (higher is better)")
    ax.set_ylabel("fraction of test items <= x")
    ax.set_xlim(0, 1)
    ax.legend(fontsize="small")
    return fig


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` as a PNG at `path` atomically (temporary file, then rename)."""
    from svr.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
