"""How far the leaderboard is with scoring its seeded baselines, for the app's status panel.

`baseline_progress(service)` reads the newest non-deleted baseline row of each method on the
service's current benchmark and returns an `svr.status.ScoringState`: how many wait, which
are being scored (items done of total, seconds since scoring started), how many are scored,
which failed (reasons without server paths) and the mean scoring time so far.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from leaderboard.db import Status, Submission, utcnow
from leaderboard.errors import ServiceError
from svr.status import ScoringJob, ScoringState

__all__ = ["baseline_progress"]

_WAITING = (Status.RECEIVED, Status.VALIDATED, Status.QUEUED)


def baseline_progress(service: Any) -> ScoringState | None:
    """The baselines' scoring on `service` (a `LeaderboardService`); None while there is no
    benchmark to read its identifier from."""
    try:
        current = service.benchmark.meta.identifier
    except ServiceError:
        return None
    with service.factory() as session:
        rows = session.scalars(
            select(Submission)
            .where(
                Submission.baseline.is_(True),
                Submission.deleted.is_(False),
                Submission.benchmark_id == current,
            )
            .order_by(Submission.id.desc())
        ).all()
    newest: dict[str, Submission] = {}
    for row in rows:
        newest.setdefault(row.method, row)
    now = utcnow()
    waiting = scored = 0
    running: list[ScoringJob] = []
    failed: list[tuple[str, str]] = []
    durations: list[float] = []
    for row in sorted(newest.values(), key=lambda r: r.id):
        if row.status in _WAITING:
            waiting += 1
        elif row.status == Status.SCORING:
            since = (now - row.started_at).total_seconds() if row.started_at else 0.0
            running.append(ScoringJob(row.method, row.progress_done, row.progress_total, since))
        elif row.status == Status.DONE:
            scored += 1
            if row.started_at and row.finished_at:
                durations.append((row.finished_at - row.started_at).total_seconds())
        else:
            failed.append((row.method, service.public_message(row.reason or "no reason given")))
    mean = sum(durations) / len(durations) if durations else None
    return ScoringState(waiting, tuple(running), scored, tuple(failed), mean)
