"""Table formatting of the leaderboard (pandas only; the numbers come from the service).

Column labels carry the direction of each metric ("F@1% ↑", "Chamfer-L1 ↓"); ranks are
tiers with the bootstrap interval of the headline score, never a strict 1..N order.
"""

from __future__ import annotations

import datetime as dt
import json
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
]

UP = "↑"
DOWN = "↓"


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
    verdicts: baseline name -> verdict text. per_class: class -> headline mean.
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
    "vs <baseline>" verdict column per compared baseline, Representation, Baseline, Verified,
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
        f"Chamfer-L1 {DOWN}", f"Coverage {UP}", "Representation", "Baseline", "Verified",
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
    given (newest first); a maintainer's has the public id beside the internal one."""
    columns = ["ID", "Method", "Status", "Progress", "Reason", "Submitted", "Flags"]
    if admin:
        columns.insert(1, "Public ID")
    return pd.DataFrame(list(rows), columns=columns).reset_index(drop=True)
