"""Sharded scoring: a large submission is split into shards of test items that any worker
claims, so N workers (processes, on this or other machines, on one database) score one
submission together.

The worker that claimed the submission (its coordinator, `leaderboard.worker`) plans the
shards (`plan_shards`: contiguous ranges of the test ids in benchmark order, cut only between
shapes so the views of a shape share one ground-truth load) and writes them to the
`score_shards` table. Every worker then claims shards (`claim_shard`: `FOR UPDATE SKIP
LOCKED` on PostgreSQL plus a conditional update on every backend, so a shard has one owner),
heartbeats while it scores one (`touch_shard`) and stores its per-item scores in the row
(`finish_shard`). A shard whose heartbeat goes stale (its worker died) is claimed again; only
that shard is scored twice. When every shard is done the coordinator merges them (`combine`)
with the same `leaderboard.scoring.summarise` one worker uses, so the result is the same
bit for bit (each item's scores do not depend on which worker or batch scored it).

Item scores travel through the database as JSON: Python writes floats with `repr`, which
reads back to the same double.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from leaderboard.db import ScoreShard, Status, Submission, utcnow

__all__ = [
    "ShardState",
    "ShardClaim",
    "ShardView",
    "plan_shards",
    "write_shards",
    "claim_shard",
    "touch_shard",
    "finish_shard",
    "fail_shard",
    "release_shard",
    "shard_progress",
    "shard_results",
    "part_of",
    "combine",
]

logger = logging.getLogger(__name__)


class ShardState:
    QUEUED = "queued"
    SCORING = "scoring"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ShardClaim:
    """A shard this worker owns: items `start:stop` of submission `submission_id`."""

    shard_id: int
    submission_id: int
    index: int
    start: int
    stop: int
    attempts: int


def _shape(item_id: str) -> str:
    return item_id.rsplit("/", 1)[0]


def plan_shards(test_ids: Sequence[str], shard_items: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) ranges covering `test_ids` in order, of about `shard_items`
    items each (never fewer than `shard_items` except the last), each boundary moved forward
    to the next change of shape (`<class>/<shape>` of `<class>/<shape>/<view>`).

    One range when there are at most `shard_items` items or `shard_items` is 0.
    """
    n = len(test_ids)
    if shard_items <= 0 or n <= shard_items:
        return [(0, n)]
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n:
        stop = min(start + shard_items, n)
        while 0 < stop < n and _shape(test_ids[stop]) == _shape(test_ids[stop - 1]):
            stop += 1
        ranges.append((start, stop))
        start = stop
    return ranges


class ShardView:
    """A parsed submission seen through one shard: `test_ids`, `present` and `missing` are
    the shard's; everything else (manifest, load_item, sha256, ...) is the submission's."""

    def __init__(self, parsed: Any, item_ids: Sequence[str]):
        self._parsed = parsed
        self.test_ids = list(item_ids)
        present = set(parsed.present)
        self.present = [i for i in self.test_ids if i in present]
        self.missing = [i for i in self.test_ids if i not in present]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parsed, name)


# ----------------------------------------------------------------------------- database


def write_shards(
    session: Session,
    submission_id: int,
    ranges: list[tuple[int, int]],
    keep_done: bool,
    stale_before: dt.datetime | None = None,
) -> int:
    """Make the submission's shard rows for `ranges` (in the caller's transaction).

    With `keep_done` (an interrupted run resumed) shards of the same layout that are done
    keep their results, shards still being scored with a heartbeat newer than `stale_before`
    are left to their worker, and the others go back to the queue; otherwise (or when the
    layout changed) old shards are deleted first. Returns the number of shards still to score.
    """
    old = session.scalars(
        select(ScoreShard).where(ScoreShard.submission_id == submission_id)
        .order_by(ScoreShard.index)
    ).all()  # fmt: skip
    if keep_done and [(s.start, s.stop) for s in old] == ranges:
        todo = 0
        for shard in old:
            if shard.status == ShardState.DONE and shard.result is not None:
                continue
            alive = shard.heartbeat_at is not None and (
                stale_before is None or shard.heartbeat_at >= stale_before
            )
            if shard.status == ShardState.SCORING and alive:
                todo += 1
                continue
            shard.status, shard.claimed_by, shard.heartbeat_at = ShardState.QUEUED, None, None
            shard.reason, shard.result = "", None
            todo += 1
        return todo
    session.execute(delete(ScoreShard).where(ScoreShard.submission_id == submission_id))
    session.add_all(
        ScoreShard(
            submission_id=submission_id,
            index=k,
            start=a,
            stop=b,
            status=ShardState.QUEUED,
            attempts=0,
            reason="",
        )  # fmt: skip
        for k, (a, b) in enumerate(ranges)
    )
    return len(ranges)


def claim_shard(
    factory: sessionmaker[Session],
    ident: str,
    stale_s: float,
    max_attempts: int,
    submission_id: int | None = None,
) -> ShardClaim | None:
    """Take one shard: queued, or being scored by a worker whose heartbeat is older than
    `stale_s` seconds; of `submission_id`, or of any submission being scored. A stale shard
    already claimed `max_attempts` times fails instead (its reason says so). None if there is
    nothing to take."""
    while True:
        now = utcnow()
        stale_before = now - dt.timedelta(seconds=stale_s)
        takeable = or_(
            ScoreShard.status == ShardState.QUEUED,
            (ScoreShard.status == ShardState.SCORING)
            & or_(ScoreShard.heartbeat_at.is_(None), ScoreShard.heartbeat_at < stale_before),
        )
        query = (
            select(
                ScoreShard.id, ScoreShard.submission_id, ScoreShard.index, ScoreShard.start,
                ScoreShard.stop, ScoreShard.status, ScoreShard.attempts, ScoreShard.claimed_by,
            )
            .join(Submission, Submission.id == ScoreShard.submission_id)
            .where(takeable, Submission.status == Status.SCORING)
            .order_by(ScoreShard.submission_id, ScoreShard.index)
            .limit(1)
            .with_for_update(skip_locked=True, of=ScoreShard)
        )  # fmt: skip
        if submission_id is not None:
            query = query.where(ScoreShard.submission_id == submission_id)
        with factory() as session:
            shard = session.execute(query).first()  # a plain row: not updated below
            if shard is None:
                return None
            same = (
                (ScoreShard.id == shard.id)
                & (ScoreShard.attempts == shard.attempts)
                & (ScoreShard.status == shard.status)
            )
            if shard.status == ShardState.SCORING and shard.attempts >= max_attempts:
                values: dict[str, Any] = {
                    "status": ShardState.FAILED, "claimed_by": None, "finished_at": now,
                    "reason": f"scoring was interrupted {shard.attempts} times (workers died "
                    "while scoring one shard); ask a maintainer to rescore it",
                }  # fmt: skip
            else:
                values = {
                    "status": ShardState.SCORING, "claimed_by": ident, "heartbeat_at": now,
                    "attempts": shard.attempts + 1,
                }  # fmt: skip
            result = session.execute(
                update(ScoreShard).where(same).values(**values),
                execution_options={"synchronize_session": False},
            )
            session.commit()
            if result.rowcount != 1 or values["status"] == ShardState.FAILED:
                continue
            if shard.status == ShardState.SCORING:
                logger.warning(
                    "%s reclaimed shard %d of submission %d from %s (stale heartbeat)",
                    ident, shard.index, shard.submission_id, shard.claimed_by,
                )  # fmt: skip
            return ShardClaim(shard.id, shard.submission_id, shard.index, shard.start,
                              shard.stop, shard.attempts + 1)  # fmt: skip


def _owned(claim: ShardClaim, ident: str) -> Any:
    return (
        (ScoreShard.id == claim.shard_id)
        & (ScoreShard.status == ShardState.SCORING)
        & (ScoreShard.claimed_by == ident)
        & (ScoreShard.attempts == claim.attempts)
    )


def _set(factory: sessionmaker[Session], claim: ShardClaim, ident: str, **values: Any) -> bool:
    with factory() as session:
        result = session.execute(update(ScoreShard).where(_owned(claim, ident)).values(**values))
        session.commit()
    return result.rowcount == 1


def touch_shard(factory: sessionmaker[Session], claim: ShardClaim, ident: str) -> bool:
    """Refresh the shard's heartbeat; False if the shard is no longer this worker's."""
    return _set(factory, claim, ident, heartbeat_at=utcnow())


def finish_shard(
    factory: sessionmaker[Session], claim: ShardClaim, ident: str, result: dict[str, Any]
) -> bool:
    """Store the shard's scores (`part_of`) and mark it done; False if it was taken away."""
    now = utcnow()
    return _set(factory, claim, ident, status=ShardState.DONE, result=result,
                heartbeat_at=now, finished_at=now)  # fmt: skip


def fail_shard(factory: sessionmaker[Session], claim: ShardClaim, ident: str, reason: str) -> bool:
    """Mark the shard failed with a reason meant for the submitter (the submission fails)."""
    return _set(factory, claim, ident, status=ShardState.FAILED, reason=reason,
                finished_at=utcnow(), claimed_by=None)  # fmt: skip


def release_shard(factory: sessionmaker[Session], claim: ShardClaim, ident: str) -> bool:
    """Give the shard back to the queue (a worker stopping cleanly), not using up an attempt."""
    return _set(factory, claim, ident, status=ShardState.QUEUED, claimed_by=None,
                heartbeat_at=None, attempts=ScoreShard.attempts - 1)  # fmt: skip


@dataclass(frozen=True)
class ShardProgress:
    """Where a submission's shards stand: counts, items in done shards, a failure reason."""

    n_shards: int
    n_done: int
    items_done: int
    failure: str | None

    @property
    def complete(self) -> bool:
        return self.n_shards > 0 and self.n_done == self.n_shards


def shard_progress(factory: sessionmaker[Session], submission_id: int) -> ShardProgress:
    with factory() as session:
        rows = session.execute(
            select(ScoreShard.status, ScoreShard.start, ScoreShard.stop, ScoreShard.reason)
            .where(ScoreShard.submission_id == submission_id)
        ).all()  # fmt: skip
    done = [r for r in rows if r.status == ShardState.DONE]
    failed = [r.reason for r in rows if r.status == ShardState.FAILED]
    return ShardProgress(
        len(rows), len(done), sum(r.stop - r.start for r in done), failed[0] if failed else None
    )


def shard_results(factory: sessionmaker[Session], submission_id: int) -> Iterator[dict[str, Any]]:
    """The stored results of the submission's shards, in shard order."""
    with factory() as session:
        ids = session.scalars(
            select(ScoreShard.id).where(ScoreShard.submission_id == submission_id)
            .order_by(ScoreShard.index)
        ).all()  # fmt: skip
    for shard_id in ids:  # one at a time: a shard's JSON can be large
        with factory() as session:
            result = session.scalar(select(ScoreShard.result).where(ScoreShard.id == shard_id))
        if result is None:
            raise RuntimeError(f"shard {shard_id} of submission {submission_id} has no result")
        yield result


# ----------------------------------------------------------------------------- results


_META = ("protocol", "benchmark", "method", "representation", "sha256", "headline",
         "protocol_config")  # fmt: skip


def part_of(scores: Any) -> dict[str, Any]:
    """The JSON-able part a shard stores: its items' scores and statuses and the run's
    identifiers (`SubmissionScores` of the shard's view)."""
    return {
        "items": scores.items,
        "item_status": scores.item_status,
        "elapsed_s": float(getattr(scores, "elapsed_s", 0.0)),
        **{k: getattr(scores, k) for k in _META},
    }


def combine(parts: Iterator[dict[str, Any]] | list[dict[str, Any]], test_ids: Sequence[str],
            elapsed_s: float) -> Any:  # fmt: skip
    """The SubmissionScores of the whole submission from its shards' parts.

    Raises ValueError when the parts do not cover `test_ids` exactly or disagree on the
    protocol, benchmark or archive they were scored with.
    """
    from leaderboard.scoring import summarise

    items: dict[str, Any] = {}
    status: dict[str, str] = {}
    meta: dict[str, Any] | None = None
    for part in parts:
        this = {k: part[k] for k in _META}
        if meta is None:
            meta = this
        elif this != meta:
            raise ValueError("shards were scored with different protocols, benchmarks or archives")
        overlap = items.keys() & part["items"].keys()
        if overlap:
            raise ValueError(f"{len(overlap)} items scored in two shards, e.g. {min(overlap)}")
        items.update(part["items"])
        status.update(part["item_status"])
    if meta is None or set(items) != set(test_ids):
        missing = len(set(test_ids) - set(items))
        raise ValueError(f"the shards miss {missing} of {len(test_ids)} test items")
    keys = list(next(iter(items.values())))
    return summarise(items, status, list(test_ids), keys, elapsed_s=elapsed_s, **meta)
