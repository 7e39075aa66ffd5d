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


# ----------------------------------------------------------------------------- databases
# The leaderboard's database-facing tests take `database_url` and so run twice: on a SQLite
# file and on a real PostgreSQL server (tests/pg_server.py, started once per session). Without
# PostgreSQL's binaries the PostgreSQL runs skip, unless SVR_REQUIRE_POSTGRES=1 (CI) makes
# them fail.


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server (`tests.pg_server.PostgresServer`), stopped at the end."""
    from pg_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)"
        if os.environ.get("SVR_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                f"{message}; SVR_REQUIRE_POSTGRES=1 requires it (apt-get install postgresql)"
            )
        pytest.skip(message)
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """The SQLAlchemy URL of a fresh, empty database: a SQLite file or a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'svr.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
