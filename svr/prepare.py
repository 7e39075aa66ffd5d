"""First-start preparation: run named steps in a background thread and report progress.

The app serves at once and calls `Preparation.start()`; the UI polls `status()` and
shows one line (step, done/total, elapsed) or, from `PreparationStatus.steps`, one row per
step. Steps are plain callables taking a progress callback `progress(done, total,
message="")`; `benchmark_step` builds what serving needs if it is missing: a compact
"serving" build (`svr.data.build`, content "serving": test split first, then validation;
no training split, which training or Oracle NN's seeding adds when they need it). A folder
that already holds a benchmark (of any content, also one built before compact builds
existed) is used as it is, so a restart with a persistent SVR_HOME builds nothing. Other
packages (the leaderboard's seeding) add their own steps: `svr` never imports them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from svr.settings import Settings

__all__ = [
    "Step",
    "StepState",
    "PreparationStatus",
    "Preparation",
    "benchmark_ready",
    "benchmark_step",
]

logger = logging.getLogger(__name__)

Progress = Callable[..., None]  # progress(done: int, total: int, message: str = "")


@dataclass(frozen=True)
class Step:
    """One preparation step: a name shown to users and a callable taking `progress`.
    `uniform`: its progress units take about the same time each, so the rate so far
    predicts the time left (False, e.g. for methods that take seconds or minutes each: no
    estimate is shown)."""

    name: str
    run: Callable[[Progress], object]
    skip_if: Callable[[], bool] = lambda: False
    uniform: bool = True


@dataclass
class StepState:
    """One step in a snapshot: state "pending", "running", "done", "skipped" (already there)
    or "failed"; done / total its last progress; started / finished epoch seconds or None;
    `uniform` as its `Step`'s."""

    name: str
    state: str = "pending"
    done: int = 0
    total: int = 0
    started: float | None = None
    finished: float | None = None
    uniform: bool = True

    @property
    def seconds(self) -> float | None:
        """Run time so far (running) or in all (finished); None before it starts."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


@dataclass
class PreparationStatus:
    """A snapshot: state is "idle", "running", "done" or "failed"; step counts are 1-based;
    `steps` holds one StepState per step, in order (fields above describe the current one)."""

    state: str = "idle"
    step: str = ""
    step_index: int = 0
    n_steps: int = 0
    done: int = 0
    total: int = 0
    started: float | None = None
    finished: float | None = None
    error: str = ""
    message: str = ""
    log: list[str] = field(default_factory=list)
    steps: list[StepState] = field(default_factory=list)

    @property
    def finished_ok(self) -> bool:
        return self.state == "done"

    def line(self) -> str:
        """One human-readable line."""
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        if self.state == "idle":
            return "Preparation: about to start."
        if self.state == "done":
            return f"Preparation finished in {elapsed:.0f} s. " + " ".join(self.log[-3:])
        if self.state == "failed":
            return f"Preparation failed at '{self.step}': {self.error}"
        share = (
            f" {self.done}/{self.total} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        )
        return f"Preparing ({self.step_index}/{self.n_steps}) {self.step}:{share}, {elapsed:.0f} s so far"


class Preparation:
    """Runs steps once, in order, in a daemon thread; thread-safe status snapshots."""

    def __init__(self, steps: list[Step]):
        self.steps = list(steps)
        self._status = PreparationStatus(
            n_steps=len(self.steps),
            steps=[StepState(step.name, uniform=step.uniform) for step in self.steps],
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call `callback` (no arguments) after all steps succeeded."""
        self._listeners.append(callback)

    def status(self) -> PreparationStatus:
        with self._lock:
            s = self._status
            steps = [StepState(**t.__dict__) for t in s.steps]
            return PreparationStatus(**{**s.__dict__, "log": list(s.log), "steps": steps})

    def start(self) -> None:
        """Start the background thread (no-op if already started)."""
        with self._lock:
            if self._thread is not None:
                return
            self._status.state = "running"
            self._status.started = time.time()
            self._thread = threading.Thread(target=self._run, name="svr-prepare", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _progress(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._status.done, self._status.total = int(done), int(total)
            self._status.message = str(message)
            if self._status.step_index:
                current = self._status.steps[self._status.step_index - 1]
                current.done, current.total = int(done), int(total)

    def _run(self) -> None:
        for index, step in enumerate(self.steps, start=1):
            start = time.time()
            with self._lock:
                self._status.step, self._status.step_index = step.name, index
                self._status.done = self._status.total = 0
                self._status.message = ""
                state = self._status.steps[index - 1]
                state.state, state.started = "running", start
            try:
                skipped = step.skip_if()
                if skipped:
                    message = f"{step.name}: already there."
                else:
                    step.run(self._progress)
                    message = f"{step.name}: done in {time.time() - start:.0f} s."
            except Exception as exc:  # noqa: BLE001 - reported in the UI and the log
                logger.exception("preparation step %r failed", step.name)
                with self._lock:
                    self._status.state, self._status.error = (
                        "failed",
                        f"{type(exc).__name__}: {exc}",
                    )
                    self._status.finished = time.time()
                    state.state, state.finished = "failed", self._status.finished
                return
            logger.info(message)
            with self._lock:
                self._status.log.append(message)
                state.state, state.finished = ("skipped" if skipped else "done"), time.time()
        with self._lock:
            self._status.state, self._status.finished = "done", time.time()
        for callback in self._listeners:
            try:
                callback()
            except Exception:  # noqa: BLE001
                logger.exception("preparation listener failed")


def benchmark_ready(benchmark_dir: str | Path, settings: Settings | None = None) -> bool:
    """True when `benchmark_dir` holds a built benchmark (its benchmark.json exists) and,
    given `settings` with a test secret, its test split was built from that secret."""
    meta_path = Path(benchmark_dir) / "benchmark.json"
    if not meta_path.is_file():
        return False
    return settings is None or not _needs_rebuild(meta_path, settings)


def _needs_rebuild(meta_path: Path, settings: Settings) -> bool:
    """A procedural benchmark whose test split does not come from the configured secret
    (built public, or from another, rotated secret) is rebuilt."""
    if settings.test_secret is None:
        return False
    from svr.data.layout import BenchmarkMeta

    try:
        meta = BenchmarkMeta.from_json(meta_path.read_text())
    except (OSError, ValueError, TypeError):
        return False  # unreadable: leave it to the readers' own errors
    if meta.source != "procedural":
        logger.warning(
            "SVR_TEST_SECRET is set but the benchmark is imported (%s): its test split is kept",
            meta.source,
        )
        return False
    return meta.test_split != "secret" or meta.test_fingerprint != settings.test_secret.fingerprint


def benchmark_step(settings: Settings) -> Step:
    """Build what serving needs of the `settings.preset` benchmark (a compact "serving" build:
    test split, then validation) into `settings.benchmark_dir` unless a benchmark is there; a
    procedural benchmark whose test split was not built from SVR_TEST_SECRET is rebuilt (the
    new build replaces the old one only when it is complete)."""

    def run(progress: Progress) -> object:
        from svr.data.build import build_benchmark

        meta_path = Path(settings.benchmark_dir) / "benchmark.json"
        rebuild = meta_path.is_file() and _needs_rebuild(meta_path, settings)
        if rebuild:
            logger.warning(
                "the benchmark in %s was not built from the configured test secret "
                "(fingerprint %s): rebuilding it",
                settings.benchmark_dir,
                settings.test_secret.fingerprint if settings.test_secret else "",
            )
        return build_benchmark(
            out=settings.benchmark_dir,
            preset=settings.preset,
            seed=settings.seed,
            frame=settings.frame,
            workers=settings.build_workers,
            overwrite=rebuild,
            progress=progress,
            test_secret=settings.test_secret,
            content="serving",
        )

    return Step(
        name=f"build the '{settings.preset}' benchmark's test and validation splits",
        run=run,
        skip_if=lambda: benchmark_ready(settings.benchmark_dir, settings),
    )
