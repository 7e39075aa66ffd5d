"""The leaderboard service: submit, status, tables, analysis and maintainer actions.

The only thing `leaderboard.ui` calls. It owns the database (migrated to the newest
revision at start), the archive store and the in-process worker thread. Errors a user can
act on are `ServiceError`s (a ValueError) with a `reason` and `details`; refused maintainer
actions raise `AuthError`.

`LeaderboardService` is composed of one mixin per concern, each in its own module:

| module | owns |
|---|---|
| `leaderboard.state` | settings, database, archive store, benchmark, protocol, read cache |
| `leaderboard.submissions` | the submit flow (`submit`), from upload to queued row |
| `leaderboard.admission` | its checks: identities, keys, limits, refusals, reserved names, duplicates |
| `leaderboard.ranking` | visible entries with tiers and verdicts (cached) |
| `leaderboard.reads` | status, "my submissions", the leaderboard tables |
| `leaderboard.comparison` | two entries compared, distributions, view images |
| `leaderboard.auth` | who a maintainer is |
| `leaderboard.admin` | maintainer actions and the table of every submission |

This module adds the worker thread and the periodic backup. Below them:
`leaderboard.identity` (normal forms of names), `leaderboard.keys` (submitter keys),
`leaderboard.ratelimit` (in-process limits with an injectable clock).

Nothing returned here holds a path inside SVR_HOME or the benchmark: tables, dicts, numpy
images of public input views only.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from leaderboard.admin import ADMIN_ACTIONS, AdminMixin
from leaderboard.auth import AuthMixin
from leaderboard.comparison import Comparison, ComparisonMixin
from leaderboard.errors import AuthError, ServiceError, SubmissionRejected
from leaderboard.ranking import REFERENCE_BASELINES, VISIBLE_CHECK_MAX_AGE
from leaderboard.reads import ReadsMixin
from leaderboard.submissions import METADATA_FIELDS, SubmissionsMixin
from leaderboard.worker import Worker, redact, worker_id

__all__ = [
    "LeaderboardService",
    "ServiceError",
    "SubmissionRejected",
    "AuthError",
    "METADATA_FIELDS",
    "ADMIN_ACTIONS",
    "redact",
    "Comparison",
    "REFERENCE_BASELINES",
    "VISIBLE_CHECK_MAX_AGE",
    "WORKER_NICE",
]

logger = logging.getLogger(__name__)

WORKER_NICE = 10  # added to the in-process worker thread's nice value (see `_background`)


class LeaderboardService(SubmissionsMixin, ReadsMixin, ComparisonMixin, AuthMixin, AdminMixin):
    """Submissions, scoring and tables of one benchmark.

    Args:
        settings: where state lives and the limits.
        benchmark_dir: the benchmark submissions are scored against (None: the service can
            show tables but refuses submissions).
        score_fn / open_fn: scoring and archive-opening functions (defaults: the real
            `leaderboard.scoring.score_submission` / `leaderboard.archive.open_submission`).
        protocol: scoring protocol (default `svr.evaluation.DEFAULT_PROTOCOL`).
        clock: seconds for the rate limits (default `time.monotonic`; tests inject one).
    """

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
            self._backup = BackupThread(self.settings, target, self.benchmark_dir)
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
