"""Content-addressed storage of submission archives.

An archive with SHA-256 `abcdef...` and extension `.zip` lives at
`<root>/ab/abcdef....zip`. Writing copies into a temporary file in the same folder, hashes
while copying, then renames: a crash never leaves a half-written archive under its final
name, and storing the same bytes twice keeps one copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ArchiveStore",
    "StoredArchive",
    "archive_extension",
    "sha256_file",
    "ARCHIVE_EXTENSIONS",
]

logger = logging.getLogger(__name__)

ARCHIVE_EXTENSIONS = (".tar.gz", ".tgz", ".tar", ".zip", ".npz")
_CHUNK = 1 << 20
_SHA_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def archive_extension(name: str) -> str:
    """The archive extension of a file name (".zip", ".tar.gz", ...), lower case.

    Raises ValueError naming the accepted extensions otherwise.
    """
    lower = name.lower()
    for ext in ARCHIVE_EXTENSIONS:
        if lower.endswith(ext):
            return ext
    raise ValueError(
        f"{Path(name).name!r} is not a submission archive; upload one of "
        + ", ".join(ARCHIVE_EXTENSIONS)
    )


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredArchive:
    """An archive in the store: its hash, size in bytes, extension and path."""

    sha256: str
    size: int
    ext: str
    path: Path


class ArchiveStore:
    """Archives under `root`, named by content (see the module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, sha256: str, ext: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a hex SHA-256: {sha256!r}")
        if ext not in ARCHIVE_EXTENSIONS:
            raise ValueError(f"unknown archive extension {ext!r}")
        return self.root / sha256[:2] / f"{sha256}{ext}"

    def put(
        self, source: str | os.PathLike, ext: str, max_bytes: int | None = None
    ) -> StoredArchive:
        """Copy `source` into the store (hashing while copying); returns where it lives.

        Raises ValueError if the file is larger than `max_bytes` (nothing is kept then).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ValueError(
                            f"archive larger than the limit of {max_bytes / (1 << 20):.0f} MB; "
                            "submit fewer or lighter items (e.g. 32^3 grids or fewer points)"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path_for(sha, ext)
            if final.is_file() and final.stat().st_size == size:
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredArchive(sha, size, ext, final)

    def get(self, sha256: str, ext: str) -> Path:
        """The path of a stored archive; FileNotFoundError if it is not in the store."""
        path = self.path_for(sha256, ext)
        if not path.is_file():
            raise FileNotFoundError(f"archive {sha256[:12]}{ext} is not in the store {self.root}")
        return path

    def verify(self, sha256: str, ext: str) -> bool:
        """True if the stored bytes still hash to `sha256`."""
        return sha256_file(self.get(sha256, ext)) == sha256

    def all(self) -> list[Path]:
        """Every stored archive (sorted paths)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("??/*") if p.is_file())
