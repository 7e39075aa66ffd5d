"""The status panel (`svr.status`): steps, progress, time left, words for failures, no server
paths, never ready while something runs; the console lines; the baselines' scoring read
from a real leaderboard database (`leaderboard.baseline_progress`)."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from svr.prepare import Preparation, PreparationStatus, Step
from svr.status import (
    ConsoleReporter,
    EtaTracker,
    Problem,
    ScoringJob,
    ScoringState,
    StatusSource,
    build_panel,
    duration_text,
    panel_html,
    public_text,
)

NAMES = ["build the 'small' benchmark", "start the worker", "submit the baselines"]
NOT_READY_WORDS = re.compile(r"\b(ready|done|finished)\b", re.IGNORECASE)


def _running(step_index: int, done: int, total: int, started: float = 1000.0, **kw):
    log = [f"{NAMES[i]}: done in 12 s." for i in range(step_index - 1)]
    return PreparationStatus(
        state="running", step=NAMES[step_index - 1], step_index=step_index, n_steps=len(NAMES),
        done=done, total=total, started=started, log=log, **kw,
    )  # fmt: skip


def _done(started: float = 1000.0, finished: float = 1095.0) -> PreparationStatus:
    log = [f"{NAMES[0]}: already there.", *(f"{n}: done in 40 s." for n in NAMES[1:])]
    return PreparationStatus(
        state="done", step=NAMES[-1], step_index=3, n_steps=3, started=started,
        finished=finished, log=log,
    )  # fmt: skip


def test_duration_text_rounds_to_what_a_reader_needs():
    assert duration_text(None) == ""
    assert duration_text(4) == "a few seconds"
    assert duration_text(44) == "about 40 s"
    assert duration_text(150) == "about 2 min" or duration_text(150) == "about 3 min"
    assert duration_text(59 * 60) == "about 59 min"
    assert duration_text(80 * 60) == "about 1 h 20 min"


def test_eta_of_the_first_step_counts_from_the_preparations_start():
    tracker = EtaTracker()
    # 30 of 100 after 30 s: 1 item/s, 70 left
    assert tracker.observe(_running(1, 30, 100, started=1000.0), now=1030.0) == pytest.approx(70)
    assert tracker.observe(_running(1, 0, 100), now=1001.0) is None  # no rate yet


def test_eta_of_a_later_step_counts_from_when_it_was_first_seen():
    tracker = EtaTracker()
    assert tracker.observe(_running(2, 10, 110), now=2000.0) is None  # first sight: no rate
    # 20 more in 10 s: 2 items/s, 80 left -> 40 s
    assert tracker.observe(_running(2, 30, 110), now=2010.0) == pytest.approx(40)
    # the count stays: the time since it last moved is taken off, then no figure at all
    assert tracker.observe(_running(2, 30, 110), now=2030.0) == pytest.approx(20)
    assert tracker.observe(_running(2, 30, 110), now=2100.0) is None
    assert tracker.observe(_running(3, 0, 7), now=2011.0) is None  # a new step starts over
    assert tracker.observe(_done(), now=2012.0) is None


def test_no_eta_for_a_step_whose_units_differ_in_length():
    """The seeding's methods take seconds (voxel) to minutes (occupancy): the rate of the
    quick ones would promise "about 40 s" for the slow one, so such a step has no figure."""
    release, reported = threading.Event(), threading.Event()

    def run(progress):
        progress(2, 7, "occupancy: predicting the test split")
        reported.set()
        release.wait(10)

    for uniform in (True, False):
        release.clear(), reported.clear()
        prep = Preparation([Step("submit the baselines", run, uniform=uniform)])
        prep.start()
        try:
            assert reported.wait(10)
            status = prep.status()
            assert status.steps[0].uniform is uniform
            started = status.steps[0].started
            left = EtaTracker().observe(status, now=started + 20.0)  # 2 methods in 20 s
            assert (left == pytest.approx(50, abs=1)) if uniform else left is None
        finally:
            release.set()


def test_a_running_step_shows_steps_progress_and_time_left_and_is_not_ready():
    status = _running(2, 3, 7, message="Voxel decoder: predicting the test split")
    panel = build_panel(status, NAMES, eta_s=130.0)
    assert panel.state == "working" and panel.busy
    assert [r.state for r in panel.rows] == ["done", "running", "waiting"]
    assert panel.rows[1].fraction == pytest.approx(3 / 7)
    assert "step 2 of 3" in panel.headline and "about 2 min left" in panel.headline
    assert not NOT_READY_WORDS.search(panel.headline)
    page = panel_html(panel)
    assert page.count("<progress") == 3
    assert 'value="43"' in page  # 3 of 7
    assert "3 of 7; Voxel decoder: predicting the test split; about 2 min left" in page


def test_after_preparation_the_panel_waits_for_the_baselines_scoring():
    scoring = ScoringState(
        waiting=2, running=(ScoringJob("Voxel decoder", 26, 52, 30.0),), scored=2,
        mean_seconds=40.0,
    )  # fmt: skip
    assert scoring.eta_s() == pytest.approx(30 + 2 * 40)
    panel = build_panel(_done(), NAMES, scoring)
    assert panel.state == "working" and panel.busy
    assert not NOT_READY_WORDS.search(panel.headline), panel.headline
    assert "2 of 5 scored" in panel.headline and "about 2 min left" in panel.headline
    assert panel.rows[-1].state == "running"
    assert "now Voxel decoder: 26/52 items" in panel.rows[-1].note
    # once every baseline is scored: ready, with how long preparation took
    finished = ScoringState(scored=5, mean_seconds=40.0)
    panel = build_panel(_done(), NAMES, finished)
    assert panel.state == "ready" and not panel.busy
    assert panel.headline.startswith("Ready: preparation took 1.5 min") or (
        panel.headline.startswith("Ready: preparation took 2 min")
    ), panel.headline
    assert "5 baselines on the leaderboard" in panel.headline
    assert [r.state for r in panel.rows] == ["skipped", "done", "done", "done"]


def test_a_failure_says_what_happened_and_what_to_do_without_server_paths(tmp_path):
    home = tmp_path / "svr-home"
    status = PreparationStatus(
        state="failed", step=NAMES[0], step_index=1, n_steps=3, started=1.0, finished=9.0,
        error=f"OSError: [Errno 28] No space left on device: '{home}/benchmark/test/x.npz'",
    )  # fmt: skip
    panel = build_panel(status, NAMES, clean=lambda t: public_text(t, [(home, "$SVR_HOME")]))
    assert panel.state == "failed" and not panel.busy
    assert "stopped at step 1 of 3" in panel.headline
    assert "the demo still works" in panel.headline
    problem = panel.problems[0]
    assert "$SVR_HOME/benchmark/test/x.npz" in problem.why
    assert "free disk space" in problem.todo
    page = panel_html(panel)
    assert str(tmp_path) not in page and "What to do:" in page
    # an error naming a path nobody configured: the path is hidden
    status.error = "ValueError: /srv/data/oracle does not hold the training shapes"
    problem = build_panel(status, NAMES).problems[0]
    assert problem.why == "<path> does not hold the training shapes."
    assert "restart the app" in problem.todo


def test_public_text_hides_paths_but_not_urls():
    text = "see https://example.org/a/b and /usr/lib/x.so or ~/notes and /tmp/abc/file.txt"
    out = public_text(text, [("/tmp/abc", "<tmp>")])
    assert "https://example.org/a/b" in out
    assert "/usr/lib" not in out and "<path>" in out
    assert "<tmp>/file.txt" in out


def test_baseline_problems_and_scoring_failures_are_listed_with_what_to_do():
    seed_problem = Problem(
        "Oracle NN was not added to the leaderboard", "it needs the training split.",
        "the other baselines are not affected",
    )  # fmt: skip
    scoring = ScoringState(scored=5, failed=(("Mean shape", "archive unreadable"),))
    panel = build_panel(_done(), NAMES, scoring, [seed_problem])
    assert panel.state == "ready" and "2 problems below" in panel.headline
    page = panel_html(panel)
    assert "Oracle NN was not added to the leaderboard" in page
    assert "Mean shape could not be scored" in page and "rescore" in page


def test_the_html_escapes_every_text():
    status = _running(1, 1, 2, message="<script>alert(1)</script>")
    page = panel_html(build_panel(status, ["<b>step</b>", "two", "three"]))
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>" not in page


def test_without_background_preparation_the_panel_says_how_to_get_a_benchmark():
    panel = build_panel(None, [], benchmark_ready=False)
    assert panel.state == "off" and "python -m svr.data build" in panel.headline
    panel = build_panel(None, [], ScoringState(scored=3))
    assert panel.state == "ready" and "SVR_PREPARE=0" in panel.headline
    panel = build_panel(None, [], ScoringState(waiting=1, scored=3))
    assert panel.state == "working" and panel.busy


def _steps(gate: threading.Event, fail: bool = False) -> list[Step]:
    def counting(progress):
        for i in range(4):
            progress(i + 1, 4, f"item {i + 1}")
        gate.wait(10)

    def boom(progress):
        raise RuntimeError("the archive /var/lib/x/y.zip is broken")

    second = Step("second", boom) if fail else Step("second", lambda p: None)
    return [Step("first", counting), second]


def test_status_source_follows_a_real_preparation():
    gate = threading.Event()
    prep = Preparation(_steps(gate))
    source = StatusSource(prep, cache_s=0.0)
    assert source.panel().headline.startswith("Preparing: about to start 2 steps")
    prep.start()
    deadline = time.time() + 10
    while prep.status().done < 4 and time.time() < deadline:
        time.sleep(0.01)
    panel = source.panel()
    assert panel.busy and [r.state for r in panel.rows] == ["running", "waiting"]
    assert panel.rows[0].fraction == 1.0 and "4 of 4; item 4" in panel.rows[0].note
    gate.set()
    assert prep.join(10)
    panel = source.panel()
    assert panel.state == "ready" and not panel.busy
    assert [r.state for r in panel.rows] == ["done", "done"]


def test_the_console_logs_each_step_its_progress_and_failures(caplog):
    gate = threading.Event()
    prep = Preparation(_steps(gate, fail=True))
    source = StatusSource(prep, cache_s=0.0)
    reporter = ConsoleReporter(source.panel, every_s=0.0)
    caplog.set_level(logging.INFO, logger="svr.status")
    prep.start()
    deadline = time.time() + 10
    while prep.status().done < 4 and time.time() < deadline:
        time.sleep(0.01)
    reporter.report()
    gate.set()
    assert prep.join(10)
    reporter.report()
    reporter.report()  # nothing new: no new lines
    lines = [r.getMessage() for r in caplog.records if r.name == "svr.status"]
    assert lines[0].startswith("first: running 100% (4 of 4; item 4")
    assert "first: complete (took a few seconds)" in lines
    assert any(line.startswith("second: stopped") for line in lines)
    problem = [line for line in lines if line.startswith("Preparation stopped at 'second'")]
    assert len(problem) == 1 and "/var/lib" not in problem[0] and "What to do" in problem[0]
    assert sum(line.startswith("Preparation stopped at step 2 of 2") for line in lines) == 1


# ---- the baselines' scoring, read from a real leaderboard database ------------------------


def test_baseline_progress_counts_waiting_scoring_and_scored_baselines(tmp_path):
    from leaderboard_fakes import make_service, scores_for, write_fake_archive

    from leaderboard.baseline_progress import baseline_progress
    from leaderboard.seed import SEED_SUBMITTER

    service, ids = make_service(tmp_path)
    try:
        assert baseline_progress(service) == ScoringState()
        rng = np.random.default_rng(0)
        for name, value in (("Clustering", 0.3), ("Retrieval", 0.4)):
            archive = write_fake_archive(
                tmp_path / f"{name}.zip", name, scores_for(ids, value, rng)
            )
            service.submit(archive, {"method": name}, SEED_SUBMITTER, baseline=True)
        other = write_fake_archive(tmp_path / "mine.zip", "Mine", scores_for(ids, 0.5, rng))
        service.submit(other, {"method": "Mine"}, "alice")  # not a baseline: not counted
        state = baseline_progress(service)
        assert (state.waiting, state.running, state.scored) == (2, (), 0)
        panel = build_panel(_done(), NAMES, state)
        assert panel.busy and "0 of 2 scored" in panel.headline
        worker = service.make_worker()
        while worker.run_once() is not None:
            pass
        state = baseline_progress(service)
        assert (state.waiting, state.running, state.scored, state.failed) == (0, (), 2, ())
        assert state.mean_seconds is not None and state.mean_seconds >= 0
        assert build_panel(_done(), NAMES, state).state == "ready"
    finally:
        service.close()


def test_baseline_progress_is_none_before_the_benchmark_exists(tmp_path):
    from leaderboard.baseline_progress import baseline_progress
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings

    service = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), tmp_path / "none")
    try:
        assert baseline_progress(service) is None
    finally:
        service.close()


def test_no_server_path_reaches_the_panel_from_the_app_folders(tmp_path: Path):
    from svr.settings import REPO_ROOT

    text = f"could not read {REPO_ROOT}/assets/models/voxel/config.json"
    out = public_text(text, [(REPO_ROOT, "<app>")])
    assert out == "could not read <app>/assets/models/voxel/config.json"
