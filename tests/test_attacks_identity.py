"""Regression tests of the identity attacks seen on the running app, each through a real
server (gradio_client against a launched leaderboard): limits evaded with look-alike names,
the same archive under another name, names that impersonate or rename the baselines, status
claims in method names, control characters, partial archives, and keys where required."""

from __future__ import annotations

import io
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import pytest
from attack_helpers import call_handler, fake_service, served, submit, upload
from leaderboard_fakes import scores_for, write_fake_archive

gradio_client = pytest.importorskip("gradio_client")


def _archive(tmp_path: Path, ids: list[str], name: str, value: float, **extra: object) -> Path:
    return write_fake_archive(tmp_path / f"{name}.zip", name, scores_for(ids, value), **extra)


def _score_all(service) -> None:
    worker = service.make_worker()
    while worker.run_once() is not None:
        pass


def test_per_day_limit_holds_across_case_homoglyph_and_suffix_variants(tmp_path: Path) -> None:
    service, ids = fake_service(tmp_path, max_per_day=2, max_concurrent=10)
    try:
        with served(service) as (base, _):
            client = gradio_client.Client(base, verbose=False)
            submit(client, _archive(tmp_path, ids, "A", 0.1), "alice")
            submit(client, _archive(tmp_path, ids, "B", 0.2), "alice")
            variants = ["ALICE", "аlice", "alice+2", "alice-02", "ａｌｉｃｅ", " Alice ",
                        "AL1CE", "alice2"]  # fmt: skip
            for k, name in enumerate(variants):
                with pytest.raises(Exception, match="reached the limit of 2 submissions"):
                    submit(client, _archive(tmp_path, ids, f"V{k}", 0.3 + k / 100), name)
            assert submit(client, _archive(tmp_path, ids, "C", 0.5), "bob").startswith("s")
        rows = (
            sqlite3.connect(service.settings.home / "svr.db")
            .execute("SELECT submitter, quota_key FROM submissions ORDER BY id")
            .fetchall()
        )
        assert [r[0] for r in rows] == ["alice", "alice", "bob"]  # the refused left no row
        assert rows[0][1] == rows[1][1] != rows[2][1]
    finally:
        service.close()


def _tar_of(zip_path: Path, out: Path) -> Path:
    """The same members as `zip_path` in a .tar, under a folder prefix."""
    with zipfile.ZipFile(zip_path) as zf, tarfile.open(out, "w") as tf:
        for name in zf.namelist():
            data = zf.read(name)
            info = tarfile.TarInfo(f"predictions/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out


def test_the_same_predictions_under_another_name_or_container_are_refused(
    tmp_path: Path, tiny_benchmark: Path
) -> None:
    """Real archives on the tiny benchmark, real validation (content hash of the decoded
    items); no scoring needed."""
    from leaderboard.archive import write_template
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark

    archive = tmp_path / "sphere.zip"
    write_template(Benchmark(tiny_benchmark), archive, "voxels")
    repacked = _tar_of(archive, tmp_path / "sphere.tar")
    service = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), tiny_benchmark)
    try:
        with served(service) as (base, _):
            client = gradio_client.Client(base, verbose=False)
            first = submit(client, archive, "alice", {"method": "Sphere"})
            internal = service.status(first, actor="token")["entry"]
            # the same bytes by someone else: refused before validation
            with pytest.raises(Exception, match=rf"already submitted \(submission #{internal},"):
                submit(client, archive, "bob", {"method": "My sphere"})
            # the same items in another container: refused after validation, recorded
            with pytest.raises(Exception, match="rejected: these predictions were already") as info:
                submit(client, repacked, "carol", {"method": "Carol's sphere"})
            assert first not in str(info.value)  # someone else's public id is never shown
            # by the same submitter, the message names their own submission
            with pytest.raises(Exception, match=f"already submitted as submission {first}"):
                submit(client, repacked, "alice", {"method": "Sphere again"})
        with sqlite3.connect(service.settings.home / "svr.db") as con:
            rows = con.execute(
                "SELECT submitter, status, reason, archive_sha256, content_sha256 FROM submissions "
                "ORDER BY id"
            ).fetchall()
        assert [(r[0], r[1]) for r in rows] == [("alice", "queued"), ("carol", "failed"),
                                                ("alice", "failed")]  # fmt: skip
        assert "already submitted" in rows[1][2] and rows[0][4] and len(rows[0][4]) == 64
        assert rows[0][3] != rows[1][3]  # different archives, same predictions
        stored = {p.name.split(".")[0] for p in service.store.all()}
        assert stored == {rows[0][3]}  # the refused .tar was deleted at once
    finally:
        service.close()


def test_names_that_impersonate_the_baselines_are_refused_and_never_rename_them(
    tmp_path: Path,
) -> None:
    service, ids = fake_service(tmp_path, max_per_day=50, max_concurrent=50)
    try:
        service.submit(_archive(tmp_path, ids, "retrieval-run", 0.4), {"method": "Retrieval"},
                       "baselines", baseline=True)  # fmt: skip
        _score_all(service)
        with served(service) as (base, _):
            client = gradio_client.Client(base, verbose=False)
            for k, (method, why) in enumerate([
                ("Retrieval", "reserved"), ("Rеtrieval", "reserved"),  # Cyrillic е
                ("RETRIEVAL #2", "reserved"), ("Retrieval (v2)", "reserved"),
                ("ΜEAN SHAPE", "reserved"),  # Greek Μ
                ("Occupancy network (verified)", "claims 'verified'"),
                ("Official net", "claims 'official'"), ("Our baseline", "claims 'baseline'"),
            ]):  # fmt: skip
                with pytest.raises(Exception, match=why):
                    submit(client, _archive(tmp_path, ids, f"i{k}", 0.5 + k / 100), "mallory",
                           {"method": method})  # fmt: skip
            # the name may also come from the archive's own manifest
            with pytest.raises(
                Exception, match="rejected: the method name 'Rеtrieval' is reserved"
            ):
                submit(client, write_fake_archive(tmp_path / "m.zip", "Rеtrieval",
                                                  scores_for(ids, 0.6)), "mallory")  # fmt: skip
            # look-alike names of ordinary entries are told apart by a suffix, both of them
            net = submit(client, _archive(tmp_path, ids, "n1", 0.7), "ann", {"method": "Net"})
            submit(client, _archive(tmp_path, ids, "n2", 0.71), "ben", {"method": "Nеt"})
            _score_all(service)
            names = sorted(r["Method"] for r in client.predict(api_name="/leaderboard"))
            internal = service.status(net, actor="token")["entry"]
        assert names[0] == "Net #" + str(internal) and names[1].startswith("Nеt #")
        assert names[2] == "Retrieval"  # the baseline keeps its name
        assert len(names) == 3
        assert len(service.store.all()) == 3  # the refused archives were deleted at once
    finally:
        service.close()


def test_control_characters_in_names_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    service, ids = fake_service(tmp_path)
    try:
        with served(service) as (base, _):
            client = gradio_client.Client(base, verbose=False)
            archive = _archive(tmp_path, ids, "x", 0.5)
            with pytest.raises(Exception, match=r"submitter name contains .*U\+202E RIGHT-TO-LEFT"):
                submit(client, archive, "ali\u202ece")
            with pytest.raises(Exception, match=r"method name contains .*U\+200B ZERO WIDTH SPACE"):
                submit(client, archive, "alice", {"method": "Ne\u200bt"})
            with pytest.raises(Exception, match=r"authors contains .*U\+0000"):
                submit(client, archive, "alice", {"authors": "A\x00B"})
            assert submit(client, archive, "alice", {"method": "Net"}).startswith("s")
    finally:
        service.close()


def test_partial_archives_fail_validation_saying_how_many_items_are_missing(
    tmp_path: Path,
) -> None:
    service, ids = fake_service(tmp_path)
    try:
        with served(service) as (base, _):
            client = gradio_client.Client(base, verbose=False)
            partial = write_fake_archive(tmp_path / "p.zip", "P", scores_for(ids[:5], 0.9))
            with pytest.raises(Exception, match=f"{len(ids) - 5} of {len(ids)} test items are"):
                submit(client, partial, "alice")
            assert client.predict(api_name="/leaderboard") == []
        assert service.store.all() == []
    finally:
        service.close()


def test_keys_when_required_are_checked_by_submit_and_the_submit_tab(tmp_path: Path) -> None:
    from leaderboard.keys import add_key

    service, ids = fake_service(tmp_path, require_keys=True)
    try:
        key = add_key(service.factory, "alice")
        with served(service) as (base, demo):
            client = gradio_client.Client(base, verbose=False)
            archive = _archive(tmp_path, ids, "k", 0.5)
            with pytest.raises(Exception, match="valid submitter key for 'alice' is required"):
                submit(client, archive, "alice")
            with pytest.raises(Exception, match="valid submitter key"):
                submit(client, archive, "alice", key="svrk_" + "x" * 32)
            with pytest.raises(Exception, match="valid submitter key for 'bob'"):
                submit(client, archive, "bob", key=key)
            sid = submit(client, archive, "ALICE", key=key)  # the name's normal form
            assert client.predict(sid, api_name="/submission_status")["status"] == "queued"
            form = ["Form net", "", "", "", "", "", "", "", "alice"]
            second = _archive(tmp_path, ids, "k2", 0.6)
            with pytest.raises(RuntimeError, match="valid submitter key"):
                call_handler(base, demo, "submit_form", [upload(base, second), *form, ""])
            message, mine = call_handler(base, demo, "submit_form",
                                         [upload(base, second), *form, key])  # fmt: skip
            assert "accepted" in message
            assert len(mine["data"]) == 2  # "My submissions" with the key
            assert call_handler(base, demo, "mine", ["alice", ""])[0]["data"] == []  # without
    finally:
        service.close()
