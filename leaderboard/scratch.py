"""Scratch folders for archive validation: named by their owner, cleaned when it is gone.

`make_scratch_dir(root)` creates `<root>/<prefix>-<pid>.<start>-<random>`, where `start` is
the owning process's start time (clock ticks since boot, from /proc; 0 where /proc is
missing), so a folder left by a process that died (SIGKILL, power loss) is recognised even
when a later process gets the same PID. `clean_scratch(root)` removes every such folder whose
owner is no longer running, and, when `unowned_after_s` is given, anything else under `root`
(folders of older versions, stray files) unchanged for that many seconds. Folders of live
processes are never touched, so it is safe to call at any time from any process sharing
SVR_HOME.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ScratchCleanup", "clean_scratch", "make_scratch_dir", "owner_alive", "tree_size"]

logger = logging.getLogger(__name__)

_OWNED = re.compile(r"\A[a-z]+-(\d+)\.(\d+)-[A-Za-z0-9_]+\Z")


def _start_ticks(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks since boot; None if it does not exist, 0
    where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else _alive_without_proc(pid)
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return 0


def _alive_without_proc(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


def make_scratch_dir(root: str | os.PathLike, prefix: str = "submission") -> Path:
    """A fresh folder under `root` (created if needed) owned by this process."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    start = _start_ticks(pid) or 0
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{pid}.{start}-", dir=root))


def owner_alive(name: str) -> bool | None:
    """Whether the process named in a scratch folder name still runs (same PID, same start
    time); None for a name `make_scratch_dir` did not make."""
    match = _OWNED.match(name)
    if match is None:
        return None
    pid, start = int(match.group(1)), int(match.group(2))
    now = _start_ticks(pid)
    if now is None:
        return False
    return now == start or 0 in (now, start)


def tree_size(path: str | os.PathLike) -> int:
    """Bytes of the regular files under `path` (a file: its size; missing: 0)."""
    path = Path(path)
    try:
        if not path.is_dir():
            return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _newest_mtime(path: Path) -> float:
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return 0.0
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
                except OSError:
                    pass
    return newest


@dataclass(frozen=True)
class ScratchCleanup:
    """What `clean_scratch` removed: entries and bytes."""

    removed: int = 0
    bytes: int = 0


def clean_scratch(
    root: str | os.PathLike, unowned_after_s: float | None = None, now: float | None = None
) -> ScratchCleanup:
    """Remove what no live process owns under `root` (see the module docstring).

    Args:
        root: the scratch folder (nothing happens if it does not exist).
        unowned_after_s: also remove entries not made by `make_scratch_dir` when nothing in
            them changed for this many seconds; None leaves them alone.
        now: the current time (seconds since the epoch; tests).
    """
    root = Path(root)
    if not root.is_dir():
        return ScratchCleanup()
    now = time.time() if now is None else now
    removed = freed = 0
    for entry in root.iterdir():
        alive = owner_alive(entry.name)
        if alive:
            continue
        if alive is None and (
            unowned_after_s is None or now - _newest_mtime(entry) < unowned_after_s
        ):
            continue
        size = tree_size(entry)
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("could not remove scratch entry %s: %s", entry.name, exc)
            continue
        removed += 1
        freed += size
    if removed:
        logger.info("scratch: removed %d stale entries (%.1f MB)", removed, freed / 1e6)
    return ScratchCleanup(removed, freed)
