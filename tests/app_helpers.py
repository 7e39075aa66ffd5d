"""Helpers shared by the app tests (test_inference, test_app, test_browser): tiny weights
made from the tiny benchmark with the models' own `prepare` + `save_pretrained` (networks
untrained: the recognition baselines still answer with real training shapes), a free port,
waiting for a server."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

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
