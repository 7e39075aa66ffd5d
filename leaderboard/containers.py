"""Safe archive containers: zip, tar and gzip read under caps, never extracted by name.

`ArchiveLimits` holds the caps (bytes, counts, decompression ratio) and the per-item limits.
Members are read into memory through `_read_capped`, which counts the bytes actually
decompressed against the caps, so a lying header cannot make the server allocate or write
more than allowed; names are checked (`_safe_name`) and links, devices, FIFOs and encrypted
entries refused. A `.tar.gz` is decompressed by `_gunzip` into one temporary file. Used by
`leaderboard.archive` (submissions) and `leaderboard.items` (an item `.npz` is a zip).
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from leaderboard.validation import DEFAULT_ITEM_LIMITS, ItemError, ItemLimits, SubmissionError

__all__ = ["ArchiveLimits", "DEFAULT_LIMITS"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MiB = 1 << 20
_GiB = 1 << 30


@dataclass(frozen=True)
class ArchiveLimits:
    """Archive-level caps (bytes, counts) and the per-item limits.

    max_ratio applies to entries whose decompressed size exceeds ratio_min_bytes. Measured on
    real 128^3 bool grids saved with np.save and deflated, legitimate ratios reach ~520:1
    (median ~200:1) and 256^3 grids ~780:1, so the default is 1000:1; deflate itself tops
    out near 1032:1, bzip2/lzma bombs go far beyond. The real bound is max_total_bytes,
    enforced on the bytes actually decompressed. max_entry_bytes (one member, held in memory
    while it is decoded) admits a 256^3 float64 grid (128 MiB). max_scratch_bytes bounds the
    temporary file a .tar.gz is decompressed into (`_gunzip`).
    """

    max_total_bytes: int = 2 * _GiB
    max_entry_bytes: int = 160 * _MiB
    max_scratch_bytes: int = _GiB
    max_entries: int = 200_000
    max_ratio: float = 1000.0
    ratio_min_bytes: int = _MiB
    max_npz_members: int = 16
    max_reported_errors: int = 50
    items: ItemLimits = field(default_factory=lambda: DEFAULT_ITEM_LIMITS)


DEFAULT_LIMITS = ArchiveLimits()


# ----------------------------------------------------------------------------- capped reads


_SIZE_ADVICE = (
    "store voxel grids as .binvox (run-length encoded: a 128^3 grid takes ~10-50 KB instead "
    "of 2 MB as .npy) or at 32^3, meshes with fewer faces, at most 100,000 points per item"
)


class _Budget:
    """Counts decompressed bytes across a whole archive and enforces max_total_bytes."""

    def __init__(self, limits: ArchiveLimits):
        self.limits = limits
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limits.max_total_bytes:
            raise SubmissionError(
                "archive is too large when uncompressed",
                [
                    f"more than {self.limits.max_total_bytes:,} bytes after decompression "
                    f"(limit {self.limits.max_total_bytes / _GiB:.3g} GiB); {_SIZE_ADVICE}"
                ],
            )


def _ratio_error(name: str, size: int, compressed: int, limits: ArchiveLimits) -> SubmissionError:
    return SubmissionError(
        "archive entry is compressed suspiciously well (possible zip bomb)",
        [
            f"{name}: {size:,} bytes from {compressed:,} compressed bytes is a ratio above "
            f"{limits.max_ratio:g}:1 (entries over {limits.ratio_min_bytes:,} bytes); store "
            "voxel grids as .binvox (run-length encoded) or at a lower resolution"
        ],
    )


def _read_capped(
    stream: IO[bytes],
    name: str,
    limits: ArchiveLimits,
    budget: _Budget | None,
    compressed: int | None,
    declared: int | None,
) -> bytearray:
    """Read a stream fully, enforcing the entry cap, the ratio cap and the total budget on
    the bytes actually produced. Returns the growing buffer itself (no final copy)."""
    out = bytearray()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        out += chunk
        n = len(out)
        if n > limits.max_entry_bytes:
            raise SubmissionError(
                "archive entry is too large",
                [f"{name}: more than {limits.max_entry_bytes:,} bytes uncompressed"],
            )
        if declared is not None and n > declared:
            raise SubmissionError(
                "archive entry is larger than its header declares (corrupt or hostile archive)",
                [f"{name}: header says {declared:,} bytes, already read {n:,}"],
            )
        if (
            compressed is not None
            and n > limits.ratio_min_bytes
            and n > limits.max_ratio * max(compressed, 1)
        ):
            raise _ratio_error(name, n, compressed, limits)
        if budget is not None:
            budget.take(len(chunk))
    return out


# ----------------------------------------------------------------------------- names


def _safe_name(raw: str) -> str:
    """Normalise an archive member name; SubmissionError for anything that could escape."""
    if "\x00" in raw:
        raise SubmissionError("unsafe path in archive: NUL byte", [repr(raw)])
    if "\\" in raw:
        raise SubmissionError(
            "unsafe path in archive: backslash",
            [f"{raw!r}: use forward slashes '/' between folders"],
        )
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise SubmissionError(
            "unsafe path in archive: absolute path",
            [f"{raw!r}: member names must be relative, like 'chair/<shape id>/0.npy'"],
        )
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SubmissionError(
            "unsafe path in archive: '..' component",
            [f"{raw!r}: member names must not contain '..'"],
        )
    return "/".join(parts)


def _is_junk(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or base in (".DS_Store", "Thumbs.db", "desktop.ini")


# ----------------------------------------------------------------------------- containers


@dataclass
class _Member:
    name: str
    size: int
    compressed: int | None
    handle: object


class _Container:
    """An opened archive: a list of checked regular-file members and capped reads."""

    members: list[_Member]
    budget: _Budget

    def read(self, member: _Member) -> bytearray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _entry_count_error(limits: ArchiveLimits) -> SubmissionError:
    return SubmissionError(
        "archive has too many entries",
        [f"more than {limits.max_entries:,} entries; submit one file per test item"],
    )


def _check_declared_total(members: list[_Member], limits: ArchiveLimits) -> None:
    total = sum(m.size for m in members)
    if total > limits.max_total_bytes:
        raise SubmissionError(
            "archive is too large when uncompressed",
            [
                f"its entries declare {total:,} bytes; at most {limits.max_total_bytes:,} allowed "
                f"({limits.max_total_bytes / _GiB:.3g} GiB); {_SIZE_ADVICE}"
            ],
        )


def _zip_declared_entries(source: str | Path | IO[bytes]) -> int | None:
    """The entry count of a zip's end-of-central-directory record (zip64 aware), read before
    zipfile parses the whole central directory; None if no record is found."""
    fh = open(source, "rb") if isinstance(source, (str, Path)) else source
    try:
        fh.seek(0, io.SEEK_END)
        size = fh.tell()
        tail_len = min(size, 65536 + 22)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or pos + 22 > len(tail):
            return None
        total = int.from_bytes(tail[pos + 10 : pos + 12], "little")
        if total == 0xFFFF and pos >= 20 and tail[pos - 20 : pos - 16] == b"PK\x06\x07":
            offset = int.from_bytes(tail[pos - 12 : pos - 4], "little")
            fh.seek(offset)
            record = fh.read(40)
            if record[:4] == b"PK\x06\x06" and len(record) == 40:
                total = int.from_bytes(record[32:40], "little")
        return total
    except OSError:
        return None
    finally:
        if isinstance(source, (str, Path)):
            fh.close()
        else:
            fh.seek(0)


class _ZipContainer(_Container):
    def __init__(self, source: str | Path | IO[bytes], limits: ArchiveLimits, label: str):
        self.limits = limits
        self.budget = _Budget(limits)
        declared = _zip_declared_entries(source)
        if declared is not None and declared > limits.max_entries:
            raise _entry_count_error(limits)
        try:
            self.zf = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise SubmissionError(f"{label} is not a readable zip archive", [str(exc)]) from None
        infos = self.zf.infolist()
        if len(infos) > limits.max_entries:
            self.zf.close()
            raise _entry_count_error(limits)
        self.members = []
        try:
            for info in infos:
                self._check(info)
                if info.is_dir():
                    continue
                name = _safe_name(info.filename)
                self.members.append(_Member(name, info.file_size, info.compress_size, info))
            _check_declared_total(self.members, limits)
        except BaseException:
            self.zf.close()
            raise

    def _check(self, info: zipfile.ZipInfo) -> None:
        _safe_name(info.filename)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise SubmissionError(
                "archive contains a symbolic link",
                [f"{info.filename!r}: links are refused; store the file itself"],
            )
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            raise SubmissionError(
                "archive contains a device file or FIFO",
                [f"{info.filename!r}: only regular files are accepted"],
            )
        if info.flag_bits & 0x1:
            raise SubmissionError(
                "encrypted archive entries are not supported",
                [f"{info.filename!r} is encrypted; submit an unencrypted archive"],
            )
        if info.file_size > self.limits.max_entry_bytes:
            raise SubmissionError(
                "archive entry is too large",
                [
                    f"{info.filename}: {info.file_size:,} bytes uncompressed; at most "
                    f"{self.limits.max_entry_bytes:,} per entry"
                ],
            )
        if (
            info.file_size > self.limits.ratio_min_bytes
            and info.file_size > self.limits.max_ratio * max(info.compress_size, 1)
        ):
            raise _ratio_error(info.filename, info.file_size, info.compress_size, self.limits)

    def read(self, member: _Member) -> bytearray:
        info = member.handle
        if not isinstance(info, zipfile.ZipInfo):  # pragma: no cover - internal
            raise TypeError("zip member expected")
        try:
            with self.zf.open(info) as stream:
                return _read_capped(
                    stream, member.name, self.limits, self.budget, member.compressed, member.size
                )
        except SubmissionError:
            raise
        except NotImplementedError as exc:
            raise SubmissionError(
                "archive uses an unsupported compression method",
                [f"{member.name}: {exc}; use deflate (the default of zip tools)"],
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
            raise ItemError(f"cannot be read from the zip archive (corrupt entry: {exc})") from None

    def close(self) -> None:
        self.zf.close()


class _TarContainer(_Container):
    def __init__(self, path: Path, limits: ArchiveLimits, label: str):
        self.limits = limits
        self.budget = _Budget(limits)
        try:
            self.tf = tarfile.open(path, mode="r:")
        except (tarfile.TarError, OSError) as exc:
            raise SubmissionError(f"{label} is not a readable tar archive", [str(exc)]) from None
        self.members = []
        count = 0
        try:
            while True:
                try:
                    info = self.tf.next()
                except tarfile.TarError as exc:
                    raise SubmissionError(
                        f"{label} is not a readable tar archive", [str(exc)]
                    ) from None
                if info is None:
                    break
                count += 1
                if count > limits.max_entries:
                    raise _entry_count_error(limits)
                self._check(info)
                if info.isdir():
                    continue
                name = _safe_name(info.name)
                self.members.append(_Member(name, info.size, None, info))
            _check_declared_total(self.members, limits)
        except BaseException:
            self.tf.close()
            raise

    def _check(self, info: tarfile.TarInfo) -> None:
        _safe_name(info.name)
        if info.issym():
            raise SubmissionError(
                "archive contains a symbolic link",
                [f"{info.name!r} -> {info.linkname!r}: links are refused; store the file itself"],
            )
        if info.islnk():
            raise SubmissionError(
                "archive contains a hard link",
                [f"{info.name!r} -> {info.linkname!r}: links are refused; store the file itself"],
            )
        if info.ischr() or info.isblk() or info.isfifo():
            raise SubmissionError(
                "archive contains a device file or FIFO",
                [f"{info.name!r}: only regular files are accepted"],
            )
        if not (info.isreg() or info.isdir()):
            raise SubmissionError(
                "archive contains an unsupported entry type",
                [f"{info.name!r} (tar type {info.type!r}): only regular files are accepted"],
            )
        if info.size > self.limits.max_entry_bytes:
            raise SubmissionError(
                "archive entry is too large",
                [
                    f"{info.name}: {info.size:,} bytes; at most "
                    f"{self.limits.max_entry_bytes:,} per entry"
                ],
            )

    def read(self, member: _Member) -> bytearray:
        info = member.handle
        if not isinstance(info, tarfile.TarInfo):  # pragma: no cover - internal
            raise TypeError("tar member expected")
        try:
            stream = self.tf.extractfile(info)
            if stream is None:  # pragma: no cover - only regular files are kept
                raise ItemError("is not a regular file")
            with stream:
                return _read_capped(
                    stream, member.name, self.limits, self.budget, None, member.size
                )
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ItemError(f"cannot be read from the tar archive ({exc})") from None

    def close(self) -> None:
        self.tf.close()


def _gunzip(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    """Decompress a gzip file into `dest` with the total, ratio and scratch caps on the bytes
    actually produced (a partial file is left for the caller to remove)."""
    compressed = path.stat().st_size
    # The tar stream holds the members plus 512-byte headers and padding.
    cap = limits.max_total_bytes + 1024 * (limits.max_entries + 16)
    produced = 0
    try:
        with gzip.open(path, "rb") as src, open(dest, "wb") as out:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                produced += len(chunk)
                if produced > cap:
                    raise SubmissionError(
                        "archive is too large when uncompressed",
                        [
                            f"the gzip stream decompresses to more than {cap:,} bytes "
                            f"(limit {limits.max_total_bytes / _GiB:.3g} GiB of content)"
                        ],
                    )
                if produced > limits.ratio_min_bytes and produced > limits.max_ratio * compressed:
                    raise _ratio_error(path.name, produced, compressed, limits)
                if produced > limits.max_scratch_bytes:
                    raise SubmissionError(
                        "a .tar.gz this large cannot be unpacked for validation",
                        [
                            f"{path.name} decompresses to more than "
                            f"{limits.max_scratch_bytes / _MiB:,.0f} MB, the most the server "
                            "unpacks of a .tar.gz; submit the same files as a .zip (read in "
                            f"place, up to {limits.max_total_bytes / _GiB:.3g} GiB uncompressed) "
                            f"or lighter items: {_SIZE_ADVICE}"
                        ],
                    )
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise SubmissionError(f"{path.name} is not a readable gzip file", [str(exc)]) from None
