"""Database, migrations, archive store, settings and backup of the leaderboard (real SQLite
files in tmp_path)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, delete, insert, inspect, select, text
from sqlalchemy.exc import StatementError

from leaderboard.backup import LocalFolderTarget, backup, restore_database, snapshot_database
from leaderboard.db import (
    AdminAction,
    Base,
    ClassResult,
    ScoreShard,
    Status,
    Submission,
    current_revision,
    make_engine,
    make_session_factory,
    upgrade,
    utcnow,
)
from leaderboard.settings import LeaderboardSettings
from leaderboard.storage import ArchiveStore, archive_extension, sha256_file

HEAD = "0006"


def _submission(**kw: object) -> Submission:
    values: dict[str, object] = dict(
        method="m", authors="", paper_url="", code_url="", representation="voxels",
        frame="object", training_data="", description="", contact="", submitter="alice",
        status=Status.QUEUED, reason="", details=[], archive_sha256="a" * 64, archive_size=1,
        archive_ext=".zip", protocol_id="p", benchmark_id="b", coverage={}, overall={},
        manifest={},
    )  # fmt: skip
    values.update(kw)
    return Submission(**values)


def test_migrations_create_the_schema_matching_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    assert current_revision(engine) == HEAD
    assert {
        "submissions",
        "class_results",
        "item_scores",
        "admin_actions",
        "submitter_keys",
        "score_shards",
    } <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        else:
            assert engine.dialect.name == "postgresql" and engine.pool._pre_ping
    upgrade(engine)  # idempotent at head
    assert current_revision(engine) == HEAD
    engine.dispose()


def _insert_old_submission(engine, method: str, submitter: str) -> int:
    """A submissions row as revision 0001/0002 wrote it (no columns of later revisions),
    written through the table as the database reflects it (any backend)."""
    at = dt.datetime(2026, 11, 23, 10)
    with engine.begin() as conn:
        table = Table("submissions", MetaData(), autoload_with=conn)
        results = Table("class_results", MetaData(), autoload_with=conn)
        values = dict(
                method=method, authors="", paper_url="", code_url="", representation="voxels",
                frame="object", training_data="", description="", contact="",
                submitter=submitter, status="done", reason="", details=[], created_at=at,
                updated_at=at, archive_sha256="a" * 64, archive_size=1, archive_ext=".zip",
                protocol_id="p", benchmark_id="b", hidden=False, verified=False,
                baseline=False, deleted=False, attempts=1, progress_done=0, progress_total=0,
                coverage={}, overall={"mean_of_class_means": {"iou": 0.5}}, manifest={},
        )  # fmt: skip
        sid = conn.execute(insert(table).values(**values).returning(table.c.id)).scalar_one()
        conn.execute(
            insert(results).values(
                submission_id=sid, class_name="chair", metric="iou", mean=0.5, median=0.4
            )
        )
    return sid


def test_upgrade_from_the_first_revision_keeps_rows(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    assert "admin_actions" not in inspect(engine).get_table_names()
    sid = _insert_old_submission(engine, "kept", "alice")
    upgrade(engine)
    assert current_revision(engine) == HEAD
    factory = make_session_factory(engine)
    with factory() as session:
        row = session.get(Submission, sid)
        assert row is not None and row.method == "kept"
        assert row.overall == {"mean_of_class_means": {"iou": 0.5}}
        assert session.scalars(select(ClassResult.median)).one() == 0.4
        session.add(AdminAction(submission_id=sid, action="hide", actor="token"))
        session.commit()
        assert session.scalars(select(AdminAction.action)).one() == "hide"
    engine.dispose()


def test_upgrade_from_0002_backfills_identities_and_downgrade_keeps_results(
    database_url: str,
) -> None:
    from leaderboard.identity import name_key, quota_key
    from leaderboard.keys import add_key, check_key

    engine = make_engine(database_url)
    upgrade(engine, "0002")
    assert "submitter_keys" not in inspect(engine).get_table_names()
    ids = [_insert_old_submission(engine, f"m{k}", name) for k, name in
           enumerate(["alice", "ALICE+2", "bob"])]  # fmt: skip
    upgrade(engine)
    assert current_revision(engine) == HEAD
    factory = make_session_factory(engine)
    with factory() as session:
        rows = [session.get(Submission, i) for i in ids]
        publics = [r.public_id for r in rows]
        assert all(p and p.startswith("s") and len(p) == 17 for p in publics)
        assert len(set(publics)) == 3  # fresh, distinct, not the row ids
        assert [r.submitter_key for r in rows] == [name_key(r.submitter) for r in rows]
        assert [r.quota_key for r in rows] == ["aiice", "aiice", "bob"]
        assert rows[0].quota_key == quota_key("alice") and rows[0].content_sha256 is None
        session.add(_submission(method="new"))  # a new row gets a public id by default
        session.commit()
        assert session.scalars(select(Submission.public_id).where(Submission.method == "new")).one()
    key = add_key(factory, "carol")
    assert check_key(factory, "CAROL", key) and not check_key(factory, "carol", key + "x")
    from alembic import command

    from leaderboard.db import alembic_config

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    assert current_revision(engine) == "0002"
    assert not {"submitter_keys", "score_shards"} & set(inspect(engine).get_table_names())
    with engine.connect() as conn:  # the results are still there (no cascade on the way down)
        assert conn.execute(text("SELECT COUNT(*) FROM class_results")).scalar() == 3
        columns = {c["name"] for c in inspect(engine).get_columns("submissions")}
    assert "public_id" not in columns and "method" in columns
    upgrade(engine)  # and up again to the newest revision
    assert current_revision(engine) == HEAD
    assert "score_shards" in inspect(engine).get_table_names()
    engine.dispose()


def test_upgrade_from_0004_adds_the_upload_name_and_downgrade_keeps_results(
    database_url: str,
) -> None:
    from alembic import command

    from leaderboard.db import alembic_config

    engine = make_engine(database_url)
    upgrade(engine, "0004")
    columns = {c["name"] for c in inspect(engine).get_columns("submissions")}
    assert "upload_name" not in columns and "public_id" in columns
    sid = _insert_old_submission(engine, "kept", "alice")
    upgrade(engine)
    assert current_revision(engine) == HEAD
    factory = make_session_factory(engine)
    with factory() as session:
        row = session.get(Submission, sid)
        assert row is not None and row.method == "kept" and row.upload_name is None
        row.upload_name = "é" * 200  # the column holds the longest name the model allows
        session.add(_submission(method="new", archive_sha256="b" * 64, upload_name="p.zip"))
        session.commit()
    with factory() as session:
        names = dict(session.execute(select(Submission.method, Submission.upload_name)).all())
    assert names == {"kept": "é" * 200, "new": "p.zip"}
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    assert current_revision(engine) == "0004"
    columns = {c["name"] for c in inspect(engine).get_columns("submissions")}
    assert "upload_name" not in columns and "public_id" in columns
    with engine.connect() as conn:  # rows and their results survive the way down
        assert conn.execute(text("SELECT COUNT(*) FROM submissions")).scalar() == 2
        assert conn.execute(text("SELECT COUNT(*) FROM class_results")).scalar() == 1
    upgrade(engine)  # and up again: the column is back, empty
    assert current_revision(engine) == HEAD
    with factory() as session:
        assert session.scalars(select(Submission.upload_name)).all() == [None, None]
    engine.dispose()


def test_timestamps_are_utc_aware_and_cascade_delete(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    before = utcnow()
    with factory() as session:
        row = _submission()
        session.add(row)
        session.commit()
        sid = row.id
    with factory() as session:
        row = session.get(Submission, sid)
        assert row.created_at.tzinfo is not None
        assert before - dt.timedelta(seconds=1) <= row.created_at <= utcnow()
        session.add(ClassResult(submission_id=sid, class_name="c", metric="iou", mean=1, median=1))
        session.add(ScoreShard(submission_id=sid, index=0, start=0, stop=4, reason=""))
        session.commit()
        session.execute(delete(Submission).where(Submission.id == sid))  # the database's cascade
        session.commit()
        assert session.scalars(select(ClassResult)).all() == []  # ON DELETE CASCADE
        assert session.scalars(select(ScoreShard)).all() == []
    with factory() as session, pytest.raises(StatementError, match="naive"):
        session.add(_submission(created_at=dt.datetime(2020, 1, 1)))
        session.commit()
    engine.dispose()


def test_archive_store_is_content_addressed(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "archives")
    src = tmp_path / "a.zip"
    src.write_bytes(b"hello archive")
    first = store.put(src, ".zip")
    assert first.sha256 == sha256_file(src)
    assert first.path == tmp_path / "archives" / first.sha256[:2] / f"{first.sha256}.zip"
    assert first.path.read_bytes() == b"hello archive" and first.size == 13
    second = store.put(src, ".zip")
    assert second.path == first.path and store.all() == [first.path]
    assert store.verify(first.sha256, ".zip")
    big = tmp_path / "big.zip"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(ValueError, match="larger than the limit"):
        store.put(big, ".zip", max_bytes=1000)
    assert store.all() == [first.path]  # no partial file left
    assert not list((tmp_path / "archives").glob(".incoming-*"))
    with pytest.raises(FileNotFoundError):
        store.get("b" * 64, ".zip")
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd", ".zip")


def test_archive_extension() -> None:
    assert archive_extension("Sub.TAR.GZ") == ".tar.gz"
    assert archive_extension("x.tgz") == ".tgz"
    assert archive_extension("x.npz") == ".npz"
    with pytest.raises(ValueError, match=r"\.zip"):
        archive_extension("predictions.rar")


def test_settings_from_env(tmp_path: Path) -> None:
    default = LeaderboardSettings.from_env({})
    assert default.home == Path("~/.local/share/svr-what3d").expanduser().resolve()
    # State must not live where Gradio serves files from.
    assert not default.home.is_relative_to(Path.cwd().resolve())
    assert not default.home.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert default.database_url == f"sqlite:///{default.home / 'svr.db'}"
    env = {
        "SVR_HOME": str(tmp_path), "DATABASE_URL": "sqlite:///" + str(tmp_path / "o.db"),
        "SVR_ADMINS": "alice, my-org", "SPACE_ID": "u/s", "SVR_MAX_PER_DAY": "7",
        "SVR_ADMIN_TOKEN": "t",
    }  # fmt: skip
    s = LeaderboardSettings.from_env(env)
    assert s.home == tmp_path.resolve() and s.database_url.endswith("o.db")
    assert s.admins == ("alice", "my-org") and s.on_space and s.max_per_day == 7
    assert s.archives_dir == tmp_path.resolve() / "archives"
    with pytest.raises(ValueError, match="SVR_MAX_PER_DAY"):
        LeaderboardSettings.from_env({"SVR_MAX_PER_DAY": "many"})
    with pytest.raises(ValueError, match="SVR_SCORING_DEVICE"):
        LeaderboardSettings.from_env({"SVR_SCORING_DEVICE": "tpu"})


def test_backup_and_restore_with_a_local_folder(tmp_path: Path) -> None:
    settings = LeaderboardSettings(home=tmp_path / "home")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    store = ArchiveStore(settings.archives_dir)
    src = tmp_path / "a.zip"
    src.write_bytes(b"archive bytes")
    stored = store.put(src, ".zip")
    with factory() as session:
        session.add(_submission(method="backed up", archive_sha256=stored.sha256))
        session.commit()
    target = LocalFolderTarget(tmp_path / "repo")
    assert backup(settings, target) == {"database": 1, "archives": 1}
    assert backup(settings, target) == {"database": 1, "archives": 0}  # archives only once
    engine.dispose()

    # A fresh machine: no local state; the database and archives come back from the target.
    fresh = LeaderboardSettings(home=tmp_path / "fresh")
    assert restore_database(fresh, target) is True
    restored = make_engine(fresh.database_url)
    upgrade(restored)
    with make_session_factory(restored)() as session:
        assert session.scalars(select(Submission.method)).all() == ["backed up"]
    assert (
        ArchiveStore(fresh.archives_dir).get(stored.sha256, ".zip").read_bytes() == b"archive bytes"
    )
    assert restore_database(fresh, target) is False  # a local database is never overwritten
    restored.dispose()


def test_snapshot_of_a_live_wal_database_holds_committed_rows(tmp_path: Path) -> None:
    settings = LeaderboardSettings(home=tmp_path)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        session.add_all([_submission(method=f"m{i}") for i in range(3)])
        session.commit()
    # The rows may still sit in the WAL file; the snapshot must contain them anyway.
    snapshot_database(tmp_path / "svr.db", tmp_path / "snap.db")
    with sqlite3.connect(tmp_path / "snap.db") as conn:
        assert conn.execute("select count(*) from submissions").fetchone()[0] == 3
    engine.dispose()


def test_backup_is_off_without_a_repo_or_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leaderboard.backup import target_from_settings

    assert target_from_settings(LeaderboardSettings(home=tmp_path)) is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert target_from_settings(LeaderboardSettings(home=tmp_path, backup_repo="me/backup")) is None
