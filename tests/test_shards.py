"""Sharded scoring (leaderboard.shards + the worker): the plan, the merge, race-free shard
claims, stale shards reclaimed, and several workers scoring one submission with the numbers
one worker gives. On SQLite and PostgreSQL (`database_url`), with the fake scorer of
tests/leaderboard_fakes.py in worker threads; tests/test_shard_workers.py runs real
`python -m leaderboard worker` processes with the real scorer."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from leaderboard_fakes import make_service, scores_for, write_fake_archive
from sqlalchemy import select, update

from leaderboard import shards
from leaderboard.db import ClassResult, ItemScore, ScoreShard, Status, Submission, utcnow

IDS = [f"{c}/s{s}/{v}" for c in ("airplane", "chair") for s in range(5) for v in range(3)]


# ----------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("size", [1, 2, 4, 7, 30, 100])
def test_plan_covers_every_item_once_and_cuts_between_shapes(size: int) -> None:
    ranges = shards.plan_shards(IDS, size)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(IDS)
    assert all(a < b for a, b in ranges)
    assert all(ranges[k][1] == ranges[k + 1][0] for k in range(len(ranges) - 1))
    for start, _ in ranges[1:]:  # a boundary never splits the views of a shape
        assert IDS[start].rsplit("/", 1)[0] != IDS[start - 1].rsplit("/", 1)[0]
    assert all(b - a >= min(size, len(IDS)) for a, b in ranges[:-1])
    assert all(b - a < size + 3 for a, b in ranges)  # at most one shape (3 views) more


def test_plan_of_a_small_submission_or_sharding_off_is_one_range() -> None:
    assert shards.plan_shards(IDS, 0) == [(0, 30)]
    assert shards.plan_shards(IDS, 30) == [(0, 30)]
    assert shards.plan_shards(IDS, 6) == [(0, 6), (6, 12), (12, 18), (18, 24), (24, 30)]


def test_shard_view_restricts_the_items_and_delegates_the_rest() -> None:
    class Parsed:
        present = IDS[:10]
        manifest = "m"

    view = shards.ShardView(Parsed(), IDS[8:12])
    assert view.test_ids == IDS[8:12] and view.present == IDS[8:10]
    assert view.missing == IDS[10:12] and view.manifest == "m"


# ----------------------------------------------------------------------------- the merge


def _part(ids: list[str], **meta: object) -> dict:
    base = {"protocol": "p", "benchmark": "b", "method": "m", "representation": "voxels",
            "sha256": "s", "headline": "fscore@0.01", "protocol_config": {}}  # fmt: skip
    base.update(meta)
    items = {i: {"iou": 0.1 * (k % 7), "fscore@0.01": 1 / (k + 3)} for k, i in enumerate(ids)}
    status = {i: "missing" if k % 5 == 0 else "ok" for k, i in enumerate(ids)}
    return {"items": items, "item_status": status, "elapsed_s": 1.0, **base}


def test_combine_equals_scoring_everything_at_once() -> None:
    from leaderboard.scoring import summarise

    whole = _part(IDS)
    keys = ["iou", "fscore@0.01"]
    reference = summarise(whole["items"], whole["item_status"], IDS, keys, elapsed_s=0.0,
                          **{k: whole[k] for k in shards._META})  # fmt: skip
    parts = []
    for a, b in shards.plan_shards(IDS, 7):
        part = dict(whole)
        part["items"] = {i: whole["items"][i] for i in IDS[a:b]}
        part["item_status"] = {i: whole["item_status"][i] for i in IDS[a:b]}
        parts.append(part)
    combined = shards.combine(reversed(parts), IDS, 0.0)  # any order of arrival
    assert combined.to_json() == reference.to_json()  # bit for bit
    assert combined.coverage["n_missing"] == 6


def test_combine_refuses_gaps_overlaps_and_mixed_runs() -> None:
    with pytest.raises(ValueError, match="miss 10 of 30"):
        shards.combine([_part(IDS[:20])], IDS, 0.0)
    with pytest.raises(ValueError, match="two shards"):
        shards.combine([_part(IDS[:20]), _part(IDS[15:])], IDS, 0.0)
    with pytest.raises(ValueError, match="different protocols"):
        shards.combine([_part(IDS[:20]), _part(IDS[20:], protocol="q")], IDS, 0.0)


# ----------------------------------------------------------------------------- in the database


def _service(tmp_path: Path, database_url: str, **changes: object):
    options = dict(max_per_day=100, max_concurrent=100, shard_items=5, heartbeat_stale_s=2.0,
                   database_url=database_url)  # fmt: skip
    options.update(changes)
    return make_service(tmp_path, **options)


def _results(svc, sid: int) -> tuple:
    """Everything stored for a submission's results, as exact values."""
    with svc.factory() as session:
        row = session.get(Submission, sid)
        items = session.execute(
            select(ItemScore.item_id, ItemScore.status, ItemScore.fscore, ItemScore.iou,
                   ItemScore.chamfer_l1, ItemScore.metrics)
            .where(ItemScore.submission_id == sid).order_by(ItemScore.item_id)
        ).all()  # fmt: skip
        classes = session.execute(
            select(ClassResult.class_name, ClassResult.metric, ClassResult.mean,
                   ClassResult.median)
            .where(ClassResult.submission_id == sid)
            .order_by(ClassResult.class_name, ClassResult.metric)
        ).all()  # fmt: skip
        return (row.status, row.overall, row.coverage, row.score_headline, row.score_iou,
                row.score_chamfer_l1, [tuple(r) for r in items], [tuple(r) for r in classes])  # fmt: skip


def _shard_rows(svc, sid: int) -> list[ScoreShard]:
    with svc.factory() as session:
        return list(
            session.scalars(
                select(ScoreShard).where(ScoreShard.submission_id == sid).order_by(ScoreShard.index)
            )
        )


def test_two_workers_score_one_submission_as_one_worker_does(
    tmp_path: Path, database_url: str
) -> None:
    import numpy as np

    svc, ids = _service(tmp_path, database_url)
    try:
        values = scores_for(ids, 0.5, np.random.default_rng(3), 0.2)
        values[ids[3]] = 0.0
        archive = write_fake_archive(tmp_path / "a.zip", "A", values, sleep=0.03)
        sharded = svc.submit(archive, {}, "alice")
        workers = [svc.make_worker() for _ in range(2)]
        go = threading.Barrier(2)

        def run(worker) -> None:  # as run_forever does, until the job is done
            go.wait()
            deadline = time.monotonic() + 60
            while svc.status(sharded)["status"] != Status.DONE and time.monotonic() < deadline:
                if worker.run_once() is None:
                    time.sleep(0.02)

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert svc.status(sharded)["status"] == Status.DONE
        rows = _shard_rows(svc, sharded)
        assert [(r.start, r.stop) for r in rows] == shards.plan_shards(ids, 5)
        assert all(r.status == "done" and r.attempts == 1 for r in rows)
        assert all(r.result is None for r in rows)  # merged, then cleared
        assert {r.claimed_by for r in rows} == {w.ident for w in workers}  # both took part

        # The same archive scored by one worker, unsharded, on the same database.
        one = svc.make_worker()
        one.settings = one.settings.with_(shard_items=0)
        _requeue(svc, sharded)
        assert one.run_once().status == Status.DONE
        assert _shard_rows(svc, sharded) == [] or all(
            r.result is None for r in _shard_rows(svc, sharded)
        )
        unsharded = _results(svc, sharded)
        assert unsharded[0] == Status.DONE
        _requeue(svc, sharded)
        for worker in workers:  # and sharded again: identical, bit for bit
            while worker.run_once() is not None:
                pass
        again = _results(svc, sharded)
        # The fake scorer writes a shorter coverage than leaderboard.scoring.summarise (which
        # the merge uses; the real scorer uses it too: tests/test_shard_workers.py compares
        # everything); the rest is compared whole.
        assert {k: again[2][k] for k in unsharded[2]} == unsharded[2]
        assert again[:2] + again[3:] == unsharded[:2] + unsharded[3:]
        assert unsharded[6][3][2] == 0.0  # ids[3] (sorted: airplane/s1/1)
    finally:
        svc.close()


def _requeue(svc, sid: int) -> None:
    """As a maintainer's rescore does: back to the queue, attempts 0."""
    with svc.factory() as session:
        session.execute(
            update(Submission).where(Submission.id == sid).values(
                status=Status.QUEUED, attempts=0, claimed_by=None, heartbeat_at=None)
        )  # fmt: skip
        session.commit()


def test_racing_shard_claims_never_give_a_shard_twice(tmp_path: Path, database_url: str) -> None:
    svc, ids = _service(tmp_path, database_url, shard_items=2)
    try:
        sid = svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.5)), {},
                         "alice")  # fmt: skip
        coordinator = svc.make_worker()
        assert coordinator.claim() == sid
        with svc.factory() as session, session.begin():
            shards.write_shards(session, sid, shards.plan_shards(ids, 2), keep_done=False)
        n_shards = len(shards.plan_shards(ids, 2))
        workers = [svc.make_worker() for _ in range(6)]
        got: dict[str, list[int]] = {w.ident: [] for w in workers}
        go = threading.Barrier(len(workers))

        def grab(worker) -> None:
            go.wait()
            while (claim := shards.claim_shard(svc.factory, worker.ident, 60, 3)) is not None:
                got[worker.ident].append(claim.shard_id)

        threads = [threading.Thread(target=grab, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        claimed = [s for ids_ in got.values() for s in ids_]
        assert len(claimed) == n_shards and Counter(claimed).most_common(1)[0][1] == 1
        rows = _shard_rows(svc, sid)
        assert all(r.status == "scoring" and r.attempts == 1 for r in rows)
        assert {r.claimed_by for r in rows} <= set(got)
    finally:
        svc.close()


def test_a_dead_workers_shard_is_reclaimed_and_only_it_is_scored_again(
    tmp_path: Path, database_url: str
) -> None:
    svc, ids = _service(tmp_path, database_url, heartbeat_stale_s=60)
    try:
        sid = svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.7)), {},
                         "alice")  # fmt: skip
        coordinator, dead = svc.make_worker(), svc.make_worker()
        n_shards = len(shards.plan_shards(ids, 5))
        done: list[int] = []
        lost: list[shards.ShardClaim] = []
        original = coordinator._score_shard

        def spy(claim, parsed, outer=None):
            done.append(claim.index)
            if claim.index == 0:  # meanwhile another worker takes shard 1 and dies
                lost.append(shards.claim_shard(svc.factory, dead.ident, 60, 3))
            if claim.index == n_shards - 1:  # by now the dead worker's heartbeat is old
                with svc.factory() as session:
                    session.execute(update(ScoreShard).where(ScoreShard.id == lost[0].shard_id)
                                    .values(heartbeat_at=utcnow() - dt.timedelta(seconds=61)))  # fmt: skip
                    session.commit()
            return original(claim, parsed, outer)

        coordinator._score_shard = spy  # type: ignore[method-assign]
        assert coordinator.claim() == sid
        assert coordinator.run_job(sid).status == Status.DONE
        assert lost[0].index == 1
        assert done == [0, *range(2, n_shards), 1]  # shard 1 last, once it was stale
        rows = _shard_rows(svc, sid)
        assert rows[1].attempts == 2 and rows[1].claimed_by == coordinator.ident
        assert all(r.attempts == 1 for k, r in enumerate(rows) if k != 1)
        # The dead worker cannot store its shard late.
        assert not shards.finish_shard(svc.factory, lost[0], dead.ident, {"items": {}})
        assert svc.status(sid)["progress"]["done"] == len(ids)
    finally:
        svc.close()


def test_a_failing_shard_fails_the_submission_with_its_reason(
    tmp_path: Path, database_url: str
) -> None:
    svc, ids = _service(tmp_path, database_url, scoring_time_limit_s=0.3)
    try:
        archive = write_fake_archive(tmp_path / "s.zip", "Slow", scores_for(ids, 0.5), sleep=0.05)
        sid = svc.submit(archive, {}, "alice")
        outcome = svc.make_worker().run_once()
        assert outcome.status == Status.FAILED
        status = svc.status(sid)
        assert status["status"] == Status.FAILED and "time limit of 0.3 s" in status["reason"]
        with svc.factory() as session:
            assert (
                session.scalars(select(ItemScore).where(ItemScore.submission_id == sid)).all() == []
            )
        assert all(r.result is None for r in _shard_rows(svc, sid))
    finally:
        svc.close()


def test_a_resumed_job_keeps_the_shards_already_scored(tmp_path: Path, database_url: str) -> None:
    svc, ids = _service(tmp_path, database_url, heartbeat_stale_s=60)
    try:
        sid = svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.4)), {},
                         "alice")  # fmt: skip
        first = svc.make_worker()
        assert first.claim() == sid
        scored = []
        original = first._score_shard

        def die_after_two(claim, parsed, outer=None):
            if len(scored) == 2:
                raise KeyboardInterrupt  # the process dies here
            scored.append(claim.index)
            return original(claim, parsed, outer)

        first._score_shard = die_after_two  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            first.run_job(sid)
        old = utcnow() - dt.timedelta(seconds=61)
        with svc.factory() as session:  # its heartbeats go stale
            session.execute(update(Submission).where(Submission.id == sid).values(heartbeat_at=old))
            session.execute(update(ScoreShard).where(ScoreShard.status == "scoring")
                            .values(heartbeat_at=old))  # fmt: skip
            session.commit()
        second = svc.make_worker()
        assert second.recover() == 1 and svc.status(sid)["status"] == Status.QUEUED
        assert second.run_once().status == Status.DONE
        rows = _shard_rows(svc, sid)
        assert [r.claimed_by for r in rows[:2]] == [first.ident] * 2  # kept, not rescored
        assert {r.claimed_by for r in rows[2:]} == {second.ident}
        assert svc.status(sid)["attempts"] == 2
        assert svc.status(sid)["overall"]["mean_of_class_means"]["iou"] == pytest.approx(0.4)
    finally:
        svc.close()


def test_shards_of_a_killed_app_go_back_to_the_queue_at_its_start(
    tmp_path: Path, database_url: str
) -> None:
    import socket

    from leaderboard.worker import Worker

    svc, ids = _service(tmp_path, database_url, heartbeat_stale_s=600)
    try:
        sid = svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.5)), {},
                         "alice")  # fmt: skip
        coordinator = svc.make_worker()
        assert coordinator.claim() == sid
        with svc.factory() as session, session.begin():
            shards.write_shards(session, sid, shards.plan_shards(ids, 5), keep_done=False)
        host = socket.gethostname()
        dead_app = shards.claim_shard(svc.factory, f"app@{host}:1:dead", 600, 3)
        other = shards.claim_shard(svc.factory, f"worker@{host}:2:alive", 600, 3)
        assert dead_app.index == 0 and other.index == 1
        new_app = Worker(svc.factory, svc.settings, svc.benchmark_dir, ident=f"app@{host}:3:new")
        new_app.recover(startup_prefix=f"app@{host}:")
        rows = _shard_rows(svc, sid)
        assert (rows[0].status, rows[0].claimed_by) == ("queued", None)  # released at once
        assert (rows[1].status, rows[1].claimed_by) == ("scoring", f"worker@{host}:2:alive")
        assert svc.status(sid)["status"] == Status.SCORING  # the job stays its coordinator's
    finally:
        svc.close()
