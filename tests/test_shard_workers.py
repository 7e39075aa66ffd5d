"""Two real `python -m leaderboard worker` processes score one submission of the tiny
benchmark together (sharded), with the real archive reader and scorer, on SQLite and on
PostgreSQL (`database_url`), and one of them is killed with SIGKILL in the middle of a shard:

- the stored results are identical, bit for bit, to those of one worker scoring it
  unsharded (and to `score_submission` run here);
- the killed worker loses only the shard it was scoring: that one is claimed again once its
  heartbeat is stale; every other shard is scored once, the killed worker's finished ones
  included.

(The same without a kill, in worker threads with the fake scorer: tests/test_shards.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from leaderboard.db import ClassResult, ItemScore, ScoreShard, Status, Submission

REPO = Path(__file__).resolve().parents[1]
SHARD_ITEMS = 8  # the tiny benchmark's 52 test items: 7 shards (6 of 8, one of 4)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture
def board(tmp_path: Path, tiny_benchmark: Path, database_url: str) -> Iterator[object]:
    """A service (no worker thread) on `database_url` with one queued mesh submission."""
    from leaderboard.archive import write_template
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark

    archive = tmp_path / "sphere.zip"
    write_template(Benchmark(tiny_benchmark), archive, "mesh")
    settings = LeaderboardSettings(
        home=tmp_path / "home", database_url=database_url, scoring_device="cpu"
    )
    service = LeaderboardService(settings, tiny_benchmark)
    service.sid = service.submit(archive, {"method": "Sphere"}, "alice")  # type: ignore[attr-defined]
    service.archive = archive  # type: ignore[attr-defined]
    try:
        yield service
    finally:
        service.close()


def _start_worker(svc, log: Path, shard_items: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SVR_HOME")}
    env.update(
        SVR_HOME=str(svc.settings.home), DATABASE_URL=svc.settings.database_url,
        SVR_SHARD_ITEMS=str(shard_items), SVR_HEARTBEAT_STALE="4",
        SVR_HEARTBEAT_INTERVAL="0.3", SVR_POLL_INTERVAL="0.1", SVR_SCORING_DEVICE="cpu",
        PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
    )  # fmt: skip
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, "-m", "leaderboard", "worker", "--benchmark", str(svc.benchmark_dir)]
    return subprocess.Popen([*cmd, *extra], cwd=REPO, env=env, stdout=out, stderr=out)


def _wait_ready(procs: list[subprocess.Popen[bytes]], logs: list[Path], timeout=120.0) -> None:
    """Until every worker printed its start line (imports done, database upgraded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise AssertionError(f"worker exited {proc.returncode}: {log.read_text()[-3000:]}")
        if all(log.is_file() and "worker worker@" in log.read_text() for log in logs):
            return
        time.sleep(0.2)
    raise AssertionError("workers did not start: " + " | ".join(log.read_text() for log in logs))


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_status(svc, states: tuple[str, ...], timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with svc.factory() as session:
            status = session.scalar(select(Submission.status).where(Submission.id == svc.sid))
        if status in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"submission still {status} after {timeout:.0f} s")


def _results(svc) -> tuple:
    with svc.factory() as session:
        row = session.get(Submission, svc.sid)
        items = session.execute(
            select(ItemScore.item_id, ItemScore.status, ItemScore.fscore, ItemScore.precision,
                   ItemScore.recall, ItemScore.iou, ItemScore.chamfer_l1, ItemScore.chamfer_l2,
                   ItemScore.normal_consistency, ItemScore.metrics)
            .where(ItemScore.submission_id == svc.sid).order_by(ItemScore.item_id)
        ).all()  # fmt: skip
        classes = session.execute(
            select(ClassResult.class_name, ClassResult.metric, ClassResult.mean,
                   ClassResult.median)
            .where(ClassResult.submission_id == svc.sid)
            .order_by(ClassResult.class_name, ClassResult.metric)
        ).all()  # fmt: skip
        return (row.status, row.reason, row.overall, row.coverage, row.score_headline,
                row.score_iou, row.score_chamfer_l1, row.protocol_id, row.benchmark_id,
                [tuple(r) for r in items], [tuple(r) for r in classes])  # fmt: skip


def _shards(svc) -> list[tuple[int, str, str | None, int]]:
    """(index, status, claimed_by, attempts) of the submission's shards."""
    with svc.factory() as session:
        rows = session.execute(
            select(ScoreShard.index, ScoreShard.status, ScoreShard.claimed_by,
                   ScoreShard.attempts)
            .where(ScoreShard.submission_id == svc.sid).order_by(ScoreShard.index)
        ).all()  # fmt: skip
    return [tuple(r) for r in rows]


def _rescore(svc) -> None:
    """Back to the queue, as a maintainer's rescore does."""
    with svc.factory() as session:
        session.execute(
            update(Submission).where(Submission.id == svc.sid)
            .values(status=Status.QUEUED, attempts=0, claimed_by=None, heartbeat_at=None)
        )  # fmt: skip
        session.commit()


def _one_worker_reference(svc) -> tuple:
    """The results one worker stores scoring the submission unsharded (in this process:
    the code the worker command runs)."""
    worker = svc.make_worker()
    worker.settings = worker.settings.with_(shard_items=0)
    assert worker.run_once().status == Status.DONE
    assert _shards(svc) == []  # not sharded
    reference = _results(svc)
    assert reference[0] == Status.DONE, reference[:2]
    return reference


def test_worker_processes_match_one_worker_and_a_killed_one_loses_only_its_shard(
    board, tmp_path: Path
) -> None:
    from leaderboard.archive import open_submission
    from leaderboard.scoring import score_submission
    from svr.data.layout import Benchmark

    svc = board
    reference = _one_worker_reference(svc)
    benchmark = Benchmark(svc.benchmark_dir)
    with open_submission(svc.archive, benchmark) as parsed:
        direct = score_submission(parsed, benchmark, device="cpu")
    assert reference[2] == direct.overall and reference[3] == direct.coverage
    logs = [tmp_path / f"w{k}.log" for k in range(2)]
    procs = [_start_worker(svc, log, SHARD_ITEMS) for log in logs]
    try:
        _wait_ready(procs, logs)
        pids = {p.pid: p for p in procs}
        _rescore(svc)
        # Wait for a helper (not the coordinator) to be in the middle of a shard after it
        # finished at least one.
        deadline, victim, before = time.monotonic() + 200, None, []
        while victim is None and time.monotonic() < deadline:
            with svc.factory() as session:
                coordinator = session.scalar(
                    select(Submission.claimed_by).where(Submission.id == svc.sid)
                )
            before = _shards(svc)
            for _, status, who, _ in before:
                if status != "scoring" or who is None or who == coordinator:
                    continue
                pid = int(who.split(":")[1])
                if any(s[1] == "done" and s[2] == who for s in before):
                    victim = (pid, who)
            time.sleep(0.02)
        assert victim is not None, f"no helper was seen mid-shard: {before}"
        os.kill(victim[0], signal.SIGKILL)
        pids[victim[0]].wait(10)
        killed_mid = [s for s in _shards(svc) if s[1] == "scoring" and s[2] == victim[1]]
        done_by_victim = [s[0] for s in _shards(svc) if s[1] == "done" and s[2] == victim[1]]
        assert len(killed_mid) == 1 and done_by_victim
        assert _wait_status(svc, (Status.DONE, Status.FAILED)) == Status.DONE
    finally:
        _stop(procs)
    assert _results(svc) == reference  # the same numbers as one uninterrupted worker
    after = {s[0]: s for s in _shards(svc)}
    lost = killed_mid[0][0]
    assert after[lost][3] == 2 and after[lost][2] != victim[1]  # claimed again, by the other
    for index in done_by_victim:  # what the killed worker finished stays its work
        assert after[index][2] == victim[1] and after[index][3] == 1
    assert all(s[3] == 1 and s[1] == "done" for i, s in after.items() if i != lost)
    assert len(after) == 7  # 52 items in shards of 8 (cut between shapes)
