"""The file name an archive was uploaded as: stored with the submission (revision 0005),
cleaned and bounded, and shown after a reload or a restart instead of the stored archive's
hash name. Each database test runs on a SQLite file and on a real PostgreSQL server
(`database_url`, tests/conftest.py); archives are read by the real opener."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from leaderboard_fakes import make_fake_benchmark
from sqlalchemy import select

from leaderboard.db import Submission
from leaderboard.identity import UPLOAD_NAME_MAX, clean_upload_name
from leaderboard.reads import name_as_submitted
from leaderboard.service import LeaderboardService, SubmissionRejected
from leaderboard.settings import LeaderboardSettings

_HASH = re.compile(r"[0-9a-f]{64}")


def _service(tmp_path: Path, database_url: str) -> LeaderboardService:
    """A service on `database_url` with the fake benchmark and the real archive opener."""
    bench = tmp_path / "bench"
    if not (bench / "benchmark.json").is_file():
        make_fake_benchmark(bench)
    settings = LeaderboardSettings(home=tmp_path / "home", database_url=database_url)
    return LeaderboardService(settings, bench)


def _refused(service: LeaderboardService, tmp_path: Path, upload_name: str | None) -> str:
    """Submit an archive the opener refuses (not an archive at all, no method name) from a
    temporary file named like a server's, as `upload_name`; returns its public id."""
    upload = tmp_path / "uploads" / "tmp9f3a2c.zip"
    upload.parent.mkdir(exist_ok=True)
    upload.write_bytes(b"not a zip at all " + str(upload_name).encode("utf-8", "replace"))
    with pytest.raises(SubmissionRejected) as info:
        service.submit(upload, {}, "eve", upload_name=upload_name)
    assert info.value.public_id
    return info.value.public_id


def _stored(service: LeaderboardService, public_id: str) -> str | None:
    with service.factory() as session:
        return session.scalar(
            select(Submission.upload_name).where(Submission.public_id == public_id)
        )


def test_a_refused_archive_keeps_its_upload_name_across_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    service = _service(tmp_path, database_url)
    try:
        public = _refused(service, tmp_path, "my preds.zip")
        assert _stored(service, public) == "my preds.zip"
    finally:
        service.close()
    # A fresh service on the same database (a restart; a reload has no in-memory names).
    service = _service(tmp_path, database_url)
    try:
        row = service.submissions_of("eve").iloc[0]
        assert row["ID"] == public and row["Status"] == "failed"
        assert row["Method"] == "my preds.zip"  # not "(no method name; .zip archive)"
        assert "my preds.zip" in row["Reason"] and "the archive" not in row["Reason"]
        assert not _HASH.search(row["Reason"]) and "tmp9f3a2c" not in row["Reason"]
        # The stored name wins over a session's memory of another one.
        other = service.submissions_of("eve", uploads={public: "older.zip"}).iloc[0]
        assert other["Method"] == "my preds.zip"
        # The status endpoint names it so too, in its reason and its details.
        status = service.status(public)
        status = [status["reason"], *status["details"]]
        assert any("my preds.zip" in text for text in status)
        assert not any(_HASH.search(text) for text in status)
    finally:
        service.close()


def test_rows_without_a_stored_name_fall_back_to_the_session_memory(
    tmp_path: Path, database_url: str
) -> None:
    service = _service(tmp_path, database_url)
    try:
        public = _refused(service, tmp_path, None)  # as rows made before revision 0005
        assert _stored(service, public) is None
        plain = service.submissions_of("eve").iloc[0]
        assert plain["Method"] == "(no method name; .zip archive)"
        assert "the archive" in plain["Reason"] and not _HASH.search(plain["Reason"])
        remembered = service.submissions_of("eve", uploads={public: "mine.zip"}).iloc[0]
        assert remembered["Method"] == "mine.zip" and "mine.zip" in remembered["Reason"]
    finally:
        service.close()


@pytest.mark.parametrize(
    ("upload_name", "expected"),
    [
        ("../../etc/x\u202e.zip", "x.zip"),
        ("a\x00b.zip", "ab.zip"),
        ("C:\\Users\\me\\preds\u200b.zip", "preds.zip"),
        ("  \ufeffspaced out.tar.gz \t", "spaced out.tar.gz"),
        ("x" * 500 + ".zip", "x" * UPLOAD_NAME_MAX),
        ("dir/", None),
        ("../..", None),
        ("\u202e\x00 ", None),
    ],
)
def test_hostile_upload_names_are_stored_cleaned_and_bounded(
    tmp_path: Path, database_url: str, upload_name: str, expected: str | None
) -> None:
    service = _service(tmp_path, database_url)
    try:
        public = _refused(service, tmp_path, upload_name)
        stored = _stored(service, public)
        assert stored == expected
        row = service.submissions_of("eve").iloc[0]
        shown = f"{row['Method']} {row['Reason']}"
        assert "\x00" not in shown and "\u202e" not in shown and "/" not in row["Method"]
        if expected is not None:
            assert row["Method"] == expected and expected in row["Reason"]
    finally:
        service.close()


def test_clean_upload_name_removes_every_control_and_format_character() -> None:
    hostile = "".join(chr(c) for c in range(0x20)) + "\u200b\u200e\u2066\u00ad" + "ok.zip"
    assert clean_upload_name(hostile) == "ok.zip"
    cleaned = clean_upload_name("é" * 50 + "\u202e" * 200 + "ü" * 200)
    assert cleaned is not None and len(cleaned) == UPLOAD_NAME_MAX
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in cleaned)
    assert clean_upload_name(None) is None and clean_upload_name("") is None


def test_a_name_is_put_in_literally_not_as_a_replacement_template() -> None:
    text = f"{'a' * 64}.zip: not a recognised archive"
    assert name_as_submitted(text, r"\1 \g<0>.zip") == r"\1 \g<0>.zip: not a recognised archive"
    assert name_as_submitted(text) == "the archive: not a recognised archive"
