"""Optional backup of the leaderboard (database and archives) and restore at start.

Off unless `SVR_BACKUP_REPO` names a private Hugging Face dataset repository. A backup
writes a consistent snapshot of the SQLite database (sqlite3's online backup API, safe while
the app writes) as `svr.db`, and uploads stored archives not yet in the target under
`archives/ab/<sha256><ext>`. At start, when the local database file is missing, it is
restored from the target. Offline (HF_HUB_OFFLINE=1) or without a token, backup is disabled
with a log message, never an error.

Targets implement the small `BackupTarget` protocol: `HFDatasetTarget` and
`LocalFolderTarget` (tests, or a mounted volume).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from leaderboard.settings import LeaderboardSettings
from leaderboard.storage import ArchiveStore

__all__ = [
    "BackupTarget",
    "LocalFolderTarget",
    "HFDatasetTarget",
    "snapshot_database",
    "backup",
    "restore_database",
    "restore_at_start",
    "target_from_settings",
    "BackupThread",
]

logger = logging.getLogger(__name__)

DB_NAME = "svr.db"


class BackupTarget(Protocol):
    """Where backups go: named files (POSIX-style relative names)."""

    def list_files(self) -> set[str]: ...

    def upload(self, local: Path, name: str) -> None: ...

    def download(self, name: str, local: Path) -> bool:
        """Copy `name` to `local`; False if the target has no such file."""
        ...


class LocalFolderTarget:
    """A folder standing in for a repository (writes are temp-then-rename)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise ValueError(f"unsafe backup file name {name!r}")
        return self.root.joinpath(*parts)

    def list_files(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}

    def upload(self, local: Path, name: str) -> None:
        dest = self._path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)

    def download(self, name: str, local: Path) -> bool:
        src = self._path(name)
        if not src.is_file():
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, local)
        return True


class HFDatasetTarget:
    """A private Hugging Face dataset repository (needs a write token in the environment)."""

    def __init__(self, repo_id: str):
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.api = HfApi()

    def list_files(self) -> set[str]:
        return set(self.api.list_repo_files(self.repo_id, repo_type="dataset"))

    def upload(self, local: Path, name: str) -> None:
        self.api.upload_file(
            path_or_fileobj=str(local), path_in_repo=name, repo_id=self.repo_id,
            repo_type="dataset", commit_message=f"backup {name}",
        )  # fmt: skip

    def download(self, name: str, local: Path) -> bool:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError

        try:
            cached = hf_hub_download(self.repo_id, name, repo_type="dataset")
        except EntryNotFoundError:
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp")
        shutil.copyfile(cached, tmp)
        os.replace(tmp, local)
        return True


def _sqlite_path(settings: LeaderboardSettings) -> Path | None:
    url = settings.database_url
    if not url.startswith("sqlite:///"):
        return None
    path = url.split("///", 1)[1]
    return None if path in ("", ":memory:") else Path(path)


def target_from_settings(settings: LeaderboardSettings) -> BackupTarget | None:
    """The configured target, or None (backup off, offline, or huggingface_hub unusable)."""
    if not settings.backup_repo:
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        logger.warning("backup to %s disabled: HF_HUB_OFFLINE is set", settings.backup_repo)
        return None
    try:
        return HFDatasetTarget(settings.backup_repo)
    except Exception as exc:  # no huggingface_hub, bad configuration
        logger.warning("backup to %s disabled: %s", settings.backup_repo, exc)
        return None


def snapshot_database(db_path: Path, out: Path) -> None:
    """A consistent copy of a live SQLite database (WAL included) at `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(str(db_path))
    try:
        dest = sqlite3.connect(str(out))
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()


def backup(settings: LeaderboardSettings, target: BackupTarget) -> dict[str, int]:
    """Upload a database snapshot and any archives the target lacks.

    Returns {"database": 0 or 1, "archives": number uploaded}.
    """
    uploaded = {"database": 0, "archives": 0}
    db_path = _sqlite_path(settings)
    with tempfile.TemporaryDirectory(dir=settings.home) as tmp:
        if db_path is not None and db_path.is_file():
            snap = Path(tmp) / DB_NAME
            snapshot_database(db_path, snap)
            target.upload(snap, DB_NAME)
            uploaded["database"] = 1
    present = target.list_files()
    store = ArchiveStore(settings.archives_dir)
    for path in store.all():
        name = f"archives/{path.parent.name}/{path.name}"
        if name not in present:
            target.upload(path, name)
            uploaded["archives"] += 1
    logger.info("backup: %s", uploaded)
    return uploaded


def restore_database(
    settings: LeaderboardSettings, target: BackupTarget, archives: bool = True
) -> bool:
    """Restore the database (and the archives) from `target` if the local database is missing.

    Returns True if the database was restored.
    """
    db_path = _sqlite_path(settings)
    if db_path is None or db_path.exists():
        return False
    if not target.download(DB_NAME, db_path):
        logger.info("no database backup in the target; starting empty")
        return False
    if archives:
        store = ArchiveStore(settings.archives_dir)
        for name in sorted(target.list_files()):
            if name.startswith("archives/"):
                rel = name.split("/", 1)[1]
                local = store.root / rel
                if not local.exists():
                    target.download(name, local)
    logger.warning("restored the database from the backup into %s", db_path)
    return True


def restore_at_start(settings: LeaderboardSettings) -> bool:
    """Called by the service before opening the database: restore when configured and missing."""
    target = target_from_settings(settings)
    if target is None:
        return False
    try:
        return restore_database(settings, target)
    except Exception:
        logger.exception(
            "restoring from %s failed; starting with an empty database", settings.backup_repo
        )
        return False


class BackupThread:
    """Back up every `settings.backup_interval_s` seconds in a daemon thread."""

    def __init__(self, settings: LeaderboardSettings, target: BackupTarget):
        self.settings = settings
        self.target = target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leaderboard-backup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.backup_interval_s):
            try:
                backup(self.settings, self.target)
            except Exception:
                logger.exception("backup to %s failed; retrying later", self.settings.backup_repo)
