"""Submitting: the submit flow, from the uploaded file to a queued row.

`SubmissionsMixin.submit` is the flow (one method, in order): refusal rate limit ->
submitter name -> key -> metadata -> method name -> per-submitter limits -> store the
archive -> archive duplicate -> row -> validation -> manifest names -> every test item
present -> duplicate predictions -> queued. The checks it calls live in
`leaderboard.admission`. A submission refused after its archive was stored is recorded as
failed with the reason, and its archive is deleted at once (unless another submission that
did not fail holds the same bytes).

Partial submissions fail validation, saying how many test items are missing: an entry is
scored only if it predicts every test item (no private scoring of a subset: its figures
would tell the submitter how single items score).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from leaderboard import identity
from leaderboard.admission import AdmissionMixin, Submitter
from leaderboard.db import Status, Submission, new_public_id, utcnow
from leaderboard.errors import ServiceError, SubmissionRejected
from leaderboard.storage import StoredArchive, archive_extension

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
_MISSING_SHOWN = 5
_LABELS = {"method": "method name", "paper_url": "paper URL", "code_url": "code URL",
           "training_data": "training data"}  # fmt: skip


def _is_replaced_copy(
    earlier: Submission | None, replaces: int | None, archive_sha: str, content_sha: str | None
) -> bool:
    """Whether the duplicate found, `earlier`, is the baseline a replacement `replaces`,
    with the same archive bytes or the same decoded predictions."""
    if earlier is None or replaces is None or earlier.id != replaces:
        return False
    same_content = content_sha is not None and earlier.content_sha256 == content_sha
    return earlier.archive_sha256 == archive_sha or same_content


class SubmissionsMixin(AdmissionMixin):
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
            identity.check_text(value, _LABELS.get(key, key), multiline=key == "description")
            clean[key] = value
        for key in ("paper_url", "code_url"):
            if clean[key] and not _URL_RE.match(clean[key]):
                raise ServiceError(f"{key} must be an http(s) URL, got {clean[key]!r}")
        if clean["method"]:
            clean["method"] = identity.clean_name(clean["method"], "method name", 100)
        return clean

    def submit(
        self,
        archive_path: str | Path,
        metadata: dict[str, Any],
        submitter: str,
        baseline: bool = False,
        filename: str | None = None,
        key: str | None = None,
        client: str | None = None,
        upload_name: str | None = None,
        weights_sha256: str | None = None,
        replaces: int | None = None,
    ) -> int:
        """Store, validate and queue a submission archive; returns its (internal) id.

        Args:
            archive_path: the uploaded .zip/.tar/.tar.gz/.tgz/.npz.
            metadata: any of METADATA_FIELDS; non-empty values override the archive's
                submission.json (which may be absent when method, representation and frame
                are given here).
            submitter: who submits (HF user on a Space; a free-text name elsewhere).
            baseline: mark as a baseline entry (used by `leaderboard.seed`; per-submitter
                limits, keys and reserved names do not apply; refused if a baseline of the
                same archive, predictions or method name exists).
            filename: the original file name, if `archive_path` lost it.
            key: the submitter's key (checked when SVR_REQUIRE_KEYS is on, off a Space).
            client: the client's address (refusals are rate-limited per address too).
            upload_name: the file name the archive was uploaded as (e.g. "my_preds.zip"),
                stored cleaned (`identity.clean_upload_name`: base name, no control or
                format characters, at most 120 characters) and shown instead of the stored
                archive's hash name, also after a reload.
            weights_sha256: a baseline's weights digest (`leaderboard.seed.weights_digest`),
                stored with it.
            replaces: a baseline only: the id of the earlier baseline of the same method it
                replaces (new weights). It is admitted beside that one, which the worker
                hides once this one is scored. If its predictions are those of the replaced
                entry, it is refused as a duplicate and `weights_sha256` is recorded on the
                replaced entry instead (the weights predict what it holds).

        Users see the submission's `public_id` (`public_id(sid)`), never this id.

        Raises:
            ServiceError: refused before validation (rate limit, name, key, limits,
                duplicate archive, bad metadata);
            SubmissionRejected: refused from validation on (recorded as a failed
                submission whose archive is deleted).
        """
        upload = identity.clean_upload_name(upload_name)
        if baseline:
            return self._submit(archive_path, metadata, Submitter.parse(submitter), True,
                                filename, key, upload, weights_sha256, replaces)  # fmt: skip
        if replaces is not None or weights_sha256 is not None:
            raise ServiceError("only a seeded baseline records weights or replaces an entry")
        who: Submitter | None = None
        self._check_refusals(None, client)
        try:
            who = Submitter.parse(submitter)
            self._check_refusals(who, client)
        except ServiceError as exc:
            if who is None:  # a bad name is a refusal; the rate limit itself is not
                self._refused(None, client)
            raise exc from None
        try:
            self._check_address(client)
            sid = self._submit(archive_path, metadata, who, False, filename, key, upload)
        except ServiceError:
            self._refused(who, client)
            raise
        self._accepted_from(client)
        return sid

    def _submit(
        self, archive_path: str | Path, metadata: dict[str, Any], who: Submitter,
        baseline: bool, filename: str | None, key: str | None, upload_name: str | None = None,
        weights_sha256: str | None = None, replaces: int | None = None,
    ) -> int:  # fmt: skip
        """`submit` once the refusal rate limit let it through (`upload_name` cleaned)."""
        from leaderboard.validation import Manifest, SubmissionError

        benchmark = self.benchmark
        if self.settings.keys_required and not baseline:
            self._check_key(who, key)
        meta = self._clean_metadata(metadata)
        self._check_method_name(meta["method"], baseline)
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
                    self._check_limits(session, who)
            try:
                stored = self.store.put(path, ext, max_bytes=self.settings.max_archive_bytes)
            except ValueError as exc:
                raise ServiceError(str(exc)) from None
            with self.factory() as session:
                earlier = self._earlier_duplicate(session, baseline, stored.sha256,
                                                  method=meta["method"], replaces=replaces)  # fmt: skip
                if earlier is not None:
                    earlier_id = earlier.id
                    message = self._duplicate_message(earlier, who)
                    if _is_replaced_copy(earlier, replaces, stored.sha256, None):
                        message = self._keep_replaced(session, earlier, weights_sha256)
                    self._discard_archive(stored)
                    raise ServiceError(message, duplicate_of=earlier_id)
                row = Submission(
                    method=meta["method"] or "(unnamed)",
                    authors=meta["authors"], paper_url=meta["paper_url"],
                    code_url=meta["code_url"], representation=meta["representation"],
                    frame=meta["frame"], training_data=meta["training_data"],
                    description=meta["description"], contact=meta["contact"],
                    submitter=who.name, submitter_key=who.key, quota_key=who.quota,
                    public_id=new_public_id(), status=Status.RECEIVED, reason="", details=[],
                    archive_sha256=stored.sha256, archive_size=stored.size, archive_ext=ext,
                    protocol_id=self.protocol.identifier,
                    benchmark_id=benchmark.meta.identifier, baseline=baseline,
                    coverage={}, overall={}, manifest={}, upload_name=upload_name,
                    weights_sha256=weights_sha256, supersedes=replaces,
                )  # fmt: skip
                session.add(row)
                session.commit()
                sid, public = row.id, row.public_id
        logger.info("submission %d received from %s (%s)", sid, who.name, stored.sha256[:12])

        # Validation, outside the lock: errors are shown at once.
        open_fn = self._open()
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        try:
            try:
                parsed = open_fn(stored.path, benchmark, scratch=self.settings.scratch_dir,
                                 scratch_budget=self.settings.scratch_budget_bytes)  # fmt: skip
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
                    stored.path, benchmark, scratch=self.settings.scratch_dir, manifest=form,
                    scratch_budget=self.settings.scratch_budget_bytes,
                )  # fmt: skip
            with parsed:
                manifest = parsed.manifest
                for field in ("representation", "frame"):
                    if meta[field] and meta[field] != getattr(manifest, field):
                        raise SubmissionError(
                            f"the form says {field} {meta[field]!r} but submission.json says "
                            f"{getattr(manifest, field)!r}; make them agree"
                        )
                n_items = len(parsed.test_ids)
                missing = list(parsed.missing)
                content_sha = getattr(parsed, "content_sha256", "") or None
        except SubmissionError as exc:
            self._reject(sid, public, stored, exc.reason, exc.details, path)
        except Exception as exc:
            logger.exception("validating submission %d failed", sid)
            self._reject(sid, public, stored,
                         f"could not read the archive ({type(exc).__name__}: {exc})", [], path)  # fmt: skip

        values = {
            f: meta[f] or str(getattr(manifest, f, "") or "").strip()
            for f in ("method", "authors", "paper_url", "code_url", "training_data", "description")
        }
        for field in ("paper_url", "code_url"):  # URLs from submission.json are checked too
            if values[field] and not _URL_RE.match(values[field]):
                values[field] = ""
        try:
            for field, value in values.items():  # submission.json's texts: the form's rules
                label = _LABELS.get(field, field)
                identity.check_text(value, label, multiline=field == "description")
            values["method"] = identity.clean_name(values["method"], "method name", 100)
            values["method"] = values["method"] or "(unnamed)"
            self._check_method_name(values["method"], baseline)
            if missing:
                shown = ", ".join(missing[:_MISSING_SHOWN])
                more = (
                    f" and {len(missing) - _MISSING_SHOWN} more"
                    if len(missing) > _MISSING_SHOWN
                    else ""
                )
                raise ServiceError(
                    f"{len(missing)} of {n_items} test items are missing: a submission must "
                    "predict every test item to be scored (the test inputs list them all); "
                    f"missing: {shown}{more}"
                )
        except ServiceError as exc:
            self._reject(sid, public, stored, exc.reason, exc.details, path)
        with self._submit_lock:  # the duplicate check and the queueing, atomically
            with self.factory() as session:
                earlier = self._earlier_duplicate(session, baseline, stored.sha256, content_sha,
                                                  values["method"] if baseline else "", sid,
                                                  replaces)  # fmt: skip
                earlier_id = None if earlier is None else earlier.id
                message = "" if earlier is None else self._duplicate_message(earlier, who)
                if _is_replaced_copy(earlier, replaces, stored.sha256, content_sha):
                    message = self._keep_replaced(session, earlier, weights_sha256)
                    # the seeding's own refused copy: recorded, but as deleted, so the
                    # status panel (the newest live row per method) shows the kept entry
                    self._set(sid, deleted=True)
            if earlier_id is not None:
                self._reject(sid, public, stored, message, [], path, duplicate_of=earlier_id)
            self._set(
                sid, status=Status.VALIDATED, representation=manifest.representation,
                frame=manifest.frame, manifest=manifest.to_dict(), progress_total=n_items,
                content_sha256=content_sha, reason="", **values,
            )  # fmt: skip
            self._set(sid, status=Status.QUEUED)
        self._wake.set()
        return sid

    def _keep_replaced(self, session: Any, earlier: Submission, weights: str | None) -> str:
        """A replacement baseline predicts what `earlier` holds: record `weights` on it
        (committed) and return the refusal's reason."""
        earlier.weights_sha256 = weights
        session.commit()
        logger.info("baseline %d: same predictions, weights %s recorded", earlier.id, weights)
        return (
            f"these predictions are those of entry #{earlier.id} ({earlier.method!r}), which "
            "it would replace: that entry is kept and the weights recorded on it"
        )

    def public_id(self, submission_id: int) -> str:
        """The public id of a submission (what users see and poll)."""
        with self.factory() as session:
            public = session.scalar(
                select(Submission.public_id).where(Submission.id == submission_id)
            )
        if public is None:
            raise ServiceError(f"no submission {submission_id}")
        return public

    def _reject(
        self, sid: int, public: str | None, stored: StoredArchive, reason: str,
        details: list[str], upload: Path | None = None, duplicate_of: int | None = None,
    ) -> None:  # fmt: skip
        """Record submission `sid` as failed with the (redacted) reason, delete its archive,
        and raise SubmissionRejected (`duplicate_of`: the earlier submission it repeats)."""
        reason = self._redact(reason, upload)
        details = [self._redact(d, upload) for d in details]
        self._set(sid, status=Status.FAILED, reason=reason, details=details, finished_at=utcnow())
        self._discard_archive(stored)
        raise SubmissionRejected(
            sid, reason, details, public_id=public, duplicate_of=duplicate_of
        ) from None

    def _discard_archive(self, stored: StoredArchive) -> None:
        """Delete a refused upload's stored archive, unless a submission that did not fail
        holds the same bytes."""
        with self._submit_lock, self.factory() as session:
            kept = session.scalar(
                select(Submission.id).where(
                    Submission.archive_sha256 == stored.sha256,
                    Submission.archive_ext == stored.ext,
                    Submission.status != Status.FAILED,
                )
            )
            if kept is None:
                stored.path.unlink(missing_ok=True)
