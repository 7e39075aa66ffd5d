"""Load test: N concurrent /reconstruct calls against a real server on loopback.

    python benchmarks/load_reconstruct.py [--requests 50] [--method NAME] [--image PATH]

Starts `python app.py` as a child process (SVR_PREPARE=0, a free port, the current
SVR_MODELS / SVR_HOME), waits until it serves, then submits all requests at once with
gradio_client and waits for every one. Prints how many completed, the latency percentiles
(submission to result) and the peak resident memory of the server process (sampled every
50 ms from /proc). Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB (Linux /proc)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--method", default=None, help="method name (default: the first with weights)"
    )
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for all requests")
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    sys.path.insert(0, str(REPO))
    from svr.inference import ModelStore
    from svr.settings import Settings

    settings = Settings.from_env()
    method = args.method or next(
        (m.name for m in ModelStore(settings.models_dir).methods() if m.has_weights), None
    )
    if method is None:
        print(f"no method has weights in {settings.models_dir}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="svr-load-"))
    image = args.image
    if image is None:
        from svr.examples import make_photo_examples

        image = make_photo_examples(tmp, classes=("chair",))[0].path
    port = _free_port()
    env = {
        **os.environ,
        "SVR_PREPARE": "0",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    server = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb(server.pid))
            time.sleep(0.05)

    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() - t0 > 120:
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.3)
        print(f"server up in {time.time() - t0:.1f} s at {url} (pid {server.pid}); method {method}")
        idle = _rss_mb(server.pid)
        threading.Thread(target=sample, daemon=True).start()
        client = Client(url, verbose=False)
        start = time.time()
        jobs = [
            (time.time(), client.submit(handle_file(str(image)), method, api_name="/reconstruct"))
            for _ in range(args.requests)
        ]
        latencies, failures = [], []
        for submitted, job in jobs:
            try:
                # /reconstruct returns (GLB, report)
                result, _report = job.result(timeout=max(1.0, args.timeout - (time.time() - start)))
                if not Path(result).is_file():
                    raise RuntimeError(f"no file at {result}")
                latencies.append(time.time() - submitted)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}")
        wall = time.time() - start
        stop.set()
        lat = np.array(latencies)
        print(
            f"{len(latencies)}/{args.requests} completed in {wall:.1f} s ({len(failures)} failed)"
        )
        if len(lat):
            p50, p90, p99 = np.percentile(lat, [50, 90, 99])
            print(f"latency s: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  max {lat.max():.2f}")
        print(f"server RSS: idle {idle:.0f} MB, peak {peak[0]:.0f} MB")
        for f in failures[:5]:
            print("failure:", f)
        return 0 if not failures else 1
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    raise SystemExit(main())
