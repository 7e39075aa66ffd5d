"""LeaderboardService: submission lifecycle, duplicates, limits, maintainers, analysis views.

Every test on the database takes `database_url` (tests/conftest.py): it runs on a SQLite
file and on a real PostgreSQL server. The archive opener and scorer are the small fakes of
`tests/leaderboard_fakes.py` (the real ones are exercised in test_worker / test_leaderboard_ui).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leaderboard_fakes import make_service, scores_for, write_fake_archive
from sqlalchemy import select, update

from leaderboard.db import ItemScore, Status, Submission
from leaderboard.service import AuthError, ServiceError, SubmissionRejected, redact


@pytest.fixture
def svc(tmp_path: Path, database_url: str):
    service, ids = make_service(tmp_path, database_url=database_url)
    service.test_ids = ids  # type: ignore[attr-defined]
    yield service
    service.close()


def _scored_archive(tmp_path: Path, svc, name: str, value: float, spread: float = 0.0,
                    seed: int = 0, **extra: object) -> Path:  # fmt: skip
    rng = np.random.default_rng(seed)
    return write_fake_archive(
        tmp_path / f"{name}-{seed}.zip", name, scores_for(svc.test_ids, value, rng, spread), **extra
    )


def _score_all(svc) -> None:
    worker = svc.make_worker()
    while worker.run_once() is not None:
        pass


def test_lifecycle_submit_validate_queue_score(tmp_path: Path, svc) -> None:
    archive = _scored_archive(tmp_path, svc, "Net", 0.6)
    sid = svc.submit(archive, {"method": "My net", "contact": "me@x.org",
                               "paper_url": "https://arxiv.org/abs/1"}, "alice")  # fmt: skip
    status = svc.status(sid)
    assert status["status"] == Status.QUEUED and status["method"] == "My net"
    assert status["progress"] == {"done": 0, "total": len(svc.test_ids)}
    assert "overall" not in status
    outcome = svc.make_worker().run_once()
    assert outcome.status == Status.DONE and outcome.submission_id == sid
    status = svc.status(sid)
    assert status["status"] == Status.DONE
    assert status["progress"] == {"done": len(svc.test_ids), "total": len(svc.test_ids)}
    assert status["overall"]["mean_of_class_means"]["fscore@0.01"] == pytest.approx(0.6)
    assert status["per_class"]["chair"]["fscore@0.01"]["median"] == pytest.approx(0.6)
    assert status["attempts"] == 1
    json.dumps(status)  # the API returns it as JSON
    table = svc.table()
    assert table["Method"].tolist() == ["My net"]
    assert table["F@1% ↑"].iloc[0] == pytest.approx(0.6)
    assert table["Chamfer-L1 ↓"].iloc[0] == pytest.approx(0.4)
    assert table["Paper"].iloc[0] == "https://arxiv.org/abs/1"
    with svc.factory() as session:
        n_items = len(
            session.scalars(select(ItemScore).where(ItemScore.submission_id == sid)).all()
        )
    assert n_items == len(svc.test_ids)
    mine = svc.submissions_of("alice")
    assert mine["Status"].tolist() == ["done"] and svc.submissions_of("bob").empty


def test_invalid_archive_fails_at_once_with_reason_and_details(tmp_path: Path, svc) -> None:
    bad = write_fake_archive(
        tmp_path / "bad.zip", "Bad", {}, error="submission rejected: 1 item error(s)"
    )
    with pytest.raises(SubmissionRejected) as info:
        svc.submit(bad, {}, "alice")
    sid = info.value.submission_id
    assert "1 item error" in info.value.reason and info.value.details == [
        "item chair/s0/0: bad grid"
    ]
    status = svc.status(sid)
    assert status["status"] == Status.FAILED and status["details"] == ["item chair/s0/0: bad grid"]
    assert svc.make_worker().run_once() is None  # nothing was queued
    # The same (failed) archive may be resubmitted after a fix of the server side.
    with pytest.raises(SubmissionRejected):
        svc.submit(bad, {}, "alice")


def test_bad_requests_are_refused_before_anything_is_stored(tmp_path: Path, svc) -> None:
    archive = _scored_archive(tmp_path, svc, "Net", 0.5)
    with pytest.raises(ServiceError, match="submitter name"):
        svc.submit(archive, {}, "  ")
    with pytest.raises(ServiceError, match="unknown metadata"):
        svc.submit(archive, {"favourite_colour": "red"}, "alice")
    with pytest.raises(ServiceError, match="http"):
        svc.submit(archive, {"paper_url": "javascript:alert(1)"}, "alice")
    rar = tmp_path / "x.rar"
    rar.write_bytes(b"x")
    with pytest.raises(ServiceError, match="not a submission archive"):
        svc.submit(rar, {}, "alice")
    assert svc.store.all() == []
    with pytest.raises(ServiceError, match="no submission 99"):
        svc.status(99)


def test_form_representation_must_agree_with_the_manifest(tmp_path: Path, svc) -> None:
    archive = _scored_archive(tmp_path, svc, "Net", 0.5)
    with pytest.raises(SubmissionRejected, match="representation"):
        svc.submit(archive, {"representation": "mesh"}, "alice")


def test_duplicate_archive_is_refused_naming_the_earlier_submission(tmp_path: Path, svc) -> None:
    archive = _scored_archive(tmp_path, svc, "Net", 0.5)
    first = svc.submit(archive, {}, "alice")
    public = svc.public_id(first)
    with pytest.raises(ServiceError, match=f"submission {public}") as own:
        svc.submit(archive, {"method": "renamed"}, "alice")
    assert own.value.duplicate_of == first  # typed: callers need not read the sentence
    # The same predictions by someone else are a duplicate too, named without its public id.
    with pytest.raises(ServiceError, match=f"already submitted \\(submission #{first},") as info:
        svc.submit(archive, {}, "bob")
    assert public not in str(info.value) and info.value.duplicate_of == first
    assert len(svc.store.all()) == 1  # stored once
    svc.admin_action("delete", [first], "token")
    with pytest.raises(ServiceError, match=f"submission {public}.*deleted"):
        svc.submit(archive, {}, "alice")


def test_per_day_limit_ignores_failures_and_survives_deletion(
    tmp_path: Path, database_url: str
) -> None:
    svc, ids = make_service(tmp_path, max_per_day=2, max_concurrent=10, database_url=database_url)
    try:
        for k in range(3):  # failures do not consume the quota
            with pytest.raises(SubmissionRejected):
                svc.submit(write_fake_archive(tmp_path / f"bad{k}.zip", "Bad", {}, error="broken"),
                           {}, "alice")  # fmt: skip
        a = svc.submit(
            write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.1)), {}, "alice"
        )
        svc.submit(write_fake_archive(tmp_path / "b.zip", "B", scores_for(ids, 0.2)), {}, "alice")
        c = write_fake_archive(tmp_path / "c.zip", "C", scores_for(ids, 0.3))
        with pytest.raises(ServiceError, match="limit of 2 submissions"):
            svc.submit(c, {}, "alice")
        svc.admin_action("delete", [a], "token")
        with pytest.raises(ServiceError, match="limit of 2 submissions"):
            svc.submit(c, {}, "alice")  # deleting does not reset the limit
        assert svc.submit(c, {}, "bob") > 0  # per submitter
        _age_all(svc, days=2)  # a day later the quota is back
        d = write_fake_archive(tmp_path / "d.zip", "D", scores_for(ids, 0.4))
        assert svc.submit(d, {}, "alice") > 0
    finally:
        svc.close()


def _age_all(svc, days: float) -> None:
    import datetime as dt

    from leaderboard.db import utcnow

    with svc.factory() as session:
        session.execute(update(Submission).values(created_at=utcnow() - dt.timedelta(days=days)))
        session.commit()


def test_concurrent_limit_counts_unfinished_submissions(tmp_path: Path, database_url: str) -> None:
    svc, ids = make_service(tmp_path, max_per_day=10, max_concurrent=1, database_url=database_url)
    try:
        svc.submit(write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.1)), {}, "alice")
        b = write_fake_archive(tmp_path / "b.zip", "B", scores_for(ids, 0.2))
        with pytest.raises(ServiceError, match="waiting or being scored"):
            svc.submit(b, {}, "alice")
        _score_all(svc)
        assert svc.submit(b, {}, "alice") > 0
    finally:
        svc.close()


def test_admin_auth_refuses_missing_or_wrong_token(svc) -> None:
    with pytest.raises(AuthError):
        svc.authorize(token=None)
    with pytest.raises(AuthError):
        svc.authorize(token="")
    with pytest.raises(AuthError):
        svc.authorize(token="s3cret-not")
    assert svc.authorize(token="s3cret") == "token"
    # Off a Space an OAuth profile is not accepted even for an allow-listed name.
    with pytest.raises(AuthError):
        svc.authorize(profile={"username": "alice"})


def test_admin_auth_without_a_configured_token_refuses_everything(tmp_path: Path) -> None:
    svc, _ = make_service(tmp_path, admin_token=None)
    try:
        for token in (None, "", "None", "s3cret"):
            with pytest.raises(AuthError):
                svc.authorize(token=token)
    finally:
        svc.close()


def test_admin_auth_with_hf_oauth_on_a_space(tmp_path: Path) -> None:
    svc, _ = make_service(tmp_path, space_id="org/space", admins=("alice", "trusted-org"))
    try:
        assert svc.authorize(profile={"username": "alice"}) == "hf:alice"
        member = {"username": "carol", "orgs": [{"preferred_username": "trusted-org"}]}
        assert svc.authorize(profile=member) == "hf:carol"

        class Profile(dict):  # gr.OAuthProfile is a dict with attributes
            username = "mallory"

        with pytest.raises(AuthError):
            svc.authorize(profile=Profile(username="mallory", orgs=[{"name": "other"}]))
        with pytest.raises(AuthError):
            svc.authorize(profile=None)
    finally:
        svc.close()


def test_maintainer_actions(tmp_path: Path, svc) -> None:
    a = svc.submit(_scored_archive(tmp_path, svc, "A", 0.7), {}, "alice")
    b = svc.submit(_scored_archive(tmp_path, svc, "B", 0.3), {}, "bob")
    _score_all(svc)
    assert set(svc.table()["ID"]) == {a, b}
    svc.admin_action("hide", [a], "token")
    assert set(svc.table()["ID"]) == {b}
    assert svc.status(a)["hidden"] is True
    svc.admin_action("unhide", [a], "token")
    svc.admin_action("verify", [a], "token")
    svc.admin_action("baseline", [b], "token")
    table = svc.table().set_index("ID")
    assert table.loc[a, "Verified"] == "verified" and table.loc[b, "Baseline"] == "baseline"
    assert svc.table(show_baselines=False)["ID"].tolist() == [a]
    lines = svc.admin_action("rescore", [a, 999], "token")
    assert lines == [f"{a}: rescore done", "999: no such submission"]
    assert svc.status(a)["status"] == Status.QUEUED and svc.status(a)["attempts"] == 0
    _score_all(svc)
    assert svc.status(a)["status"] == Status.DONE
    svc.admin_action("delete", [b], "token")
    with pytest.raises(ServiceError):
        svc.status(b)
    assert svc.admin_action("rescore", [b], "token") == [f"{b}: deleted; undelete it first"]
    everything = svc.admin_table("token")
    assert (
        set(everything["ID"]) == {a, b} and "deleted" in everything.set_index("ID").loc[b, "Flags"]
    )
    with pytest.raises(ServiceError, match="unknown action"):
        svc.admin_action("drop_table", [a], "token")


def test_table_filters_sorting_columns_and_tiers(tmp_path: Path, svc) -> None:
    ids = {}
    for name, value, rep in (
        ("Good", 0.8, "voxels"),
        ("Close", 0.79, "mesh"),
        ("Weak", 0.2, "points"),
    ):
        arch = _scored_archive(tmp_path, svc, name, value, spread=0.05, seed=int(value * 100))
        ids[name] = svc.submit(arch, {"representation": ""}, name.lower())
        with svc.factory() as session:
            session.execute(
                update(Submission).where(Submission.id == ids[name]).values(representation=rep)
            )
            session.commit()
    _score_all(svc)
    table = svc.table()
    assert table["Method"].tolist() == ["Good", "Close", "Weak"]
    tiers = dict(zip(table["Method"], table["Tier"], strict=True))
    assert tiers["Good"] == tiers["Close"] == 1 and tiers["Weak"] == 2
    assert svc.table(search="clo")["Method"].tolist() == ["Close"]
    assert svc.table(representations=["points"])["Method"].tolist() == ["Weak"]
    assert svc.table(sort_by="Chamfer-L1 ↓")["Method"].tolist()[0] == "Good"
    narrow = svc.table(columns=["F@1% ↑"])
    assert narrow.columns.tolist() == ["Tier", "Method", "F@1% ↑"]
    wide = svc.table(per_class=True, columns=["F@1% ↑"])
    assert "chair: F@1% ↑" in wide.columns
    per_class = svc.per_class_table()
    assert per_class["Class"].tolist() == ["airplane", "chair", "table"]


def test_recognition_verdicts_against_the_baselines(tmp_path: Path, svc) -> None:
    clus = svc.submit(_scored_archive(tmp_path, svc, "Clustering", 0.4, 0.05, 1), {}, "baselines",
                      baseline=True)  # fmt: skip
    svc.submit(
        _scored_archive(tmp_path, svc, "Retrieval", 0.5, 0.05, 2), {}, "baselines", baseline=True
    )
    better = svc.submit(_scored_archive(tmp_path, svc, "Better", 0.8, 0.05, 3), {}, "carol")
    _score_all(svc)
    table = svc.table().set_index("Method")
    assert table.loc["Better", "vs Retrieval"].startswith("better than Retrieval, p < 0.001")
    assert table.loc["Clustering", "vs Retrieval"].startswith("worse than Retrieval")
    rec = svc.recognition_table()
    row = rec[(rec["Method"] == "Better") & (rec["Baseline"] == "Clustering")].iloc[0]
    assert row["KS p"] < 0.001 and row["Wilcoxon p"] < 0.001
    assert row["Paired items"] == len(svc.test_ids)
    comparison = svc.compare(better, clus)
    assert comparison.per_class["Difference (A - B)"].min() > 0.3
    assert comparison.items.empty and not comparison.items_shown  # per-item: maintainers only
    comparison = svc.compare(better, clus, actor="token")
    assert len(comparison.items) == 8
    diffs = comparison.items["Difference (A - B)"].abs().tolist()
    assert diffs == sorted(diffs, reverse=True)
    dist = svc.distributions([better])
    assert set(dist) == {"Better", "Clustering", "Retrieval"}  # baselines overlaid
    with pytest.raises(ServiceError):
        svc.compare(better, 12345)


def test_view_images_are_arrays_of_test_items_only(svc) -> None:
    image = svc.view_image(svc.test_ids[0])
    assert isinstance(image, np.ndarray) and image.shape == (8, 8, 4) and image.dtype == np.uint8
    for bad in ("../../etc/passwd", "chair/s0", "chair/../s0/0x", "../test/0", "chair/s9/0"):
        with pytest.raises(ServiceError):
            svc.view_image(bad)


def test_nothing_returned_names_a_server_path(tmp_path: Path, svc) -> None:
    home = str(svc.settings.home)
    assert redact(f"missing {home}/archives/ab/x.zip", [svc.settings.home]) == (
        "missing $SVR_HOME/archives/ab/x.zip"
    )
    bad = write_fake_archive(tmp_path / "bad.zip", "Bad", {}, error=f"cannot read {home}/scratch/x")
    with pytest.raises(SubmissionRejected) as info:
        svc.submit(bad, {}, "alice")
    assert home not in str(info.value)
    sid = svc.submit(_scored_archive(tmp_path, svc, "Net", 0.5), {}, "alice")
    _score_all(svc)
    texts = [json.dumps(svc.status(sid)), svc.table().to_json(), svc.admin_table("t").to_json(),
             json.dumps(svc.status(info.value.submission_id))]  # fmt: skip
    for text in texts:
        assert home not in text and str(svc.benchmark_dir) not in text


def test_seed_baselines_submits_through_the_normal_path_once(tmp_path: Path, svc) -> None:
    from leaderboard.seed import BASELINE_NAMES, SEED_SUBMITTER, seed_baselines

    calls: list[str] = []

    def predict(model: str, weights: Path, benchmark_dir: Path, out: Path) -> None:
        calls.append(model)
        if model == "atlas":
            raise RuntimeError("svr.predict atlas exited with 1: no weights")
        value = {"clustering": 0.4, "retrieval": 0.45}.get(model, 0.6)
        write_fake_archive(out, model, scores_for(svc.test_ids, value))

    messages: list[str] = []
    methods = ["clustering", "retrieval", "voxel", "atlas"]
    results = seed_baselines(svc, svc.benchmark_dir, tmp_path / "models", messages.append,
                             methods=methods, predict=predict)  # fmt: skip
    outcomes = {r.method: r.outcome for r in results}
    assert outcomes == {"clustering": "submitted", "retrieval": "submitted", "voxel": "submitted",
                        "atlas": "failed"}  # fmt: skip
    assert any("no weights" in m for m in messages)
    _score_all(svc)
    table = svc.table().set_index("Method")
    assert set(table.index) == {BASELINE_NAMES[m] for m in ("clustering", "retrieval", "voxel")}
    assert (table["Baseline"] == "baseline").all()
    assert table.loc["Voxel decoder", "vs Retrieval"].startswith("better than Retrieval")
    assert svc.submissions_of(SEED_SUBMITTER)["Status"].tolist() == ["done"] * 3
    # Seeding again predicts only what is missing.
    calls.clear()
    again = seed_baselines(
        svc, svc.benchmark_dir, tmp_path / "models", methods=methods, predict=predict
    )
    assert [r.outcome for r in again] == ["skipped", "skipped", "skipped", "failed"]
    assert calls == ["atlas"]


def test_seeding_replaces_a_baseline_whose_weights_changed(tmp_path: Path, svc) -> None:
    from leaderboard.baseline_progress import baseline_progress
    from leaderboard.db import AdminAction
    from leaderboard.seed import seed_baselines, weights_digest

    folder = tmp_path / "models" / "voxel"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"first weights")
    (folder / "MODEL_CARD.md").write_text("card")
    value = {"now": 0.5}
    calls: list[str] = []

    def predict(model: str, weights: Path, benchmark_dir: Path, out: Path) -> None:
        calls.append(model)
        digest = hashlib.sha256(str(value["now"]).encode()).hexdigest()  # of the predictions
        write_fake_archive(out, "Voxel decoder", scores_for(svc.test_ids, value["now"]),
                           content_sha256=digest, call=len(calls))  # fmt: skip

    def seed():
        (result,) = seed_baselines(
            svc, svc.benchmark_dir, tmp_path / "models", methods=["voxel"], predict=predict
        )
        return result

    def board() -> list[tuple[str, float]]:
        table = svc.table()
        return list(zip(table["Method"], table["F@1% ↑"].round(3), strict=True))

    first = seed()
    assert first.outcome == "submitted" and first.message == ""
    _score_all(svc)
    assert board() == [("Voxel decoder", 0.5)]
    # A model card edit is not a change of weights: nothing is predicted.
    (folder / "MODEL_CARD.md").write_text("card, edited")
    assert seed().outcome == "skipped" and calls == ["voxel"]

    # New weights: predicted and submitted as the replacement; the old entry stays on the
    # board until the new one is scored, then it is hidden, never deleted.
    (folder / "model.pt").write_bytes(b"second weights")
    value["now"] = 0.7
    second = seed()
    assert second.outcome == "submitted", second.message
    assert second.message == f"replaces entry #{first.submission_id}"
    assert board() == [("Voxel decoder", 0.5)]
    assert seed().outcome == "skipped" and len(calls) == 2  # queued with these weights
    _score_all(svc)
    assert board() == [("Voxel decoder", 0.7)]
    with svc.factory() as session:
        old = session.get(Submission, first.submission_id)
        new = session.get(Submission, second.submission_id)
        assert old.hidden and not old.deleted and old.status == Status.DONE
        assert old.score_headline == pytest.approx(0.5)  # its scores are kept
        assert not new.hidden and new.supersedes == old.id
        assert new.weights_sha256 == weights_digest(folder)
        audit = session.scalars(
            select(AdminAction).where(AdminAction.submission_id == old.id)
        ).all()
    assert [(a.action, a.actor) for a in audit] == [
        ("hide", f"seeding: replaced by entry #{new.id}")
    ]
    assert seed().outcome == "skipped" and len(calls) == 2

    # Other weights that predict the same (e.g. an entry seeded before weights were
    # recorded): refused as identical, the entry kept and the new digest recorded on it.
    (folder / "model.pt").write_bytes(b"third weights, same predictions")
    same = seed()
    assert same.outcome == "skipped" and "which it would replace" in same.message
    assert len(calls) == 3 and board() == [("Voxel decoder", 0.7)]
    progress = baseline_progress(svc)  # the status panel: one method, scored, none failed
    assert (progress.scored, progress.waiting, progress.failed) == (1, 0, ())
    with svc.factory() as session:
        assert session.get(Submission, new.id).weights_sha256 == weights_digest(folder)
    assert seed().outcome == "skipped" and len(calls) == 3
    # A replacement of an entry a maintainer hid is hidden too.
    svc.admin_action("hide", [new.id], "maintainer")
    (folder / "model.pt").write_bytes(b"fourth weights")
    value["now"] = 0.8
    fourth = seed()
    assert fourth.outcome == "submitted" and fourth.message == f"replaces entry #{new.id}"
    _score_all(svc)
    assert board() == []
    with svc.factory() as session:
        assert session.get(Submission, fourth.submission_id).hidden
        actors = session.scalars(
            select(AdminAction.actor).where(AdminAction.submission_id == fourth.submission_id)
        ).all()
    assert actors == [f"seeding: hidden like entry #{new.id}, which it replaces"]
    # Nobody else may record weights or replace an entry.
    with pytest.raises(ServiceError, match="only a seeded baseline"):
        svc.submit(_scored_archive(tmp_path, svc, "Mine", 0.3), {}, "alice", replaces=new.id)


def test_partial_submissions_fail_validation_saying_how_many_items_are_missing(
    tmp_path: Path, svc
) -> None:
    half = {i: 0.8 for i in svc.test_ids[::2]}
    archive = write_fake_archive(tmp_path / "half.zip", "Half", half)
    with pytest.raises(SubmissionRejected) as info:
        svc.submit(archive, {}, "alice")
    n = len(svc.test_ids)
    assert f"{n - len(half)} of {n} test items are missing" in info.value.reason
    assert svc.test_ids[1] in info.value.reason  # names the first missing ones
    status = svc.status(info.value.public_id)
    assert status["status"] == Status.FAILED and "missing" in status["reason"]
    assert "overall" not in status and "per_class" not in status
    assert svc.make_worker().run_once() is None  # never scored
    assert svc.store.all() == []  # the refused archive was deleted at once


def test_entries_scored_with_missing_items_are_not_ranked(tmp_path: Path, svc) -> None:
    """Entries scored before partial archives were refused (missing items scored the
    worst values) are neither ranked nor shown with per-class figures."""
    full = svc.submit(_scored_archive(tmp_path, svc, "Full", 0.5), {}, "alice")
    old = svc.submit(_scored_archive(tmp_path, svc, "Old", 0.9), {}, "bob")
    _score_all(svc)
    with svc.factory() as session:  # as the worker stored a partial entry before
        row = session.get(Submission, old)
        row.coverage = {**row.coverage, "n_missing": 3}
        session.commit()
    svc._changed()
    assert svc.table()["ID"].tolist() == [full]
    assert list(svc.per_class_table().columns) == ["Class", "Full"]
    assert "per_class" not in svc.status(svc.public_id(old))
    assert "per_class" in svc.status(old, actor="token")  # maintainers still see them


def test_reads_reuse_the_visibility_check_briefly_but_see_own_changes_at_once(
    tmp_path: Path, svc, monkeypatch
) -> None:
    from leaderboard_fakes import fake_open, fake_score

    import leaderboard.ranking as ranking_module
    import leaderboard.service as service_module
    from leaderboard.worker import Worker

    clock = [1000.0]
    monkeypatch.setattr(ranking_module.time, "monotonic", lambda: clock[0])
    a = svc.submit(_scored_archive(tmp_path, svc, "A", 0.7), {}, "alice")
    _score_all(svc)  # the service's own worker: visible at once
    assert [r["ID"] for r in svc.records()] == [a]
    assert svc.records()[0]["F@1% ↑"] == pytest.approx(0.7)
    # a worker in another process (no callback into this service) scores B
    b = svc.submit(_scored_archive(tmp_path, svc, "B", 0.3), {}, "bob")
    other = Worker(svc.factory, svc.settings, svc.benchmark_dir, score_fn=fake_score,
                   open_fn=fake_open)  # fmt: skip
    assert other.run_once().submission_id == b
    assert [r["ID"] for r in svc.records()] == [a]  # the last check is reused...
    clock[0] += service_module.VISIBLE_CHECK_MAX_AGE + 0.01
    assert sorted(r["ID"] for r in svc.records()) == [a, b]  # ...for at most that long
    svc.admin_action("hide", [a], "token")  # this process's own change: at once
    assert [r["ID"] for r in svc.records()] == [b]
    assert svc.records() is svc.records()  # built once per change


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread nice is Linux's")
def test_in_process_worker_thread_runs_at_a_lower_cpu_priority(svc) -> None:
    import os
    import threading
    import time

    from leaderboard.service import WORKER_NICE

    def nice_of(tid: int) -> int:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of proc(5)

    svc.start_worker()
    thread = svc._worker_thread
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICE)
    deadline = time.monotonic() + 10
    while nice_of(thread.native_id) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert nice_of(thread.native_id) == expected
    assert nice_of(threading.main_thread().native_id) == os.getpriority(os.PRIO_PROCESS, 0)


def test_markdown_report_and_its_command(tmp_path: Path, svc, monkeypatch, capsys) -> None:
    from leaderboard_fakes import CLASSES

    from leaderboard.__main__ import main
    from leaderboard.report import markdown_report, markdown_table

    assert markdown_report(svc).startswith("The leaderboard has no scored")
    svc.submit(_scored_archive(tmp_path, svc, "Clustering", 0.4), {}, "baselines", baseline=True)
    svc.submit(_scored_archive(tmp_path, svc, "Retrieval", 0.5), {}, "baselines", baseline=True)
    values = {cls: v for cls, v in zip(CLASSES, (0.2, 0.6, 0.7), strict=True)}
    scores = {i: values[i.split("/")[0]] for i in svc.test_ids}  # one value per class
    svc.submit(write_fake_archive(tmp_path / "n.zip", "Net", scores), {}, "carol")
    _score_all(svc)
    text = markdown_report(svc)
    lines = text.splitlines()
    # the per-class table: one row per class, then the mean of the class means (by hand: 0.5)
    start = lines.index("### F@1% per class (mean over each class's test items)")
    header = lines[start + 2].strip("| ").split(" | ")
    rows = [line.strip("| ").split(" | ") for line in lines[start + 4 : start + 8]]
    net = header.index("Net")
    assert [r[0] for r in rows] == [*CLASSES, "**mean of classes**"]
    assert [r[net] for r in rows] == ["0.200", "0.600", "0.700", "0.500"]
    assert "### IoU per class" in text and "Recognition or reconstruction?" in text
    assert "| Net | Retrieval | " in text and "KS p" in text  # a verdict row per baseline
    assert svc.reference_names() == ["Clustering", "Retrieval"]
    monkeypatch.setenv("SVR_HOME", str(svc.settings.home))
    monkeypatch.setenv("DATABASE_URL", svc.settings.database_url)
    out = tmp_path / "report.md"
    assert main(["report", "--benchmark", str(svc.benchmark_dir), "--out", str(out)]) == 0
    assert out.read_text() == text
    figures = tmp_path / "figs"
    args = ["report", "--benchmark", str(svc.benchmark_dir), "--out", str(out), "--figures"]
    assert main([*args, str(figures)]) == 0
    with_figures = out.read_text()
    assert "![F@1% per class and entry](figs/per_class.png)" in with_figures
    assert "(figs/distributions.png)" in with_figures
    for name in ("per_class.png", "distributions.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frame = pd.DataFrame(
        {"a": [1e-7, float("nan"), 0.0], "b": ["x|y", None, "z"], "KS p": [0.0, 0.5, 2e-9]}
    )
    assert markdown_table(frame, 3).splitlines()[2:] == [
        "| 1.0e-07 | x\\|y | < 1e-300 |", "|  |  | 0.500 |", "| 0.000 | z | 2.0e-09 |"
    ]  # fmt: skip


def test_accepted_submissions_are_limited_per_address_whatever_the_names(
    tmp_path: Path, database_url: str
) -> None:
    now = [1000.0]
    service, ids = make_service(
        tmp_path, max_per_address=2, max_per_day=50, database_url=database_url
    )
    service._clock = lambda: now[0]  # the rate limits' clock (seconds)
    service.test_ids = ids  # type: ignore[attr-defined]
    try:
        for k, name in enumerate(["alice", "bob"]):
            archive = _scored_archive(tmp_path, service, name, 0.5, spread=0.1, seed=k)
            service.submit(archive, {"method": f"m {name}"}, name, client="10.0.0.1")
        third = _scored_archive(tmp_path, service, "carol", 0.5, spread=0.1, seed=7)
        with pytest.raises(ServiceError, match="this address has submitted 2 times"):
            service.submit(third, {"method": "m carol"}, "carol", client="10.0.0.1")
        service.submit(third, {"method": "m carol"}, "carol", client="10.0.0.2")  # another one
        now[0] += 86401.0
        fourth = _scored_archive(tmp_path, service, "dave", 0.5, spread=0.1, seed=8)
        service.submit(fourth, {"method": "m dave"}, "dave", client="10.0.0.1")  # a day later
    finally:
        service.close()
