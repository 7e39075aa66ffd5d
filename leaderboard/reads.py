"""Reads: the status of one submission, a submitter's list, and the leaderboard tables.

Built on `leaderboard.ranking` (the cached entries); nothing returned holds a server path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from leaderboard import views
from leaderboard.db import ClassResult, Status, Submission
from leaderboard.errors import ServiceError
from leaderboard.ranking import DIGITS, REFERENCE_BASELINES, RankingMixin, is_complete

__all__ = ["ReadsMixin", "summary_row", "name_as_submitted", "MEMO_MAX"]

MEMO_MAX = 64  # figures and HTML kept per state of the leaderboard (`ReadsMixin.memo`)


class ReadsMixin(RankingMixin):
    """Status, "my submissions" and the leaderboard tables."""

    def _row_for(self, session: Any, submission_id: int | str) -> Submission | None:
        """A row by public id (a str: what users hold) or internal id (an int)."""
        if isinstance(submission_id, str):
            return session.scalars(
                select(Submission).where(Submission.public_id == submission_id.strip())
            ).first()
        return session.get(Submission, int(submission_id))

    def status(self, submission_id: int | str, actor: str | None = None) -> dict[str, Any]:
        """Status of one submission: id (its public id), method, status, reason, details,
        progress, times, flags, queue_position (1 = being scored; None unless queued or
        being scored); when done also overall (both means), per_class (class ->
        metric -> mean/median) and coverage, rounded to `DIGITS` decimals.

        `submission_id`: the public id `submit` returned (only its submitter has it; ids
        cannot be enumerated), or an internal id (an int, for maintainers and tests).
        Without `actor` (from `authorize`): a deleted submission does not exist; a hidden
        one shows its status without scores; scores of an entry that lacks test items
        (scored before partial submissions were refused) are not shown. In the reason and
        details the stored archive's name reads as the name it was uploaded as. ServiceError if
        there is no such submission."""
        with self.factory() as session:
            row = self._row_for(session, submission_id)
            if row is None or (row.deleted and not actor):
                raise ServiceError(f"no submission {submission_id}")
            shown = row.upload_name  # the stored archive's hash name is never shown
            out: dict[str, Any] = {
                "id": row.public_id,
                "method": row.method,
                "status": row.status,
                "reason": name_as_submitted(self.public_message(row.reason or ""), shown),
                "details": [
                    name_as_submitted(self.public_message(d), shown) for d in row.details or []
                ],
                "progress": {"done": row.progress_done, "total": row.progress_total},
                "created_at": row.created_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "attempts": row.attempts,
                "baseline": row.baseline,
                "verified": row.verified,
                "hidden": row.hidden,
                "protocol": row.protocol_id,
                "benchmark": row.benchmark_id,
                "queue_position": None,
            }
            if row.status in (Status.QUEUED, Status.SCORING):
                places = {q["ID"]: q["Position"] for q in self._queue_ids()}
                out["queue_position"] = places.get(row.id)
            if row.hidden and not actor:
                out["reason"] = "hidden by a maintainer: not on the leaderboard, scores not shown"
                out["details"] = []
            elif row.status == Status.DONE and (actor or is_complete(row)):
                out["overall"] = _rounded(row.overall)
                out["coverage"] = _rounded(row.coverage)
                per_class: dict[str, dict[str, dict[str, float | None]]] = {}
                for r in session.scalars(
                    select(ClassResult).where(ClassResult.submission_id == row.id)
                ):
                    per_class.setdefault(r.class_name, {})[r.metric] = _rounded(
                        {"mean": r.mean, "median": r.median}
                    )
                out["per_class"] = per_class
            if actor:
                out["entry"] = row.id
        return out

    def submissions_of(
        self, submitter: str, key: str | None = None, uploads: dict[str, str] | None = None
    ) -> pd.DataFrame:
        """The submitter's non-deleted submissions (names compared in their normal form,
        `identity.name_key`), newest first, with their public ids: progress (the place in
        the queue, items done of total), the score and a link to the leaderboard row of a
        finished one, the reason of a failed one with what to do. `uploads`: public id ->
        the archive's file name as submitted (this browser session's), shown instead of the
        stored archive's name where the row has no `upload_name` of its own. Empty for a
        name that is not valid, and, where keys are required, without the name's key."""
        from leaderboard.admission import Submitter
        from leaderboard.keys import check_key

        try:
            who = Submitter.parse(submitter)
        except ServiceError:
            return views.submissions_frame([])
        if self.settings.keys_required and not check_key(self.factory, who.name, key):
            return views.submissions_frame([])
        with self.factory() as session:
            rows = session.scalars(
                select(Submission)
                .where(Submission.submitter_key == who.key, Submission.deleted.is_(False))
                .order_by(Submission.id.desc())
            ).all()
        positions = {}
        if any(r.status in (Status.QUEUED, Status.SCORING) for r in rows):
            positions = {row["ID"]: row["Position"] for row in self._queue_ids()}
        listed = {e.id for e in self.entries()}
        uploads = uploads or {}
        return views.submissions_frame(
            [
                summary_row(
                    r,
                    clean=self.public_message,
                    position=positions.get(r.id),
                    listed=r.id in listed,
                    upload_name=uploads.get(r.public_id or ""),
                )
                for r in rows
            ]
        )

    def _queue_ids(self) -> list[dict[str, int]]:
        """{"ID": internal id, "Position": place} of the scoring queue (`queue_rows`)."""
        with self.factory() as session:
            rows = session.execute(
                select(Submission.id, Submission.status)
                .where(
                    Submission.status.in_([Status.SCORING, Status.QUEUED]),
                    Submission.deleted.is_(False),
                )
                .order_by(Submission.id)
            ).all()
        ordered = sorted(rows, key=lambda r: (r[1] != Status.SCORING, r[0]))
        return [{"ID": r[0], "Position": k} for k, r in enumerate(ordered, start=1)]

    def describe(self) -> str:
        """One line naming the benchmark and the protocol the table is scored with."""
        protocol_id, bench_id = self._current_ids()
        bench = f"benchmark `{bench_id}`" if bench_id else "no benchmark yet"
        return (
            f"Scored on {bench} with protocol `{protocol_id}`; entries scored with another "
            "benchmark or protocol are listed again once a maintainer rescores them."
        )

    def table(
        self,
        search: str = "",
        representations: Iterable[str] | None = None,
        show_baselines: bool = True,
        per_class: bool = False,
        columns: Iterable[str] | None = None,
        sort_by: str | None = None,
        markdown_links: bool = False,
    ) -> pd.DataFrame:
        """The leaderboard table (see `views.leaderboard_frame`), filtered and sorted."""
        analysis = self._analysis()
        frames = analysis.setdefault("frames", {})  # built once per analysis
        if (per_class, markdown_links) not in frames:
            frames[(per_class, markdown_links)] = views.leaderboard_frame(
                analysis["entries"], self.headline_key, per_class=per_class,
                markdown_links=markdown_links, baselines_compared=analysis["refs"],
            )  # fmt: skip
        frame = frames[(per_class, markdown_links)].copy()
        if columns is not None and per_class:
            columns = list(columns) + [c for c in frame.columns if views.is_class_column(c)]
        return views.filter_frame(frame, search, representations, show_baselines, columns, sort_by)

    def display_table(
        self,
        search: str = "",
        representations: Iterable[str] | None = None,
        show_baselines: bool = True,
        columns: Iterable[str] | None = None,
        sort_by: str | None = None,
    ) -> pd.DataFrame:
        """The table people read (`views.display_frame`): the rows of `table` with these
        filters and sort, figures as text with 3 decimals, verdict and kind columns;
        `columns` from `display_columns()` (default: all)."""
        analysis = self._analysis()
        order = self.table(search, representations, show_baselines, sort_by=sort_by)["ID"]
        by_id = {e.id: e for e in analysis["entries"]}
        return views.display_frame(
            [by_id[int(i)] for i in order], self.headline_key, analysis["refs"], columns
        )

    def display_columns(self) -> list[str]:
        """Every column of `display_table`, the verdict columns of both recognition
        baselines included (a verdict column whose baseline is not scored yet holds "–")."""
        return views.display_columns(self.headline_key, list(REFERENCE_BASELINES))

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """`build()`, computed once per change of the visible entries and kept under `key`
        (figures and HTML of the Leaderboard tab, so page loads do not redraw them)."""
        store = self._analysis().setdefault("memo", {})
        if key not in store:
            if len(store) >= MEMO_MAX:  # many filter combinations: forget the oldest
                store.pop(next(iter(store)))
            store[key] = build()
        return store[key]

    def queue_rows(self) -> list[dict[str, object]]:
        """The scoring queue, in the order the worker takes it: jobs being scored first
        (position 1, ...), then queued jobs, oldest first; items done of total. A hidden
        job keeps its place without its name."""
        with self.factory() as session:
            rows = session.scalars(
                select(Submission)
                .where(
                    Submission.status.in_([Status.SCORING, Status.QUEUED]),
                    Submission.deleted.is_(False),
                )
                .order_by(Submission.id)
            ).all()
        ordered = sorted(rows, key=lambda r: (r.status != Status.SCORING, r.id))
        return [
            {
                "Position": k,
                "Method": "(hidden by a maintainer)" if r.hidden else r.method,
                "Status": "being scored" if r.status == Status.SCORING else "waiting",
                "Items": _items(r),
                "Submitted": r.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for k, r in enumerate(ordered, start=1)
        ]

    def finished_count(self) -> int:
        """How many submissions have finished (done or failed) so far: a cheap count that
        changes whenever a job leaves the scoring queue."""
        with self.factory() as session:
            return int(
                session.scalar(
                    select(func.count(Submission.id)).where(
                        Submission.status.in_([Status.DONE, Status.FAILED])
                    )
                )
                or 0
            )

    def benchmark_classes(self) -> list[str] | None:
        """The class names of the benchmark (all of them, whether or not an entry has a
        score for each); None while there is no benchmark."""
        try:
            return list(self.benchmark.class_names)
        except (ServiceError, OSError, ValueError, KeyError):
            return None

    def queue_table(self) -> pd.DataFrame:
        """`queue_rows` as a table (`views.queue_frame`); empty when nothing is scored."""
        return views.queue_frame(self.queue_rows())

    def records(self) -> list[dict[str, Any]]:
        """The default table as JSON records (the `/leaderboard` API), built once per change."""
        analysis = self._analysis()
        if "records" not in analysis:
            analysis["records"] = views.frame_records(self.table())
        return analysis["records"]

    def recognition_table(self) -> pd.DataFrame:
        """Per entry and reference baseline: verdict, KS statistic and p, paired p, items."""
        analysis = self._analysis()
        rows = []
        for entry in analysis["entries"]:
            for label, c in analysis["verdicts"][entry.id].items():
                rows.append(
                    {
                        "Method": entry.name,
                        "Baseline": label,
                        "Verdict": c.verdict,
                        "KS D": round(c.ks_stat, 3),
                        "KS p": _significant(c.ks_p),
                        "Wilcoxon p": _significant(c.wilcoxon_p),
                        "Mean difference": round(c.mean_diff, 4)
                        if math.isfinite(c.mean_diff)
                        else None,
                        "Paired items": c.n_paired,
                    }
                )
        return pd.DataFrame(
            rows,
            columns=[
                "Method",
                "Baseline",
                "Verdict",
                "KS D",
                "KS p",
                "Wilcoxon p",
                "Mean difference",
                "Paired items",
            ],  # fmt: skip
        )

    def per_class_table(
        self, submission_ids: Iterable[int] | None = None, metric: str | None = None
    ) -> pd.DataFrame:
        """Mean of `metric` (default: the headline) per class (rows) and entry (columns)."""
        entries = self.entries()
        if submission_ids is not None:
            wanted = {int(i) for i in submission_ids}
            entries = [e for e in entries if e.id in wanted]
        if metric is None or metric == self.headline_key:
            return views.per_class_frame({e.name: e.per_class for e in entries})
        means: dict[int, dict[str, float | None]] = {e.id: {} for e in entries}
        with self.factory() as session:
            for sid, cls, mean in session.execute(
                select(ClassResult.submission_id, ClassResult.class_name, ClassResult.mean).where(
                    ClassResult.submission_id.in_(list(means)), ClassResult.metric == metric
                )
            ):
                means[sid][cls] = None if mean is None else round(float(mean), DIGITS)
        return views.per_class_frame({e.name: means[e.id] for e in entries})

    def entry_choices(self) -> list[tuple[str, int]]:
        """(label, id) of visible entries, for dropdowns."""
        return [(f"{e.name} (#{e.id})", e.id) for e in self.entries()]


def _rounded(value: Any) -> Any:
    """`value` (nested dicts and lists of numbers) with floats rounded to `DIGITS` decimals."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, DIGITS) if math.isfinite(value) else value
    return value


def _significant(p: float | None) -> float | None:
    """A p-value to 4 significant digits (rounding to decimals would turn 1e-38 into 0)."""
    if p is None or not math.isfinite(p):
        return p
    return float(f"{p:.4g}")


_STORED_NAME = re.compile(r"\b[0-9a-f]{64}(\.[A-Za-z0-9.]+)?")
_WHAT_TO_DO = (
    " What to do: fix what this names and submit again (failed submissions do not count "
    "towards the daily limit)."
)


def name_as_submitted(text: str, upload_name: str | None = None) -> str:
    """`text` with the stored archive's name (its SHA-256 and extension, which the server
    names it by) replaced by `upload_name`, the name it was submitted as (default: "the
    archive")."""
    shown = upload_name or "the archive"
    return _STORED_NAME.sub(lambda _: shown, text)  # a function: `\` in a name is literal


def _items(row: Submission) -> str:
    """Items done of total while scoring ("12 of 52 items"); "" before the total is known."""
    if not row.progress_total:
        return ""
    done = row.progress_total if row.status == Status.DONE else row.progress_done
    return f"{done} of {row.progress_total} items"


def summary_row(
    row: Submission,
    admin: bool = False,
    clean: Callable[[str], str] = str,
    position: int | None = None,
    listed: bool = False,
    upload_name: str | None = None,
) -> dict[str, object]:
    """One row of `views.submissions_frame`: the public id; for maintainers (`admin`) the
    internal id, the public id and the submitter's name. `clean` is applied to the reason
    (e.g. `public_message`), where the stored archive's name (its SHA-256) becomes
    the name as submitted (the row's stored `upload_name`, else `upload_name`, this browser
    session's memory of it for rows made before revision 0005) or "the archive". For a
    submitter: `position` in the scoring queue, and whether the entry is `listed` on the
    leaderboard (its score and a link to its row, `?entry=<id>`)."""
    flags = [f for f in ("baseline", "verified", "hidden", "deleted") if getattr(row, f)]
    upload_name = row.upload_name or upload_name
    if row.status == Status.SCORING and row.progress_total:
        progress = _items(row) + (f" (queue position {position})" if position else "")
    elif row.status == Status.QUEUED:
        progress = f"waiting: position {position} in the queue" if position else "waiting"
    elif row.status == Status.DONE:
        progress = _items(row)
    else:
        progress = ""
    reason = row.reason
    if row.details:
        reason += " | " + "; ".join(row.details[:5])
    reason = name_as_submitted(clean(reason), upload_name)
    if row.status == Status.FAILED and reason and not admin:
        reason += _WHAT_TO_DO
    method = row.method
    if method == "(unnamed)":
        method = upload_name or f"(no method name; {row.archive_ext} archive)"
    if admin:
        method = f"{method} ({row.submitter})"
    out: dict[str, object] = {
        "ID": row.id if admin else row.public_id,
        **({"Public ID": row.public_id} if admin else {}),
        "Method": method,
        "Status": row.status,
        "Progress": progress,
        "Reason": reason,
        "Submitted": row.created_at.strftime("%Y-%m-%d %H:%M"),
        "Flags": ", ".join(flags),
    }
    if not admin:
        out["Score"] = views.fmt(row.score_headline) if listed else "–"
        out["Leaderboard"] = f"[row #{row.id}](?entry={row.id})" if listed else ""
    return out
