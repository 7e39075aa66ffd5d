"""Shared fixtures of the test suite.

`tiny_benchmark`: a procedural benchmark of the `tiny` preset (13 classes, 2 train / 1 val /
2 test shapes per class, 2 views of 64 x 64, object frame, seed 0), built once per test
session (about 20-30 s on 2 cores). Set SVR_TEST_BENCHMARK to the folder of an existing
benchmark (e.g. one built with `python -m svr.data build --preset tiny --out DIR`) to reuse
it across runs instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_SEED = 0


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a built `tiny` benchmark (read-only: tests must not modify it)."""
    existing = os.environ.get("SVR_TEST_BENCHMARK")
    if existing:
        path = Path(existing).expanduser()
        if not (path / "benchmark.json").is_file():
            raise RuntimeError(
                f"SVR_TEST_BENCHMARK={existing!r} is not a benchmark folder (no benchmark.json); "
                "unset it or build one with `python -m svr.data build --preset tiny --out DIR`"
            )
        return path
    from svr.data.build import build_benchmark

    out = tmp_path_factory.mktemp("benchmarks") / "tiny"
    build_benchmark(
        out, preset="tiny", seed=TINY_SEED, workers=2, progress=lambda done, total: None
    )
    return out
