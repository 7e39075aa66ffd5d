"""Figures of the leaderboard (matplotlib `Figure`s, no pyplot state): per-class bars and
per-item score distributions. Used by the Leaderboard tab and `python -m leaderboard report`.

Kinds of entries are told apart the same way in both: recognition baselines dashed (bars
hatched "//"), references such as Oracle NN dotted (bars hatched ".."), submissions solid.
Legends sit outside the axes, so no tick label (0.0 to 1.0) is hidden behind them.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["per_class_figure", "ecdf_figure", "save_png", "figure_html", "LINESTYLES"]

# Line style and bar hatch per kind (`leaderboard.views.KINDS`).
LINESTYLES = {"baseline": "--", "reference": ":", "submission": "-"}
_HATCHES = {"baseline": "//", "reference": "..", "submission": ""}


def _figure(width: float = 7.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _kind(name: str, baselines: Collection[str], references: Collection[str]) -> str:
    if name in baselines:
        return "baseline"
    return "reference" if name in references else "submission"


def _empty(fig: Any, ax: Any) -> Any:
    ax.text(0.5, 0.5, "no scored entries yet", ha="center", va="center")
    ax.set_axis_off()
    return fig


def per_class_figure(
    frame: pd.DataFrame,
    label: str,
    baselines: Collection[str] = (),
    references: Collection[str] = (),
) -> Any:
    """Grouped bars: classes on x, one bar per entry (columns of `frame` after 'Class'),
    values on [0, 1]; bars of `baselines` hatched "//", of `references` "..".
    A missing value draws no bar."""
    fig = _figure(10, 4.2)
    ax = fig.add_subplot()
    entries = [c for c in frame.columns if c != "Class"]
    if frame.empty or not entries:
        return _empty(fig, ax)
    x = np.arange(len(frame))
    width = 0.8 / len(entries)
    for k, name in enumerate(entries):
        values = pd.to_numeric(frame[name], errors="coerce").fillna(0.0).to_numpy()
        hatch = _HATCHES[_kind(name, baselines, references)]
        ax.bar(x + (k - (len(entries) - 1) / 2) * width, values, width, label=name,
               hatch=hatch or None, edgecolor="white", linewidth=0.3)  # fmt: skip
    ax.set_xticks(x, frame["Class"], rotation=45, ha="right")
    ax.set_ylabel(f"{label} (higher is better)")
    ax.set_ylim(0, 1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small")
    return fig


def ecdf_figure(
    distributions: dict[str, np.ndarray],
    baselines: Collection[str],
    label: str,
    references: Collection[str] = (),
) -> Any:
    """Empirical CDFs of per-item scores: `baselines` dashed, `references` dotted, the
    rest (submissions) solid."""
    fig = _figure(8, 4)
    ax = fig.add_subplot()
    if not distributions:
        return _empty(fig, ax)
    for name, values in distributions.items():
        values = np.sort(np.asarray(values, dtype=float))
        y = np.arange(1, len(values) + 1) / len(values)
        kind = _kind(name, baselines, references)
        ax.step(values, y, LINESTYLES[kind], where="post", label=name,
                linewidth=2.0 if kind == "submission" else 1.5)  # fmt: skip
    ax.set_title(f"Distribution of per-item {label}", loc="left", fontsize="medium")
    ax.set_xlabel(f"per-item {label} (higher is better)")
    ax.set_ylabel("fraction of test items <= x")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small",
               title="dashed: baseline\ndotted: reference", title_fontsize="x-small")  # fmt: skip
    return fig


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` as a PNG at `path` atomically (temporary file, then rename)."""
    from svr.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def figure_html(fig: Any, alt: str, dpi: int = 100) -> str:
    """`fig` as an HTML <img> holding the PNG inline (base64), scaled to its container's
    width; `alt` is HTML-escaped."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
        'style="width:100%;height:auto;max-width:100%">'
    )
