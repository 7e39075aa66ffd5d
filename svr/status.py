"""The app's status panel: what first-start preparation and the baselines' scoring are doing,
in words, with progress bars and an estimate of the time left (no gradio, no server paths).

Inputs are snapshots: `svr.prepare.PreparationStatus` (steps, done/total, start time), the
step names, and a `ScoringState` the app reads from the leaderboard (built by the
`leaderboard` package, which `svr` never imports). `build_panel` turns them into a `Panel`
(one `StepRow` per step, problems with what to do); `panel_html` renders it; `EtaTracker`
remembers when each step was first seen so that the time left is a rate over what was
observed (seconds); `ConsoleReporter` logs a line per step and its progress.

The panel never says ready while a step or a baseline's scoring still runs.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from svr.prepare import PreparationStatus

__all__ = [
    "ConsoleReporter",
    "EtaTracker",
    "Panel",
    "Problem",
    "ScoringJob",
    "ScoringState",
    "StepRow",
    "build_panel",
    "duration_text",
    "panel_html",
    "public_text",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringJob:
    """One submission being scored: `done` of `total` test items after `seconds`."""

    method: str
    done: int
    total: int
    seconds: float


@dataclass(frozen=True)
class ScoringState:
    """The preparation's baseline submissions on the leaderboard (newest row per method).

    waiting: received, validated or queued; running: being scored; scored: done;
    failed: (method, reason without server paths); mean_seconds: mean scoring time of the
    scored ones (None before the first)."""

    waiting: int = 0
    running: tuple[ScoringJob, ...] = ()
    scored: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    mean_seconds: float | None = None

    @property
    def active(self) -> int:
        """Submissions not scored yet (waiting or running)."""
        return self.waiting + len(self.running)

    @property
    def total(self) -> int:
        return self.active + self.scored + len(self.failed)

    def eta_s(self) -> float | None:
        """Seconds until the last one is scored (one worker, in turn); None if unknown."""
        remaining = 0.0
        per_job = self.mean_seconds
        for job in self.running:
            if job.done <= 0 or job.total <= 0 or job.seconds <= 0:
                return None
            projected = job.seconds * job.total / job.done
            remaining += projected - job.seconds
            per_job = per_job or projected
        if self.waiting:
            if per_job is None:
                return None
            remaining += self.waiting * per_job
        return max(0.0, remaining)


@dataclass(frozen=True)
class Problem:
    """Something that went wrong, in words: what, why (no server paths), what to do."""

    what: str
    why: str
    todo: str


@dataclass(frozen=True)
class StepRow:
    """One line of the panel. state: waiting, running, done, skipped or failed."""

    name: str
    state: str
    done: int = 0
    total: int = 0
    eta_s: float | None = None
    note: str = ""

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1]; None when the step reports no count."""
        if self.state in ("done", "skipped"):
            return 1.0
        if self.total > 0:
            return min(1.0, max(0.0, self.done / self.total))
        return None


@dataclass(frozen=True)
class Panel:
    """What the panel shows. state: working, ready, failed or off; busy: poll again."""

    state: str
    headline: str
    rows: tuple[StepRow, ...] = ()
    problems: tuple[Problem, ...] = ()
    busy: bool = False

    def text(self) -> str:
        """The panel as plain text (the console, tests)."""
        lines = [self.headline]
        for row in self.rows:
            share = "" if row.fraction is None else f" {100 * row.fraction:.0f}%"
            lines.append(
                f"- [{row.state}] {row.name}{share}" + (f": {row.note}" if row.note else "")
            )
        for p in self.problems:
            lines.append(f"! {p.what}: {p.why} What to do: {p.todo}")
        return "\n".join(lines)


# ---------------------------------------------------------------- time left


def duration_text(seconds: float | None) -> str:
    """'about 40 s', 'about 3 min', 'about 1 h 20 min'; '' for None."""
    if seconds is None:
        return ""
    s = max(0.0, float(seconds))
    if s < 10:
        return "a few seconds"
    if s < 60:
        return f"about {10 * round(s / 10):.0f} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


class EtaTracker:
    """Time left in the running step, from the rate observed so far: items done since the
    step began (its own start time where the snapshot has one, else the first snapshot of
    it this tracker saw) over the time until the latest count was first seen, less the time
    spent since on the next item. None while there is no rate, and once the step takes
    longer than that estimate (a stalled count gives no made-up figure), and for a step
    whose units differ in length (`StepState.uniform` False). Thread-safe; one per app, fed
    by every poll."""

    def __init__(self) -> None:
        self._first: dict[int, tuple[float, int]] = {}  # step index -> (time, done)
        self._latest: dict[int, tuple[int, float]] = {}  # step index -> (done, first seen)
        self._lock = threading.Lock()

    def observe(self, status: PreparationStatus, now: float | None = None) -> float | None:
        """Seconds left in `status`'s running step, or None (see the class docstring)."""
        if status.state != "running" or status.step_index < 1:
            return None
        now = time.time() if now is None else now
        index = status.step_index
        with self._lock:
            t0, d0 = self._first.setdefault(index, (now, status.done))
            latest = self._latest.get(index)
            if latest is None or latest[0] != status.done:
                latest = self._latest[index] = (status.done, now)
        per_step = getattr(status, "steps", None) or []
        if len(per_step) >= index and not getattr(per_step[index - 1], "uniform", True):
            return None
        if len(per_step) >= index:
            begun = per_step[index - 1].started
        else:
            begun = status.started if index == 1 else None
        if begun is not None and begun < t0:  # the step's own start: count from there
            t0, d0 = begun, 0
        seen = latest[1]
        if status.total <= 0 or status.done <= d0 or seen <= t0:
            return None
        rate = (status.done - d0) / (seen - t0)
        left = (status.total - status.done) / rate - (now - seen)
        if left <= 0 and status.done < status.total:
            return None  # longer than estimated
        return max(0.0, left)


# ---------------------------------------------------------------- words, no paths

_ABSOLUTE = re.compile(r"(?<![\w:/.~>])(?:/[\w.@+\-]+)+/?")


def public_text(text: str, folders: Iterable[tuple[str | Path | None, str]] = ()) -> str:
    """`text` with each of `folders` ((path, label) pairs) replaced by its label, then any
    other absolute path replaced by '<path>' (URLs are left alone)."""
    pairs = []
    for folder, label in folders:
        if folder:
            pairs.append((str(folder).rstrip("/"), label))
            try:
                pairs.append((str(Path(folder).resolve()).rstrip("/"), label))
            except OSError:
                pass
    for folder, label in sorted(set(pairs), key=lambda p: -len(p[0])):
        if len(folder) > 1:
            text = re.sub(r"(?<![\w:/.])" + re.escape(folder) + r"(?=/|\b|$)", label, text)
    return _ABSOLUTE.sub("<path>", text)


_ADVICE = {
    "OSError": "check that SVR_HOME has free space and is writable, then restart the app",
    "PermissionError": "make SVR_HOME writable by the app (or point SVR_HOME elsewhere), "
    "then restart the app",
    "MemoryError": "give the app more memory or set SVR_BUILD_WORKERS=1, then restart it",
    "FileNotFoundError": "check the folders the settings name (SVR_BENCHMARK, SVR_MODELS), "
    "then restart the app",
}
_DEFAULT_ADVICE = (
    "restart the app to try again (finished steps are kept); the console log has the details"
)


def _failure(status: PreparationStatus, clean: Callable[[str], str]) -> Problem:
    kind, _, message = status.error.partition(": ")
    if not message:
        kind, message = "", status.error
    if "No space left" in message:
        todo = "free disk space under SVR_HOME (or point SVR_HOME at a larger disk), then restart"
    else:
        todo = _ADVICE.get(kind, _DEFAULT_ADVICE)
    why = clean(message.strip()) or "no reason was given"
    return Problem(f"Preparation stopped at '{status.step}'", why.rstrip(".") + ".", todo)


# ---------------------------------------------------------------- the panel

SCORING_STEP = "score the baselines on the leaderboard"


def _scoring_row(scoring: ScoringState) -> StepRow:
    finished = scoring.scored + len(scoring.failed)
    if scoring.active == 0:
        return StepRow(SCORING_STEP, "done", finished, finished, note=f"{scoring.scored} scored")
    parts = [f"{finished} of {scoring.total} scored"]
    parts += [f"now {j.method}: {j.done}/{j.total} items" for j in scoring.running if j.total]
    if scoring.waiting:
        parts.append(f"{scoring.waiting} waiting")
    eta = scoring.eta_s()
    return StepRow(SCORING_STEP, "running", finished, scoring.total, eta, ", ".join(parts))


_FROM_PREPARE = {"pending": "waiting"}  # svr.prepare.StepState.state -> StepRow.state


def _step_rows(status: PreparationStatus, names: list[str], eta: float | None) -> list[StepRow]:
    """One row per step, from the snapshot's per-step states (`PreparationStatus.steps`)
    where it has them, else from the current step's index and the log."""
    per_step = list(getattr(status, "steps", None) or [])
    rows = []
    for index, name in enumerate(names, start=1):
        current = index == status.step_index and status.state in ("running", "failed")
        if len(per_step) == len(names) and not current:
            st = per_step[index - 1]
            state = _FROM_PREPARE.get(st.state, st.state)
            took = (
                f"took {duration_text(st.seconds).replace('about ', '')}"
                if (state == "done" and st.seconds is not None)
                else ""
            )
            rows.append(StepRow(name, state, st.done, st.total, note=took))
        elif status.state == "done" or index < status.step_index:
            log = next((m for m in status.log if m.startswith(f"{name}: ")), "")
            note = log[len(name) + 2 :].rstrip(".")
            state = "skipped" if "already there" in note else "done"
            note = "" if note == _STATE_WORDS[state] else note.replace("done in", "took")
            rows.append(StepRow(name, state, note=note))
        elif current:
            state = "failed" if status.state == "failed" else "running"
            count = f"{status.done} of {status.total}" if status.total else ""
            note = "; ".join(x for x in (count, status.message) if x)
            rows.append(StepRow(name, state, status.done, status.total, eta, note))
        else:
            rows.append(StepRow(name, "waiting"))
    return rows


def build_panel(
    status: PreparationStatus | None,
    names: list[str],
    scoring: ScoringState | None = None,
    problems: Iterable[Problem] = (),
    eta_s: float | None = None,
    clean: Callable[[str], str] = public_text,
    benchmark_ready: bool = True,
) -> Panel:
    """The panel for these snapshots (see the module docstring).

    Args:
        status: the preparation's snapshot, None when background preparation is off.
        names: the preparation's step names, in order.
        scoring: the baselines' scoring, None when there is no leaderboard.
        problems: further problems (e.g. a baseline that could not be submitted).
        eta_s: seconds left in the running step (`EtaTracker.observe`).
        clean: removes server paths from error messages.
        benchmark_ready: whether a benchmark is there (shown when preparation is off).
    """
    extra = list(problems)
    if scoring is not None:
        extra += [
            Problem(f"{method} could not be scored", clean(reason).rstrip(".") + ".",
                    "a maintainer can rescore it from the Maintainers tab")
            for method, reason in scoring.failed
        ]  # fmt: skip
    if status is None:
        if not benchmark_ready:
            return Panel(
                "off",
                "No benchmark yet, and background preparation is off (SVR_PREPARE=0): build "
                "one with `python -m svr.data build --preset small --out DIR` and set "
                "SVR_BENCHMARK=DIR, or start the app with SVR_PREPARE=1.",
                problems=tuple(extra),
            )
        rows = [_scoring_row(scoring)] if scoring is not None and scoring.active else []
        busy = bool(rows)
        head = (
            _scoring_headline(scoring)
            if busy and scoring is not None
            else "Ready: the benchmark is there (background preparation is off, SVR_PREPARE=0)."
        )
        return Panel("working" if busy else "ready", head, tuple(rows), tuple(extra), busy)
    rows = _step_rows(status, names, eta_s)
    n = len(names)
    if status.state == "failed":
        extra.insert(0, _failure(status, clean))
        head = (
            f"Preparation stopped at step {status.step_index} of {n} ({status.step}); "
            "the demo still works with the shipped weights."
        )
        return Panel("failed", head, tuple(rows), tuple(extra), busy=False)
    if status.state in ("idle", "running"):
        if status.state == "idle" or status.step_index < 1:
            head = f"Preparing: about to start {n} step{'s' if n != 1 else ''}."
        else:
            left = duration_text(eta_s)
            head = (
                f"Preparing, step {status.step_index} of {n}: {status.step}"
                + (f" ({left} left in this step)" if left else "")
                + ". The demo works meanwhile with the shipped weights."
            )
        return Panel("working", head, tuple(rows), tuple(extra), busy=True)
    # every step ran: ready only once the baselines it submitted are scored
    if scoring is not None and (scoring.active or scoring.total):
        rows.append(_scoring_row(scoring))
    if scoring is not None and scoring.active:
        return Panel("working", _scoring_headline(scoring), tuple(rows), tuple(extra), True)
    took = (status.finished or time.time()) - (status.started or time.time())
    head = f"Ready: preparation took {duration_text(took).replace('about ', '')}"
    if scoring is not None and scoring.total:
        head += (
            f"; {scoring.scored} baseline{'s' if scoring.scored != 1 else ''} on the leaderboard"
        )
    head += "." + (f" {len(extra)} problem{'s' if len(extra) != 1 else ''} below." if extra else "")
    return Panel("ready", head, tuple(rows), tuple(extra), busy=False)


def _scoring_headline(scoring: ScoringState) -> str:
    left = duration_text(scoring.eta_s())
    return (
        f"Scoring the baselines: {scoring.scored + len(scoring.failed)} of {scoring.total} "
        "scored" + (f", {left} left" if left else "") + ". Their rows appear on the Leaderboard "
        "tab as each one is scored; the demo works meanwhile."
    )


_STATE_WORDS = {
    "waiting": "waiting",
    "running": "running",
    "done": "complete",
    "skipped": "already there",
    "failed": "stopped",
}


def panel_html(panel: Panel) -> str:
    """The panel as HTML: a headline, one row per step with a <progress> bar (indeterminate
    while a step reports no count), then the problems with what to do. Every text is
    escaped."""
    e = html.escape
    out = [f'<div class="svr-status" data-state="{e(panel.state)}">',
           f'<p class="svr-status-head">{e(panel.headline)}</p>']  # fmt: skip
    if panel.rows:
        out.append('<ol class="svr-steps">')
        for row in panel.rows:
            frac = row.fraction
            bar = (
                f'<progress max="100" value="{100 * frac:.0f}" aria-label="{e(row.name)}">'
                f"{100 * frac:.0f}%</progress>"
                if frac is not None
                else f'<progress aria-label="{e(row.name)}"></progress>'
                if row.state == "running"
                else '<progress max="100" value="0"></progress>'
            )
            left = duration_text(row.eta_s)
            detail = "; ".join(x for x in (row.note, f"{left} left" if left else "") if x)
            out.append(
                f'<li class="svr-step" data-state="{e(row.state)}">'
                f'<span class="svr-step-name">{e(row.name)}</span> {bar} '
                f'<span class="svr-step-state">{e(_STATE_WORDS.get(row.state, row.state))}'
                f"{': ' + e(detail) if detail else ''}</span></li>"
            )
        out.append("</ol>")
    for p in panel.problems:
        out.append(
            f'<p class="svr-problem"><strong>{e(p.what)}</strong>: {e(p.why)} '
            f"<em>What to do:</em> {e(p.todo)}</p>"
        )
    out.append("</div>")
    return "\n".join(out)


# ---------------------------------------------------------------- the console


@dataclass
class ConsoleReporter:
    """Logs the panel as it changes: a line when a step starts or ends, and its progress
    every `every_s` seconds (with the time left) while it runs. `panel` builds the current
    `Panel`; `start` runs a daemon thread that polls it every `poll_s` until not busy."""

    panel: Callable[[], Panel]
    every_s: float = 15.0
    poll_s: float = 1.0
    log: logging.Logger = field(default_factory=lambda: logger)
    _seen: dict[str, str] = field(default_factory=dict)
    _last: float = 0.0
    _thread: threading.Thread | None = None

    def report(self, now: float | None = None) -> Panel:
        """Log what changed since the last call; return the panel."""
        now = time.time() if now is None else now
        panel = self.panel()
        due = now - self._last >= self.every_s
        for row in panel.rows:
            before = self._seen.get(row.name)
            if row.state == before and not (row.state == "running" and due):
                continue
            if row.state == "waiting":
                self._seen[row.name] = row.state
                continue
            left = duration_text(row.eta_s)
            share = (
                ""
                if row.fraction is None or row.state != "running"
                else (f" {100 * row.fraction:.0f}%")
            )
            detail = "; ".join(x for x in (row.note, f"{left} left" if left else "") if x)
            level = logging.WARNING if row.state == "failed" else logging.INFO
            self.log.log(level, "%s: %s%s%s", row.name, _STATE_WORDS[row.state], share,
                         f" ({detail})" if detail else "")  # fmt: skip
            self._seen[row.name] = row.state
            if row.state == "running":
                self._last = now
        for p in panel.problems:
            if self._seen.get("!" + p.what) != p.why:
                self.log.warning("%s: %s What to do: %s", p.what, p.why, p.todo)
                self._seen["!" + p.what] = p.why
        if not panel.busy and self._seen.get("@head") != panel.headline:
            self.log.info("%s", panel.headline)
            self._seen["@head"] = panel.headline
        return panel

    def start(self) -> None:
        """Report in a daemon thread until the panel is no longer busy."""

        def loop() -> None:
            while True:
                try:
                    if not self.report().busy:
                        return
                except Exception:  # noqa: BLE001 - the console must not stop the app
                    self.log.exception("status report failed")
                    return
                time.sleep(self.poll_s)

        self._thread = threading.Thread(target=loop, name="svr-status-log", daemon=True)
        self._thread.start()


class StatusSource:
    """Builds the current `Panel` from the app's parts (thread-safe, cached `cache_s`).

    Args:
        preparation: the background preparation (None when SVR_PREPARE=0).
        scoring: () -> ScoringState | None, the baselines' scoring (None: no leaderboard).
        problems: () -> further problems (e.g. baselines that could not be submitted).
        benchmark_ready: () -> whether a benchmark is there.
        clean: removes server paths from messages.
        cache_s: how long one panel is reused (every open page polls it each second).
    """

    def __init__(
        self,
        preparation: object | None,
        scoring: Callable[[], ScoringState | None] | None = None,
        problems: Callable[[], list[Problem]] = list,
        benchmark_ready: Callable[[], bool] = lambda: True,
        clean: Callable[[str], str] = public_text,
        cache_s: float = 0.5,
    ):
        self.preparation = preparation
        self._scoring = scoring
        self._problems = problems
        self._benchmark_ready = benchmark_ready
        self._clean = clean
        self._cache_s = cache_s
        self._tracker = EtaTracker()
        self._lock = threading.Lock()
        self._cached: tuple[float, Panel] | None = None

    def _read_scoring(self) -> ScoringState | None:
        if self._scoring is None:
            return None
        try:
            return self._scoring()
        except Exception:  # noqa: BLE001 - the panel must not break the page
            logger.exception("could not read the leaderboard's scoring state")
            return None

    def panel(self) -> Panel:
        """The panel now."""
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self._cache_s:
                return self._cached[1]
        prep = self.preparation
        status = prep.status() if prep is not None else None  # type: ignore[attr-defined]
        names = [s.name for s in prep.steps] if prep is not None else []  # type: ignore[attr-defined]
        eta = self._tracker.observe(status) if status is not None else None
        scoring = self._read_scoring()
        panel = build_panel(
            status, names, scoring, self._problems(), eta, self._clean,
            benchmark_ready=self._benchmark_ready(),
        )  # fmt: skip
        with self._lock:
            self._cached = (now, panel)
        return panel
