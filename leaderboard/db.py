"""The leaderboard's database: SQLAlchemy 2 models, the engine, sessions and migrations.

SQLite by default (one file, `SVR_HOME/svr.db`), opened in WAL mode with a busy timeout so
the app and a separate worker process can share it; any SQLAlchemy URL works through
`DATABASE_URL`. The schema is owned by the Alembic migrations in `leaderboard/migrations`
(`upgrade(engine)` brings a database to the newest revision; it runs at every start).

Tables:
- `submissions`: one row per uploaded archive, its metadata, lifecycle state, the manifest
  it was validated with (JSON) and its results summary (`overall`, `coverage` JSON;
  `score_*` columns for sorting).
- `class_results`: (submission, class, metric) -> mean and median over the class's items.
- `item_scores`: (submission, item id) -> the main metrics as columns, all metrics as JSON.
- `admin_actions`: who did what to which submission (revision 0002).
- `submitter_keys`: per-submitter keys (their SHA-256 only) for servers that require them
  (revision 0003, which also adds the submissions' opaque `public_id`, the normal forms of
  the submitter's name and the content hash of the predictions).
- `score_shards`: the shards of a large submission being scored by several workers
  (revision 0004; see `leaderboard.shards`).

Revision 0005 adds `submissions.upload_name`, the file name the archive was uploaded as
(NULL for rows made before it, and when the uploader gave none).

PostgreSQL (`postgresql+psycopg://...`, psycopg 3) is tested as well as SQLite; its pooled
connections are checked before use (`pool_pre_ping`), so a restarted server costs no request.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Submission",
    "ClassResult",
    "ItemScore",
    "AdminAction",
    "SubmitterKey",
    "ScoreShard",
    "Status",
    "new_public_id",
    "ACTIVE_STATES",
    "utcnow",
    "make_engine",
    "make_session_factory",
    "session_scope",
    "upgrade",
    "current_revision",
    "alembic_config",
    "MIGRATIONS_DIR",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Status:
    """Lifecycle states: received -> validated -> queued -> scoring -> done | failed."""

    RECEIVED = "received"
    VALIDATED = "validated"
    QUEUED = "queued"
    SCORING = "scoring"
    DONE = "done"
    FAILED = "failed"
    ALL = (RECEIVED, VALIDATED, QUEUED, SCORING, DONE, FAILED)


ACTIVE_STATES = (Status.RECEIVED, Status.VALIDATED, Status.QUEUED, Status.SCORING)


def utcnow() -> dt.datetime:
    """The current time, UTC, timezone-aware."""
    return dt.datetime.now(dt.timezone.utc)


def new_public_id() -> str:
    """A fresh opaque submission id: "s" and 16 hex digits (64 random bits).

    Users see and poll this id; the integer primary key is for maintainers only, so ids
    cannot be enumerated."""
    return "s" + secrets.token_hex(8)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime stored naive (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use leaderboard.db.utcnow()")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Submission(Base):
    """One submitted archive: metadata, lifecycle and results summary."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(200))
    authors: Mapped[str] = mapped_column(Text, default="")
    paper_url: Mapped[str] = mapped_column(String(500), default="")
    code_url: Mapped[str] = mapped_column(String(500), default="")
    representation: Mapped[str] = mapped_column(String(20), default="")
    frame: Mapped[str] = mapped_column(String(20), default="")
    training_data: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(300), default="")
    submitter: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default=Status.RECEIVED, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    archive_sha256: Mapped[str] = mapped_column(String(64), index=True)
    archive_size: Mapped[int] = mapped_column(Integer, default=0)
    archive_ext: Mapped[str] = mapped_column(String(16), default=".zip")
    protocol_id: Mapped[str] = mapped_column(String(64), default="")
    benchmark_id: Mapped[str] = mapped_column(String(128), default="")
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    score_headline: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_iou: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_chamfer_l1: Mapped[float | None] = mapped_column(Float, nullable=True)
    coverage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    overall: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Revision 0003: the id users see, the normal forms of `submitter` (see
    # leaderboard.identity: `name_key`, `quota_key`) and the hash of the decoded predictions.
    public_id: Mapped[str | None] = mapped_column(
        String(24), unique=True, index=True, nullable=True, default=new_public_id
    )
    submitter_key: Mapped[str | None] = mapped_column(String(400), index=True, nullable=True)
    quota_key: Mapped[str | None] = mapped_column(String(400), index=True, nullable=True)
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    # Revision 0005: the archive's file name as uploaded (`identity.clean_upload_name`),
    # shown instead of the stored archive's hash name.
    upload_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Revision 0006: for a seeded baseline, the digest of the weights that predicted it
    # (`leaderboard.seed.weights_digest`), and the earlier baseline of the same method it
    # replaces once it is scored (that one is then hidden, never deleted).
    weights_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    supersedes: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (Index("ix_submissions_status_id", "status", "id"),)

    def __repr__(self) -> str:
        return f"Submission(id={self.id}, method={self.method!r}, status={self.status!r})"


class ClassResult(Base):
    """Mean and median of one metric over one class's test items."""

    __tablename__ = "class_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    class_name: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    median: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (UniqueConstraint("submission_id", "class_name", "metric"),)


class ItemScore(Base):
    """The scores of one test item (None = not applicable, e.g. IoU of a point cloud).

    `fscore`, `precision` and `recall` are at the protocol's headline threshold; `metrics`
    holds every metric key of the protocol.
    """

    __tablename__ = "item_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="ok")
    fscore: Mapped[float | None] = mapped_column(Float, nullable=True)
    precision: Mapped[float | None] = mapped_column(Float, nullable=True)
    recall: Mapped[float | None] = mapped_column(Float, nullable=True)
    iou: Mapped[float | None] = mapped_column(Float, nullable=True)
    iou_128: Mapped[float | None] = mapped_column(Float, nullable=True)
    chamfer_l1: Mapped[float | None] = mapped_column(Float, nullable=True)
    chamfer_l2: Mapped[float | None] = mapped_column(Float, nullable=True)
    normal_consistency: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (UniqueConstraint("submission_id", "item_id"),)


class AdminAction(Base):
    """An audit log of maintainer actions (added in revision 0002)."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubmitterKey(Base):
    """A submitter's key (revision 0003): only its SHA-256 is stored. `name_key` is the
    normal form of `name` (one key per name); a revoked key has `revoked_at` set."""

    __tablename__ = "submitter_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(400), unique=True, index=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ScoreShard(Base):
    """One shard of a submission being scored by several workers (revision 0004).

    Items `start:stop` of the submission's test ids (benchmark order); `status` is queued,
    scoring, done or failed; `result` holds the shard's per-item scores (JSON) until the
    submission's results are stored, then it is cleared (the row stays as a record of who
    scored what). `attempts` counts claims (a dead worker's shard is claimed again).
    """

    __tablename__ = "score_shards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    stop: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        UniqueConstraint("submission_id", "index"),
        Index("ix_score_shards_status_submission", "status", "submission_id"),
    )


# ----------------------------------------------------------------------------- engine


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL mode, a 30 s busy timeout and foreign keys.

    The parent folder of a SQLite file is created if needed. Server databases (PostgreSQL)
    get `pool_pre_ping`: a pooled connection is tested before use and replaced when the
    server restarted meanwhile.
    """
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        database = url.split("///", 1)[1] if "///" in url else ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine) -> Any:
    """An Alembic Config built in code (no alembic.ini), bound to `engine`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest) with the Alembic migrations."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    logger.info("database %s at revision %s", engine.url, revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
