"""The scoring worker: claims queued submissions one at a time, scores them, stores results.

Runs as a background thread of the app (`LeaderboardService.start_worker`) or as its own
process against the same database: `python -m leaderboard worker [--once]`.

Guarantees:
- Claiming is one atomic `UPDATE submissions SET status='scoring' ... WHERE id=? AND
  status='queued'`; a worker owns a job only if its update changed the row, so two workers
  never score the same job. On PostgreSQL the candidate is read `FOR UPDATE SKIP LOCKED`,
  so racing workers take different jobs instead of waiting on one row.
- A submission of more than `shard_items` test items is split into shards
  (`leaderboard.shards`): the worker that claimed it (the coordinator) writes the shards,
  every worker claims and scores shards (idle workers look for shards before new jobs), and
  the coordinator merges them once all are done, with the numbers one worker would give.
  A worker killed mid-shard loses only that shard (claimed again once its heartbeat is
  stale); a coordinator killed mid-job leaves the done shards, which its successor keeps.
- Database errors of a lost connection (a restarted PostgreSQL server) are retried with
  back-off for up to a minute; pooled connections are checked before use.
- While scoring, a heartbeat thread refreshes `heartbeat_at`; progress (items done / total)
  is written to the row. Results are stored in one transaction, and only if the worker
  still owns the job (it may have been deleted or requeued meanwhile).
- `recover()` requeues jobs whose worker died (stale heartbeat, or at start-up the jobs of
  this host's previous app process); after `max_attempts` such interruptions the job fails
  with that reason. A job running longer than its time limit fails with that reason.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from leaderboard.db import (
    AdminAction,
    ClassResult,
    ItemScore,
    ScoreShard,
    Status,
    Submission,
    utcnow,
)
from leaderboard.jobs import (
    TRANSIENT,
    JobLost,
    JobOutcome,
    ShardFailed,
    Stopping,
    default_open_fn,
    default_score_fn,
    redact,
    retry,
    seconds,
)
from leaderboard.settings import LeaderboardSettings
from leaderboard.shard_worker import ShardWork
from leaderboard.storage import ArchiveStore
from svr.limits import release_memory

__all__ = [
    "Worker",
    "JobLost",
    "JobOutcome",
    "worker_id",
    "add_worker_arguments",
    "run_worker_command",
    "redact",
]

logger = logging.getLogger(__name__)

# The metrics stored as columns of item_scores; the headline F-score/precision/recall are
# resolved against the protocol's headline threshold.
_ITEM_COLUMNS = ("iou", "iou_128", "chamfer_l1", "chamfer_l2", "normal_consistency")


def worker_id(kind: str = "worker") -> str:
    """A unique id `<kind>@<host>:<pid>:<random>`; the prefix up to the host names the kind."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker(ShardWork):
    """Scores queued submissions of one database against one benchmark.

    Args:
        factory: session factory of the leaderboard database.
        settings: limits (attempts, time limit, heartbeat) and the scratch folder.
        benchmark_dir: the benchmark the submissions were validated against.
        ident: this worker's id (see `worker_id`).
        score_fn: `score_submission`-compatible function (default: the real one).
        open_fn: `open_submission`-compatible function (default: the real one).
        protocol: scoring protocol (default: `svr.evaluation.DEFAULT_PROTOCOL`).
        on_done: called after a job's results are stored (the in-process service uses it to
            refresh its cached table at once).
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: LeaderboardSettings,
        benchmark_dir: Path,
        ident: str | None = None,
        score_fn: Callable[..., Any] | None = None,
        open_fn: Callable[..., Any] | None = None,
        protocol: Any = None,
        on_done: Callable[[], None] | None = None,
    ):
        self.factory = factory
        self.on_done = on_done
        self.settings = settings
        self.benchmark_dir = Path(benchmark_dir)
        self.ident = ident or worker_id()
        self.score_fn = score_fn
        self.open_fn = open_fn
        self.store = ArchiveStore(settings.archives_dir)
        self._protocol = protocol
        self._benchmark: Any = None
        self._benchmark_stamp: int | None = None
        self._stop: threading.Event | None = None
        self._held: tuple[int, ExitStack, Any] | None = None  # (submission, its opener, parsed)

    # ------------------------------------------------------------------ helpers

    @property
    def protocol(self) -> Any:
        if self._protocol is None:
            from svr.evaluation import DEFAULT_PROTOCOL

            self._protocol = DEFAULT_PROTOCOL
        return self._protocol

    @property
    def benchmark(self) -> Any:
        stamp = (Path(self.benchmark_dir) / "benchmark.json").stat().st_mtime_ns
        if self._benchmark is None or self._benchmark_stamp != stamp:  # rebuilt: reread
            from svr.data.layout import Benchmark

            self._benchmark = Benchmark(self.benchmark_dir)
            self._benchmark_stamp = stamp
        return self._benchmark

    def _owned(self, submission_id: int) -> Any:
        return (
            (Submission.id == submission_id)
            & (Submission.status == Status.SCORING)
            & (Submission.claimed_by == self.ident)
        )

    def _retry(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`leaderboard.jobs.retry`: `fn(*args)`, retried while the database is away."""
        return retry(what, fn, *args)

    # ------------------------------------------------------------------ recovery

    def recover(self, startup_prefix: str | None = None) -> int:
        """Requeue or fail jobs left in 'scoring' by a dead worker; fail overdue jobs.

        A job is abandoned when its heartbeat is older than `heartbeat_stale_s`, or (with
        `startup_prefix`, e.g. "app@host:") when a previous process with that id prefix
        claimed it. It goes back to the queue, or fails after `max_attempts` attempts.
        A job started more than `scoring_time_limit_s + heartbeat_stale_s` ago fails. With
        `startup_prefix` (the app starting), submissions left in 'received' or 'validated' by
        the previous app process fail with a reason asking to resubmit, and the shards it was
        scoring go back to the queue (`leaderboard.shards`).
        Returns the number of submissions changed.
        """
        now = utcnow()
        stale_before = now - seconds(self.settings.heartbeat_stale_s)
        overdue_before = now - seconds(
            self.settings.scoring_time_limit_s + self.settings.heartbeat_stale_s
        )
        condition = or_(Submission.heartbeat_at.is_(None), Submission.heartbeat_at < stale_before)
        if startup_prefix:
            condition = or_(
                condition,
                Submission.claimed_by.startswith(startup_prefix, autoescape=True)
                & (Submission.claimed_by != self.ident),
            )
        changed = 0
        with self.factory() as session:
            rows = session.execute(
                select(
                    Submission.id, Submission.claimed_by, Submission.attempts, Submission.started_at
                ).where(Submission.status == Status.SCORING)
            ).all()
            stale_ids = set(
                session.scalars(
                    select(Submission.id).where(Submission.status == Status.SCORING, condition)
                ).all()
            )
            for sid, claimed_by, attempts, started_at in rows:
                same = (
                    (Submission.id == sid)
                    & (Submission.status == Status.SCORING)
                    & (
                        Submission.claimed_by.is_(None)
                        if claimed_by is None
                        else Submission.claimed_by == claimed_by
                    )
                )
                if started_at is not None and started_at < overdue_before:
                    values: dict[str, Any] = _failed(
                        f"scoring exceeded the time limit of "
                        f"{self.settings.scoring_time_limit_s:g} s; make predictions lighter "
                        "(fewer points or faces, smaller grids) or ask a maintainer"
                    )
                elif sid not in stale_ids:
                    continue
                elif attempts >= self.settings.max_attempts:
                    values = _failed(
                        f"scoring was interrupted {attempts} times (the worker stopped or the "
                        "server restarted while scoring); ask a maintainer to rescore it"
                    )
                else:
                    values = {"status": Status.QUEUED, "claimed_by": None, "heartbeat_at": None}
                result = session.execute(
                    update(Submission).where(same).values(**values, updated_at=now)
                )
                if result.rowcount:
                    changed += 1
                    logger.warning(
                        "submission %d (claimed by %s, attempt %d) -> %s",
                        sid, claimed_by, attempts, values["status"],
                    )  # fmt: skip
            if startup_prefix:
                # Shards the previous app process was scoring go back to the queue now,
                # instead of waiting for their heartbeat to go stale.
                session.execute(
                    update(ScoreShard)
                    .where(
                        ScoreShard.status == "scoring",
                        ScoreShard.claimed_by.startswith(startup_prefix, autoescape=True),
                        ScoreShard.claimed_by != self.ident,
                    )
                    .values(status="queued", claimed_by=None, heartbeat_at=None)
                )
                # Only the app validates uploads: at its start, rows still being received or
                # validated belong to a killed predecessor and will never move on.
                result = session.execute(
                    update(Submission)
                    .where(
                        Submission.status.in_((Status.RECEIVED, Status.VALIDATED)),
                        Submission.updated_at <= now,
                    )
                    .values(
                        **_failed(
                            "validation was interrupted (the server restarted); please submit "
                            "the archive again"
                        ),
                        updated_at=now,
                    )
                )
                changed += result.rowcount
            session.commit()
        return changed

    # ------------------------------------------------------------------ claiming

    def claim(self) -> int | None:
        """Atomically take the oldest queued job; its id, or None if the queue is empty."""
        while True:
            with self.factory() as session:
                candidate = session.scalar(
                    select(Submission.id)
                    .where(Submission.status == Status.QUEUED, Submission.deleted.is_(False))
                    .order_by(Submission.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if candidate is None:
                    return None
                now = utcnow()
                result = session.execute(
                    update(Submission)
                    .where(Submission.id == candidate, Submission.status == Status.QUEUED)
                    .values(
                        status=Status.SCORING,
                        claimed_by=self.ident,
                        attempts=Submission.attempts + 1,
                        started_at=now,
                        heartbeat_at=now,
                        updated_at=now,
                        progress_done=0,
                    )
                )
                session.commit()
                if result.rowcount == 1:
                    logger.info("%s claimed submission %d", self.ident, candidate)
                    return candidate

    # ------------------------------------------------------------------ scoring

    def _touch(self, submission_id: int, **values: Any) -> None:
        with self.factory() as session:
            now = utcnow()
            result = session.execute(
                update(Submission)
                .where(self._owned(submission_id))
                .values(heartbeat_at=now, updated_at=now, **values)
            )
            session.commit()
        if result.rowcount == 0:
            raise JobLost(f"submission {submission_id} is no longer owned by {self.ident}")

    def run_job(self, submission_id: int) -> JobOutcome:
        """Score one claimed job and store the outcome."""
        from leaderboard.validation import Manifest, SubmissionError

        try:
            from leaderboard.scoring import ScoringTimeout
        except ImportError:  # pragma: no cover - scoring module missing
            ScoringTimeout = TimeoutError  # type: ignore[misc,assignment]  # noqa: N806

        with self.factory() as session:
            row = session.get(Submission, submission_id)
            if row is None:
                return JobOutcome(submission_id, "lost", "no such submission")
            sha, ext, manifest = row.archive_sha256, row.archive_ext, dict(row.manifest)

        stop = threading.Event()
        lost = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_interval_s):
                try:
                    self._touch(submission_id)
                except JobLost:
                    lost.set()
                    return
                except TRANSIENT as exc:  # the database is away: try again at the next beat
                    logger.warning("heartbeat of submission %d failed: %s", submission_id,
                                   type(exc).__name__)  # fmt: skip
                except Exception:  # a busy database: try again at the next beat
                    logger.exception("heartbeat of submission %d failed", submission_id)

        last = [0.0]

        def progress(done: int, total: int) -> None:
            if lost.is_set():
                raise JobLost(f"submission {submission_id} was taken away")
            if self._stop is not None and self._stop.is_set():
                raise Stopping(f"worker {self.ident} stopping")
            now = time.monotonic()
            if done < total and now - last[0] < 0.5:
                return
            try:
                self._touch(submission_id, progress_done=done, progress_total=total)
            except TRANSIENT as exc:  # the database is away: the heartbeat keeps trying
                logger.warning("progress of submission %d not saved: %s", submission_id,
                               type(exc).__name__)  # fmt: skip
                return
            last[0] = now

        heart = threading.Thread(target=beat, name=f"heartbeat-{submission_id}", daemon=True)
        heart.start()
        open_fn = self.open_fn or default_open_fn()
        score_fn = self.score_fn or default_score_fn()
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        try:
            path = self.store.get(sha, ext)
            with open_fn(
                path, self.benchmark, scratch=self.settings.scratch_dir,
                manifest=Manifest(**manifest) if manifest else None,
                scratch_budget=self.settings.scratch_budget_bytes,
            ) as parsed:  # fmt: skip
                if 0 < self.settings.shard_items < len(parsed.test_ids):
                    scores = self._score_sharded(submission_id, parsed, progress)
                else:
                    scores = score_fn(
                        parsed, self.benchmark, protocol=self.protocol,
                        device=self.settings.scoring_device, progress=progress,
                        time_limit_s=self.settings.scoring_time_limit_s,
                    )  # fmt: skip
            stop.set()
            heart.join()
            self._retry("storing results", self._store_scores, submission_id, scores)
            return JobOutcome(submission_id, Status.DONE)
        except JobLost as exc:
            logger.warning("%s", exc)
            return JobOutcome(submission_id, "lost", str(exc))
        except Stopping:
            # A clean shutdown: back to the queue without using up an attempt.
            with self.factory() as session:
                session.execute(
                    update(Submission)
                    .where(self._owned(submission_id))
                    .values(
                        status=Status.QUEUED, claimed_by=None, heartbeat_at=None,
                        attempts=Submission.attempts - 1, updated_at=utcnow(),
                    )
                )  # fmt: skip
                session.commit()
            logger.info("submission %d requeued: worker stopping", submission_id)
            return JobOutcome(submission_id, Status.QUEUED, "worker stopped")
        except ScoringTimeout as exc:
            return self._fail(submission_id, self._timeout_reason(exc), [])
        except ShardFailed as exc:
            return self._fail(submission_id, str(exc), [])
        except SubmissionError as exc:
            return self._fail(submission_id, exc.reason, exc.details)
        except FileNotFoundError as exc:
            return self._fail(submission_id, f"the stored archive is missing: {exc}", [])
        except Exception as exc:
            logger.exception("scoring submission %d failed", submission_id)
            return self._fail(
                submission_id,
                f"internal error while scoring ({type(exc).__name__}: {exc}); "
                "a maintainer can rescore it once fixed",
                [],
            )
        finally:
            stop.set()
            heart.join()

    def _timeout_reason(self, exc: BaseException) -> str:
        return (
            f"scoring exceeded the time limit of {self.settings.scoring_time_limit_s:g} s "
            f"({exc}); make predictions lighter (fewer points or faces, smaller grids)"
        )

    def _fail(self, submission_id: int, reason: str, details: list[str]) -> JobOutcome:
        paths = (self.settings.home, self.benchmark_dir)
        reason = redact(reason, paths)
        details = [redact(d, paths) for d in details]

        def write() -> int:
            with self.factory() as session:
                result = session.execute(
                    update(Submission)
                    .where(self._owned(submission_id))
                    .values(**_failed(reason), details=list(details), updated_at=utcnow())
                )
                session.execute(
                    update(ScoreShard)
                    .where(ScoreShard.submission_id == submission_id)
                    .values(result=None)
                )
                session.commit()
            return result.rowcount

        if self._retry("storing a failure", write) == 0:
            return JobOutcome(submission_id, "lost", reason)
        logger.info("submission %d failed: %s", submission_id, reason)
        return JobOutcome(submission_id, Status.FAILED, reason)

    def _store_scores(self, submission_id: int, scores: Any) -> None:
        """Replace the job's results with `scores` (SubmissionScores) and mark it done."""
        headline = getattr(scores, "headline", None) or self.protocol.headline_key
        threshold = headline.split("@", 1)[1]
        overall = scores.overall.get("mean_of_class_means", {})
        now = utcnow()
        with self.factory() as session, session.begin():
            owned = session.scalar(select(Submission.id).where(self._owned(submission_id)))
            if owned is None:
                raise JobLost(f"submission {submission_id} was taken away before storing")
            session.execute(delete(ClassResult).where(ClassResult.submission_id == submission_id))
            session.execute(delete(ItemScore).where(ItemScore.submission_id == submission_id))
            session.execute(  # shard results are merged now; the rows stay as a record
                update(ScoreShard)
                .where(ScoreShard.submission_id == submission_id)
                .values(result=None)
            )
            session.add_all(
                ClassResult(
                    submission_id=submission_id,
                    class_name=cls,
                    metric=metric,
                    mean=summary.get("mean"),
                    median=summary.get("median"),
                )  # fmt: skip
                for cls, metrics in scores.per_class.items()
                for metric, summary in metrics.items()
            )
            status = getattr(scores, "item_status", {}) or {}
            session.add_all(
                ItemScore(
                    submission_id=submission_id,
                    item_id=item_id,
                    status=status.get(item_id, "ok"),
                    fscore=m.get(headline),
                    precision=m.get(f"precision@{threshold}"),
                    recall=m.get(f"recall@{threshold}"),
                    metrics=dict(m),
                    **{c: m.get(c) for c in _ITEM_COLUMNS},
                )
                for item_id, m in scores.items.items()
            )
            total = len(scores.items)
            session.execute(
                update(Submission)
                .where(Submission.id == submission_id)
                .values(
                    status=Status.DONE,
                    reason=_coverage_note(scores.coverage),
                    details=[],
                    finished_at=now,
                    updated_at=now,
                    heartbeat_at=now,
                    claimed_by=None,
                    progress_done=total,
                    progress_total=total,
                    protocol_id=scores.protocol,
                    benchmark_id=scores.benchmark,
                    overall=scores.overall,
                    coverage=dict(scores.coverage),
                    score_headline=overall.get(headline),
                    score_iou=overall.get("iou"),
                    score_chamfer_l1=overall.get("chamfer_l1"),
                )
            )
            self._retire_replaced(session, submission_id, now)
        logger.info("submission %d scored: %s = %s", submission_id, headline, overall.get(headline))
        if self.on_done is not None:
            self.on_done()

    @staticmethod
    def _retire_replaced(session: Session, submission_id: int, now: Any) -> None:
        """In the transaction that marks `submission_id` done: if it is a baseline that
        replaces an earlier one (new weights, `leaderboard.seed`), hide that one (kept, with
        its scores, and an audit line), so the board never shows both or neither. If a
        maintainer had hidden the earlier one, the replacement is hidden too."""
        old_id = session.scalar(
            select(Submission.supersedes).where(
                Submission.id == submission_id, Submission.baseline.is_(True)
            )
        )
        old = None if old_id is None else session.get(Submission, old_id)
        if old is None:
            return
        if old.hidden:
            target, actor = (
                submission_id,
                f"seeding: hidden like entry #{old_id}, which it replaces",
            )
        else:
            target, actor = old_id, f"seeding: replaced by entry #{submission_id}"
        session.execute(
            update(Submission).where(Submission.id == target).values(hidden=True, updated_at=now)
        )
        session.add(AdminAction(submission_id=target, action="hide", actor=actor))
        logger.info("baseline %d hidden (%s)", target, actor)

    # ------------------------------------------------------------------ loops

    def run_once(self) -> JobOutcome | None:
        """Recover abandoned jobs; score one shard of a submission being scored if there is
        one, else claim and score one job; None if there was nothing to do."""
        self.recover()
        outcome = self.run_shard()
        if outcome is not None:
            return outcome
        self._release_held()
        submission_id = self.claim()
        if submission_id is None:
            return None
        try:
            return self.run_job(submission_id)
        finally:
            release_memory()  # a job's freed arrays go back to the system, not the heap

    def run_forever(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Score jobs until `stop` is set; sleep `poll_interval_s` (or until `wake`) when idle."""
        wake = wake or threading.Event()
        self._stop = stop
        while not stop.is_set():
            try:
                outcome = self.run_once()
            except Exception:
                logger.exception("worker %s: unexpected error; retrying", self.ident)
                outcome = None
            if outcome is None:
                wake.wait(self.settings.poll_interval_s)
                wake.clear()
        self._release_held()


def _coverage_note(coverage: dict[str, Any]) -> str:
    missing, empty = int(coverage.get("n_missing", 0)), int(coverage.get("n_empty", 0))
    total = coverage.get("n_items", "?")
    if not missing and not empty:
        return ""
    return (
        f"{missing} missing and {empty} empty of {total} test items (scored with the worst values)"
    )


def _failed(reason: str) -> dict[str, Any]:
    return {
        "status": Status.FAILED,
        "reason": reason,
        "finished_at": utcnow(),
        "claimed_by": None,
    }


# ----------------------------------------------------------------------------- command line


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m leaderboard worker`."""
    parser.add_argument("--once", action="store_true", help="score at most one job, then exit")
    parser.add_argument(
        "--benchmark", type=Path, default=None, help="benchmark folder (default: SVR_BENCHMARK)"
    )


def run_worker_command(args: argparse.Namespace) -> int:
    """`python -m leaderboard worker [--once]`: score queued jobs of the configured database."""
    from leaderboard.db import make_engine, make_session_factory, upgrade

    settings = LeaderboardSettings.from_env()
    benchmark_dir = args.benchmark
    if benchmark_dir is None:
        from svr.settings import Settings

        benchmark_dir = Settings.from_env().benchmark_dir
    if not (Path(benchmark_dir) / "benchmark.json").is_file():
        print(f"error: {benchmark_dir} is not a benchmark folder (no benchmark.json)")
        return 2
    engine = make_engine(settings.database_url)
    upgrade(engine)
    worker = Worker(make_session_factory(engine), settings, Path(benchmark_dir))
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"worker {worker.ident} on {where}")
    if args.once:
        outcome = worker.run_once()
        print("queue empty" if outcome is None else f"submission {outcome.submission_id}: "
              f"{outcome.status} {outcome.reason}".rstrip())  # fmt: skip
        return 0
    stop = threading.Event()
    try:
        worker.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0
