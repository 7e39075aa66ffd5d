"""A real PostgreSQL server for the tests: Debian's `initdb` / `pg_ctl` run into a temporary
folder, listening on a free loopback port only (no Unix socket), password authentication
with a random password, durability off (fsync) for speed.

`find_bindir()` looks in SVR_POSTGRES_BIN, then /usr/lib/postgresql/<version>/bin (newest
first); `PostgresServer` runs the server as the current user, or as `postgres` (else
`nobody`) when the tests run as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from app_helpers import free_port

__all__ = ["find_bindir", "PostgresServer"]


def find_bindir() -> Path | None:
    """The folder of `initdb` and `pg_ctl`, or None when PostgreSQL is not installed."""
    explicit = os.environ.get("SVR_POSTGRES_BIN")
    candidates = [explicit] if explicit else []
    found = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        found,
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _server_user() -> str | None:
    """None (the current user) unless running as root: then `postgres`, else `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists")


class PostgresServer:
    """One PostgreSQL cluster in a fresh temporary folder (removed by `stop`).

    `url(name)` is the SQLAlchemy URL (psycopg 3) of database `name`; `create_database` /
    `drop_database` make and remove per-test databases; `restart` stops the server (fast
    mode: clients are disconnected) and starts it again on the same port.
    """

    user_name = "svr"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.run_as = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="svr-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = secrets.token_hex(16)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], user=self.run_as, cwd=self.root,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.is_file() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}\n{log}"
            )

    def start(self) -> None:
        """initdb (first time only) and start; returns once the server accepts connections."""
        if not self.data.exists():
            pwfile = self.root / "pw"
            pwfile.write_text(self.password)
            if self.run_as is not None:
                entry = pwd.getpwnam(self.run_as)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb", "-D", str(self.data), "-U", self.user_name, "--pwfile", str(pwfile),
                "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
            pwfile.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, remove: bool = True) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Stop (disconnecting every client) and start again on the same port."""
        self.stop(remove=False)
        self.start()

    def dsn(self, database: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={self.user_name} "
            f"password={self.password} dbname={database}"
        )

    def url(self, database: str) -> str:
        return (
            f"postgresql+psycopg://{self.user_name}:{self.password}@127.0.0.1:{self.port}/"
            f"{database}"
        )

    def create_database(self) -> str:
        """A fresh empty database; its name."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
