"""The leaderboard service: submit, status, tables, analysis and maintainer actions.

The only thing `leaderboard.ui` calls. It owns the database (migrated to the newest
revision at start), the archive store and the in-process worker thread. Errors a user can
act on are `ServiceError`s (a ValueError) with a `reason` and `details`; refused maintainer
actions raise `AuthError`.

Nothing returned here holds a path inside SVR_HOME or the benchmark: tables, dicts, numpy
images of public input views only.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, update

from leaderboard import views
from leaderboard.db import (
    ACTIVE_STATES,
    AdminAction,
    ClassResult,
    ItemScore,
    Status,
    Submission,
    make_engine,
    make_session_factory,
    upgrade,
    utcnow,
)
from leaderboard.settings import LeaderboardSettings
from leaderboard.storage import ArchiveStore, archive_extension
from leaderboard.worker import Worker, redact, worker_id

__all__ = [
    "LeaderboardService",
    "ServiceError",
    "SubmissionRejected",
    "AuthError",
    "METADATA_FIELDS",
    "ADMIN_ACTIONS",
    "redact",
]

logger = logging.getLogger(__name__)

METADATA_FIELDS: dict[str, int] = {
    "method": 100,
    "authors": 1000,
    "paper_url": 500,
    "code_url": 500,
    "representation": 20,
    "frame": 20,
    "training_data": 500,
    "contact": 300,
    "description": 2000,
}
ADMIN_ACTIONS = (
    "hide", "unhide", "delete", "undelete", "rescore", "baseline", "unbaseline", "verify",
    "unverify",
)  # fmt: skip
# Baselines the recognition-or-reconstruction tests compare every entry with: display name
# -> substring of the baseline entry's method name (case-insensitive).
# How long a read may reuse the last check of which entries are visible (seconds): reads are
# what a busy leaderboard serves most, and the check is a database query. Changes made by
# this process (its worker finishing a job, maintainer actions) show at once; a worker in
# another process shows its results at most this much later.
VISIBLE_CHECK_MAX_AGE = 1.0
WORKER_NICE = 10  # added to the in-process worker thread's nice value (see `_background`)
REFERENCE_BASELINES = {"Clustering": "clustering", "Retrieval": "retrieval"}
_URL_RE = re.compile(r"\Ahttps?://[^\s<>\"'()\[\]]+\Z")
_SUBMITTER_RE = re.compile(r"\A[\w .@+-]{1,100}\Z")


class ServiceError(ValueError):
    """A request the service refuses; `reason` is one sentence, `details` item-level lines."""

    def __init__(self, reason: str, details: list[str] | None = None):
        self.reason = reason
        self.details = list(details or [])
        super().__init__(
            reason if not self.details else reason + "\n- " + "\n- ".join(details or [])
        )


class SubmissionRejected(ServiceError):
    """Validation failed; the submission is recorded as failed under `submission_id`."""

    def __init__(self, submission_id: int, reason: str, details: list[str] | None = None):
        self.submission_id = submission_id
        super().__init__(f"submission {submission_id} rejected: {reason}", details)


class AuthError(PermissionError):
    """A maintainer action without valid credentials."""


@dataclass(frozen=True)
class Comparison:
    """Two entries side by side on the headline metric.

    per_class: Class, A, B, A - B; items: the items where they disagree most (item id,
    A, B, A - B), largest |A - B| first.
    """

    name_a: str
    name_b: str
    per_class: pd.DataFrame
    items: pd.DataFrame


class LeaderboardService:
    """Submissions, scoring and tables of one benchmark.

    Args:
        settings: where state lives and the limits.
        benchmark_dir: the benchmark submissions are scored against (None: the service can
            show tables but refuses submissions).
        score_fn / open_fn: scoring and archive-opening functions (defaults: the real
            `leaderboard.scoring.score_submission` / `leaderboard.archive.open_submission`).
        protocol: scoring protocol (default `svr.evaluation.DEFAULT_PROTOCOL`).
    """

    def __init__(
        self,
        settings: LeaderboardSettings,
        benchmark_dir: Path | None,
        score_fn: Callable[..., Any] | None = None,
        open_fn: Callable[..., Any] | None = None,
        protocol: Any = None,
    ):
        self.settings = settings
        self.benchmark_dir = None if benchmark_dir is None else Path(benchmark_dir)
        settings.home.mkdir(parents=True, exist_ok=True)
        from leaderboard.backup import restore_at_start

        restore_at_start(settings)
        self.engine = make_engine(settings.database_url)
        upgrade(self.engine)
        self.factory = make_session_factory(self.engine)
        self.store = ArchiveStore(settings.archives_dir)
        self._score_fn = score_fn
        self._open_fn = open_fn
        self._protocol = protocol
        self._benchmark: Any = None
        self._submit_lock = threading.Lock()
        self._worker_thread: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._wake = threading.Event()
        self._cache: dict[str, Any] = {}
        self._analysis_lock = threading.Lock()
        self._backup: Any = None

    # ------------------------------------------------------------------ basics

    @property
    def protocol(self) -> Any:
        if self._protocol is None:
            from svr.evaluation import DEFAULT_PROTOCOL

            self._protocol = DEFAULT_PROTOCOL
        return self._protocol

    @property
    def headline_key(self) -> str:
        return self.protocol.headline_key

    @property
    def headline_label(self) -> str:
        return views.headline_label(self.headline_key)

    @property
    def benchmark(self) -> Any:
        if self.benchmark_dir is None:
            raise ServiceError("no benchmark is configured on this server; submissions are off")
        if self._benchmark is None:
            from svr.data.layout import Benchmark

            if not (self.benchmark_dir / "benchmark.json").is_file():
                raise ServiceError("the benchmark is not ready yet; try again in a few minutes")
            self._benchmark = Benchmark(self.benchmark_dir)
        return self._benchmark

    def _open(self) -> Callable[..., Any]:
        if self._open_fn is None:
            from leaderboard.archive import open_submission

            self._open_fn = open_submission
        return self._open_fn

    def _redact(self, text: str, upload: Path | None = None) -> str:
        return redact(text, (self.settings.home, self.benchmark_dir, upload))

    def make_worker(self, kind: str = "worker") -> Worker:
        """A worker on this service's database and benchmark."""
        if self.benchmark_dir is None:
            raise ServiceError("no benchmark is configured; nothing to score against")
        return Worker(
            self.factory, self.settings, self.benchmark_dir, ident=worker_id(kind),
            score_fn=self._score_fn, open_fn=self._open_fn, protocol=self._protocol,
            on_done=self._changed,
        )  # fmt: skip

    def start_worker(self) -> None:
        """Start the in-process worker thread (idempotent), and the periodic backup when
        SVR_BACKUP_REPO is set.

        First requeues jobs this host's previous app process left in 'scoring' (it was
        killed), then scores queued jobs one at a time until `stop_worker()`.
        """
        if self._worker_thread is not None and self._worker_thread.is_alive():
            return
        worker = self.make_worker("app")
        worker.recover(startup_prefix=f"app@{socket.gethostname()}:")
        self._worker_stop.clear()
        self._worker_thread = threading.Thread(
            target=_background(worker.run_forever), args=(self._worker_stop, self._wake),
            name="leaderboard-worker", daemon=True,
        )  # fmt: skip
        self._worker_thread.start()
        self._start_backup()

    def _start_backup(self) -> None:
        from leaderboard.backup import BackupThread, target_from_settings

        if self._backup is not None:
            return
        target = target_from_settings(self.settings)
        if target is not None:
            self._backup = BackupThread(self.settings, target)
            self._backup.start()

    def stop_worker(self, timeout: float = 30.0) -> None:
        """Stop the worker thread; a job being scored goes back to the queue at its next
        progress step (without using up an attempt)."""
        self._worker_stop.set()
        self._wake.set()
        if self._backup is not None:
            self._backup.stop()
            self._backup = None
        if self._worker_thread is not None:
            self._worker_thread.join(timeout)
            self._worker_thread = None

    def close(self) -> None:
        self.stop_worker()
        self.engine.dispose()

    # ------------------------------------------------------------------ submitting

    def _clean_metadata(self, metadata: dict[str, Any]) -> dict[str, str]:
        unknown = sorted(set(metadata) - set(METADATA_FIELDS))
        if unknown:
            raise ServiceError(
                f"unknown metadata field(s) {unknown}; expected some of {sorted(METADATA_FIELDS)}"
            )
        clean: dict[str, str] = {}
        for key, limit in METADATA_FIELDS.items():
            value = metadata.get(key)
            value = "" if value is None else str(value).strip()
            if len(value) > limit:
                raise ServiceError(f"{key} is longer than {limit} characters")
            clean[key] = value
        for key in ("paper_url", "code_url"):
            if clean[key] and not _URL_RE.match(clean[key]):
                raise ServiceError(f"{key} must be an http(s) URL, got {clean[key]!r}")
        return clean

    def _check_limits(self, session: Any, submitter: str) -> None:
        since = utcnow() - dt.timedelta(days=1)
        # Deleted submissions still count (deleting must not reset the limit); failed ones
        # do not (a rejected archive should be fixable at once).
        today = session.scalar(
            select(func.count(Submission.id)).where(
                Submission.submitter == submitter,
                Submission.created_at >= since,
                Submission.status != Status.FAILED,
            )
        )
        if today >= self.settings.max_per_day:
            raise ServiceError(
                f"{submitter!r} has reached the limit of {self.settings.max_per_day} submissions "
                "in 24 hours (failed ones do not count); try again later"
            )
        active = session.scalar(
            select(func.count(Submission.id)).where(
                Submission.submitter == submitter,
                Submission.status.in_(ACTIVE_STATES),
                Submission.deleted.is_(False),
            )
        )
        if active >= self.settings.max_concurrent:
            raise ServiceError(
                f"{submitter!r} already has {active} submission(s) waiting or being scored "
                f"(limit {self.settings.max_concurrent}); wait until they finish"
            )

    def submit(
        self,
        archive_path: str | Path,
        metadata: dict[str, Any],
        submitter: str,
        baseline: bool = False,
        filename: str | None = None,
    ) -> int:
        """Store, validate and queue a submission archive; returns its id.

        Args:
            archive_path: the uploaded .zip/.tar/.tar.gz/.tgz/.npz.
            metadata: any of METADATA_FIELDS; non-empty values override the archive's
                submission.json (which may be absent when method, representation and frame
                are given here).
            submitter: who submits (HF user on a Space; a free-text name elsewhere).
            baseline: mark as a baseline entry (used by `leaderboard.seed`; per-submitter
                limits do not apply; refused if a baseline of the same archive or method
                name exists).
            filename: the original file name, if `archive_path` lost it.

        Raises:
            ServiceError: refused before validation (limits, duplicate, bad metadata);
            SubmissionRejected: validation failed (recorded as a failed submission).
        """
        from leaderboard.validation import Manifest, SubmissionError

        benchmark = self.benchmark
        submitter = (submitter or "").strip()
        if not _SUBMITTER_RE.match(submitter):
            raise ServiceError(
                "a submitter name is required (1-100 letters, digits, spaces or . @ + - _)"
            )
        meta = self._clean_metadata(metadata)
        path = Path(archive_path)
        if not path.is_file():
            raise ServiceError("no archive uploaded")
        try:
            ext = archive_extension(filename or path.name)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None

        with self._submit_lock:
            if not baseline:
                with self.factory() as session:
                    self._check_limits(session, submitter)
            try:
                stored = self.store.put(path, ext, max_bytes=self.settings.max_archive_bytes)
            except ValueError as exc:
                raise ServiceError(str(exc)) from None
            with self.factory() as session:
                self._check_duplicate(session, stored.sha256, submitter, baseline, meta["method"])
                row = Submission(
                    method=meta["method"] or "(unnamed)",
                    authors=meta["authors"], paper_url=meta["paper_url"],
                    code_url=meta["code_url"], representation=meta["representation"],
                    frame=meta["frame"], training_data=meta["training_data"],
                    description=meta["description"], contact=meta["contact"],
                    submitter=submitter, status=Status.RECEIVED, reason="", details=[],
                    archive_sha256=stored.sha256, archive_size=stored.size, archive_ext=ext,
                    protocol_id=self.protocol.identifier,
                    benchmark_id=benchmark.meta.identifier, baseline=baseline,
                    coverage={}, overall={}, manifest={},
                )  # fmt: skip
                session.add(row)
                session.commit()
                sid = row.id
        logger.info("submission %d received from %s (%s)", sid, submitter, stored.sha256[:12])

        # Validation, outside the lock: errors are shown at once.
        open_fn = self._open()
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        try:
            try:
                parsed = open_fn(stored.path, benchmark, scratch=self.settings.scratch_dir)
            except SubmissionError as exc:
                if not exc.reason.startswith("the submission has no") or not (
                    meta["method"] and meta["representation"] and meta["frame"]
                ):
                    raise
                form = Manifest(
                    method=meta["method"], representation=meta["representation"],
                    frame=meta["frame"], authors=meta["authors"], paper_url=meta["paper_url"],
                    code_url=meta["code_url"], training_data=meta["training_data"],
                    description=meta["description"],
                )  # fmt: skip
                parsed = open_fn(
                    stored.path, benchmark, scratch=self.settings.scratch_dir, manifest=form
                )
            with parsed:
                manifest = parsed.manifest
                for key in ("representation", "frame"):
                    if meta[key] and meta[key] != getattr(manifest, key):
                        raise SubmissionError(
                            f"the form says {key} {meta[key]!r} but submission.json says "
                            f"{getattr(manifest, key)!r}; make them agree"
                        )
                n_items = len(parsed.test_ids)
                n_missing = len(parsed.missing)
        except SubmissionError as exc:
            reason = self._redact(exc.reason, path)
            details = [self._redact(d, path) for d in exc.details]
            self._set(sid, status=Status.FAILED, reason=reason, details=details,
                      finished_at=utcnow())  # fmt: skip
            raise SubmissionRejected(sid, reason, details) from None
        except Exception as exc:
            logger.exception("validating submission %d failed", sid)
            reason = self._redact(f"could not read the archive ({type(exc).__name__}: {exc})", path)
            self._set(sid, status=Status.FAILED, reason=reason, finished_at=utcnow())
            raise SubmissionRejected(sid, reason) from None

        values = {
            f: meta[f] or str(getattr(manifest, f, "") or "")
            for f in ("method", "authors", "paper_url", "code_url", "training_data", "description")
        }
        for key in ("paper_url", "code_url"):  # URLs from submission.json are checked too
            if values[key] and not _URL_RE.match(values[key]):
                values[key] = ""
        warning = (
            f"{n_missing} of {n_items} test items missing (they score the worst values)"
            if n_missing
            else ""
        )
        self._set(
            sid, status=Status.VALIDATED, representation=manifest.representation,
            frame=manifest.frame, manifest=manifest.to_dict(), progress_total=n_items,
            reason=warning, **values,
        )  # fmt: skip
        self._set(sid, status=Status.QUEUED)
        self._wake.set()
        return sid

    def _check_duplicate(
        self, session: Any, sha: str, submitter: str, baseline: bool, method: str
    ) -> None:
        if baseline:
            clause = (Submission.archive_sha256 == sha) | (
                (Submission.method == method) if method else False
            )
            earlier = session.scalars(
                select(Submission).where(
                    Submission.baseline.is_(True),
                    Submission.deleted.is_(False),
                    Submission.status != Status.FAILED,
                    clause,
                )  # fmt: skip
            ).first()
        else:
            earlier = session.scalars(
                select(Submission).where(
                    Submission.archive_sha256 == sha,
                    Submission.submitter == submitter,
                    Submission.status != Status.FAILED,
                )  # fmt: skip
            ).first()
        if earlier is not None:
            state = "deleted" if earlier.deleted else earlier.status
            raise ServiceError(
                f"this archive was already submitted as submission {earlier.id} "
                f"({earlier.method!r}, {state}, {earlier.created_at:%Y-%m-%d %H:%M} UTC); "
                "a maintainer can rescore that one"
            )

    def _set(self, sid: int, **values: Any) -> None:
        with self.factory() as session:
            session.execute(
                update(Submission).where(Submission.id == sid).values(updated_at=utcnow(), **values)
            )
            session.commit()

    # ------------------------------------------------------------------ status

    def status(self, submission_id: int) -> dict[str, Any]:
        """Status of one submission: id, method, status, reason, details, progress, times;
        when done also overall (both means), per_class (class -> metric -> mean/median),
        coverage and protocol. ServiceError if there is no such (non-deleted) submission."""
        with self.factory() as session:
            row = session.get(Submission, int(submission_id))
            if row is None or row.deleted:
                raise ServiceError(f"no submission {submission_id}")
            out: dict[str, Any] = {
                "id": row.id,
                "method": row.method,
                "status": row.status,
                "reason": row.reason,
                "details": list(row.details or []),
                "progress": {"done": row.progress_done, "total": row.progress_total},
                "created_at": row.created_at.isoformat(),
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "attempts": row.attempts,
                "baseline": row.baseline,
                "verified": row.verified,
                "hidden": row.hidden,
                "protocol": row.protocol_id,
                "benchmark": row.benchmark_id,
            }
            if row.status == Status.DONE:
                out["overall"] = row.overall
                out["coverage"] = row.coverage
                per_class: dict[str, dict[str, dict[str, float | None]]] = {}
                for r in session.scalars(
                    select(ClassResult).where(ClassResult.submission_id == row.id)
                ):
                    per_class.setdefault(r.class_name, {})[r.metric] = {
                        "mean": r.mean, "median": r.median,
                    }  # fmt: skip
                out["per_class"] = per_class
        return out

    def submissions_of(self, submitter: str) -> pd.DataFrame:
        """The submitter's non-deleted submissions, newest first."""
        with self.factory() as session:
            rows = session.scalars(
                select(Submission).where(
                    Submission.submitter == (submitter or "").strip(),
                    Submission.deleted.is_(False),
                )
            ).all()
        return views.submissions_frame([_summary_row(r) for r in rows])

    # ------------------------------------------------------------------ entries and tables

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

    def _changed(self) -> None:
        """Forget the last visibility check: the next read queries the database."""
        self._cache.pop("visible_key", None)

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
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.method] = counts.get(r.method, 0) + 1
        return {r.id: r.method if counts[r.method] == 1 else f"{r.method} #{r.id}" for r in rows}

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
            result = self._compute_analysis(rows)
            self._cache["analysis"] = (key, result)
            return result
        finally:
            self._analysis_lock.release()

    def _compute_analysis(self, rows: list[Submission]) -> dict[str, Any]:
        from leaderboard.analysis import bootstrap_tiers, compare_to_baseline

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
                class_means[sid][cls] = mean
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
            )  # fmt: skip
            for r in rows
        ]
        return {
            "entries": entries, "verdicts": verdicts, "names": names, "refs": list(refs),
            "ref_names": [names[r.id] for r in refs.values()],
        }  # fmt: skip

    def describe(self) -> str:
        """One line naming the benchmark and the protocol the table is scored with."""
        protocol_id, bench_id = self._current_ids()
        bench = f"benchmark `{bench_id}`" if bench_id else "no benchmark yet"
        return (
            f"Scored on {bench} with protocol `{protocol_id}`; entries scored with another "
            "benchmark or protocol are listed again once a maintainer rescores them."
        )

    def reference_names(self) -> list[str]:
        """Entry names of the recognition baselines every entry is tested against."""
        return list(self._analysis()["ref_names"])

    def entries(self) -> list[views.Entry]:
        """Visible, scored entries of the current benchmark and protocol."""
        return list(self._analysis()["entries"])

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
                        "KS p": c.ks_p,
                        "Wilcoxon p": c.wilcoxon_p,
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
                means[sid][cls] = mean
        return views.per_class_frame({e.name: means[e.id] for e in entries})

    def distributions(self, submission_ids: Iterable[int] | None = None) -> dict[str, np.ndarray]:
        """Entry name -> per-item headline scores (float64 (N,)), baselines included."""
        entries = self.entries()
        if submission_ids is not None:
            wanted = {int(i) for i in submission_ids}
            entries = [e for e in entries if e.id in wanted or e.baseline]
        scores = self.item_scores([e.id for e in entries])
        return {e.name: np.array(sorted(scores[e.id].values())) for e in entries if scores[e.id]}

    def entry_choices(self) -> list[tuple[str, int]]:
        """(label, id) of visible entries, for dropdowns."""
        return [(f"{e.name} (#{e.id})", e.id) for e in self.entries()]

    def compare(self, id_a: int, id_b: int, top_k: int = 8) -> Comparison:
        """Per-class differences of two visible entries and the items they disagree on most."""
        entries = {e.id: e for e in self.entries()}
        for i in (id_a, id_b):
            if int(i) not in entries:
                raise ServiceError(f"submission {i} is not a visible, scored entry")
        a, b = entries[int(id_a)], entries[int(id_b)]
        classes = sorted(set(a.per_class) | set(b.per_class))
        per_class = pd.DataFrame(
            {
                "Class": classes,
                a.name: [a.per_class.get(c) for c in classes],
                b.name: [b.per_class.get(c) for c in classes],
            }
        )
        per_class["Difference (A - B)"] = per_class[a.name] - per_class[b.name]
        scores = self.item_scores([a.id, b.id])
        shared = sorted(set(scores[a.id]) & set(scores[b.id]))
        items = pd.DataFrame(
            {
                "Item": shared,
                a.name: [scores[a.id][i] for i in shared],
                b.name: [scores[b.id][i] for i in shared],
            }
        )
        items["Difference (A - B)"] = items[a.name] - items[b.name] if shared else []
        if shared:
            items = items.reindex(
                items["Difference (A - B)"].abs().sort_values(ascending=False).index
            )
        return Comparison(
            a.name, b.name, per_class.round(4), items.head(top_k).round(4).reset_index(drop=True)
        )

    def view_image(self, item_id: str) -> np.ndarray:
        """The public input view of a test item as an (H, W, C) uint8 array (never a path)."""
        from PIL import Image

        if "test_ids" not in self._cache:
            self._cache["test_ids"] = {i.item_id for i in self.benchmark.items("test")}
        if str(item_id) not in self._cache["test_ids"]:
            raise ServiceError(f"{item_id!r} is not a test item of this benchmark")
        item = self.benchmark.item(str(item_id))
        with Image.open(self.benchmark.image_path(item)) as image:
            return np.asarray(image.convert("RGBA"))

    # ------------------------------------------------------------------ maintainers

    def authorize(self, token: str | None = None, profile: Any = None) -> str:
        """The maintainer's name if `token` matches SVR_ADMIN_TOKEN, or (on a Space) the
        OAuth `profile` (username, orgs) is in SVR_ADMINS; else AuthError."""
        expected = self.settings.admin_token
        if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
            return "token"
        if profile is not None and self.settings.on_space and self.settings.admins:
            username = _profile_get(profile, "username") or _profile_get(
                profile, "preferred_username"
            )
            names = {str(username)} if username else set()
            for org in _profile_get(profile, "orgs") or []:
                org_name = (
                    org.get("preferred_username") or org.get("name")
                    if isinstance(org, dict)
                    else org
                )
                if org_name:
                    names.add(str(org_name))
            if names & set(self.settings.admins):
                return f"hf:{username}"
        raise AuthError("maintainer access refused: wrong or missing token, or not an admin")

    def admin_action(self, action: str, submission_ids: Iterable[int], actor: str) -> list[str]:
        """Apply a maintainer action (ADMIN_ACTIONS) to submissions; returns one line each.

        `actor` comes from `authorize`. rescore requeues with the current protocol.
        """
        if action not in ADMIN_ACTIONS:
            raise ServiceError(f"unknown action {action!r}; one of {', '.join(ADMIN_ACTIONS)}")
        flags = {
            "hide": {"hidden": True}, "unhide": {"hidden": False},
            "delete": {"deleted": True}, "undelete": {"deleted": False},
            "baseline": {"baseline": True}, "unbaseline": {"baseline": False},
            "verify": {"verified": True}, "unverify": {"verified": False},
        }  # fmt: skip
        lines = []
        with self.factory() as session:
            for sid in submission_ids:
                row = session.get(Submission, int(sid))
                if row is None:
                    lines.append(f"{sid}: no such submission")
                    continue
                if action == "rescore":
                    if row.deleted:
                        lines.append(f"{sid}: deleted; undelete it first")
                        continue
                    if row.status in (Status.RECEIVED, Status.VALIDATED):
                        lines.append(f"{sid}: still being validated")
                        continue
                    values: dict[str, Any] = {
                        "status": Status.QUEUED, "attempts": 0, "claimed_by": None,
                        "reason": "", "details": [], "progress_done": 0,
                        "protocol_id": self.protocol.identifier, "finished_at": None,
                    }  # fmt: skip
                else:
                    values = flags[action]
                session.execute(
                    update(Submission)
                    .where(Submission.id == row.id)
                    .values(updated_at=utcnow(), **values)
                )
                session.add(AdminAction(submission_id=row.id, action=action, actor=actor))
                lines.append(f"{sid}: {action} done")
            session.commit()
        self._changed()
        self._wake.set()
        logger.info("%s by %s on %s", action, actor, list(submission_ids))
        return lines

    def admin_table(self, actor: str) -> pd.DataFrame:
        """Every submission (hidden and deleted included), for maintainers."""
        if not actor:
            raise AuthError("maintainer access refused")
        with self.factory() as session:
            rows = session.scalars(select(Submission)).all()
        frame = views.submissions_frame([_summary_row(r, admin=True) for r in rows])
        return frame


def _background(run: Callable[..., None]) -> Callable[..., None]:
    """`run` in a thread at a lower CPU priority (Linux: nice is per thread, and inherited by
    the threads it starts), so that scoring yields the CPU to the requests the server
    answers. Elsewhere `run` is unchanged."""

    def wrapped(*args: Any) -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE)
            )
        except (AttributeError, OSError):  # not Linux, or not permitted
            logger.debug("could not lower the worker thread's priority")
        run(*args)

    return wrapped


def _profile_get(profile: Any, key: str) -> Any:
    if isinstance(profile, dict):
        return profile.get(key)
    value = getattr(profile, key, None)
    if value is None and hasattr(profile, "get"):
        value = profile.get(key)
    return value


def _summary_row(row: Submission, admin: bool = False) -> dict[str, object]:
    flags = [f for f in ("baseline", "verified", "hidden", "deleted") if getattr(row, f)]
    if row.status == Status.SCORING and row.progress_total:
        progress = f"{row.progress_done}/{row.progress_total}"
    elif row.status == Status.DONE:
        progress = f"{row.progress_total}/{row.progress_total}"
    else:
        progress = ""
    reason = row.reason
    if row.details:
        reason += " | " + "; ".join(row.details[:5])
    method = f"{row.method} ({row.submitter})" if admin else row.method
    return {
        "ID": row.id,
        "Method": method,
        "Status": row.status,
        "Progress": progress,
        "Reason": reason,
        "Submitted": row.created_at.strftime("%Y-%m-%d %H:%M"),
        "Flags": ", ".join(flags),
    }
