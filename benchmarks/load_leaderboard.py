"""Load test of the leaderboard server: concurrent submissions and reads on loopback.

Launches the real app (`python app.py`, SVR_PREPARE=0) on a fresh SVR_HOME against an
existing benchmark, then at the same instant uploads `--submissions` archives (each from its
own submitter; `--invalid` of them hostile) through `/submit` with gradio_client, plus 3
archives from one submitter over the per-day limit of 2, and `--reads` concurrent
`/leaderboard` reads (by default one POST /gradio_api/run/leaderboard each, from one event
loop, `--reader json` the plain GET /api/leaderboard.json instead; each of the `--reads` readers with its own session hash like a browser tab or a
gradio_client, `--anonymous` without; `--reader call` uses Gradio's two-step call-then-stream
route; gradio_client from
threads costs this process ~50 ms CPU per read, which on a small machine measures the client
rather than the server, and `--reader client` uses it anyway). While
the worker scores, it fires another wave of `--reads` concurrent reads every `--wave-every`
seconds (at most `--waves` waves), and waits until every accepted submission is done or
failed (at most `--timeout` s). Then prints:

- submissions by final status, refusals (with their reasons), lost (accepted but missing or
  unfinished) and duplicated (same submitter and archive twice) rows, failed rows without a
  reason;
- `/leaderboard` read latency (client round trip) p50 / p95 / max: all reads, and the reads
  issued while jobs were queued or scoring;
- one last wave of reads with the worker idle: its latencies and the server's CPU time per
  read (which, unlike wall latencies, does not depend on how busy the machine is);
- the server's peak RSS (VmHWM), wall times, and the machine's load average.

Exit code 0 when nothing is lost or duplicated, every submission ended done or failed with a
reason, the over-limit one was refused with a reason, and the p95 read latency while scoring
is under `--p95-limit` s; 1 otherwise.

    python benchmarks/load_leaderboard.py --benchmark /path/to/tiny [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):  # run as a script from anywhere
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from app_helpers import start_app, stop_app  # noqa: E402  (tests/app_helpers.py)

FINAL = ("done", "failed")


def _rss_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _letters(k: int) -> str:
    """a, b, ..., z, aa, ab, ...: submitter names that differ in letters, not numbers."""
    out = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        out = chr(97 + r) + out
    return out


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def make_archives(folder: Path, benchmark_dir: Path, n: int, n_invalid: int) -> list[Path]:
    """`n` archives: `n - n_invalid` valid ones (templates of spheres of distinct radii: the
    same predictions twice are a duplicate, whoever submits them), then hostile ones."""
    from leaderboard.archive import write_template
    from svr.data.layout import Benchmark

    benchmark = Benchmark(benchmark_dir)
    valid = []
    for k in range(n - n_invalid):
        path = folder / f"template_voxels_{k:02d}.zip"
        write_template(benchmark, path, "voxels", radius=0.12 + 0.019 * k)  # 1/32 cells: distinct
        valid.append(path)
    first = benchmark.items("test")[0].item_id
    manifest = json.dumps({"method": "bad", "representation": "voxels", "frame": "object"})
    nan = np.zeros((32, 32, 32), np.float32)
    nan[1, 2, 3] = np.nan
    hostile: list[Path] = []
    for k, (name, files) in enumerate(
        [
            ("nan", {f"{first}.npy": _npy(nan)}),
            ("unknown", {"chair/nope/0.npy": _npy(np.zeros((32, 32, 32), bool))}),
            ("bomb", {f"{first}.npy": b"\0" * (8 << 20)}),
            ("badmanifest", {"submission.json": b"{not json", f"{first}.npy": b""}),
        ]
    ):
        path = folder / f"hostile_{k}_{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            if "submission.json" not in files:
                zf.writestr("submission.json", manifest)
            for member, data in files.items():
                zf.writestr(member, data)
        hostile.append(path)
    out = valid + [hostile[k % len(hostile)] for k in range(n_invalid)]
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sse_outputs(text: str) -> Any:
    """The outputs of a finished `/gradio_api/call/<api>/<event>` stream (error: ValueError)."""
    event = None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data = line.split(":", 1)[1].strip()
            if event == "error":
                raise ValueError(f"the server answered with an error: {data[:200]}")
            return json.loads(data)
    raise ValueError(f"no complete event in the stream: {text[:200]!r}")


async def _http_wave(
    base: str, n: int, route: str = "run", sessions: list[str] | None = None
) -> list[float | str]:
    """`n` concurrent leaderboard reads from one event loop: "json" is GET
    /api/leaderboard.json (the plain route), "run" is one POST /gradio_api/run/leaderboard,
    "call" is POST /gradio_api/call/leaderboard then its event stream. Call k sends `sessions[k]` as its session hash, as a browser tab or a
    gradio_client does (without one, Gradio builds a fresh session state over every component
    of the app for each call). Each call's latency (s) or its error."""
    import asyncio

    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:

        async def one(k: int) -> float | str:
            start = time.monotonic()
            body: dict[str, Any] = {"data": []}
            if sessions:
                body["session_hash"] = sessions[k % len(sessions)]
            try:
                if route == "json":
                    answer = await http.get(base + "api/leaderboard.json")
                else:
                    answer = await http.post(base + f"gradio_api/{route}/leaderboard", json=body)
                answer.raise_for_status()
                if route == "json":
                    outputs = [answer.json()]
                elif route == "run":
                    outputs = answer.json()["data"]
                else:
                    event = answer.json()["event_id"]
                    stream = await http.get(base + f"gradio_api/call/leaderboard/{event}")
                    stream.raise_for_status()
                    outputs = _sse_outputs(stream.text)
                if not (isinstance(outputs, list) and isinstance(outputs[0], list)):
                    raise TypeError(f"not a list of records: {str(outputs)[:100]}")
                return time.monotonic() - start
            except Exception as exc:  # noqa: BLE001 - counted and reported
                return f"{type(exc).__name__}: {exc}"

        return list(await asyncio.gather(*(one(k) for k in range(n))))


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", type=Path, default=os.environ.get("SVR_TEST_BENCHMARK"),
                        help="an existing benchmark folder (default: $SVR_TEST_BENCHMARK)")  # fmt: skip
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--invalid", type=int, default=4, help="how many of them are hostile")
    parser.add_argument("--reads", type=int, default=50, help="concurrent reads per wave")
    parser.add_argument("--waves", type=int, default=8, help="read waves while scoring")
    parser.add_argument("--wave-every", type=float, default=10.0, help="seconds between waves")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for everything")
    parser.add_argument("--p95-limit", type=float, default=1.0)
    parser.add_argument("--reader", choices=("run", "json", "call", "client"), default="run",
                        help="reads from one event loop (run: one POST to Gradio's API; json: "
                        "GET /api/leaderboard.json; "
                        "call: POST then event stream), or with gradio_client from threads "
                        "(heavy: ~50 ms CPU per read here)")  # fmt: skip
    parser.add_argument("--anonymous", action="store_true",
                        help="HTTP reads without a session hash (a fresh Gradio session state "
                        "per read: the costly worst case)")  # fmt: skip
    parser.add_argument("--home", type=Path, default=None, help="(default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.benchmark is None or not (args.benchmark / "benchmark.json").is_file():
        parser.error("--benchmark must be a built benchmark folder (python -m svr.data build)")
    if not 0 <= args.invalid <= args.submissions:
        parser.error("--invalid must lie between 0 and --submissions")

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="svr-load-"))
    home = args.home or work / "home"
    archives = make_archives(work, args.benchmark, args.submissions, args.invalid)
    from leaderboard.archive import write_template
    from svr.data.layout import Benchmark

    bench = Benchmark(args.benchmark)
    probes = []  # 3 distinct archives from one submitter; the limit is 2 per day
    for rep in ("voxels", "points", "mesh"):
        write_template(bench, work / f"probe_{rep}.zip", rep)
        probes.append(work / f"probe_{rep}.zip")

    log = work / "app.log"
    load_start = os.getloadavg()[0]
    t0 = time.monotonic()
    proc, base = start_app(
        home, args.benchmark, log, timeout=180, SVR_MAX_PER_DAY="2", SVR_MAX_CONCURRENT="2"
    )
    boot_s = time.monotonic() - t0
    rss_peak = [0]
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.wait(0.5):
            rss_peak[0] = max(rss_peak[0], _rss_kib(proc.pid, "VmHWM"))

    threading.Thread(target=sample_rss, daemon=True).start()
    try:
        n_clients = 10
        sessions = [f"reader-{k}" for k in range(args.reads)]  # one per concurrent reader
        clients = [
            Client(base, verbose=False, httpx_kwargs={"timeout": 120}) for _ in range(n_clients)
        ]
        # distinct names: a trailing number or +tag shares one quota (leaderboard.identity)
        jobs = [(f"user {_letters(k)}", a, {"method": f"load {_letters(k)}"})
                for k, a in enumerate(archives)]  # fmt: skip
        jobs += [("probe", p, {"method": f"probe {p.stem}"}) for p in probes]
        barrier = threading.Barrier(len(jobs) + 1)
        reads: list[tuple[float, bool]] = []  # (latency s, issued while jobs were active)
        read_errors: list[str] = []
        active = [True]
        lock = threading.Lock()

        def do_submit(k: int) -> tuple[str, Any, float]:
            name, archive, meta = jobs[k]
            barrier.wait(60)
            start = time.monotonic()
            try:
                sid = clients[k % n_clients].predict(
                    handle_file(str(archive)), json.dumps(meta), name, api_name="/submit"
                )
                return "accepted", str(sid), time.monotonic() - start
            except Exception as exc:  # noqa: BLE001 - the reason is reported
                return "refused", str(exc), time.monotonic() - start

        wave_ends: list[int] = []  # len(reads) after each HTTP wave

        def wave(wait: bool) -> None:
            """`args.reads` concurrent reads."""
            if wait:
                barrier.wait(60)
            during = active[0]
            if args.reader == "client":
                with ThreadPoolExecutor(args.reads) as readers:
                    list(readers.map(lambda k: do_read(k, during), range(args.reads)))
                return
            import asyncio

            waves = _http_wave(base, args.reads, args.reader, None if args.anonymous else sessions)
            for result in asyncio.run(waves):
                with lock:
                    if isinstance(result, float):
                        reads.append((result, during))
                    else:
                        read_errors.append(result)
            wave_ends.append(len(reads))

        def do_read(k: int, during: bool) -> None:
            start = time.monotonic()
            try:
                records = clients[k % n_clients].predict(api_name="/leaderboard")
                if not isinstance(records, list):
                    raise TypeError(f"not a list: {type(records).__name__}")
                with lock:
                    reads.append((time.monotonic() - start, during))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    read_errors.append(f"{type(exc).__name__}: {exc}")

        t_load = time.monotonic()
        with ThreadPoolExecutor(len(jobs) + 1) as pool:
            subs = [pool.submit(do_submit, k) for k in range(len(jobs))]
            first_wave = pool.submit(wave, True)
            outcomes = [f.result() for f in subs]
            first_wave.result()
            upload_s = time.monotonic() - t_load
            accepted = [v for kind, v, _ in outcomes if kind == "accepted"]
            refused = [(jobs[k][0], v) for k, (kind, v, _) in enumerate(outcomes)
                       if kind == "refused"]  # fmt: skip
            rejected_ids = []
            for _, message in refused:
                words = message.split()
                for w, nxt in zip(words, words[1:], strict=False):
                    if w == "submission" and nxt.startswith("s") and len(nxt) == 17:
                        rejected_ids.append(nxt)  # the public id
                        break
            watched = sorted(set(accepted) | set(rejected_ids))
            statuses: dict[str, dict] = {}
            deadline = t_load + args.timeout
            waves, next_wave = 0, time.monotonic() + args.wave_every
            while time.monotonic() < deadline:
                pending = [s for s in watched if statuses.get(s, {}).get("status") not in FINAL]
                for sid in pending:
                    statuses[sid] = clients[0].predict(sid, api_name="/submission_status")
                if all(statuses[s]["status"] in FINAL for s in watched):
                    break
                if waves < args.waves and time.monotonic() >= next_wave:
                    wave(False)
                    waves += 1
                    next_wave = time.monotonic() + args.wave_every
                time.sleep(1.0)
            active[0] = False
            scoring_s = time.monotonic() - t_load
            # One more wave with the worker idle: the server's CPU time per read, which does
            # not depend on how busy the machine is (wall latencies do).
            n_before = len(reads)
            cpu0, client0 = _cpu_s(proc.pid), time.process_time()
            wave(False)
            cpu_per_read_ms = 1000 * (_cpu_s(proc.pid) - cpu0) / args.reads
            client_per_read_ms = 1000 * (time.process_time() - client0) / args.reads
            idle_lat = [lat for lat, _ in reads[n_before:]]
        rss_peak[0] = max(rss_peak[0], _rss_kib(proc.pid, "VmHWM"))
    finally:
        stop.set()
        stop_app(proc)

    with sqlite3.connect(home / "svr.db") as con:
        rows = con.execute(
            "SELECT public_id, status, submitter, archive_sha256, reason FROM submissions"
        ).fetchall()
    by_id = {r[0]: r for r in rows}
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    lost = [s for s in watched if s not in by_id or by_id[s][1] not in FINAL]
    pairs = [(r[2], r[3]) for r in rows]
    duplicates = len(pairs) - len(set(pairs))
    no_reason = [r[0] for r in rows if r[1] == "failed" and not r[4]]
    limit_refusals = [m for who, m in refused if who == "probe" and "limit" in m]
    unexplained = [m for _, m in refused if "rejected" not in m and "limit" not in m]
    all_lat = [lat for lat, _ in reads]
    busy_lat = [lat for lat, during in reads if during]
    bounds = [0, *wave_ends]
    per_wave = [
        round(_pct([lat for lat, _ in reads[a:b]], 95), 3)
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    figures = {
        "submissions": len(jobs),
        "accepted": len(accepted),
        "refused_at_once": len(refused),
        "refused_over_limit": len(limit_refusals),
        "rejected_recorded_failed": len(rejected_ids),
        "rows": len(rows),
        "final_status_counts": counts,
        "lost": lost,
        "duplicates": duplicates,
        "failed_without_reason": no_reason,
        "refusals_without_reason": unexplained,
        "reads": len(reads),
        "read_errors": len(read_errors),
        "read_waves_while_scoring": waves,
        "read_latency_s": {
            "p50": _pct(all_lat, 50),
            "p95": _pct(all_lat, 95),
            "max": max(all_lat, default=float("nan")),
        },  # fmt: skip
        "read_latency_while_scoring_s": {
            "n": len(busy_lat),
            "p50": _pct(busy_lat, 50),
            "p95": _pct(busy_lat, 95),
            "max": max(busy_lat, default=float("nan")),
        },  # fmt: skip
        "server_peak_rss_mib": round(rss_peak[0] / 1024, 1),
        "server_boot_s": round(boot_s, 1),
        "upload_phase_s": round(upload_s, 1),
        "until_all_final_s": round(scoring_s, 1),
        "idle_wave_latency_s": {"p50": _pct(idle_lat, 50), "p95": _pct(idle_lat, 95)},
        "p95_per_wave_s": per_wave,
        "server_cpu_ms_per_read_idle": round(cpu_per_read_ms, 1),
        "client_cpu_ms_per_read_idle": round(client_per_read_ms, 1),
        "load_average_1min": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        "cpus": os.cpu_count(),
    }
    ok = (
        not lost
        and not duplicates
        and not no_reason
        and not unexplained
        and len(limit_refusals) == 1
        and not read_errors
        and len(busy_lat) > 0
        and figures["read_latency_while_scoring_s"]["p95"] < args.p95_limit
    )
    print(f"server log: {log}")
    print(f"submissions sent {len(jobs)} ({args.invalid} hostile, 3 from one submitter over "
          f"a per-day limit of 2): accepted {len(accepted)}, refused at once {len(refused)} "
          f"({len(rejected_ids)} recorded as failed, {len(limit_refusals)} over the limit)")  # fmt: skip
    print(f"final status of the {len(rows)} rows: {counts}")
    print(f"lost {len(lost)}, duplicated {duplicates}, failed without a reason {len(no_reason)},"
          f" refusals without a reason {len(unexplained)}")  # fmt: skip
    for who, message in refused[:3]:
        print(f"  refusal for {who}: {message.splitlines()[0][:160]}")
    lat, busy = figures["read_latency_s"], figures["read_latency_while_scoring_s"]
    print(f"/leaderboard reads: {len(reads)} ok, {len(read_errors)} errors, in "
          f"{1 + waves} waves of {args.reads} concurrent reads")  # fmt: skip
    print(
        f"  all reads      p50 {lat['p50']:.3f} s  p95 {lat['p95']:.3f} s  max {lat['max']:.3f} s"
    )
    print(f"  while scoring  p50 {busy['p50']:.3f} s  p95 {busy['p95']:.3f} s  "
          f"max {busy['max']:.3f} s  (n={busy['n']})")  # fmt: skip
    if per_wave:
        print("  p95 of each wave (the first one meets the uploads): "
              + ", ".join(f"{v:.2f}" for v in per_wave) + " s")  # fmt: skip
    print(f"server peak RSS {figures['server_peak_rss_mib']} MiB; boot {boot_s:.1f} s, uploads "
          f"{upload_s:.1f} s, all final after {scoring_s:.1f} s")  # fmt: skip
    print(f"idle worker, {args.reads} concurrent reads: p50 {_pct(idle_lat, 50):.3f} s, p95 "
          f"{_pct(idle_lat, 95):.3f} s; CPU per read: server {cpu_per_read_ms:.1f} ms, "
          f"this client {client_per_read_ms:.1f} ms")  # fmt: skip
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {load_start:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end (wall latencies scale with it)")  # fmt: skip
    print("OK" if ok else "FAILED: a guarantee does not hold (see above)")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    if args.home is None:
        shutil.rmtree(work / "home", ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
