"""The leaderboard as a Markdown report: `python -m leaderboard report [--out FILE]`.

What the README's "reproducing the paper" section shows: the ranked table, the headline
F-score and IoU per class for every entry, and each entry's tests against the recognition
baselines (two-sample Kolmogorov-Smirnov and paired Wilcoxon on the per-item F-scores); with
`--figures DIR`, also the per-class bars and the per-item distributions as PNGs, linked from
the report. Reads the leaderboard database of SVR_HOME / DATABASE_URL; changes nothing.

Every text cell and header is escaped (`escape_cell`): method names, authors and training
data are typed by submitters, so HTML is shown as text, and `|`, Markdown emphasis, links
and code marks cannot break or restyle the tables. Only the report's own labels
(`Trusted`) are written as they are.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["markdown_table", "markdown_report", "write_figures", "escape_cell", "Trusted"]

_SUMMARY = ("Tier", "Method", "Representation", "Baseline")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]~|])")  # inline Markdown, and the cell separator


class Trusted(str):
    """A cell the report itself wrote (Markdown kept as it is)."""


def escape_cell(text: str) -> str:
    """A user-provided text as one Markdown table cell that shows it literally: HTML
    escaped (`<b>` shows as <b>), Markdown punctuation and `|` backslash-escaped, line
    breaks as spaces."""
    if isinstance(text, Trusted):
        return str(text)
    flat = " ".join(str(text).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def _cell(value: Any, digits: int, p_value: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if p_value and isinstance(value, float) and value == 0.0:
        return "< 1e-300"  # below what a float64 holds
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return escape_cell(value if isinstance(value, str) else str(value))


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table of `frame` (floats with `digits` decimals, tiny ones in e-notation,
    NaN and None as empty cells, a p-value of 0 in a column named "... p" as "< 1e-300")."""
    head = [str(c) for c in frame.columns]
    p_cols = [h.endswith(" p") for h in head]
    cells = [escape_cell(c) if not isinstance(c, Trusted) else str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cells) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        cells = (_cell(v, digits, p) for v, p in zip(row, p_cols, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_mean_row(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (Class + one column per entry) with a last row: the mean of the class means."""
    means: dict[str, Any] = {"Class": Trusted("**mean of classes**")}
    means.update({c: frame[c].mean() for c in frame.columns if c != "Class"})
    return pd.concat([frame, pd.DataFrame([means])], ignore_index=True)


def write_figures(service: Any, folder: str | os.PathLike) -> dict[str, Path]:
    """Per-class bars ("per_class") and per-item ECDFs ("distributions") of the headline
    score of every visible entry, as PNGs in `folder`: recognition baselines dashed (bars
    hatched "//"), references dotted (".."), submissions solid."""
    from leaderboard import views
    from leaderboard.figures import ecdf_figure, per_class_figure, save_png

    label = service.headline_label
    folder = Path(folder)
    entries = service.entries()
    baselines = {e.name for e in entries if e.kind_label == views.RECOGNITION}
    references = {e.name for e in entries if e.kind_label == views.REFERENCE}
    bars = per_class_figure(service.per_class_table(), label, baselines, references)
    curves = ecdf_figure(service.distributions(), baselines, label, references)
    return {
        "per_class": save_png(bars, folder / "per_class.png"),
        "distributions": save_png(curves, folder / "distributions.png"),
    }


def markdown_report(
    service: Any,
    columns: Sequence[str] | None = None,
    figures: dict[str, Path] | None = None,
    relative_to: str | os.PathLike | None = None,
) -> str:
    """The report (Markdown) of a `LeaderboardService`'s visible entries; `figures` (from
    `write_figures`) are linked relative to the folder `relative_to` (default: as given)."""
    label = service.headline_label
    table = service.table()
    if table.empty:
        return "The leaderboard has no scored, visible entries yet.\n"
    wanted = list(columns) if columns else [
        "Tier", "Method", f"{label} ↑", f"{label} 95% CI", "IoU ↑", "Chamfer-L1 ↓",
        *[c for c in table.columns if c.startswith("vs ")], "Representation", "Baseline",
    ]  # fmt: skip

    def link(key: str, alt: str) -> list[str]:
        if not figures or key not in figures:
            return []
        path = Path(figures[key])
        if relative_to is not None:
            path = Path(os.path.relpath(path, relative_to))
        return [f"\n![{alt}]({path.as_posix()})\n"]

    parts = [
        f"{service.describe()}\n",
        "### Entries\n",
        markdown_table(table[[c for c in wanted if c in table.columns]], 3),
        f"\n### {label} per class (mean over each class's test items)\n",
        markdown_table(_with_mean_row(service.per_class_table()), 3),
        *link("per_class", f"{label} per class and entry"),
        "\n### IoU per class (128^3; point clouds have none)\n",
        markdown_table(_with_mean_row(service.per_class_table(metric="iou")), 3),
        "\n### Recognition or reconstruction? Per-item tests against the baselines\n",
        *link("distributions", f"distribution of per-item {label}, baselines dashed"),
        markdown_table(service.recognition_table(), 3),
    ]
    return "\n".join(parts) + "\n"
