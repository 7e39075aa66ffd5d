"""Helpers shared by the app tests (test_inference, test_app, test_browser): tiny weights
made from the tiny benchmark with the models' own `prepare` + `save_pretrained` (networks
untrained: the recognition baselines still answer with real training shapes), the test app's
settings and an in-process launch, a free port, waiting for a server, and `python app.py`
started in a subprocess (also used by benchmarks/load_leaderboard.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

TINY_NETWORK = {"channels": (8, 16), "code_dim": 32, "image_size": 32}
TINY_OVERRIDES = {
    "clustering": {
        "n_clusters": 4,
        "output_resolution": 32,
        "members_per_cluster": 4,
        "kmeans_iterations": 5,
    },
    "retrieval": {"embedding_dim": 4, "sammon_iterations": 20},
    "voxel": {"decoder_channels": (8, 8, 8)},
}
TINY_METHODS = ("clustering", "retrieval", "voxel")


def make_tiny_weights(
    benchmark_dir: Path, out: Path, methods: tuple[str, ...] = TINY_METHODS
) -> Path:
    """Save prepared, untrained-network models of `methods` into `out/<name>/` (seconds)."""
    from svr.data.dataset import load_training_data
    from svr.data.layout import Benchmark
    from svr.models import REGISTRY

    bench = Benchmark(benchmark_dir)
    for name in methods:
        cls = REGISTRY[name]
        model = cls.from_config(**TINY_NETWORK, **TINY_OVERRIDES.get(name, {}))
        model.prepare(load_training_data(bench, "train", fields=cls.target_fields, image_size=32))
        model.save_pretrained(out / name)
    return out


def shared_tiny_weights(tmp_path_factory, benchmark_dir: Path) -> Path:
    """Tiny weights made once per test session (reused by every module that asks)."""
    out = tmp_path_factory.getbasetemp() / "svr_app_tiny_weights"
    done = out / ".complete"
    if not done.is_file():
        make_tiny_weights(benchmark_dir, out)
        done.write_text("ok")
    return out


def tiny_app_settings(root: Path, benchmark_dir: Path, weights: Path) -> Any:
    """Settings of an app under `root` on the tiny benchmark with tiny weights, no background
    preparation (SVR_PREPARE=0)."""
    from svr.settings import Settings

    return Settings.from_env(
        {
            "SVR_HOME": str(root / "home"),
            "SVR_BENCHMARK": str(benchmark_dir),
            "SVR_MODELS": str(weights),
            "SVR_PREPARE": "0",
            "SVR_TMP": str(root / "sessions"),
            "SVR_EXAMPLES": str(root / "examples"),
        }
    )


def launch_in_process(demo: Any, settings: Any) -> str:
    """Launch `demo` (from `app.build_app(settings)`) in this process on a free loopback port
    with the app's own launch arguments (blocked paths, upload cap, plain HTTP routes); wait
    until it serves and return its URL."""
    import app

    kwargs = app.launch_kwargs(settings, demo)
    kwargs.update(server_name="127.0.0.1", server_port=free_port())
    demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    url = f"http://127.0.0.1:{kwargs['server_port']}/"
    wait_until_serving(url)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, timeout: float = 60.0) -> None:
    start = time.time()
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.time() - start > timeout:
                raise
            time.sleep(0.2)


def start_app(
    home: Path, benchmark: Path, log: Path, timeout: float = 120.0, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Launch `python app.py` (SVR_PREPARE=0) on a free loopback port; (process, base URL).

    The caller must `stop_app` it. Waits until the page answers (at most `timeout` s)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(
        SVR_HOME=str(home), SVR_BENCHMARK=str(benchmark), SVR_PREPARE="0",
        GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False", SVR_TMP=str(home.parent / "sessions"),
        SVR_EXAMPLES=str(home.parent / "examples"), PYTHONUNBUFFERED="1",
    )  # fmt: skip
    environ.update(env)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO, env=environ, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "config", timeout=2) as response:
                if response.status == 200:
                    return proc, base
        except OSError:
            pass
        time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server process started by `start_app` (kill it after 15 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
