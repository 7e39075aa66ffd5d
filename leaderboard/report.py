"""The leaderboard as a Markdown report: `python -m leaderboard report [--out FILE]`.

What the README's "reproducing the paper" section shows: the ranked table, the headline
F-score and IoU per class for every entry, and each entry's tests against the recognition
baselines (two-sample Kolmogorov-Smirnov and paired Wilcoxon on the per-item F-scores).
Reads the leaderboard database of SVR_HOME / DATABASE_URL; changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["markdown_table", "markdown_report"]

_SUMMARY = ("Tier", "Method", "Representation", "Baseline")


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table of `frame` (floats with `digits` decimals, tiny ones in e-notation,
    NaN and None as empty cells)."""
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def _with_mean_row(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (Class + one column per entry) with a last row: the mean of the class means."""
    means = {"Class": "**mean of classes**"}
    means.update({c: frame[c].mean() for c in frame.columns if c != "Class"})
    return pd.concat([frame, pd.DataFrame([means])], ignore_index=True)


def markdown_report(service: Any, columns: Sequence[str] | None = None) -> str:
    """The report (Markdown) of a `LeaderboardService`'s visible entries."""
    label = service.headline_label
    table = service.table()
    if table.empty:
        return "The leaderboard has no scored, visible entries yet.\n"
    wanted = list(columns) if columns else [
        "Tier", "Method", f"{label} ↑", f"{label} 95% CI", "IoU ↑", "Chamfer-L1 ↓",
        *[c for c in table.columns if c.startswith("vs ")], "Representation", "Baseline",
    ]  # fmt: skip
    parts = [
        f"{service.describe()}\n",
        "### Entries\n",
        markdown_table(table[[c for c in wanted if c in table.columns]], 3),
        f"\n### {label} per class (mean over each class's test items)\n",
        markdown_table(_with_mean_row(service.per_class_table()), 3),
        "\n### IoU per class (128^3; point clouds have none)\n",
        markdown_table(_with_mean_row(service.per_class_table(metric="iou")), 3),
        "\n### Recognition or reconstruction? Per-item tests against the baselines\n",
        markdown_table(service.recognition_table(), 3),
    ]
    return "\n".join(parts) + "\n"
