"""Memory and disk of the real server per upload: every hostile upload and honest large ones.

Starts `python app.py` (SVR_PREPARE=0) on a fresh SVR_HOME against an existing benchmark
(tiny or small), then sends, one at a time, each upload of `tests/hostile_uploads.py`: the
hostile archives through `/submit`, an 81-megapixel PNG as a `data:` URL in the JSON body of
`/reconstruct`, a JSON body over the cap, a 20 MP photo through `/reconstruct`, and honest
large submissions (meshes for every
test item; one item at the limits in each mesh format and a 256^3 float32 grid). For each it
prints the server's RSS before, its peak during the request (VmHWM, reset per upload), after
the request, and once the submission is scored ("settled"); the sizes of SVR_HOME/scratch and
SVR_HOME/uploads afterwards, and whether the system temp folder's `gradio` folder grew; the
outcome; and the ratios to the targets: peak growth <= 300 MB, settled RSS within 100 MB of
the level before.

    python benchmarks/bench_memory.py --benchmark /path/to/tiny [--json out.json]

Exit code 0 when every hostile upload is refused with its reason, every honest one accepted,
and every upload meets both targets; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):  # run as a script from anywhere
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from app_helpers import start_app, stop_app  # noqa: E402  (tests/app_helpers.py)
from hostile_uploads import (  # noqa: E402
    Upload,
    data_url_png,
    honest_largest_items,
    honest_meshes,
    hostile_uploads,
)

PEAK_TARGET_MB = 300.0
SETTLE_TARGET_MB = 100.0


def proc_mb(pid: int, field: str) -> float:
    """A /proc/<pid>/status field (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def folder_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total / 1e6


def honest_photo(folder: Path) -> Path:
    """A 5000x4000 (20 MP) JPEG of a red ellipse on a grey gradient."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:4000, 0:5000].astype(np.float32)
    grey = (150 + 60 * xx / 5000)[..., None].repeat(3, axis=2)
    inside = ((xx - 2500) / 1400) ** 2 + ((yy - 2000) / 1000) ** 2 <= 1
    grey[inside] = (190, 50, 40)
    path = folder / "photo_20mp.jpg"
    Image.fromarray(grey.astype(np.uint8)).save(path, quality=90)
    return path


def post_json(url: str, body: bytes, timeout: float = 120) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")
    except OSError as exc:  # e.g. the connection reset before the response was read
        return 0, f"{type(exc).__name__}: {exc}"


def call_reconstruct_inline(base: str, data_url: str) -> str:
    """/reconstruct with the image inline in the JSON body; the outcome's text."""
    body = json.dumps({"data": [{"url": data_url, "path": None}, "retrieval"]}).encode()
    status, text = post_json(base + "gradio_api/call/reconstruct", body)
    if status != 200:
        return f"HTTP {status}: {text[:200]}"
    event = json.loads(text)["event_id"]
    with urllib.request.urlopen(f"{base}gradio_api/call/reconstruct/{event}", timeout=120) as r:
        return r.read().decode("utf-8", "replace")[-400:]


class Measure:
    """RSS before / peak / after one request, and settled once the server is idle."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> Measure:
        time.sleep(0.5)
        self.before = proc_mb(self.pid, "VmRSS")
        reset_peak(self.pid)
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start
        self.peak = proc_mb(self.pid, "VmHWM")
        self.after = proc_mb(self.pid, "VmRSS")


def wait_final(client: Any, sid: Any, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(sid, api_name="/submission_status")
        if status["status"] in ("done", "failed"):
            return status["status"]
        time.sleep(1)
    return "unfinished"


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="svr-mem-"))
    # this script's own client downloads go to its work folder, not the system temp folder
    os.environ["GRADIO_TEMP_DIR"] = str(work / "client")
    from gradio_client import Client, handle_file

    from svr.data.layout import Benchmark

    home = work / "home"
    ids = [i.item_id for i in Benchmark(args.benchmark).items("test")]
    print(f"writing uploads into {work} ...", flush=True)
    uploads = hostile_uploads(work / "uploads", ids[0])
    honest = [honest_meshes(work / "uploads", ids)] + honest_largest_items(work / "uploads", ids)
    from leaderboard.archive import write_template

    warm = work / "warm_up.zip"
    write_template(Benchmark(args.benchmark), warm, "points")
    inline = data_url_png()
    gradio_tmp = Path(tempfile.gettempdir()) / "gradio"
    tmp_before = folder_mb(gradio_tmp)
    proc, base = start_app(home, args.benchmark, work / "app.log", timeout=240)
    rows: list[dict[str, Any]] = []
    peak_rss = [0.0]
    stop = threading.Event()

    def sample() -> None:  # VmHWM is reset per upload; keep the overall peak too
        while not stop.wait(0.2):
            try:
                peak_rss[0] = max(peak_rss[0], proc_mb(proc.pid, "VmHWM"))
            except OSError:
                return

    threading.Thread(target=sample, daemon=True).start()
    try:
        client = Client(base, verbose=False, httpx_kwargs={"timeout": 600})

        def submit(upload: Upload, who: str) -> None:
            sid, outcome = None, ""
            with Measure(proc.pid) as m:
                try:
                    sid = client.predict(handle_file(str(upload.path)), "{}", who,
                                         api_name="/submit")  # fmt: skip
                    outcome = "accepted"
                except Exception as exc:  # noqa: BLE001 - the reason is the result
                    outcome = " ".join(str(exc).split())
            reset_peak(proc.pid)
            settled_state = wait_final(client, sid) if sid is not None else ""
            time.sleep(1.0)
            ok = (upload.fragment in outcome) if upload.fragment else outcome == "accepted"
            shown = outcome.split(" - ", 1)[-1]  # the item's reason, not the summary line
            rows.append(_row(upload.name, upload.path.stat().st_size, m, proc.pid, home,
                             shown + (f" -> {settled_state}" if settled_state else ""), ok))  # fmt: skip

        # imports and first-call caches load here, before anything is measured
        sid = client.predict(handle_file(str(warm)), "{}", "warm-up", api_name="/submit")
        wait_final(client, sid)
        time.sleep(1.0)
        baseline = proc_mb(proc.pid, "VmRSS")

        for k, upload in enumerate(uploads):
            submit(upload, f"mallory{k}")
        with Measure(proc.pid) as m:
            outcome = call_reconstruct_inline(base, inline)
        ok = "megapixels" in outcome
        rows.append(_row("image: 81 MP PNG as data: URL", len(inline), m, proc.pid, home,
                         " ".join(outcome.split())[-160:], ok))  # fmt: skip
        big_body = b'{"data": ["' + b"A" * (40 << 20) + b'", "retrieval"]}'
        with Measure(proc.pid) as m:
            status, text = post_json(base + "gradio_api/call/reconstruct", big_body)
        rows.append(_row("JSON body of 40 MB", len(big_body), m, proc.pid, home,
                         f"HTTP {status}: {text[:120]}", status == 413))  # fmt: skip
        photo = honest_photo(work / "uploads")
        small = work / "uploads" / "photo_small.jpg"  # loads the method's weights once
        Image.open(photo).resize((500, 400)).save(small)
        client.predict(handle_file(str(small)), "retrieval", api_name="/reconstruct")
        with Measure(proc.pid) as m:
            try:
                result = client.predict(handle_file(str(photo)), "retrieval",
                                        api_name="/reconstruct")  # fmt: skip
                glb = result[0] if isinstance(result, (list, tuple)) else result
                outcome = f"reconstructed ({Path(str(glb)).suffix})"
            except Exception as exc:  # noqa: BLE001 - the reason is the result
                outcome = " ".join(str(exc).split())
        rows.append(_row("honest: 20 MP photo, /reconstruct", photo.stat().st_size, m, proc.pid,
                         home, outcome, outcome.startswith("reconstructed")))  # fmt: skip
        for k, upload in enumerate(honest):
            submit(upload, f"alice{k}")
    finally:
        stop.set()
        stop_app(proc)
    tmp_growth = folder_mb(gradio_tmp) - tmp_before
    failed = _report(rows, baseline, peak_rss[0], tmp_growth, args.json)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def _row(name: str, size: int, m: Measure, pid: int, home: Path, outcome: str,
         ok: bool) -> dict[str, Any]:  # fmt: skip
    time.sleep(0.5)
    settled = proc_mb(pid, "VmRSS")
    # VmHWM was reset after the request: the peak while an accepted submission was scored
    scoring_peak = proc_mb(pid, "VmHWM") if "->" in outcome else float("nan")
    return {
        "upload": name, "upload_mb": size / 1e6, "seconds": m.seconds,
        "rss_before_mb": m.before, "rss_peak_mb": m.peak, "rss_after_mb": m.after,
        "rss_settled_mb": settled, "scoring_peak_mb": scoring_peak,
        "peak_growth_mb": m.peak - m.before,
        "settled_growth_mb": settled - m.before,
        "scratch_mb": folder_mb(home / "scratch"), "uploads_mb": folder_mb(home / "uploads"),
        "outcome": outcome, "outcome_ok": ok,
    }  # fmt: skip


def _report(rows: list[dict[str, Any]], baseline: float, overall_peak: float, tmp_growth: float,
            json_path: Path | None) -> int:  # fmt: skip
    head = (f"{'upload':34} {'MB':>6} {'s':>5} {'before':>7} {'peak':>7} {'after':>7} "
            f"{'settled':>7} {'peak/300':>8} {'settle/100':>10} {'scratch':>7} {'uploads':>7} "
            f"{'scoring':>7}")  # fmt: skip
    print(head)
    print("-" * len(head))
    failed = 0
    for r in rows:
        peak_ratio = r["peak_growth_mb"] / PEAK_TARGET_MB
        settle_ratio = max(r["settled_growth_mb"], 0.0) / SETTLE_TARGET_MB
        good = r["outcome_ok"] and peak_ratio <= 1 and settle_ratio <= 1
        failed += not good
        print(f"{r['upload'][:34]:34} {r['upload_mb']:6.1f} {r['seconds']:5.1f} "
              f"{r['rss_before_mb']:7.0f} {r['rss_peak_mb']:7.0f} {r['rss_after_mb']:7.0f} "
              f"{r['rss_settled_mb']:7.0f} {peak_ratio:8.2f} {settle_ratio:10.2f} "
              f"{r['scratch_mb']:7.1f} {r['uploads_mb']:7.1f} {r['scoring_peak_mb']:7.0f}"
              f"{'' if good else '  <-- FAIL'}")  # fmt: skip
        print(f"{'':34}   {r['outcome'][:150]}")
    print(f"RSS (MB) at start {baseline:.0f}, overall peak {overall_peak:.0f}; "
          f"system temp gradio/ folder grew by {tmp_growth:.1f} MB; load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"targets: peak growth <= {PEAK_TARGET_MB:.0f} MB, settled within "
          f"{SETTLE_TARGET_MB:.0f} MB of before; {len(rows) - failed}/{len(rows)} uploads meet "
          "both with the expected outcome")  # fmt: skip
    if json_path is not None:
        json_path.write_text(json.dumps({"rows": rows, "baseline_mb": baseline,
                                         "overall_peak_mb": overall_peak,
                                         "gradio_tmp_growth_mb": tmp_growth}, indent=2))  # fmt: skip
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", type=Path, required=True, help="a built benchmark")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not (args.benchmark / "benchmark.json").is_file():
        parser.error("--benchmark must be a built benchmark folder (python -m svr.data build)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
