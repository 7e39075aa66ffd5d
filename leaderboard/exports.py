"""Table exports (CSV, JSON) for download, leaving nothing behind.

The Leaderboard tab hands Gradio a file path; Gradio copies the file into its own cache
(cleaned by the app's `delete_cache`) when the handler returns. So the file written here is
needed for a moment only: each session has one folder under `root` holding at most one
file per kind (each export overwrites it), every export first deletes the files of any
session older than `max_age_s`, and a session's folder is deleted when its page unloads.

CSV cells that a spreadsheet would run as a formula are neutralised (`views.csv_safe`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from leaderboard import views

__all__ = ["ExportFolder", "DEFAULT_ROOT"]

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path(tempfile.gettempdir()) / "svr-leaderboard-exports"
_SAFE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


class ExportFolder:
    """Per-session export files under `root` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, max_age_s: float = 60.0):
        self.root = Path(root)
        self.max_age_s = max_age_s

    def _folder(self, session: str | None) -> Path:
        name = session or "anonymous"
        if not _SAFE.match(name):
            name = hashlib.sha256(name.encode()).hexdigest()[:32]
        return self.root / name

    def write(self, frame: pd.DataFrame, kind: str, session: str | None = None) -> Path:
        """Write `frame` as `leaderboard.<kind>` ("csv" or "json") for `session`; its path."""
        if kind not in ("csv", "json"):
            raise ValueError(f"unknown export kind {kind!r}; csv or json")
        self.sweep()
        folder = self._folder(session)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"leaderboard.{kind}"
        tmp = folder / f".leaderboard.{kind}.tmp"
        if kind == "csv":
            views.csv_safe(frame).to_csv(tmp, index=False)
        else:
            tmp.write_text(json.dumps(views.frame_records(frame), indent=1, ensure_ascii=False))
        os.replace(tmp, path)
        return path

    def drop(self, session: str | None) -> None:
        """Delete the folder of `session` (its page unloaded)."""
        shutil.rmtree(self._folder(session), ignore_errors=True)

    def sweep(self) -> None:
        """Delete files older than `max_age_s`, and folders left empty."""
        if not self.root.is_dir():
            return
        now = time.time()
        for folder in self.root.iterdir():
            try:
                if folder.is_dir() and not folder.is_symlink():
                    for file in folder.iterdir():
                        if now - file.lstat().st_mtime > self.max_age_s:
                            file.unlink(missing_ok=True)
                    if not any(folder.iterdir()):
                        folder.rmdir()
            except OSError:  # another process swept it first
                logger.debug("export folder %s changed while sweeping", folder)
