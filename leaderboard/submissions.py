"""Submitting: metadata checks, per-submitter limits, duplicates, storing, validation, queueing.

The submit flow of the service lives here, in `SubmissionsMixin.submit` (one method, from the
uploaded file to a queued row); `LeaderboardService` composes it with the other mixins.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from leaderboard.db import ACTIVE_STATES, Status, Submission, utcnow
from leaderboard.errors import ServiceError, SubmissionRejected
from leaderboard.state import ServiceState
from leaderboard.storage import archive_extension

__all__ = ["SubmissionsMixin", "METADATA_FIELDS"]

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
_URL_RE = re.compile(r"\Ahttps?://[^\s<>\"'()\[\]]+\Z")
_SUBMITTER_RE = re.compile(r"\A[\w .@+-]{1,100}\Z")


class SubmissionsMixin(ServiceState):
    """Submit archives (`submit`): the only way rows enter the database."""

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
