"""Ranking: the visible entries of the current benchmark and protocol, with bootstrap tiers and
verdicts against the recognition baselines, computed once per change and cached.

Visible: scored, neither hidden nor deleted, and predicting every test item. Hidden and
deleted entries appear in no read of a non-maintainer.

`RankingMixin._analysis()` is what every read of the leaderboard builds on (`entries`,
`reference_names`; the tables of `leaderboard.reads` and `leaderboard.comparison`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import select

from leaderboard import identity, views
from leaderboard.db import ClassResult, ItemScore, Status, Submission
from leaderboard.errors import ServiceError
from leaderboard.state import ServiceState

__all__ = [
    "RankingMixin", "REFERENCE_BASELINES", "VISIBLE_CHECK_MAX_AGE", "DIGITS", "is_complete",
    "kind_of",
]  # fmt: skip

# How long a read may reuse the last check of which entries are visible (seconds): reads are
# what a busy leaderboard serves most, and the check is a database query. Changes made by
# this process (its worker finishing a job, maintainer actions) show at once; a worker in
# another process shows its results at most this much later.
VISIBLE_CHECK_MAX_AGE = 1.0
# Baselines the recognition-or-reconstruction tests compare every entry with: display name
# -> substring of the baseline entry's method name (case-insensitive).
REFERENCE_BASELINES = {"Clustering": "clustering", "Retrieval": "retrieval"}


# Published figures (tables, JSON, status, report) carry this many decimals.
DIGITS = 4


def kind_of(row: Submission) -> str:
    """The entry's kind (`views.KINDS`): a baseline-flagged entry whose method names a
    recognition baseline (`REFERENCE_BASELINES`: Clustering, Retrieval) is a recognition
    baseline; any other baseline-flagged entry (the other seeded methods, Oracle NN, or one
    a maintainer marked) is a reference; the rest are submissions."""
    if not row.baseline:
        return views.SUBMISSION
    method = row.method.lower()
    if any(needle in method for needle in REFERENCE_BASELINES.values()):
        return views.RECOGNITION
    return views.REFERENCE


def is_complete(row: Submission) -> bool:
    """Whether a scored entry predicted every test item (only those are ranked; entries
    scored before partial submissions were refused may lack some)."""
    return int((row.coverage or {}).get("n_missing", 0) or 0) == 0


class RankingMixin(ServiceState):
    """Visible entries, tiers and verdicts (cached; see `_analysis`)."""

    def _current_ids(self) -> tuple[str, str | None]:
        bench_id = None
        if self.benchmark_dir is not None:
            try:
                bench_id = self.benchmark.meta.identifier
            except ServiceError:
                bench_id = None
        return self.protocol.identifier, bench_id

    def _visible_rows(self) -> list[Submission]:
        with self.factory() as session:
            query = select(Submission).where(*self._visible_where())
            return list(session.scalars(query.order_by(Submission.id)).all())

    def _visible_where(self) -> list[Any]:
        protocol_id, bench_id = self._current_ids()
        where = [
            Submission.status == Status.DONE,
            Submission.deleted.is_(False),
            Submission.hidden.is_(False),
            Submission.protocol_id == protocol_id,
        ]
        if bench_id is not None:
            where.append(Submission.benchmark_id == bench_id)
        return where

    def _visible_key(self) -> tuple[tuple[Any, ...], ...]:
        """What the cached analysis depends on, read without loading whole rows (cheap), and
        reused for `VISIBLE_CHECK_MAX_AGE` seconds."""
        checked = self._cache.get("visible_key")
        now = time.monotonic()
        if checked is not None and now - checked[0] < VISIBLE_CHECK_MAX_AGE:
            return checked[1]
        key = self._query_visible_key()
        self._cache["visible_key"] = (now, key)
        return key

    def _query_visible_key(self) -> tuple[tuple[Any, ...], ...]:
        with self.factory() as session:
            return tuple(
                tuple(r)
                for r in session.execute(
                    select(
                        Submission.id, Submission.updated_at, Submission.baseline,
                        Submission.verified,
                    )
                    .where(*self._visible_where())
                    .order_by(Submission.id)
                )
            )  # fmt: skip

    def _names(self, rows: list[Submission]) -> dict[int, str]:
        """Entry names: the method name, with " #<id>" when other entries' names look the
        same (`identity.name_key`: case, look-alike letters, white space). A baseline keeps
        its plain name when it is the only baseline among them: another entry never
        renames it."""
        groups: dict[str, list[Submission]] = {}
        for r in rows:
            groups.setdefault(identity.name_key(r.method), []).append(r)
        names: dict[int, str] = {}
        for group in groups.values():
            baselines = [r for r in group if r.baseline]
            for r in group:
                plain = len(group) == 1 or (r.baseline and len(baselines) == 1)
                names[r.id] = r.method if plain else f"{r.method} #{r.id}"
        return names

    def item_scores(
        self, submission_ids: Iterable[int], metric: str = "fscore"
    ) -> dict[int, dict[str, float]]:
        """submission id -> item id -> per-item value of a column of item_scores (default:
        the headline F-score); None values are left out."""
        if metric not in ("fscore", "precision", "recall", "iou", "iou_128", "chamfer_l1",
                          "chamfer_l2", "normal_consistency"):  # fmt: skip
            raise ServiceError(f"unknown per-item metric {metric!r}")
        ids = [int(i) for i in submission_ids]
        out: dict[int, dict[str, float]] = {i: {} for i in ids}
        if not ids:
            return out
        column = getattr(ItemScore, metric)
        with self.factory() as session:
            for sid, item_id, value in session.execute(
                select(ItemScore.submission_id, ItemScore.item_id, column).where(
                    ItemScore.submission_id.in_(ids)
                )
            ):
                if value is not None:
                    out[sid][item_id] = float(value)
        return out

    def _analysis(self) -> dict[str, Any]:
        """Entries with tiers and verdicts; cached until a visible row changes.

        One thread at a time recomputes an out-of-date cache (the bootstrap takes about a
        second with a few dozen entries on a busy CPU); reads arriving meanwhile get the
        previous result instead of waiting or recomputing it too (only the very first read
        waits). So a read can lag a change by one recomputation.
        """
        key = self._visible_key()
        cached = self._cache.get("analysis")
        if cached is not None and cached[0] == key:
            return cached[1]
        if not self._analysis_lock.acquire(blocking=cached is None):
            return cached[1]  # another thread is recomputing: serve the previous table
        try:
            cached = self._cache.get("analysis")
            if cached is not None and cached[0] == key:
                return cached[1]
            rows = self._visible_rows()
            key = tuple((r.id, r.updated_at, r.baseline, r.verified) for r in rows)
            result = self._compute_analysis([r for r in rows if is_complete(r)])
            self._cache["analysis"] = (key, result)
            return result
        finally:
            self._analysis_lock.release()

    def _compute_analysis(self, rows: list[Submission]) -> dict[str, Any]:
        from leaderboard.analysis import bootstrap_tiers, compare_to_baseline, short_verdict

        names = self._names(rows)
        scores = self.item_scores([r.id for r in rows])
        tiers: dict[int, Any] = {}
        common = set.intersection(*(set(s) for s in scores.values())) if scores else set()
        usable = [r for r in rows if scores[r.id]]
        if usable and common:
            items = sorted(common)
            matrix = np.array([[scores[r.id][i] for i in items] for r in usable])
            groups = [i.rsplit("/", 1)[0] for i in items]  # the shape of each item
            for t in bootstrap_tiers(matrix, [str(r.id) for r in usable], groups):
                tiers[int(t.name)] = t
        refs: dict[str, Submission] = {}
        for label, needle in REFERENCE_BASELINES.items():
            for r in rows:
                if r.baseline and needle in r.method.lower():
                    refs[label] = r
                    break
        verdicts: dict[int, dict[str, Any]] = {}
        for r in rows:
            verdicts[r.id] = {}
            for label, ref in refs.items():
                if ref.id == r.id or not scores[r.id] or not scores[ref.id]:
                    continue
                verdicts[r.id][label] = compare_to_baseline(scores[r.id], scores[ref.id], label)
        class_means: dict[int, dict[str, float | None]] = {r.id: {} for r in rows}
        with self.factory() as session:
            for sid, cls, mean in session.execute(
                select(ClassResult.submission_id, ClassResult.class_name, ClassResult.mean).where(
                    ClassResult.submission_id.in_([r.id for r in rows]),
                    ClassResult.metric == self.headline_key,
                )
            ):
                class_means[sid][cls] = None if mean is None else round(float(mean), DIGITS)
        entries = [
            views.Entry(
                id=r.id,
                name=names[r.id],
                method=r.method,
                authors=r.authors,
                paper_url=r.paper_url,
                code_url=r.code_url,
                representation=r.representation,
                training_data=r.training_data,
                baseline=r.baseline,
                verified=r.verified,
                date=r.finished_at or r.created_at,
                headline=r.score_headline,
                iou=r.score_iou,
                chamfer_l1=r.score_chamfer_l1,
                coverage=(r.coverage or {}).get("fraction"),
                tier=tiers[r.id].tier if r.id in tiers else None,
                ci_low=tiers[r.id].low if r.id in tiers else None,
                ci_high=tiers[r.id].high if r.id in tiers else None,
                verdicts={k: v.verdict for k, v in verdicts[r.id].items()},
                per_class=class_means[r.id],
                verdicts_short={k: short_verdict(v) for k, v in verdicts[r.id].items()},
                kind=kind_of(r),
            )  # fmt: skip
            for r in rows
        ]
        return {
            "entries": entries, "verdicts": verdicts, "names": names, "refs": list(refs),
            "ref_names": [names[r.id] for r in refs.values()],
        }  # fmt: skip

    def reference_names(self) -> list[str]:
        """Entry names of the recognition baselines every entry is tested against."""
        return list(self._analysis()["ref_names"])

    def entries(self) -> list[views.Entry]:
        """Visible, scored entries of the current benchmark and protocol that predicted
        every test item."""
        return list(self._analysis()["entries"])
