"""The scoring worker: atomic claims, recovery of abandoned jobs, time limits, the in-process
thread, the command line, and one run with the real archive reader and scorer.

Every test that touches the database takes `database_url` (tests/conftest.py), so runs on a
SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from leaderboard_fakes import make_service, scores_for, write_fake_archive
from sqlalchemy import select, update

from leaderboard.db import ItemScore, Status, Submission, utcnow
from leaderboard.worker import Worker, worker_id


@pytest.fixture
def svc(tmp_path: Path, database_url: str):
    service, ids = make_service(
        tmp_path, max_per_day=100, max_concurrent=100, database_url=database_url
    )
    service.test_ids = ids  # type: ignore[attr-defined]
    yield service
    service.close()


def _submit(svc, tmp_path: Path, name: str, value: float = 0.5, **extra: object) -> int:
    archive = write_fake_archive(
        tmp_path / f"{name}.zip", name, scores_for(svc.test_ids, value), **extra
    )
    return svc.submit(archive, {}, f"user-{name}")


def _set(svc, sid: int, **values: object) -> None:
    with svc.factory() as session:
        session.execute(update(Submission).where(Submission.id == sid).values(**values))
        session.commit()


def _wait(svc, sid: int, states: tuple[str, ...], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = svc.status(sid)
        if status["status"] in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"submission {sid} still {svc.status(sid)['status']}")


def test_two_workers_never_claim_the_same_job(tmp_path: Path, svc) -> None:
    jobs = [_submit(svc, tmp_path, f"m{k}", 0.1 + k / 50) for k in range(16)]
    workers = [svc.make_worker() for _ in range(2)]
    claimed: dict[str, list[int]] = {w.ident: [] for w in workers}
    start = threading.Barrier(2)

    def run(worker: Worker) -> None:
        start.wait()
        while (sid := worker.claim()) is not None:
            claimed[worker.ident].append(sid)
            worker.run_job(sid)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [sid for ids in claimed.values() for sid in ids]
    assert Counter(everything) == Counter(jobs)  # each job exactly once
    for sid in jobs:
        status = svc.status(sid)
        assert status["status"] == Status.DONE and status["attempts"] == 1


def test_racing_claims_on_one_job_have_exactly_one_winner(tmp_path: Path, svc) -> None:
    for round_ in range(3):
        sid = _submit(svc, tmp_path, f"r{round_}")
        workers = [svc.make_worker() for _ in range(6)]
        barrier = threading.Barrier(len(workers))
        results: list[int | None] = []

        def race(worker: Worker, barrier: threading.Barrier, results: list[int | None]) -> None:
            barrier.wait()
            results.append(worker.claim())

        threads = [threading.Thread(target=race, args=(w, barrier, results)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results, key=str) == [sid] + [None] * (len(workers) - 1)
        _set(svc, sid, status=Status.DONE)


def test_claim_is_conditional_on_the_queued_state(tmp_path: Path, svc) -> None:
    sid = _submit(svc, tmp_path, "a")
    first, second = svc.make_worker(), svc.make_worker()
    assert first.claim() == sid
    assert second.claim() is None  # already taken
    with svc.factory() as session:
        row = session.get(Submission, sid)
        assert row.status == Status.SCORING and row.claimed_by == first.ident
        assert row.attempts == 1 and row.heartbeat_at is not None


def test_stale_job_is_requeued_then_fails_after_max_attempts(
    tmp_path: Path, database_url: str
) -> None:
    svc, ids = make_service(
        tmp_path, max_attempts=2, heartbeat_stale_s=60, database_url=database_url
    )
    try:
        sid = svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.5)), {}, "u")
        dead = svc.make_worker()
        assert dead.claim() == sid  # ...and the worker dies here
        rescuer = svc.make_worker()
        assert rescuer.recover() == 0  # heartbeat still fresh
        _set(svc, sid, heartbeat_at=utcnow() - dt.timedelta(seconds=61))
        assert rescuer.recover() == 1
        assert svc.status(sid)["status"] == Status.QUEUED
        assert dead.claim() == sid  # attempt 2, dies again
        _set(svc, sid, heartbeat_at=utcnow() - dt.timedelta(seconds=61))
        rescuer.recover()
        status = svc.status(sid)
        assert status["status"] == Status.FAILED and "interrupted 2 times" in status["reason"]
        # The dead worker cannot store a result for a job it lost.
        assert dead.run_job(sid).status == "lost"
        assert svc.status(sid)["status"] == Status.FAILED
    finally:
        svc.close()


def test_jobs_of_a_killed_app_are_requeued_at_start_up(tmp_path: Path, svc) -> None:
    sid = _submit(svc, tmp_path, "a", 0.4)
    import socket

    previous_app = Worker(svc.factory, svc.settings, svc.benchmark_dir,
                          ident=f"app@{socket.gethostname()}:1:dead")  # fmt: skip
    assert previous_app.claim() == sid  # the server was killed while scoring
    other = svc.make_worker("worker")
    other_job = _submit(svc, tmp_path, "b", 0.6)
    assert other.claim() == other_job  # a separate worker process, still alive
    svc.start_worker()
    try:
        status = _wait(svc, sid, (Status.DONE, Status.FAILED))
        assert status["status"] == Status.DONE and status["attempts"] == 2
        # The live separate worker's job was left alone (fresh heartbeat, other kind).
        assert svc.status(other_job)["status"] == Status.SCORING
    finally:
        svc.stop_worker()


def test_time_limit_fails_the_job_with_a_reason(tmp_path: Path, database_url: str) -> None:
    svc, ids = make_service(tmp_path, scoring_time_limit_s=0.1, database_url=database_url)
    try:
        archive = write_fake_archive(
            tmp_path / "slow.zip", "Slow", scores_for(ids, 0.5), sleep=0.02
        )
        sid = svc.submit(archive, {}, "u")
        outcome = svc.make_worker().run_once()
        assert outcome.status == Status.FAILED
        status = svc.status(sid)
        assert status["status"] == Status.FAILED and "time limit of 0.1 s" in status["reason"]
        assert "exceeded the time limit" in status["reason"]
        with svc.factory() as session:  # nothing partial stored
            assert (
                session.scalars(select(ItemScore).where(ItemScore.submission_id == sid)).all() == []
            )
    finally:
        svc.close()


def test_hung_job_past_its_time_limit_is_failed_by_recovery(
    tmp_path: Path, database_url: str
) -> None:
    svc, ids = make_service(
        tmp_path, scoring_time_limit_s=100, heartbeat_stale_s=50, database_url=database_url
    )
    try:
        sid = svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.5)), {}, "u")
        hung = svc.make_worker()
        hung.claim()
        # Its heartbeat thread still beats, but it started 151 s ago (> limit + stale).
        _set(svc, sid, started_at=utcnow() - dt.timedelta(seconds=151), heartbeat_at=utcnow())
        assert svc.make_worker().recover() == 1
        status = svc.status(sid)
        assert status["status"] == Status.FAILED and "time limit" in status["reason"]
    finally:
        svc.close()


def test_progress_is_visible_while_scoring(tmp_path: Path, svc) -> None:
    archive = write_fake_archive(
        tmp_path / "slow.zip", "Slow", scores_for(svc.test_ids, 0.5), sleep=0.08
    )
    sid = svc.submit(archive, {}, "u")
    svc.start_worker()
    try:
        seen = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = svc.status(sid)
            if status["status"] == Status.SCORING:
                seen.add(status["progress"]["done"])
            if status["status"] == Status.DONE:
                break
            time.sleep(0.05)
        assert status["status"] == Status.DONE
        total = len(svc.test_ids)
        assert any(0 < done < total for done in seen), seen
        shown = svc.submissions_of("u")["Progress"].iloc[0]
        assert re.search(rf"\b{total}\b.*\b{total}\b", shown), shown  # done and total
    finally:
        svc.stop_worker()


def test_deleted_queued_job_is_not_scored(tmp_path: Path, svc) -> None:
    sid = _submit(svc, tmp_path, "a")
    svc.admin_action("delete", [sid], "token")
    assert svc.make_worker().run_once() is None


def test_worker_command_once_on_an_empty_queue(tmp_path: Path, svc, monkeypatch, capsys) -> None:
    from leaderboard.__main__ import main

    monkeypatch.setenv("SVR_HOME", str(svc.settings.home))
    monkeypatch.setenv("DATABASE_URL", svc.settings.database_url)
    assert main(["worker", "--once", "--benchmark", str(svc.benchmark_dir)]) == 0
    assert "queue empty" in capsys.readouterr().out
    assert main(["worker", "--once", "--benchmark", str(tmp_path / "nowhere")]) == 2


def test_worker_id_names_its_kind() -> None:
    assert worker_id("app").startswith("app@") and worker_id("app") != worker_id("app")


@pytest.mark.slow
def test_real_archive_and_scoring_on_the_tiny_benchmark(
    tmp_path: Path, tiny_benchmark: Path, database_url: str
) -> None:
    from leaderboard.archive import write_template
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark
    from svr.evaluation import Protocol

    benchmark = Benchmark(tiny_benchmark)
    archive = tmp_path / "sphere.zip"
    write_template(benchmark, archive, "points")
    protocol = Protocol(n_samples=1000, iou_resolutions=(32,))  # light, to keep the test fast
    settings = LeaderboardSettings(home=tmp_path / "home", database_url=database_url)
    svc = LeaderboardService(settings, tiny_benchmark, protocol=protocol)
    try:
        sid = svc.submit(archive, {"method": "Sphere", "training_data": "none"}, "alice")
        outcome = svc.make_worker().run_once()
        assert outcome.status == Status.DONE, outcome
        status = svc.status(sid)
        n = len(benchmark.items("test"))
        assert status["progress"] == {"done": n, "total": n}
        assert status["coverage"]["fraction"] == 1.0
        f1 = status["overall"]["mean_of_class_means"]["fscore@0.01"]
        assert 0.0 <= f1 < 0.5  # a sphere is a poor reconstruction of most shapes
        assert status["overall"]["mean_of_class_means"]["iou"] is None  # points: no IoU
        assert set(status["per_class"]) == set(benchmark.class_names)
        with svc.factory() as session:
            rows = session.scalars(select(ItemScore).where(ItemScore.submission_id == sid)).all()
        assert len(rows) == n and all(r.fscore is not None and r.iou is None for r in rows)
        table = svc.table()
        assert table["Method"].tolist() == ["Sphere"] and table["Tier"].tolist() == [1]
        # A broken archive is refused at submit time with an actionable reason.
        bad = tmp_path / "bad.zip"
        bad.write_bytes(b"not a zip")
        with pytest.raises(Exception, match="zip|archive"):
            svc.submit(bad, {}, "alice")
    finally:
        svc.close()


def test_stopping_the_worker_requeues_the_running_job(tmp_path: Path, svc) -> None:
    archive = write_fake_archive(
        tmp_path / "slow.zip", "Slow", scores_for(svc.test_ids, 0.5), sleep=0.1
    )
    sid = svc.submit(archive, {}, "u")
    svc.start_worker()
    _wait(svc, sid, (Status.SCORING,))
    svc.stop_worker()
    status = svc.status(sid)
    assert status["status"] == Status.QUEUED and status["attempts"] == 0
    outcome = svc.make_worker().run_once()  # picked up again later
    assert outcome.status == Status.DONE and svc.status(sid)["attempts"] == 1


def test_uploads_interrupted_during_validation_fail_at_start_up(tmp_path: Path, svc) -> None:
    sid = _submit(svc, tmp_path, "a")
    _set(svc, sid, status=Status.VALIDATED)  # the app was killed between validation and queue
    svc.make_worker().recover()  # a separate worker process does not touch it...
    assert svc.status(sid)["status"] == Status.VALIDATED
    svc.start_worker()  # ...the app's start does
    svc.stop_worker()
    status = svc.status(sid)
    assert status["status"] == Status.FAILED and "submit the archive again" in status["reason"]
    assert _submit(svc, tmp_path, "a") != sid  # resubmitting the same archive is allowed


def test_failure_reasons_do_not_name_server_paths(tmp_path: Path, svc) -> None:
    sid = _submit(svc, tmp_path, "a")
    for path in svc.store.all():
        path.unlink()  # the stored archive vanished (disk trouble)
    outcome = svc.make_worker().run_once()
    assert outcome.status == Status.FAILED
    reason = svc.status(sid)["reason"]
    assert "stored archive is missing" in reason and "$SVR_HOME" in reason
    assert str(svc.settings.home) not in reason


@pytest.mark.slow
def test_seeding_real_baselines_on_the_tiny_benchmark(
    tmp_path: Path, tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from app_helpers import shared_tiny_weights

    from leaderboard.seed import seed_baselines
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.evaluation import Protocol

    weights = shared_tiny_weights(tmp_path_factory, tiny_benchmark)
    svc = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), tiny_benchmark,
                             protocol=Protocol(n_samples=1000, iou_resolutions=(32,)))  # fmt: skip
    try:
        results = seed_baselines(
            svc, tiny_benchmark, weights, methods=["clustering", "retrieval", "atlas"]
        )
        outcomes = {r.method: r.outcome for r in results}
        assert outcomes == {"clustering": "submitted", "retrieval": "submitted", "atlas": "failed"}
        worker = svc.make_worker()
        while worker.run_once() is not None:
            pass
        table = svc.table().set_index("Method")
        assert set(table.index) == {"Clustering", "Retrieval"}
        assert (table["Baseline"] == "baseline").all() and (table["Coverage ↑"] == 1.0).all()
        verdict = table.loc["Clustering", "vs Retrieval"]
        assert verdict.split(" Retrieval")[0] in (
            "better than",
            "worse than",
            "indistinguishable from",
        )
        again = seed_baselines(svc, tiny_benchmark, weights, methods=["clustering"])
        assert again[0].outcome == "skipped"
    finally:
        svc.close()


@pytest.mark.slow
def test_a_rebuilt_test_split_is_seeded_again(tmp_path, tmp_path_factory, tiny_benchmark) -> None:
    import json
    import time

    from app_helpers import shared_tiny_weights

    from leaderboard.seed import seed_baselines
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.evaluation import Protocol

    weights = shared_tiny_weights(tmp_path_factory, tiny_benchmark)
    bench = tmp_path / "bench"  # the tiny benchmark with a benchmark.json of its own
    bench.mkdir()
    for split in ("train", "val", "test"):
        (bench / split).symlink_to(Path(tiny_benchmark) / split)
    meta = json.loads((Path(tiny_benchmark) / "benchmark.json").read_text())
    (bench / "benchmark.json").write_text(json.dumps(meta))
    svc = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), bench,
                             protocol=Protocol(n_samples=1000, iou_resolutions=(32,)))  # fmt: skip
    try:
        first = seed_baselines(svc, bench, weights, methods=["clustering"])
        assert first[0].outcome == "submitted"
        assert seed_baselines(svc, bench, weights, methods=["clustering"])[0].outcome == "skipped"
        time.sleep(0.01)
        meta["test_checksum"] = "f" * 64  # as after a rotation: a new identifier
        (bench / "benchmark.json").write_text(json.dumps(meta))
        again = seed_baselines(svc, bench, weights, methods=["clustering"])
        assert again[0].outcome == "submitted", again[0].message
    finally:
        svc.close()
