"""Optional backup of the leaderboard (database, archives, the built benchmark) and restore
at start.

Off unless `SVR_BACKUP_REPO` names a private Hugging Face dataset repository. A backup
writes a consistent snapshot of the SQLite database (sqlite3's online backup API, safe while
the app writes) as `svr.db`, uploads stored archives not yet in the target under
`archives/ab/<sha256><ext>`, and, once per benchmark identifier, the built benchmark the
app serves (`benchmark.json`, the test and validation splits; the training split is left
out: it is rebuilt on demand) as one uncompressed tar `benchmark/<identifier>.tar`, named
by `benchmark/CURRENT`. The test split's ground truth goes with it: the repository must be
private. At start, when the local database file is missing, it is restored from the
target, and so is the benchmark when its folder holds none, so a Space without persistent
storage serves and scores at once instead of building again. Offline (HF_HUB_OFFLINE=1) or
without a token, backup is disabled with a log message, never an error.

Targets implement the small `BackupTarget` protocol: `HFDatasetTarget` and
`LocalFolderTarget` (tests, or a mounted volume).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tarfile
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
    "backup_benchmark",
    "restore_benchmark",
    "restore_at_start",
    "restore_state",
    "target_from_settings",
    "BackupThread",
]

logger = logging.getLogger(__name__)

DB_NAME = "svr.db"
BENCHMARK_POINTER = "benchmark/CURRENT"  # text: the name of the current benchmark tar
BENCHMARK_PARTS = ("benchmark.json", "test", "val")  # what a benchmark backup holds


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

        local.parent.mkdir(parents=True, exist_ok=True)
        # into a folder beside `local`, not the Hub cache: a benchmark tar is not kept twice
        with tempfile.TemporaryDirectory(prefix=".hf-", dir=local.parent) as tmp:
            try:
                got = hf_hub_download(self.repo_id, name, repo_type="dataset", local_dir=tmp)
            except EntryNotFoundError:
                return False
            os.replace(got, local)
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


def backup(
    settings: LeaderboardSettings, target: BackupTarget, benchmark_dir: Path | None = None
) -> dict[str, int]:
    """Upload a database snapshot, any archives the target lacks and (given `benchmark_dir`)
    the benchmark when the target lacks its identifier.

    Returns {"database": 0 or 1, "archives": number uploaded} (and "benchmark": 0 or 1 when
    `benchmark_dir` is given).
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
    if benchmark_dir is not None:
        uploaded["benchmark"] = int(backup_benchmark(settings, target, benchmark_dir, present))
    logger.info("backup: %s", uploaded)
    return uploaded


def _benchmark_identifier(benchmark_dir: Path) -> str | None:
    from svr.data.layout import BenchmarkMeta

    try:
        return BenchmarkMeta.from_json((benchmark_dir / "benchmark.json").read_text()).identifier
    except (OSError, ValueError, TypeError):
        return None


def backup_benchmark(
    settings: LeaderboardSettings,
    target: BackupTarget,
    benchmark_dir: Path,
    present: set[str] | None = None,
) -> bool:
    """Upload the built benchmark (BENCHMARK_PARTS) as `benchmark/<identifier>.tar` and point
    BENCHMARK_POINTER at it, unless the target holds that identifier already (or there is no
    built benchmark). Returns True when it uploaded."""
    ident = _benchmark_identifier(Path(benchmark_dir))
    if ident is None:
        return False
    name = f"benchmark/{ident}.tar"
    present = target.list_files() if present is None else present
    if name not in present:
        with tempfile.TemporaryDirectory(dir=settings.home) as tmp:
            archive = Path(tmp) / "benchmark.tar"
            with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
                for part in BENCHMARK_PARTS:
                    if (Path(benchmark_dir) / part).exists():
                        tar.add(Path(benchmark_dir) / part, arcname=part)
            target.upload(archive, name)
            uploaded = True
    else:
        uploaded = False
    with tempfile.TemporaryDirectory(dir=settings.home) as tmp:
        pointer = Path(tmp) / "CURRENT"
        pointer.write_text(name + "\n")
        target.upload(pointer, BENCHMARK_POINTER)
    return uploaded


def _extract_benchmark(archive: Path, staging: Path, name: str) -> None:
    """Extract a benchmark tar: BENCHMARK_PARTS only, regular files and folders, no `..`."""
    with tarfile.open(archive, "r:") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if (
                parts[0] not in BENCHMARK_PARTS
                or ".." in parts
                or not (member.isfile() or member.isdir())
            ):
                raise ValueError(f"{name}: unexpected entry {member.name!r}; not restored")
        tar.extractall(staging, filter="data")


def restore_benchmark(target: BackupTarget, benchmark_dir: Path) -> bool:
    """Restore the benchmark named by BENCHMARK_POINTER into `benchmark_dir` when that folder
    holds no benchmark.json. Extracted beside it (regular files and folders only, no path
    leaving the folder: tarfile's "data" filter, plus the BENCHMARK_PARTS names) and renamed
    onto it when complete. Returns True when it restored."""
    benchmark_dir = Path(benchmark_dir)
    if (benchmark_dir / "benchmark.json").is_file():
        return False
    if benchmark_dir.is_dir() and any(benchmark_dir.iterdir()):
        logger.warning("%s is not empty; the benchmark backup is not restored", benchmark_dir)
        return False
    benchmark_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix=f".{benchmark_dir.name}.", dir=benchmark_dir.parent
    ) as tmp:
        pointer = Path(tmp) / "CURRENT"
        if not target.download(BENCHMARK_POINTER, pointer):
            logger.info("no benchmark backup in the target; it will be built")
            return False
        name = pointer.read_text().strip()
        if not (name.startswith("benchmark/") and name.endswith(".tar") and "/" not in name[10:]):
            raise ValueError(
                f"the backup's {BENCHMARK_POINTER} names {name!r}, not a benchmark tar"
            )
        archive = Path(tmp) / "benchmark.tar"
        if not target.download(name, archive):
            logger.warning("the backup names %s but does not hold it; building instead", name)
            return False
        staging = Path(tmp) / "staging"
        staging.mkdir()
        try:
            _extract_benchmark(archive, staging, name)
        except tarfile.TarError as exc:
            raise ValueError(f"{name}: {exc}; not restored") from None
        archive.unlink()
        if not (staging / "benchmark.json").is_file():
            raise ValueError(f"{name} holds no benchmark.json; not restored")
        if benchmark_dir.exists():
            benchmark_dir.rmdir()  # empty (checked above)
        os.replace(staging, benchmark_dir)
    logger.warning("restored the benchmark %s from the backup into %s", name, benchmark_dir)
    return True


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


def restore_at_start(settings: LeaderboardSettings, benchmark_dir: Path | None = None) -> bool:
    """Called by the service before opening the database: restore the database (and, given
    `benchmark_dir`, the benchmark) when configured and missing. True if the database was."""
    target = target_from_settings(settings)
    if target is None:
        return False
    return restore_state(settings, target, benchmark_dir)


def restore_state(
    settings: LeaderboardSettings, target: BackupTarget, benchmark_dir: Path | None = None
) -> bool:
    """`restore_database` and `restore_benchmark` from `target`, each logged and skipped on
    failure (the app then starts empty, or builds). True if the database was restored."""
    restored = False
    try:
        restored = restore_database(settings, target)
    except Exception:
        logger.exception(
            "restoring from %s failed; starting with an empty database", settings.backup_repo
        )
    if benchmark_dir is not None:
        try:
            restore_benchmark(target, Path(benchmark_dir))
        except Exception:
            logger.exception(
                "restoring the benchmark from %s failed; building it", settings.backup_repo
            )
    return restored


class BackupThread:
    """Back up every `settings.backup_interval_s` seconds in a daemon thread."""

    def __init__(
        self,
        settings: LeaderboardSettings,
        target: BackupTarget,
        benchmark_dir: Path | None = None,
    ):
        self.settings = settings
        self.target = target
        self.benchmark_dir = benchmark_dir
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
                backup(self.settings, self.target, self.benchmark_dir)
            except Exception:
                logger.exception("backup to %s failed; retrying later", self.settings.backup_repo)
