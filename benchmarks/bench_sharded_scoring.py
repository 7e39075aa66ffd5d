"""One submission of a benchmark's test split scored by 1 and by 2 `python -m leaderboard
worker` processes (sharded), wall clock from queueing to done; prints the 1-vs-2 time ratio.

The submission is the template (the same sphere for every test item, `--representation`,
mesh by default: the slowest to score). Both runs use the real archive reader and scorer on
the CPU and one database (a SQLite file in a temporary SVR_HOME unless `--database-url`
names another, e.g. a PostgreSQL database). The 1-worker run scores unsharded (as before
sharding existed); the N-worker run splits the job into shards of `--shard-items`. Workers
are started first and timed only from the moment the job is queued (their start-up, the
imports, is not part of scoring). Workers run with their default threads (the scorer uses a
thread per core), as an operator would run them; with `--pin` worker k is pinned to core k
(`sched_setaffinity`), as if each worker had a core of its own (a machine of its own in
production): the 1-worker run then gets one core, the 2-worker run two. The two runs' stored results are compared: they must be
identical, bit for bit.

    python benchmarks/bench_sharded_scoring.py --benchmark /tmp/svr-small
    python benchmarks/bench_sharded_scoring.py --benchmark /tmp/svr-tiny2 --shard-items 8

On a machine whose cores are busy with other work the ratio is bounded by the CPU share this
run gets, not by the number of workers, and that share changes from minute to minute: the
script alternates the two runs for `--rounds` rounds, prints each round's ratio and their
median, and the load average beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _start(
    home: Path, url: str, bench: Path, shard_items: int, log: Path, core: int | None
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SVR_HOME")}
    env.update(
        SVR_HOME=str(home), DATABASE_URL=url, SVR_SHARD_ITEMS=str(shard_items),
        SVR_SCORING_DEVICE="cpu", SVR_POLL_INTERVAL="0.1", SVR_HEARTBEAT_INTERVAL="2",
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    out = open(log, "ab")  # noqa: SIM115 - the process keeps it
    pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
    return subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "worker", "--benchmark", str(bench)],
        cwd=ROOT, env=env, stdout=out, stderr=out, preexec_fn=pin,
    )  # fmt: skip


def _results(factory, sid: int) -> tuple:
    from sqlalchemy import select

    from leaderboard.db import ClassResult, ItemScore, Submission

    with factory() as session:
        row = session.get(Submission, sid)
        items = session.execute(
            select(ItemScore.item_id, ItemScore.metrics)
            .where(ItemScore.submission_id == sid).order_by(ItemScore.item_id)
        ).all()  # fmt: skip
        classes = session.execute(
            select(ClassResult.class_name, ClassResult.metric, ClassResult.mean,
                   ClassResult.median)
            .where(ClassResult.submission_id == sid)
            .order_by(ClassResult.class_name, ClassResult.metric)
        ).all()  # fmt: skip
        return (row.status, row.overall, row.coverage, [tuple(r) for r in items],
                [tuple(r) for r in classes])  # fmt: skip


def run(service, sid: int, n_workers: int, shard_items: int, work: Path, pin: bool) -> float:
    """Seconds from queueing `sid` to its results being stored, with `n_workers` workers
    (pinned to cores 0, 1, ... with `pin`)."""
    from sqlalchemy import select, update

    from leaderboard.db import Status, Submission

    logs = [work / f"w{n_workers}-{k}.log" for k in range(n_workers)]
    cores = sorted(os.sched_getaffinity(0))
    procs = [_start(service.settings.home, service.settings.database_url, service.benchmark_dir,
                    shard_items, log, cores[k % len(cores)] if pin else None)
             for k, log in enumerate(logs)]  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not all(log.is_file() and "worker worker@" in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start: " + logs[0].read_text()[-2000:])
            time.sleep(0.1)
        with service.factory() as session:
            session.execute(
                update(Submission).where(Submission.id == sid)
                .values(status=Status.QUEUED, attempts=0, claimed_by=None, heartbeat_at=None)
            )  # fmt: skip
            session.commit()
        start = time.monotonic()
        while True:
            with service.factory() as session:
                status = session.scalar(select(Submission.status).where(Submission.id == sid))
            if status in (Status.DONE, Status.FAILED):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        if status != Status.DONE:
            raise RuntimeError(f"scoring failed: {service.status(sid)['reason']}")
        return elapsed
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", type=Path, required=True, help="benchmark folder")
    parser.add_argument("--representation", choices=("mesh", "voxels", "points"), default="mesh")
    parser.add_argument("--workers", type=int, default=2, help="workers of the sharded run")
    parser.add_argument("--shard-items", type=int, default=None,
                        help="items per shard (default: test items / (4 x workers))")  # fmt: skip
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument("--pin", action="store_true", help="pin worker k to core k")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two runs")
    args = parser.parse_args()

    from leaderboard.archive import write_template
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark

    bench = Benchmark(args.benchmark)
    n_items = len(bench.items("test"))
    shard_items = args.shard_items or max(1, n_items // (4 * args.workers))
    with tempfile.TemporaryDirectory(prefix="svr-bench-shards-") as tmp:
        work = Path(tmp)
        archive = work / f"template-{args.representation}.zip"
        write_template(bench, archive, args.representation)
        settings = LeaderboardSettings(home=work / "home", database_url=args.database_url,
                                       scoring_device="cpu")  # fmt: skip
        service = LeaderboardService(settings, args.benchmark)
        ones: list[float] = []
        manys: list[float] = []
        same = True
        try:
            sid = service.submit(archive, {"method": "Sphere"}, "bench")
            for _ in range(args.rounds):
                ones.append(run(service, sid, 1, 0, work, args.pin))
                reference = _results(service.factory, sid)
                manys.append(run(service, sid, args.workers, shard_items, work, args.pin))
                same = same and _results(service.factory, sid) == reference
                print(f"round {len(ones)}: 1 worker {ones[-1]:.1f} s, {args.workers} workers "
                      f"{manys[-1]:.1f} s, ratio {ones[-1] / manys[-1]:.2f}", flush=True)  # fmt: skip
        finally:
            service.close()
    load = os.getloadavg()
    one, many = statistics.median(ones), statistics.median(manys)
    ratio = statistics.median(o / m for o, m in zip(ones, manys, strict=True))
    print(f"benchmark {bench.meta.identifier}: {n_items} test items, {args.representation} "
          f"predictions (template sphere), CPU scoring, median of {args.rounds} rounds")  # fmt: skip
    print(f"1 worker (unsharded):             {one:7.1f} s  {n_items / one:6.2f} items/s")
    print(f"{args.workers} worker(s), shards of ~{shard_items} items: {many:7.1f} s  "
          f"{n_items / many:6.2f} items/s")  # fmt: skip
    how = "each pinned to a core of its own" if args.pin else "default threads, unpinned"
    print(f"time ratio 1 worker / {args.workers} workers ({how}): {ratio:.2f} "
          f"(rounds: {', '.join(f'{o / m:.2f}' for o, m in zip(ones, manys, strict=True))})")  # fmt: skip
    print(f"results identical bit for bit: {same}")
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1 / 5 / 15 min; other work shares these cores)")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
