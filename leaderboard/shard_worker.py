"""The shard side of the scoring worker (`leaderboard.worker.Worker` inherits it): scoring
one shard, coordinating the shards of a claimed job, and helping with other workers' jobs.
The shard bookkeeping in the database is `leaderboard.shards`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from sqlalchemy import select

from leaderboard import shards
from leaderboard.db import Status, Submission, utcnow
from leaderboard.jobs import (
    TRANSIENT,
    JobLost,
    JobOutcome,
    ShardFailed,
    ShardLost,
    Stopping,
    default_open_fn,
    default_score_fn,
    redact,
    seconds,
)
from svr.limits import release_memory

__all__ = ["ShardWork"]

logger = logging.getLogger(__name__)


class ShardWork:
    """Shard methods of `Worker` (which provides factory, settings, benchmark, protocol,
    ident, store, score_fn, open_fn, _stop, _held, _owned, _retry, _timeout_reason)."""

    factory: Any
    settings: Any
    ident: str
    store: Any
    score_fn: Callable[..., Any] | None
    open_fn: Callable[..., Any] | None
    _stop: threading.Event | None
    _held: tuple[int, ExitStack, Any] | None
    benchmark: Any
    benchmark_dir: Any
    protocol: Any

    def _owned(self, submission_id: int) -> Any:  # pragma: no cover - Worker's
        raise NotImplementedError

    def _retry(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _timeout_reason(self, exc: BaseException) -> str:  # pragma: no cover - Worker's
        raise NotImplementedError

    def _score_sharded(self, submission_id: int, parsed: Any, progress: Any) -> Any:
        """Coordinate the shards of a claimed job: write them, score shards until none is
        left to take, wait for the other workers' shards, merge. Returns SubmissionScores.

        Raises ShardFailed (a shard failed: its reason), JobLost or Stopping."""
        start = time.monotonic()
        test_ids = list(parsed.test_ids)
        ranges = shards.plan_shards(test_ids, self.settings.shard_items)
        stale_before = utcnow() - seconds(self.settings.heartbeat_stale_s)

        def write() -> int:
            with self.factory() as session, session.begin():
                attempts = session.scalar(
                    select(Submission.attempts).where(self._owned(submission_id))
                )
                if attempts is None:
                    raise JobLost(f"submission {submission_id} was taken away")
                # A resumed job (attempt 2 or later) keeps the shards already scored.
                return shards.write_shards(session, submission_id, ranges, attempts > 1,
                                           stale_before)  # fmt: skip

        todo = self._retry("writing shards", write)
        logger.info("submission %d: %d items in %d shards, %d to score", submission_id,
                    len(test_ids), len(ranges), todo)  # fmt: skip
        total = len(test_ids)
        while True:
            state = self._retry("reading shards", shards.shard_progress, self.factory,
                                submission_id)  # fmt: skip
            if state.failure:
                raise ShardFailed(state.failure)
            progress(state.items_done, total)
            if state.complete:
                break
            claim = self._retry(
                "claiming a shard", shards.claim_shard, self.factory, self.ident,
                self.settings.heartbeat_stale_s, self.settings.max_attempts, submission_id,
            )  # fmt: skip
            if claim is None:  # the rest is being scored by other workers
                if self._stop is not None and self._stop.wait(
                    min(0.5, self.settings.poll_interval_s)
                ):
                    progress(state.items_done, total)  # raises Stopping
                elif self._stop is None:
                    time.sleep(min(0.5, self.settings.poll_interval_s))
                continue
            base = state.items_done

            def outer(done: int, _total: int, base: int = base) -> None:
                progress(min(base + done, total - 1), total)

            self._score_shard(claim, parsed, outer)
        parts = self._retry("reading shard results", lambda: list(
            shards.shard_results(self.factory, submission_id)))  # fmt: skip
        return shards.combine(parts, test_ids, time.monotonic() - start)

    def _score_shard(self, claim: shards.ShardClaim, parsed: Any,
                     outer: Callable[[int, int], None] | None = None) -> str:  # fmt: skip
        """Score one claimed shard and store its result; "done", "failed" or "lost".

        `outer` (the coordinator's progress) is called too and may raise JobLost/Stopping;
        the shard then goes back to the queue and the error propagates."""
        from leaderboard.validation import SubmissionError

        try:
            from leaderboard.scoring import ScoringTimeout
        except ImportError:  # pragma: no cover - scoring module missing
            ScoringTimeout = TimeoutError  # type: ignore[misc,assignment]  # noqa: N806

        view = shards.ShardView(parsed, list(parsed.test_ids)[claim.start : claim.stop])
        stop, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_interval_s):
                try:
                    if not shards.touch_shard(self.factory, claim, self.ident):
                        lost.set()
                        return
                except TRANSIENT as exc:  # the database is away: try again at the next beat
                    logger.warning("heartbeat of shard %d failed: %s", claim.shard_id,
                                   type(exc).__name__)  # fmt: skip
                except Exception:
                    logger.exception("heartbeat of shard %d failed", claim.shard_id)

        def progress(done: int, total: int) -> None:
            if lost.is_set():
                raise ShardLost(f"shard {claim.shard_id} was taken away")
            if self._stop is not None and self._stop.is_set():
                raise Stopping(f"worker {self.ident} stopping")
            if outer is not None:
                outer(done, total)

        with self.factory() as session:
            started = session.scalar(
                select(Submission.started_at).where(Submission.id == claim.submission_id)
            )
        limit = self.settings.scoring_time_limit_s
        if started is not None:
            limit = max(0.0, limit - (utcnow() - started).total_seconds())
        heart = threading.Thread(target=beat, name=f"shard-{claim.shard_id}", daemon=True)
        heart.start()
        paths = (self.settings.home, self.benchmark_dir)
        score_fn = self.score_fn or default_score_fn()
        reason: str | None = None
        try:
            part = score_fn(
                view, self.benchmark, protocol=self.protocol,
                device=self.settings.scoring_device, progress=progress, time_limit_s=limit,
            )  # fmt: skip
            stop.set()
            heart.join()
            result = shards.part_of(part)
            if self._retry("storing a shard", shards.finish_shard, self.factory, claim,
                           self.ident, result):  # fmt: skip
                logger.info("%s scored shard %d of submission %d (%d items)", self.ident,
                            claim.index, claim.submission_id, claim.stop - claim.start)  # fmt: skip
                return "done"
            return "lost"
        except ShardLost as exc:
            logger.warning("%s", exc)
            return "lost"
        except (Stopping, JobLost):
            stop.set()
            heart.join()
            self._retry("releasing a shard", shards.release_shard, self.factory, claim,
                        self.ident)  # fmt: skip
            raise
        except ScoringTimeout as exc:
            reason = self._timeout_reason(exc)
        except SubmissionError as exc:
            reason = "; ".join([exc.reason, *exc.details[:5]])
        except Exception as exc:
            logger.exception("scoring shard %d failed", claim.shard_id)
            reason = (f"internal error while scoring ({type(exc).__name__}: {exc}); "
                      "a maintainer can rescore it once fixed")  # fmt: skip
        finally:
            stop.set()
            heart.join()
        self._retry("storing a shard failure", shards.fail_shard, self.factory, claim,
                    self.ident, redact(reason, paths))  # fmt: skip
        return "failed"

    def run_shard(self) -> JobOutcome | None:
        """Claim and score one shard of any submission being scored; None if none is free.

        The submission's archive stays open between its shards (`_held`)."""
        claim = self._retry(
            "claiming a shard", shards.claim_shard, self.factory, self.ident,
            self.settings.heartbeat_stale_s, self.settings.max_attempts,
        )  # fmt: skip
        if claim is None:
            return None
        try:
            parsed = self._open_held(claim.submission_id)
        except Stopping:
            raise
        except Exception as exc:
            from leaderboard.validation import SubmissionError

            self._release_held()
            if isinstance(exc, SubmissionError):
                reason = exc.reason
            elif isinstance(exc, FileNotFoundError):
                reason = f"the stored archive is missing: {exc}"
            else:
                logger.exception("opening submission %d for a shard failed", claim.submission_id)
                reason = f"internal error while opening the archive ({type(exc).__name__})"
            paths = (self.settings.home, self.benchmark_dir)
            shards.fail_shard(self.factory, claim, self.ident, redact(reason, paths))
            return JobOutcome(claim.submission_id, "shard failed", reason)
        try:
            state = self._score_shard(claim, parsed)
        except Stopping:
            return JobOutcome(claim.submission_id, Status.QUEUED, "worker stopped")
        finally:
            release_memory()
        return JobOutcome(claim.submission_id, f"shard {state}", f"shard {claim.index}")

    def _open_held(self, submission_id: int) -> Any:
        """The parsed archive of `submission_id`, opened once for all its shards."""
        from leaderboard.validation import Manifest

        if self._held is not None and self._held[0] == submission_id:
            return self._held[2]
        self._release_held()
        with self.factory() as session:
            row = session.get(Submission, submission_id)
            if row is None:
                raise FileNotFoundError(f"submission {submission_id} is gone")
            sha, ext, manifest = row.archive_sha256, row.archive_ext, dict(row.manifest)
        open_fn = self.open_fn or default_open_fn()
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        stack = ExitStack()
        try:
            parsed = stack.enter_context(open_fn(
                self.store.get(sha, ext), self.benchmark, scratch=self.settings.scratch_dir,
                manifest=Manifest(**manifest) if manifest else None,
                scratch_budget=self.settings.scratch_budget_bytes,
            ))  # fmt: skip
        except BaseException:
            stack.close()
            raise
        self._held = (submission_id, stack, parsed)
        return parsed

    def _release_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held[1].close()
