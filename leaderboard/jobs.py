"""What the scoring worker's parts share: the outcome of a job, the errors that stop one,
the retry of database calls while a server is away, and the redaction of server paths.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

__all__ = [
    "JobLost",
    "JobOutcome",
    "Stopping",
    "ShardFailed",
    "ShardLost",
    "TRANSIENT",
    "retry",
    "redact",
    "seconds",
    "default_score_fn",
    "default_open_fn",
]

logger = logging.getLogger(__name__)


class JobLost(RuntimeError):
    """The job was taken away (deleted, requeued or rescored) while this worker scored it."""


class Stopping(RuntimeError):
    """The worker was asked to stop in the middle of a job."""


class ShardFailed(RuntimeError):
    """A shard of the job failed; the message is the reason for the submitter."""


class ShardLost(RuntimeError):
    """The shard was taken away (its heartbeat went stale and another worker claimed it)."""


# Errors of a lost or refused database connection: worth retrying.
TRANSIENT = (OperationalError, InterfaceError)
RETRY_FOR_S = 60.0


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one claimed job: final status ("done", "failed" or "lost"; for a
    shard "shard done", "shard failed" or "shard lost")."""

    submission_id: int
    status: str
    reason: str = ""


def retry(what: str, fn: Callable[..., Any], *args: Any, for_s: float = RETRY_FOR_S) -> Any:
    """`fn(*args)`, retried with back-off (0.2 s doubling to 5 s) while the database is
    unreachable, for at most `for_s` seconds; other errors go through at once."""
    deadline = time.monotonic() + for_s
    delay = 0.2
    while True:
        try:
            return fn(*args)
        except TRANSIENT as exc:
            if time.monotonic() > deadline:
                raise
            logger.warning("%s: database unavailable (%s); retrying in %.1f s",
                           what, type(exc).__name__, delay)  # fmt: skip
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def seconds(s: float) -> dt.timedelta:
    return dt.timedelta(seconds=s)


def redact(text: str, paths: Any) -> str:
    """Replace server paths in a message by placeholders (messages go to users).

    paths: (SVR_HOME, benchmark folder, upload) in that order; None entries are skipped.
    """
    for path, label in zip(paths, ("$SVR_HOME", "<benchmark>", "<upload>"), strict=False):
        if path is not None:
            text = text.replace(str(path), label)
    return text


def default_score_fn() -> Callable[..., Any]:
    from leaderboard.scoring import score_submission

    return score_submission


def default_open_fn() -> Callable[..., Any]:
    from leaderboard.archive import open_submission

    return open_submission
