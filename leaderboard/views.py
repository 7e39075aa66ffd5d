"""Table formatting of the leaderboard (pandas only; the numbers come from the service).

Column labels carry the direction of each metric ("F@1% ↑", "Chamfer-L1 ↓"); ranks are
tiers with the bootstrap interval of the headline score, never a strict 1..N order.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

__all__ = [
    "Entry",
    "headline_label",
    "class_column",
    "is_class_column",
    "leaderboard_frame",
    "per_class_frame",
    "frame_records",
    "submissions_frame",
    "filter_frame",
    "csv_safe",
    "BASE_COLUMNS",
    "UP",
    "DOWN",
    "KINDS",
    "RECOGNITION",
    "REFERENCE",
    "SUBMISSION",
    "DISPLAY_DIGITS",
    "display_columns",
    "default_display_columns",
    "display_frame",
    "format_frame",
    "fmt",
    "per_class_heatmap",
    "queue_frame",
]

UP = "↑"
DOWN = "↓"

# Kinds of entries, as the Kind column names them: the recognition baselines every entry is
# tested against (dashed in plots), the other seeded or maintainer-marked references such as
# Oracle NN (dotted), and submissions (solid).
RECOGNITION = "baseline"
REFERENCE = "reference"
SUBMISSION = "submission"
KINDS = (RECOGNITION, REFERENCE, SUBMISSION)
# Figures in the tables people read carry this many decimals (JSON and CSV carry more).
DISPLAY_DIGITS = 3


def headline_label(headline_key: str) -> str:
    """'fscore@0.01' -> 'F@1%'."""
    threshold = float(headline_key.split("@", 1)[1])
    return f"F@{threshold * 100:g}%"


@dataclass
class Entry:
    """One scored, visible leaderboard entry.

    Scores are means of class means over the test split (F-score and IoU in [0, 1], Chamfer-L1
    in unit-cube units); coverage is the fraction of test items predicted and non-empty.
    tier / ci_low / ci_high: bootstrap tier and 95% interval of the headline score.
    verdicts: baseline name -> verdict text; verdicts_short: the same, short ("better,
    p < 0.001") for the table's cells. per_class: class -> headline mean. kind: one of
    `KINDS` ("" : from `baseline`).
    """

    id: int
    name: str
    method: str
    authors: str
    paper_url: str
    code_url: str
    representation: str
    training_data: str
    baseline: bool
    verified: bool
    date: dt.datetime | None
    headline: float | None
    iou: float | None
    chamfer_l1: float | None
    coverage: float | None
    tier: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdicts: dict[str, str] = field(default_factory=dict)
    per_class: dict[str, float | None] = field(default_factory=dict)
    verdicts_short: dict[str, str] = field(default_factory=dict)
    kind: str = ""

    @property
    def kind_label(self) -> str:
        """The entry's kind (`KINDS`)."""
        return self.kind or (REFERENCE if self.baseline else SUBMISSION)


def class_column(class_name: str, label: str) -> str:
    """The label of a per-class column, e.g. 'chair: F@1% ↑'."""
    return f"{class_name}: {label} {UP}"


def is_class_column(column: str) -> bool:
    return ": " in column and column.endswith(UP)


def _link(url: str, text: str, markdown: bool) -> str:
    if not url:
        return ""
    return f"[{text}]({url})" if markdown else url


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def leaderboard_frame(
    entries: Sequence[Entry],
    headline_key: str = "fscore@0.01",
    per_class: bool = False,
    markdown_links: bool = False,
    baselines_compared: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per entry, best tier first, then by headline score.

    Columns: Tier, Method, <headline> ↑, 95% CI, IoU ↑, Chamfer-L1 ↓, Coverage ↑, one
    "vs <baseline>" verdict column per compared baseline, Representation, Baseline, Kind,
    Verified,
    Date, Paper, Code, Authors, Training data, ID; with `per_class`, one "<class>: <headline> ↑"
    column per class.
    """
    label = headline_label(headline_key)
    rows = []
    for e in entries:
        row: dict[str, object] = {
            "Tier": e.tier,
            "Method": e.name,
            f"{label} {UP}": _round(e.headline, 4),
            f"{label} 95% CI": (
                f"[{e.ci_low:.3f}, {e.ci_high:.3f}]"
                if e.ci_low is not None and e.ci_high is not None
                else ""
            ),
            f"IoU {UP}": _round(e.iou, 4),
            f"Chamfer-L1 {DOWN}": _round(e.chamfer_l1, 4),
            f"Coverage {UP}": _round(e.coverage, 3),
        }
        for name in baselines_compared:
            row[f"vs {name}"] = e.verdicts.get(name, "")
        row.update(
            {
                "Representation": e.representation,
                "Baseline": "baseline" if e.baseline else "",
                "Kind": e.kind_label,
                "Verified": "verified" if e.verified else "",
                "Date": e.date.strftime("%Y-%m-%d") if e.date else "",
                "Paper": _link(e.paper_url, "paper", markdown_links),
                "Code": _link(e.code_url, "code", markdown_links),
                "Authors": e.authors,
                "Training data": e.training_data,
                "ID": e.id,
            }
        )
        if per_class:
            for cls, value in sorted(e.per_class.items()):
                row[class_column(cls, label)] = _round(value, 4)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS(headline_key))
    sort_tier = frame["Tier"].fillna(10**6)
    frame = frame.assign(_t=sort_tier, _h=frame[f"{label} {UP}"].fillna(-1.0))
    frame = frame.sort_values(["_t", "_h", "ID"], ascending=[True, False, True])
    return frame.drop(columns=["_t", "_h"]).reset_index(drop=True)


def BASE_COLUMNS(headline_key: str = "fscore@0.01") -> list[str]:  # noqa: N802
    """The column labels of `leaderboard_frame` without verdict and per-class columns."""
    label = headline_label(headline_key)
    return [
        "Tier", "Method", f"{label} {UP}", f"{label} 95% CI", f"IoU {UP}",
        f"Chamfer-L1 {DOWN}", f"Coverage {UP}", "Representation", "Baseline", "Kind", "Verified",
        "Date", "Paper", "Code", "Authors", "Training data", "ID",
    ]  # fmt: skip


def filter_frame(
    frame: pd.DataFrame,
    search: str = "",
    representations: Iterable[str] | None = None,
    show_baselines: bool = True,
    columns: Iterable[str] | None = None,
    sort_by: str | None = None,
) -> pd.DataFrame:
    """Rows whose method, authors or training data contain `search` (case-insensitive), of the
    given representations, optionally without baselines; then the chosen columns (Method and
    Tier always kept) and an optional sort (ascending for ↓ columns, else descending)."""
    out = frame
    if search.strip():
        needle = search.strip().lower()
        hay = (
            out["Method"].astype(str) + " " + out["Authors"].astype(str) + " "
            + out["Training data"].astype(str)
        ).str.lower()  # fmt: skip
        out = out[hay.str.contains(needle, regex=False)]
    if representations is not None:
        out = out[out["Representation"].isin(list(representations))]
    if not show_baselines:
        out = out[out["Baseline"] != "baseline"]
    if sort_by and sort_by in out.columns:
        out = out.sort_values(sort_by, ascending=sort_by.endswith(DOWN), na_position="last")
    if columns is not None:
        keep = ["Tier", "Method"] + [
            c for c in columns if c in out.columns and c not in ("Tier", "Method")
        ]
        out = out[keep]
    return out.reset_index(drop=True)


def frame_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The rows of `frame` as JSON-ready dicts (NaN -> None)."""
    return json.loads(frame.to_json(orient="records", force_ascii=False))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` for CSV export whose text cells cannot run as spreadsheet formulas:
    a text starting with = + - @, a tab or a carriage return gets a leading apostrophe
    (shown by spreadsheets, never evaluated). Numeric columns are left as numbers."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
            continue
        out[column] = out[column].map(
            lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
        )
    return out


def per_class_frame(means: dict[str, dict[str, float | None]]) -> pd.DataFrame:
    """Classes as rows ("Class" column), entries as columns: means[entry name][class]."""
    frame = pd.DataFrame(means)
    frame.index.name = "Class"
    return frame.sort_index().reset_index()


def submissions_frame(rows: Sequence[dict[str, object]], admin: bool = False) -> pd.DataFrame:
    """A submitter's (or, with `admin`, a maintainer's) list of submissions, in the order
    given (newest first); a maintainer's has the public id beside the internal one, a
    submitter's the score of a finished one and a Markdown link to its leaderboard row."""
    columns = ["ID", "Method", "Status", "Progress", "Reason", "Submitted", "Flags"]
    if admin:
        columns.insert(1, "Public ID")
    else:
        columns[4:4] = ["Score", "Leaderboard"]
    return pd.DataFrame(list(rows), columns=columns).reset_index(drop=True)


# ----------------------------------------------------------------------------- display
# What the Leaderboard tab shows: the same entries as `leaderboard_frame`, every figure as
# text with `DISPLAY_DIGITS` decimals (so a column's decimals never vary by row), the headline
# with its interval ("0.341 ± 0.015"), short verdicts and the entry's kind.


def fmt(value: object, digits: int = DISPLAY_DIGITS) -> str:
    """A number as text with `digits` decimals; None, NaN and non-numbers -> "–"."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(number) else f"{number:.{digits}f}"


def _fmt_p(value: object) -> str:
    """A p-value as text: "< 0.001" below 0.001, else 3 decimals; missing -> "–"."""
    text = fmt(value)
    if text != "–" and float(value) < 0.001:  # type: ignore[arg-type]
        return "< 0.001"
    return text


def _headline_column(label: str) -> str:
    return f"{label} {UP} ± 95% CI"


def display_columns(headline_key: str, baselines: Sequence[str] = ()) -> list[str]:
    """Every column `display_frame` can show, in order (`baselines`: the verdict columns)."""
    label = headline_label(headline_key)
    return [
        "Tier", "Method", "Kind", _headline_column(label), f"IoU {UP}", f"Chamfer-L1 {DOWN}",
        f"Coverage {UP}", *[f"vs {b}" for b in baselines], "Representation", "Verified",
        "Date", "Links", "Authors", "Training data", "ID",
    ]  # fmt: skip


def default_display_columns(headline_key: str, baselines: Sequence[str] = ()) -> list[str]:
    """The columns shown before anyone picks: the verdict columns included."""
    hidden = {f"Coverage {UP}", "Date", "Authors", "Training data", "ID"}
    return [c for c in display_columns(headline_key, baselines) if c not in hidden]


def display_frame(
    entries: Sequence[Entry],
    headline_key: str = "fscore@0.01",
    baselines: Sequence[str] = (),
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The rows of `entries` (in the order given) as text for the table people read.

    The headline reads "0.341 ± 0.015": the mean of class means and half the width of its
    95% bootstrap interval; other scores have `DISPLAY_DIGITS` decimals; "vs <baseline>"
    holds the short verdict; Links holds Markdown links to the paper and the code. `columns`:
    which of
    `display_columns` to keep (Tier and Method always; default: all).
    """
    label = headline_label(headline_key)
    rows = []
    for e in entries:
        headline = fmt(e.headline)
        if headline != "–" and e.ci_low is not None and e.ci_high is not None:
            headline += f" ± {fmt((e.ci_high - e.ci_low) / 2)}"
        row: dict[str, object] = {
            "Tier": "" if e.tier is None else str(e.tier),
            "Method": e.name,
            "Kind": e.kind_label,
            _headline_column(label): headline,
            f"IoU {UP}": fmt(e.iou),
            f"Chamfer-L1 {DOWN}": fmt(e.chamfer_l1),
            f"Coverage {UP}": fmt(e.coverage),
        }
        for name in baselines:
            row[f"vs {name}"] = e.verdicts_short.get(name) or e.verdicts.get(name) or "–"
        row.update(
            {
                "Representation": e.representation,
                "Verified": "✓" if e.verified else "",
                "Date": e.date.strftime("%Y-%m-%d") if e.date else "",
                "Links": " · ".join(
                    link
                    for link in (_link(e.paper_url, "paper", True), _link(e.code_url, "code", True))
                    if link
                ),
                "Authors": e.authors,
                "Training data": e.training_data,
                "ID": str(e.id),
            }
        )
        rows.append(row)
    every = display_columns(headline_key, baselines)
    frame = pd.DataFrame(rows, columns=every)
    if columns is not None:
        wanted = set(columns) | {"Tier", "Method"}
        frame = frame[[c for c in every if c in wanted]]
    return frame.reset_index(drop=True)


def format_frame(frame: pd.DataFrame, digits: int = DISPLAY_DIGITS) -> pd.DataFrame:
    """A copy of an analysis table for display: float columns as text with `digits`
    decimals (columns whose name ends in " p" as p-values: "< 0.001" or 3 decimals);
    integer and text columns unchanged."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
            continue
        numeric = pd.api.types.is_float_dtype(series) or (
            series.dtype == object
            and series.map(lambda v: v is None or isinstance(v, (int, float))).all()
            and series.map(lambda v: isinstance(v, float)).any()
        )
        if not numeric:
            continue
        if str(column).endswith(" p"):
            out[column] = series.map(_fmt_p)
        else:
            out[column] = series.map(lambda v: fmt(v, digits))
    return out


def per_class_heatmap(
    entries: Sequence[Entry], label: str, classes: Sequence[str] | None = None
) -> str:
    """An HTML table: one row per entry (in the order given), one column per class (all of
    them) and the mean of class means, each cell shaded by its value on [0, 1] (a pandas
    Styler background gradient). Names are HTML-escaped. A sentence when there are none."""
    if not entries:
        return "<p>No scored entries yet: the per-class view appears with the first one.</p>"
    names = classes or sorted({c for e in entries for c in e.per_class})
    data = pd.DataFrame(
        [[e.per_class.get(c) for c in names] + [e.headline] for e in entries],
        index=[e.name for e in entries],
        columns=[*names, "mean"],
        dtype=float,
    )
    styler = (
        data.style.background_gradient(cmap="YlGnBu", axis=None, vmin=0.0, vmax=1.0)
        .format(lambda v: fmt(v), na_rep="–")
        .format_index(escape="html", axis=0)
        .format_index(escape="html", axis=1)
        .set_table_attributes('class="svr-heatmap"')
        .set_caption(f"{label} per class ({len(names)} classes; higher is better)")
    )
    return _HEATMAP_CSS + styler.to_html()


_HEATMAP_CSS = """<style>
.svr-heatmap { border-collapse: collapse; font-size: 0.85em; width: 100%; }
.svr-heatmap caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
.svr-heatmap th, .svr-heatmap td { padding: 3px 5px; border: 1px solid #ddd; }
.svr-heatmap td { text-align: right; font-variant-numeric: tabular-nums; }
.svr-heatmap th.row_heading { text-align: left; white-space: nowrap; font-weight: 500; }
.svr-heatmap th.col_heading { writing-mode: horizontal-tb; white-space: nowrap;
  font-weight: 500; }
</style>"""


def queue_frame(rows: Sequence[dict[str, object]]) -> pd.DataFrame:
    """The scoring queue: Position (1 = being scored), Method, Status, Items (done of
    total) and Submitted, in the order given."""
    columns = ["Position", "Method", "Status", "Items", "Submitted"]
    return pd.DataFrame(list(rows), columns=columns).reset_index(drop=True)
