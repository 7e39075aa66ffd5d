"""What every part of the leaderboard service shares: settings, database, archive store,
benchmark, protocol and the read cache.

`ServiceState` is the base of `leaderboard.service.LeaderboardService`; the mixins of
`leaderboard.submissions`, `reads`, `ranking`, `comparison`, `auth` and `admin` build on the
attributes and helpers defined here and on nothing else of each other's but what their
docstrings name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update

from leaderboard import views
from leaderboard.db import Submission, make_engine, make_session_factory, upgrade, utcnow
from leaderboard.errors import ServiceError, public_message
from leaderboard.scratch import clean_scratch
from leaderboard.settings import LeaderboardSettings
from leaderboard.storage import ArchiveStore
from leaderboard.worker import redact

__all__ = ["ServiceState"]


class ServiceState:
    """Settings, database (migrated to the newest revision), archive store and benchmark of
    one leaderboard; see `LeaderboardService` for the arguments."""

    def __init__(
        self,
        settings: LeaderboardSettings,
        benchmark_dir: Path | None,
        score_fn: Callable[..., Any] | None = None,
        open_fn: Callable[..., Any] | None = None,
        protocol: Any = None,
        clock: Callable[[], float] | None = None,
    ):
        self.settings = settings
        self._clock: Callable[[], float] = clock or time.monotonic  # rate limits (seconds)
        self.benchmark_dir = None if benchmark_dir is None else Path(benchmark_dir)
        settings.home.mkdir(parents=True, exist_ok=True)
        from leaderboard.backup import restore_at_start

        restore_at_start(settings, self.benchmark_dir)  # database, archives, benchmark
        clean_scratch(settings.scratch_dir, unowned_after_s=3600.0)  # left by killed processes
        self.engine = make_engine(settings.database_url)
        upgrade(self.engine)
        self.factory = make_session_factory(self.engine)
        self.store = ArchiveStore(settings.archives_dir)
        self._score_fn = score_fn
        self._open_fn = open_fn
        self._protocol = protocol
        self._benchmark: Any = None
        self._benchmark_stamp: int | None = None  # mtime of the benchmark.json read
        self._submit_lock = threading.RLock()
        self._worker_thread: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._wake = threading.Event()
        self._cache: dict[str, Any] = {}
        self._analysis_lock = threading.Lock()
        self._backup: Any = None

    @property
    def protocol(self) -> Any:
        if self._protocol is None:
            from svr.evaluation import DEFAULT_PROTOCOL

            self._protocol = DEFAULT_PROTOCOL
        return self._protocol

    @property
    def headline_key(self) -> str:
        return self.protocol.headline_key

    @property
    def headline_label(self) -> str:
        return views.headline_label(self.headline_key)

    @property
    def benchmark(self) -> Any:
        if self.benchmark_dir is None:
            raise ServiceError("no benchmark is configured on this server; submissions are off")
        meta = self.benchmark_dir / "benchmark.json"
        try:
            stamp = meta.stat().st_mtime_ns
        except OSError:
            raise ServiceError(
                "the benchmark is not ready yet; try again in a few minutes"
            ) from None
        if self._benchmark is None or self._benchmark_stamp != stamp:
            # first use, or the benchmark was rebuilt (e.g. a rotated test secret): reread it
            from svr.data.layout import Benchmark

            benchmark = Benchmark(self.benchmark_dir)
            try:  # a compact build keeps only the default protocol's surface samples
                benchmark.check_protocol(self.protocol.n_samples, self.protocol.seed)
            except ValueError as exc:
                raise ServiceError(self.public_message(str(exc))) from None
            self._benchmark = benchmark
            self._benchmark_stamp = stamp
            for key in ("test_ids", "analysis", "visible_key"):  # derived from the old one
                self._cache.pop(key, None)
        return self._benchmark

    def _open(self) -> Callable[..., Any]:
        if self._open_fn is None:
            from leaderboard.archive import open_submission

            self._open_fn = open_submission
        return self._open_fn

    def _redact(self, text: str, upload: Path | None = None) -> str:
        return redact(text, (self.settings.home, self.benchmark_dir, upload))

    def public_message(self, text: str) -> str:
        """`text` with no server path in it (SVR_HOME, the benchmark, temporary, working
        and Python folders, any other absolute path): every message to a user goes
        through this."""
        return public_message(
            text, [(self.settings.home, "$SVR_HOME"), (self.benchmark_dir, "<benchmark>")]
        )

    def _set(self, sid: int, **values: Any) -> None:
        """Update one submission row (and its `updated_at`)."""
        with self.factory() as session:
            session.execute(
                update(Submission).where(Submission.id == sid).values(updated_at=utcnow(), **values)
            )
            session.commit()

    def _changed(self) -> None:
        """Forget the last visibility check: the next read queries the database."""
        self._cache.pop("visible_key", None)
