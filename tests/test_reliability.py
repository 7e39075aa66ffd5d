"""Reliability guarantees of the leaderboard, end to end through the served API.

1. A server killed with SIGKILL while scoring finishes the job after a restart, with exactly
   the numbers of an uninterrupted run, in one row (the real `app.py` in a subprocess).
2. Concurrent submissions and leaderboard reads: nothing lost or duplicated, every submission
   ends done or failed with a reason, over-limit submissions are refused with a reason
   (functional, not timed; the timed version is `benchmarks/load_leaderboard.py`).
3. Every hostile archive of the archive reader's list, uploaded through the real server's
   `/submit` and through the Submit tab's handler, is refused with a reason and recorded as a
   failed submission; the server keeps serving `/leaderboard` afterwards.
4. PostgreSQL restarted while workers score: pooled connections are replaced, no job is
   lost, none is scored twice.

1 and 2 run on a SQLite file and on a real PostgreSQL server (`database_url`); 3 reads
archives (the database only records the refusals) and runs on SQLite.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import free_port, start_app, stop_app
from leaderboard_fakes import make_service, scores_for, write_fake_archive

REPO = Path(__file__).resolve().parents[1]
FINAL = ("done", "failed")


# ----------------------------------------------------------------------------- server helpers


def submit(client: Any, archive: Path, submitter: str, metadata: dict | None = None) -> str:
    """Submit through `/submit`; the submission's public id."""
    from gradio_client import handle_file

    meta = json.dumps(metadata or {})
    return str(client.predict(handle_file(str(archive)), meta, submitter, api_name="/submit"))


def poll(client: Any, sid: str, until: Callable[[dict], bool], timeout: float, step: float = 0.2):
    """Poll `/submission_status` until `until(status)`; the last status (AssertionError on
    timeout)."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = client.predict(sid, api_name="/submission_status")
        if until(status):
            return status
        time.sleep(step)
    raise AssertionError(f"submission {sid}: condition not reached in {timeout} s: {status}")


def db_query(url: str, sql: str, **params: Any) -> list[tuple]:
    """The rows of one SQL query on the database at `url` (a connection of its own)."""
    from sqlalchemy import text

    from leaderboard.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def db_rows(url: str) -> list[tuple]:
    """(public id, status, attempts, submitter, archive_sha256, reason) of every submission
    row, in the order they were made."""
    return db_query(
        url,
        "SELECT public_id, status, attempts, submitter, archive_sha256, reason FROM "
        "submissions ORDER BY id",
    )


def _rejected_id(message: str) -> str | None:
    match = re.search(r"submission (s[0-9a-f]{16}) rejected", message)
    return match.group(1) if match else None


def _rounded(value: Any) -> Any:
    """Numbers as the server publishes them: floats to 4 decimals."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


# ----------------------------------------------------------------------------- 1. SIGKILL


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_while_scoring_then_restart_gives_the_uninterrupted_result(
    tmp_path: Path, tiny_benchmark: Path, database_url: str
) -> None:
    from gradio_client import Client

    from leaderboard.archive import open_submission, write_template
    from leaderboard.scoring import score_submission
    from svr.data.layout import Benchmark
    from svr.evaluation import DEFAULT_PROTOCOL

    benchmark = Benchmark(tiny_benchmark)
    archive = tmp_path / "sphere.zip"
    write_template(benchmark, archive, "voxels")
    home, log = tmp_path / "home", tmp_path / "app.log"
    proc, base = start_app(home, tiny_benchmark, log, DATABASE_URL=database_url)
    try:
        client = Client(base, verbose=False, httpx_kwargs={"timeout": 120})
        sid = submit(client, archive, "alice", {"method": "Sphere"})
        status = poll(
            client, sid, lambda s: s["status"] in FINAL or s["progress"]["done"] > 0, 120, 0.1
        )
        assert status["status"] == "scoring", f"scoring ended before it could be killed: {status}"
        assert 0 < status["progress"]["done"] < status["progress"]["total"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        stop_app(proc)
    rows = db_rows(database_url)
    assert [(r[0], r[1], r[2]) for r in rows] == [(sid, "scoring", 1)]  # left mid-job

    # The uninterrupted run of the same archive (same scorer and protocol as the server),
    # computed while nothing else of this test runs.
    with open_submission(archive, benchmark, scratch=tmp_path) as parsed:
        reference = score_submission(parsed, benchmark, protocol=DEFAULT_PROTOCOL)

    proc, base = start_app(home, tiny_benchmark, log, DATABASE_URL=database_url)
    try:
        client = Client(base, verbose=False, httpx_kwargs={"timeout": 120})
        status = poll(client, sid, lambda s: s["status"] in FINAL, 150, 0.5)
        assert status["status"] == "done", status
        assert status["attempts"] == 2  # the killed attempt and the one that finished
        n = len(benchmark.items("test"))
        assert status["progress"] == {"done": n, "total": n}
        assert status["overall"] == _rounded(reference.overall)  # exactly equal numbers
        expected = {
            cls: {m: {"mean": v["mean"], "median": v["median"]} for m, v in metrics.items()}
            for cls, metrics in reference.per_class.items()
        }
        assert status["per_class"] == _rounded(expected)
        assert status["coverage"] == _rounded(reference.coverage)
        records = client.predict(api_name="/leaderboard")
        assert [r["Method"] for r in records] == ["Sphere"]
    finally:
        stop_app(proc)
    rows = db_rows(database_url)
    assert [(r[0], r[1]) for r in rows] == [(sid, "done")]  # not lost, not duplicated
    [(items, distinct)] = db_query(
        database_url,
        "SELECT COUNT(*), COUNT(DISTINCT item_id) FROM item_scores JOIN submissions ON "
        "submissions.id = item_scores.submission_id WHERE submissions.public_id = :p",
        p=sid,
    )
    assert items == distinct == n


# ----------------------------------------------------------------------------- 2. concurrency


@pytest.fixture
def fake_server(tmp_path: Path, database_url: str) -> Iterator[tuple[Any, str, list[str]]]:
    """The leaderboard tabs on a fake benchmark and scorer (fast), launched on loopback with
    the app's queue settings; per-submitter limits: 2 per day, 2 at a time."""
    import gradio as gr

    from leaderboard.ui import add_leaderboard_tabs

    service, ids = make_service(
        tmp_path, max_per_day=2, max_concurrent=2, database_url=database_url
    )
    service.start_worker()
    with gr.Blocks() as demo:
        with gr.Tabs():
            add_leaderboard_tabs(service)
    demo.queue(default_concurrency_limit=2, max_size=100)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        yield service, f"http://127.0.0.1:{port}/", ids
    finally:
        demo.close()
        service.close()


def test_concurrent_submissions_and_reads_lose_and_duplicate_nothing(
    tmp_path: Path, fake_server: tuple[Any, str, list[str]]
) -> None:
    from gradio_client import Client

    service, base, ids = fake_server
    rng = np.random.default_rng(1)
    jobs: list[tuple[str, Path]] = []
    # Distinct names: names differing only in a trailing number share one quota.
    names = ["ann", "ben", "cyd", "dee", "eli", "fay"]
    for k in range(6):  # 5 valid archives and one the validator rejects
        extra = {"error": "the grid of chair/s0/0 holds NaN"} if k == 5 else {"sleep": 0.01}
        archive = write_fake_archive(
            tmp_path / f"a{k}.zip", f"M{k}", scores_for(ids, 0.3 + 0.1 * k, rng, 0.05), **extra
        )
        jobs.append((names[k], archive))
    for k in range(3):  # one submitter over the limit of 2 per day (every item predicted)
        archive = write_fake_archive(
            tmp_path / f"c{k}.zip", f"C{k}", scores_for(ids, 0.2 + 0.01 * k), sleep=0.01
        )
        jobs.append(("carol", archive))
    clients = [Client(base, verbose=False, httpx_kwargs={"timeout": 120}) for _ in range(4)]
    barrier = threading.Barrier(len(jobs) + 10)

    def do_submit(k: int) -> tuple[str, Any]:
        name, archive = jobs[k]
        barrier.wait(30)
        try:
            return "ok", submit(clients[k % 4], archive, name)
        except Exception as exc:  # noqa: BLE001 - the refusal's message is checked
            return "refused", str(exc)

    def do_read(k: int) -> list[dict]:
        barrier.wait(30)
        return clients[k % 4].predict(api_name="/leaderboard")

    with ThreadPoolExecutor(len(jobs) + 10) as pool:
        subs = [pool.submit(do_submit, k) for k in range(len(jobs))]
        reads = [pool.submit(do_read, k) for k in range(10)]
        outcomes = [f.result(60) for f in subs]
        tables = [f.result(60) for f in reads]
    assert all(isinstance(t, list) for t in tables)

    accepted = [v for kind, v in outcomes if kind == "ok"]
    refusals = [v for kind, v in outcomes if kind == "refused"]
    assert len(accepted) == len(set(accepted)) == 7  # 5 valid + 2 of carol's
    assert len(refusals) == 2
    assert "reached the limit of 2 submissions in 24 hours" in " ".join(refusals)
    rejected = [_rejected_id(r) for r in refusals if _rejected_id(r) is not None]
    assert len(rejected) == 1 and "NaN" in " ".join(refusals)

    client = clients[0]
    final = {
        sid: poll(client, sid, lambda s: s["status"] in FINAL, 60, 0.2)
        for sid in accepted + rejected
    }
    assert all(s["status"] == "done" for sid, s in final.items() if sid in accepted)
    assert final[rejected[0]]["status"] == "failed" and final[rejected[0]]["reason"]
    rows = db_rows(service.settings.database_url)
    # Exactly one row per accepted or rejected upload; the over-limit one left no row.
    assert sorted(r[0] for r in rows) == sorted(accepted + rejected)
    assert len({(r[3], r[4]) for r in rows}) == len(rows)  # no (submitter, archive) twice
    assert sum(r[3] == "carol" for r in rows) == 2
    records = client.predict(api_name="/leaderboard")
    done = [service.status(r[0])["method"] for r in rows if r[1] == "done"]
    assert sorted(r["Method"] for r in records) == sorted(done)
    assert {f"M{k}" for k in range(5)} <= set(done) and len(done) == 7


def test_reads_during_a_table_recomputation_get_the_previous_table_at_once(
    tmp_path: Path,
) -> None:
    """The (slow) analysis behind the table is recomputed by one reader at a time; readers
    arriving meanwhile get the previous table instead of piling up on the CPU."""
    service, ids = make_service(tmp_path, max_per_day=10)
    try:
        for k, value in enumerate((0.4, 0.6)):
            archive = write_fake_archive(tmp_path / f"m{k}.zip", f"M{k}", scores_for(ids, value))
            service.submit(archive, {}, f"u{k}")
            service.make_worker().run_once()
            if k == 0:
                assert service.table()["Method"].tolist() == ["M0"]  # cached with one entry
        real = service._compute_analysis
        entered, release, calls = threading.Event(), threading.Event(), []

        def slow(rows: list) -> dict:
            calls.append(len(rows))
            entered.set()
            assert release.wait(20)
            return real(rows)

        service._compute_analysis = slow  # type: ignore[method-assign]
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(service.table)
            assert entered.wait(20)
            start = time.monotonic()
            stale = [service.table()["Method"].tolist() for _ in range(5)]
            assert time.monotonic() - start < 5  # did not wait for the recomputation
            release.set()
            fresh = first.result(20)
        assert stale == [["M0"]] * 5 and calls == [2]  # one recomputation, served stale
        assert sorted(fresh["Method"]) == ["M0", "M1"]
        assert sorted(service.table()["Method"]) == ["M0", "M1"]  # now cached
        assert calls == [2]
    finally:
        service.close()


# ----------------------------------------------------------------------------- 3. hostile archives


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _manifest(**overrides: object) -> bytes:
    data = {"method": "hostile", "representation": "voxels", "frame": "object"}
    data.update(overrides)
    return json.dumps(data).encode()


def _zip(path: Path, files: dict[str, bytes], manifest: bytes | None = None, **kw: Any) -> Path:
    with zipfile.ZipFile(path, "w", kw.get("compression", zipfile.ZIP_DEFLATED)) as zf:
        if manifest is not None:
            zf.writestr("submission.json", manifest)
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _tar_special(path: Path, name: str, kind: bytes, linkname: str = "") -> Path:
    with tarfile.open(path, "w") as tf:
        data = _manifest()
        info = tarfile.TarInfo("submission.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        special = tarfile.TarInfo(name)
        special.type = kind
        special.linkname = linkname
        tf.addfile(special)
    return path


def _zip_mode(path: Path, name: str, mode: int, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("submission.json", _manifest())
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


def hostile_archives(folder: Path, item_ids: list[str]) -> dict[str, tuple[Path, str]]:
    """Case name -> (archive, a fragment its refusal must contain), for test items `item_ids`.

    Every case of the archive reader's list (tests/test_archive.py): bombs, entry counts,
    unsafe paths, links, special files, pickles, non-finite and out-of-cube values, unknown
    and duplicate ids, bad manifests, broken containers."""
    folder.mkdir(parents=True, exist_ok=True)
    first = item_ids[0]
    cls, shape, _ = first.split("/")
    c = -0.5 + (np.arange(32) + 0.5) / 32
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    grid = _npy(x**2 + y**2 + z**2 < 0.09)
    nan_grid = (x**2 + y**2 + z**2 < 0.09).astype(np.float32)
    nan_grid[0, 0, 0] = np.nan
    points = np.random.default_rng(0).uniform(-0.4, 0.4, (500, 3)).astype(np.float32)
    far = points.copy()
    far[7] = (0.1, -3.2, 0.0)
    nan_points = points.copy()
    nan_points[3, 1] = np.nan
    pickled = _npy(np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, path: Path, fragment: str) -> None:
        cases[name] = (path, fragment)

    add("zip bomb", _zip(folder / "bomb.zip", {f"{first}.npy": b"\0" * (8 << 20)}, _manifest()),
        "zip bomb")  # fmt: skip
    add("bzip2 bomb", _zip(folder / "bomb2.zip", {f"{first}.npy": b"\0" * (4 << 20)},
                           _manifest(), compression=zipfile.ZIP_BZIP2), "zip bomb")  # fmt: skip
    many = folder / "many.zip"
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("submission.json", _manifest())
        for k in range(200_001):
            zf.writestr(f"x/{k}", b"")
    add("too many entries", many, "too many entries")
    add("absolute path", _zip(folder / "abs.zip", {f"/etc/{first}.npy": grid}, _manifest()),
        "absolute path")  # fmt: skip
    add("dot-dot", _zip(folder / "dotdot.zip", {"../../../evil.npy": grid}, _manifest()), "'..'")
    add("zip symlink", _zip_mode(folder / "symlink.zip", f"{first}.npy", 0o120777,
                                 b"/etc/passwd"), "symbolic link")  # fmt: skip
    add("zip fifo", _zip_mode(folder / "fifo.zip", f"{first}.npy", 0o010644, grid),
        "device file or FIFO")  # fmt: skip
    add("tar symlink", _tar_special(folder / "sym.tar", f"{first}.npy", tarfile.SYMTYPE,
                                    "/etc/passwd"), "symbolic link")  # fmt: skip
    add("tar hard link", _tar_special(folder / "hard.tar", f"{first}.npy", tarfile.LNKTYPE,
                                      "submission.json"), "hard link")  # fmt: skip
    add("tar device", _tar_special(folder / "dev.tar", f"{first}.npy", tarfile.CHRTYPE),
        "device file")  # fmt: skip
    add("pickle in .npy", _zip(folder / "pickle.zip", {f"{first}.npy": pickled}, _manifest()),
        "pickle")  # fmt: skip
    add("NaN grid", _zip(folder / "nan.zip", {f"{first}.npy": _npy(nan_grid)}, _manifest()), "NaN")
    add("NaN points", _zip(folder / "nanpts.zip", {f"{first}.npy": _npy(nan_points)},
                           _manifest(representation="points")), "NaN")  # fmt: skip
    add("out of cube", _zip(folder / "far.zip", {f"{first}.npy": _npy(far)},
                            _manifest(representation="points")), "> 1 allowed")  # fmt: skip
    add("unknown id", _zip(folder / "unknown.zip", {f"{cls}/zz9zz/0.npy": grid}, _manifest()),
        "unknown item id")  # fmt: skip
    add("duplicate id", _zip(folder / "dup.zip", {f"{first}.npy": _npy(points),
                                                  f"{first}.xyz": b"0 0 0\n0.1 0 0\n"},
                             _manifest(representation="points")), "duplicate item")  # fmt: skip
    add("no manifest", _zip(folder / "nomanifest.zip", {f"{first}.npy": grid}),
        "no submission.json")  # fmt: skip
    add("bad manifest JSON", _zip(folder / "badjson.zip", {f"{first}.npy": grid},
                                  b'{"method": "x",\n "frame": }'), "not valid JSON")  # fmt: skip
    add("bad manifest fields", _zip(folder / "badfields.zip", {f"{first}.npy": grid},
                                    _manifest(frame="world")), "frame")  # fmt: skip
    add("frame mismatch", _zip(folder / "frame.zip", {f"{first}.npy": grid},
                               _manifest(frame="viewer")), "frame mismatch")  # fmt: skip
    add("wrong shape", _zip(folder / "shape.zip", {f"{first}.npy": _npy(np.zeros((8, 8, 8), bool))},
                            _manifest()), "resolution 8")  # fmt: skip
    add("no items", _zip(folder / "empty.zip", {}, _manifest()), "holds no test items")
    corrupt = folder / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04" + b"\0" * 50)
    add("corrupt zip", corrupt, "zip")
    not_zip = folder / "text.zip"
    not_zip.write_bytes(b"definitely not a zip file" * 10)
    add("not an archive", not_zip, "rejected")
    mismatch = folder / "tarnamedzip.zip"
    with tarfile.open(mismatch, "w") as tf:
        info = tarfile.TarInfo("submission.json")
        data = _manifest()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    add("name/content mismatch", mismatch, "does not match its content")
    del shape
    return cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, tiny_benchmark: Path):
    from svr.data.layout import Benchmark

    ids = [i.item_id for i in Benchmark(tiny_benchmark).items("test")]
    return hostile_archives(tmp_path_factory.mktemp("hostile"), ids)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_hostile_archives_through_the_server_api_fail_with_reasons(
    tmp_path: Path, tiny_benchmark: Path, hostile: dict[str, tuple[Path, str]]
) -> None:
    from gradio_client import Client

    home = tmp_path / "home"
    proc, base = start_app(home, tiny_benchmark, tmp_path / "app.log")
    try:
        client = Client(base, verbose=False, httpx_kwargs={"timeout": 120})
        failed_ids = []
        for case, (archive, fragment) in hostile.items():
            with pytest.raises(Exception) as info:  # noqa: PT011 - the message is checked
                submit(client, archive, "mallory", {"method": case})
            message = str(info.value)
            assert fragment in message, f"{case}: {message}"
            sid = _rejected_id(message)
            assert sid is not None, f"{case}: refused without a submission id: {message}"
            status = client.predict(sid, api_name="/submission_status")
            assert status["status"] == "failed" and status["reason"], (case, status)
            assert str(home) not in json.dumps(status)  # no server path in the reason
            failed_ids.append(sid)
            assert proc.poll() is None, f"the server died on {case}"
        assert client.predict(api_name="/leaderboard") == []  # still serving
        assert len(set(failed_ids)) == len(hostile)
    finally:
        stop_app(proc)
    rows = db_rows(f"sqlite:///{home / 'svr.db'}")
    assert [r[0] for r in rows] == failed_ids  # one row each, in the order submitted
    assert all(r[1] == "failed" and r[5] for r in rows)
    assert not list((home / "scratch").glob("**/*.npy"))  # nothing extracted was left behind


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_hostile_archives_through_the_submit_tab_handler(
    tmp_path: Path, tiny_benchmark: Path, hostile: dict[str, tuple[Path, str]]
) -> None:
    import gradio as gr

    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from leaderboard.ui import add_leaderboard_tabs

    service = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), tiny_benchmark)
    try:
        with gr.Blocks() as demo:
            with gr.Tabs():
                add_leaderboard_tabs(service)
        fns: dict[str, Any] = {}
        for f in demo.fns.values():
            fns.setdefault(f.name, f.fn)
        submit_form, api_table = fns["submit_form"], fns["api_table"]
        for case, (archive, fragment) in hostile.items():
            message, mine = submit_form(str(archive), case, "", "", "", "", "", "", "", "eve")
            assert message.startswith("**submission ") and fragment in message, (case, message)
            sid = _rejected_id(message)
            assert sid is not None and service.status(sid)["status"] == "failed", case
            row = mine[mine["ID"] == sid]
            assert row["Status"].tolist() == ["failed"] and row["Reason"].iloc[0], case
        assert api_table() == []
        assert len(service.submissions_of("eve")) == len(hostile)
    finally:
        service.close()


# ----------------------------------------------------------------------------- 4. PostgreSQL


@pytest.mark.timeout(240)
def test_postgres_restart_while_workers_score_loses_and_repeats_nothing(
    tmp_path: Path, postgres_server: Any
) -> None:
    """Two worker threads score three submissions (one coordinates shards, one scores whole
    jobs and helps with shards); the server is restarted (fast mode: every connection is cut)
    in the middle. Every job ends done after one attempt, every shard is scored once, every
    item is stored once, with the right numbers."""
    from sqlalchemy import select

    from leaderboard.db import ItemScore, ScoreShard, Submission

    name = postgres_server.create_database()
    service, ids = make_service(
        tmp_path, database_url=postgres_server.url(name), max_per_day=100, max_concurrent=100,
        shard_items=5, heartbeat_stale_s=60,
    )  # fmt: skip
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        values = {"A": 0.3, "B": 0.5, "C": 0.8}
        jobs = {
            service.submit(
                write_fake_archive(tmp_path / f"{m}.zip", m, scores_for(ids, v), sleep=0.1), {},
                f"user-{m}",
            ): v
            for m, v in values.items()
        }  # fmt: skip
        sharding, whole = service.make_worker(), service.make_worker()
        whole.settings = whole.settings.with_(shard_items=0)
        threads = [threading.Thread(target=w.run_forever, args=(stop,)) for w in (sharding, whole)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until scoring is under way
            if any(service.status(sid)["progress"]["done"] > 0 for sid in jobs):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("scoring did not start")
        postgres_server.restart()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(service.status(sid)["status"] in FINAL for sid in jobs):
                break
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(30)
        for sid, value in jobs.items():
            status = service.status(sid)
            assert (status["status"], status["attempts"]) == ("done", 1), status
            assert status["overall"]["mean_of_class_means"]["iou"] == pytest.approx(value)
        with service.factory() as session:
            stored = session.execute(select(ItemScore.submission_id, ItemScore.item_id)).all()
            shard_rows = session.execute(
                select(ScoreShard.submission_id, ScoreShard.status, ScoreShard.attempts)
            ).all()
            n_jobs = session.scalar(select(Submission.id).order_by(Submission.id.desc()))
        assert len(stored) == len(set(stored)) == len(ids) * len(jobs) and n_jobs == len(jobs)
        assert shard_rows and all(r.status == "done" and r.attempts == 1 for r in shard_rows)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        service.close()
        postgres_server.drop_database(name)
