"""First start, restart and restore of the app, measured; the `default` preset projected.

    python benchmarks/bench_first_start.py --preset small [--workers 1] [--work DIR]
                                           [--no-app | --app-only] [--timeout 3600]
    python benchmarks/bench_first_start.py --preset default --app-only   # about 40 min

1. Builds (library calls, one worker unless told otherwise):
   - the serving build of `--preset` (what the app builds first: test, then validation,
     compact) and, as the reference measured in the same run, the full build of the same
     preset and seed: seconds per shape and bytes per shape of each file kind, and the ratio;
   - the training split as Oracle NN's references (`add_training_split(..., "reference")`);
   - a sample of shapes with the `default` preset's settings (5 views of 137 px), for the
     projection's seconds per shape.
2. The app (`python app.py` on an empty SVR_HOME, SVR_PRESET=`--preset`): seconds from the
   start to serving (HTTP 200), to the first scored entry, to the complete seed leaderboard
   (every shipped method scored or failed); per method the prediction (between submissions)
   and scoring (worker's started / finished) times and items.
3. A restart on the same SVR_HOME: seconds to serving, whether the leaderboard is complete at
   once, and that nothing was built or submitted again.
4. Restore: a backup of that SVR_HOME to a local folder standing in for the Hub dataset, then
   `restore_state` into an empty SVR_HOME (seconds), and the app started on it (seconds to
   serving, leaderboard complete at once, nothing built).
5. The serving footprint (bytes under SVR_HOME by part) and the `default` projection,
   printed as a projection: bytes from the measured bytes per shape and file kind times the
   preset's shape counts; times from the measured seconds per shape (default settings) and
   per test item (prediction and scoring on `--preset`) times the default counts.

Prints one JSON object (also written to `<work>/first_start.json`) and a summary. Timings
depend on the load; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leaderboard.backup import LocalFolderTarget, backup, restore_state  # noqa: E402
from leaderboard.settings import LeaderboardSettings  # noqa: E402
from svr.data.build import PRESETS, Preset, add_training_split, build_benchmark  # noqa: E402
from svr.data.layout import Benchmark  # noqa: E402

QUIET = {"progress": lambda done, total: None}


def _bytes_by_kind(root: Path, splits: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{file kind: {"bytes": total, "per_shape": mean over the shapes of `splits`}}; kinds are
    file names, with the views as "views/*.png" and "views/cameras.json"."""
    totals: dict[str, int] = defaultdict(int)
    shapes = 0
    for split in splits:
        for folder in sorted((root / split).glob("*/*")):
            shapes += 1
            for path in folder.rglob("*"):
                if path.is_file():
                    rel = path.relative_to(folder).as_posix()
                    kind = (
                        "views/*.png" if rel.startswith("views/") and rel.endswith(".png") else rel
                    )
                    totals[kind] += path.stat().st_size
    return {
        k: {"bytes": v, "per_shape": round(v / max(shapes, 1))} for k, v in sorted(totals.items())
    } | {"_shapes": {"bytes": shapes, "per_shape": 1}}


def _du(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def measure_builds(preset: str, workers: int, work: Path) -> dict:
    out: dict = {"preset": preset, "workers": workers}
    serving = work / "serving"
    seconds, meta = _timed(
        build_benchmark, serving, preset=preset, workers=workers, content="serving", **QUIET
    )
    n = sum(sum(meta.counts[s].values()) for s in ("test", "val"))
    out["serving_build"] = {"seconds": round(seconds, 1), "shapes": n, "s_per_shape": seconds / n}
    out["serving_bytes"] = _bytes_by_kind(serving, ("test", "val"))
    seconds, meta = _timed(add_training_split, serving, "reference", workers=workers, **QUIET)
    n_train = sum(meta.counts["train"].values())
    out["reference_build"] = {
        "seconds": round(seconds, 1),
        "shapes": n_train,
        "s_per_shape": seconds / n_train,
    }
    out["reference_bytes"] = _bytes_by_kind(serving, ("train",))
    full = work / "full"
    seconds, meta = _timed(build_benchmark, full, preset=preset, workers=workers, **QUIET)
    n_full = sum(sum(meta.counts[s].values()) for s in ("train", "val", "test"))
    out["full_build"] = {
        "seconds": round(seconds, 1),
        "shapes": n_full,
        "s_per_shape": seconds / n_full,
    }
    out["full_bytes"] = _bytes_by_kind(full, ("test",))
    compact = sum(v["per_shape"] for k, v in out["serving_bytes"].items() if not k.startswith("_"))
    whole = sum(v["per_shape"] for k, v in out["full_bytes"].items() if not k.startswith("_"))
    out["bytes_per_test_shape"] = {
        "full": whole,
        "serving": compact,
        "ratio": round(whole / compact, 1),
    }
    shutil.rmtree(full)
    # seconds per shape with the default preset's settings (5 views of 137 px)
    d = PRESETS["default"]
    sample = Preset(
        "default-sample", train=0, val=1, test=2, views=d.views, image_size=d.image_size
    )
    seconds, meta = _timed(
        build_benchmark, work / "sample", preset=sample, workers=workers, content="serving", **QUIET
    )
    n = sum(sum(meta.counts[s].values()) for s in ("test", "val"))
    out["default_settings_serving"] = {
        "seconds": round(seconds, 1),
        "shapes": n,
        "s_per_shape": seconds / n,
    }
    out["default_settings_bytes"] = _bytes_by_kind(work / "sample", ("test", "val"))
    shutil.rmtree(work / "sample")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except Exception:  # noqa: BLE001 - not up yet
        return 0, b""


def _baselines(db: Path) -> list[dict]:
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute(
                "select method, status, created_at, started_at, finished_at, progress_total "
                "from submissions where baseline = 1 order by id"
            ).fetchall()
    except sqlite3.Error:
        return []
    keys = ("method", "status", "created_at", "started_at", "finished_at", "items")
    return [dict(zip(keys, r, strict=True)) for r in rows]


class App:
    """`python app.py` in a child process with its own SVR_HOME and port."""

    def __init__(self, home: Path, preset: str, workers: int, log: Path):
        self.port = _free_port()
        env = {**os.environ, "SVR_HOME": str(home), "SVR_PRESET": preset,
               "SVR_BUILD_WORKERS": str(workers), "GRADIO_SERVER_PORT": str(self.port),
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}  # fmt: skip
        env.pop("SVR_BENCHMARK", None)
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.start = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.home = home

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_serving(self, timeout: float) -> float:
        while time.time() - self.start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}; see {self.log.name}")
            if _get(self.url())[0] == 200:
                return time.time() - self.start
            time.sleep(0.25)
        raise TimeoutError("the app did not serve in time")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    import datetime as dt

    value = dt.datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def measure_app(preset: str, workers: int, work: Path, timeout: float, n_methods: int) -> dict:
    home = work / "home"
    out: dict = {}
    app = App(home, preset, workers, work / "first_start.log")
    try:
        out["first_start_to_serving_s"] = round(app.wait_serving(timeout), 1)
        first = complete = None
        db = home / "svr.db"
        loads = []
        while time.time() - app.start < timeout:
            loads.append(os.getloadavg()[0])
            rows = _baselines(db)
            if first is None and any(r["status"] == "done" for r in rows):
                first = time.time() - app.start
            terminal = [r for r in rows if r["status"] in ("done", "failed")]
            if len(terminal) >= n_methods:
                complete = time.time() - app.start
                break
            if app.proc.poll() is not None:
                raise RuntimeError(f"the app exited; see {app.log.name}")
            time.sleep(1.0)
        bench = home / "benchmark"
        meta = Benchmark(bench).meta
        out["load_average_1min_mean_max"] = [round(sum(loads) / len(loads), 2), max(loads)]
        out["first_score_s"] = None if first is None else round(first, 1)
        out["complete_seed_s"] = None if complete is None else round(complete, 1)
        out["serving_build_s_in_app"] = meta.extra.get("build_seconds")
        out["reference_build_s_in_app"] = meta.extra.get("train_build_seconds")
        rows = _baselines(db)
        methods, last = [], None
        for r in sorted(rows, key=lambda r: _epoch(r["created_at"]) or 0):
            created, started, finished = (
                _epoch(r[k]) for k in ("created_at", "started_at", "finished_at")
            )
            methods.append({
                "method": r["method"], "status": r["status"], "items": r["items"],
                "predict_s": None if last is None else round(created - last, 1),
                "score_s": None if not (started and finished) else round(finished - started, 1),
            })  # fmt: skip
            last = created
        out["methods"] = methods
        out["seed_rows"] = [(r["method"], r["status"]) for r in rows]
    finally:
        app.stop()
    stamp = (home / "benchmark" / "benchmark.json").stat().st_mtime_ns
    archives = sorted(p.name for p in (home / "archives").rglob("*") if p.is_file())
    # restart
    app = App(home, preset, workers, work / "restart.log")
    try:
        out["restart_to_serving_s"] = round(app.wait_serving(timeout), 1)
        rows = _baselines(home / "svr.db")
        out["restart_complete_at_serving"] = len([r for r in rows if r["status"] == "done"])
        time.sleep(5)  # let its preparation run: it must find everything there
        rows_after = _baselines(home / "svr.db")
    finally:
        app.stop()
    out["restart_did_no_work"] = bool(
        (home / "benchmark" / "benchmark.json").stat().st_mtime_ns == stamp
        and len(rows_after) == len(rows)
        and sorted(p.name for p in (home / "archives").rglob("*") if p.is_file()) == archives
    )
    out["footprint_bytes"] = {
        "benchmark (test + val)": _du(home / "benchmark" / "test")
        + _du(home / "benchmark" / "val"),
        "benchmark train (Oracle NN references)": _du(home / "benchmark" / "train"),
        "database": _du(home / "svr.db"),
        "archives": _du(home / "archives"),
        "SVR_HOME in all": _du(home),
    }
    # restore onto an empty SVR_HOME from a local folder standing in for the Hub
    hub = LocalFolderTarget(work / "hub")
    seconds, _ = _timed(backup, LeaderboardSettings(home=home), hub, home / "benchmark")
    out["backup_s"] = round(seconds, 1)
    out["backup_bytes"] = _du(work / "hub")
    fresh = work / "fresh-home"
    seconds, _ = _timed(restore_state, LeaderboardSettings(home=fresh), hub, fresh / "benchmark")
    out["restore_s"] = round(seconds, 1)
    app = App(fresh, preset, workers, work / "restored.log")
    try:
        out["restored_to_serving_s"] = round(app.wait_serving(timeout), 1)
        rows = _baselines(fresh / "svr.db")
        out["restored_complete_at_serving"] = len([r for r in rows if r["status"] == "done"])
        time.sleep(5)
        out["restored_did_no_build"] = not (fresh / "benchmark" / "train").exists() and len(
            _baselines(fresh / "svr.db")
        ) == len(rows)
    finally:
        app.stop()
    return out


def project_default(builds: dict, app: dict | None, preset: str) -> dict:
    """The `default` preset from the measured rates (a projection, not a measurement)."""
    d, p = PRESETS["default"], PRESETS[preset]
    classes = len(d.classes)
    test, val, train = classes * d.test, classes * d.val, classes * d.train
    per = builds["default_settings_bytes"]
    serving_shape = sum(v["per_shape"] for k, v in per.items() if not k.startswith("_"))
    ref = builds["reference_bytes"]
    ref_shape = sum(v["per_shape"] for k, v in ref.items() if not k.startswith("_"))
    workers = builds["workers"]
    s_shape = builds["default_settings_serving"]["s_per_shape"]
    out = {
        "shapes": {"test": test, "val": val, "train (references)": train},
        "serving_bytes": int(serving_shape * (test + val)),
        "reference_bytes": int(ref_shape * train),
        "build_test_s": round(s_shape * test / workers),
        "build_serving_s": round(s_shape * (test + val) / workers),
        "build_references_s": round(builds["reference_build"]["s_per_shape"] * train / workers),
    }
    out["serving_footprint_bytes"] = out["serving_bytes"] + out["reference_bytes"]
    if app and app.get("complete_seed_s") and app.get("first_score_s"):
        # after the build, seeding (prediction in the seeding thread, scoring in the worker,
        # overlapping) scales with the number of test items; constant costs (loading models)
        # scale too, so this errs on the long side
        scale = (test * d.views) / (classes * p.test * p.views)
        built = (app["first_start_to_serving_s"] or 0) + (app["serving_build_s_in_app"] or 0)
        refs = app.get("reference_build_s_in_app") or 0
        out["items_per_method"] = test * d.views
        out["item_scale"] = round(scale, 1)
        serve = app["first_start_to_serving_s"] or 0
        out["first_score_s"] = round(
            serve + out["build_serving_s"] + scale * (app["first_score_s"] - built)
        )
        out["complete_seed_s"] = round(
            serve
            + out["build_serving_s"]
            + out["build_references_s"]
            + scale * (app["complete_seed_s"] - built - refs)
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "default"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="work folder (kept)")
    parser.add_argument("--no-app", action="store_true", help="builds only")
    parser.add_argument(
        "--app-only", action="store_true",
        help="steps 2-5 only, no reference builds and no projection (the way to measure default)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    if args.app_only and args.no_app:
        parser.error("--app-only and --no-app exclude each other")
    if args.preset == "default" and not args.app_only:
        parser.error("--preset default needs --app-only (its full reference build takes 40 min)")
    work = args.work or Path(tempfile.mkdtemp(prefix="svr-first-start-"))
    if work.exists() and any(work.iterdir()):
        parser.error(f"{work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    from svr.models import REGISTRY

    result: dict = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    if not args.app_only:
        result["builds"] = measure_builds(args.preset, args.workers, work)
        shutil.rmtree(work / "serving")
    result["app"] = (
        None
        if args.no_app
        else measure_app(args.preset, args.workers, work, args.timeout, len(REGISTRY))
    )
    if not args.app_only:
        result["default_projection"] = project_default(result["builds"], result["app"], args.preset)
    result["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=1, default=str)
    (work / "first_start.json").write_text(text)
    print(text)
    if args.app_only:
        return 0
    b = result["builds"]["bytes_per_test_shape"]
    print(f"\nbytes per test shape: full {b['full']:,}, serving {b['serving']:,} "
          f"(ratio {b['ratio']}x, reference: the full build in this run)")  # fmt: skip
    proj = result["default_projection"]
    print(f"default (PROJECTION): serving {proj['serving_footprint_bytes'] / 1e9:.2f} GB, "
          f"build {proj['build_serving_s'] / 60:.1f} min (+ {proj['build_references_s'] / 60:.1f} "
          f"min of references before Oracle NN)")  # fmt: skip
    if "complete_seed_s" in proj:
        print(f"default (PROJECTION): first score {proj['first_score_s'] / 60:.1f} min, complete "
              f"seed leaderboard {proj['complete_seed_s'] / 60:.1f} min")  # fmt: skip
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
