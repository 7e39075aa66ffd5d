"""Safe reading and parsing of submission archives.

A submission is one file: a `.zip`, `.tar`, `.tar.gz`/`.tgz` holding one file per test item
named by its item id (`<class>/<shape id>/<view>.<ext>`) plus a `submission.json` manifest, or
a single `.npz` whose keys are item ids (the manifest as a `submission.json` member, or a key
`submission.json` holding the JSON text as a string array).

Item formats (see `ITEM_FORMATS`): `.npy` / `.npz` voxel grid (R, R, R) or points (N, 3) (an
item `.npz` holds one array, or `vertices` + `faces` for a mesh), `.binvox` grid, `.ply`
points or mesh, `.xyz` points, `.obj` / `.off` / `.glb` meshes. Formats are recognised by
content as well as by name; a mismatch is an item error.

Safety: members are read into memory, never extracted by name, so nothing is written outside
the scratch folder. A `.tar.gz` is decompressed (with the size caps below) into one temporary
file in a fresh folder under `scratch`, deleted when the submission is closed. Refused with a
`SubmissionError`: absolute paths, `..` components, backslashes, symbolic and hard links,
device files, FIFOs, encrypted entries, more than `max_entries` entries, more than
`max_total_bytes` uncompressed (counted on the bytes actually read, not the headers), an entry
over `max_entry_bytes`, and an entry (or gzip stream, or `.npz` member) over `ratio_min_bytes`
whose decompressed/compressed ratio exceeds `max_ratio` (zip bombs). `.npy` data are loaded
with `allow_pickle=False`, after checking the header's dtype and shape against the bytes
present (so a lying header cannot make us allocate memory).

Validation policy: every item is decoded and checked before anything is scored; a submission
with any item error is rejected as a whole with the list (the first `max_reported_errors`
messages plus a count), because a partly valid submission would be ranked on a subset of
items chosen by accident. Missing items are not errors: they are reported as coverage and
score as the worst values.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import logging
import re
import shutil
import stat
import tarfile
import tempfile
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from leaderboard.validation import (
    DEFAULT_ITEM_LIMITS,
    ItemData,
    ItemError,
    ItemLimits,
    Manifest,
    SubmissionError,
    check_item,
    check_representation,
    is_empty,
    parse_manifest,
)
from svr.classes import SYNSET_TO_NAME
from svr.data.layout import Benchmark
from svr.io import atomic_path, read_binvox_bytes
from svr.types import Prediction

__all__ = [
    "ArchiveLimits",
    "DEFAULT_LIMITS",
    "ITEM_FORMATS",
    "MANIFEST_NAME",
    "ParsedSubmission",
    "SubmissionError",
    "open_submission",
    "sniff",
    "decode_item",
    "write_submission_zip",
    "write_template",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "submission.json"
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
    enforced on the bytes actually decompressed.
    """

    max_total_bytes: int = 2 * _GiB
    max_entry_bytes: int = 256 * _MiB
    max_entries: int = 200_000
    max_ratio: float = 1000.0
    ratio_min_bytes: int = _MiB
    max_npz_members: int = 16
    max_reported_errors: int = 50
    items: ItemLimits = field(default_factory=lambda: DEFAULT_ITEM_LIMITS)


DEFAULT_LIMITS = ArchiveLimits()


# ----------------------------------------------------------------------------- sniffing

_DESCRIBE = {
    "zip": "a zip archive (.zip / .npz)",
    "gzip": "gzip-compressed data (.gz)",
    "tar": "a tar archive",
    "npy": "a NumPy .npy array",
    "binvox": "a binvox voxel grid",
    "ply": "a PLY file",
    "glb": "a binary glTF (.glb)",
    "off": "an OFF mesh",
}
_OFF_RE = re.compile(rb"\A\s*(ST)?C?N?4?n?OFF\b")


def sniff(data: bytes) -> str | None:
    """Recognise a format by its first bytes: one of the keys of `_DESCRIBE`, or None."""
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith(b"#binvox"):
        return "binvox"
    if data.startswith((b"ply\n", b"ply\r\n")):
        return "ply"
    if data.startswith(b"glTF"):
        return "glb"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "tar"
    if _OFF_RE.match(data[:64]):
        return "off"
    return None


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
) -> bytes:
    """Read a stream fully, enforcing the entry cap, the ratio cap and the total budget on
    the bytes actually produced."""
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
    return bytes(out)


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

    def read(self, member: _Member) -> bytes:  # pragma: no cover - abstract
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

    def read(self, member: _Member) -> bytes:
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

    def read(self, member: _Member) -> bytes:
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
    """Decompress a gzip file into `dest` with the total and ratio caps on actual bytes."""
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
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise SubmissionError(f"{path.name} is not a readable gzip file", [str(exc)]) from None


# ----------------------------------------------------------------------------- item formats


def _load_npy(data: bytes, what: str = ".npy file", allow_text: bool = False) -> np.ndarray:
    """Parse .npy bytes: header checked against the data size first, then np.load with
    allow_pickle=False. Object (pickled) arrays are refused."""
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}; save with np.save")
    except ValueError as exc:
        raise ItemError(f"unreadable {what}: {exc}") from None
    if dtype.hasobject:
        raise ItemError(
            f"the {what} holds Python objects (a pickle), which are refused for safety; "
            "save a numeric array, e.g. np.save(path, np.asarray(x, dtype=np.float32))"
        )
    if dtype.fields is not None or dtype.kind not in ("biuf" + ("US" if allow_text else "")):
        raise ItemError(f"the {what} has dtype {dtype}; use bool, integer or float")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    needed = count * dtype.itemsize
    available = len(data) - fp.tell()
    if needed > available:
        raise ItemError(
            f"truncated {what}: its header promises shape {shape} {dtype} ({needed:,} bytes) "
            f"but only {available:,} bytes of data follow"
        )
    fp.seek(0)
    try:
        return np.load(fp, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ItemError(f"unreadable {what}: {exc}") from None


def _npz_arrays(
    data: bytes, limits: ArchiveLimits, allow_text: bool = False
) -> dict[str, np.ndarray]:
    """Arrays of an in-memory .npz, read through the same zip-bomb protections."""
    nested = ArchiveLimits(
        max_total_bytes=limits.max_entry_bytes,
        max_entry_bytes=limits.max_entry_bytes,
        max_entries=limits.max_npz_members,
        max_ratio=limits.max_ratio,
        ratio_min_bytes=limits.ratio_min_bytes,
        items=limits.items,
    )
    try:
        container = _ZipContainer(io.BytesIO(data), nested, "the .npz file")
    except SubmissionError as exc:
        raise ItemError(f"{exc.reason}: {'; '.join(exc.details)}") from None
    try:
        arrays = {}
        for member in container.members:
            if not member.name.endswith(".npy"):
                raise ItemError(f"the .npz file holds a non-array member {member.name!r}")
            try:
                raw = container.read(member)
            except SubmissionError as exc:
                raise ItemError(f"{exc.reason}: {'; '.join(exc.details)}") from None
            key = member.name[: -len(".npy")]
            arrays[key] = _load_npy(raw, f"array {key!r} of the .npz file", allow_text)
        return arrays
    finally:
        container.close()


def _array_item(array: np.ndarray) -> ItemData:
    if array.ndim == 3:
        return ItemData("voxels", grid=array)
    if array.ndim == 2:
        return ItemData("points", points=array)
    raise ItemError(
        f"array of shape {array.shape} is neither a voxel grid (R, R, R) nor points (N, 3)"
    )


def _read_npy_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    return _array_item(_load_npy(data))


_NPZ_ARRAY_KEYS = ("voxels", "occupancy", "grid", "points")


def _read_npz_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    arrays = _npz_arrays(data, limits)
    if {"vertices", "faces"} <= set(arrays) and len(arrays) == 2:
        return ItemData("mesh", vertices=arrays["vertices"], faces=arrays["faces"])
    if len(arrays) == 1:
        return _array_item(next(iter(arrays.values())))
    named = [k for k in _NPZ_ARRAY_KEYS if k in arrays]
    if len(named) == 1:
        return _array_item(arrays[named[0]])
    raise ItemError(
        f"the .npz file holds arrays {sorted(arrays)}; store exactly one array (a grid or "
        "points), or 'vertices' and 'faces' for a mesh"
    )


def _check_grid_dims(dims: tuple[int, ...], limits: ItemLimits) -> None:
    if len(dims) != 3 or len(set(dims)) != 1:
        raise ItemError(f"voxel grid is not cubic: dimensions {dims}")
    if not limits.min_resolution <= dims[0] <= limits.max_resolution:
        raise ItemError(
            f"voxel grid resolution {dims[0]} is outside the allowed range "
            f"{limits.min_resolution}..{limits.max_resolution}"
        )


def _read_binvox_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    # Check the header's dimensions before decoding (a small file can expand enormously).
    for line in data[:1024].split(b"\n")[1:]:
        line = line.strip()
        if line.startswith(b"dim"):
            try:
                dims = tuple(int(v) for v in line.split()[1:])
            except ValueError:
                raise ItemError(f"unreadable binvox header line {line[:40]!r}") from None
            _check_grid_dims(dims, limits.items)
            break
        if line.startswith(b"data"):
            break
    try:
        grid = read_binvox_bytes(data, "binvox")
    except ValueError as exc:
        raise ItemError(f"unreadable binvox file: {exc}") from None
    return ItemData("voxels", grid=grid)


def _ply_header_counts(data: bytes) -> dict[str, int]:
    end = data.find(b"end_header", 0, 65536)
    if end < 0:
        raise ItemError("unreadable .ply file: no 'end_header' in the first 64 KiB")
    counts = {}
    for line in data[:end].decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "element" and parts[2].isdigit():
            counts[parts[1]] = int(parts[2])
    return counts


def _precheck_counts(n_vertices: int, n_faces: int, limits: ItemLimits) -> None:
    if n_faces > limits.max_faces:
        raise ItemError(
            f"mesh has {n_faces:,} faces; at most {limits.max_faces:,} allowed (decimate it)"
        )
    if n_faces == 0 and n_vertices > limits.max_points:
        raise ItemError(
            f"point cloud has {n_vertices:,} points; at most {limits.max_points:,} allowed "
            "(subsample it, e.g. uniformly at random)"
        )
    if n_vertices > limits.max_vertices:
        raise ItemError(
            f"mesh has {n_vertices:,} vertices; at most {limits.max_vertices:,} allowed"
        )


def _trimesh_item(data: bytes, file_type: str) -> ItemData:
    import trimesh

    try:
        loaded = trimesh.load(io.BytesIO(data), file_type=file_type, process=False)
    except Exception as exc:  # trimesh raises many types for corrupt input
        raise ItemError(f"unreadable .{file_type} file: {type(exc).__name__}: {exc}") from None
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.geometry.values())
        if geometries and all(isinstance(g, trimesh.PointCloud) for g in geometries):
            loaded = trimesh.PointCloud(np.concatenate([g.vertices for g in geometries]))
        elif not geometries:
            return ItemData("mesh", vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), np.int64))
        else:
            loaded = loaded.to_mesh()
    if isinstance(loaded, trimesh.PointCloud):
        return ItemData("points", points=np.asarray(loaded.vertices))
    if isinstance(loaded, trimesh.Trimesh):
        return ItemData(
            "mesh", vertices=np.asarray(loaded.vertices), faces=np.asarray(loaded.faces)
        )
    raise ItemError(f"the .{file_type} file holds no mesh or point cloud ({type(loaded).__name__})")


def _read_ply_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    counts = _ply_header_counts(data)
    _precheck_counts(counts.get("vertex", 0), counts.get("face", 0), limits.items)
    return _trimesh_item(data, "ply")


def _as_text(data: bytes, ext: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ItemError(f"named .{ext} but the content is not text") from None


def _read_obj_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    _as_text(data, "obj")
    lines = data.split(b"\n")
    n_v = sum(1 for line in lines if line.startswith(b"v "))
    n_f = sum(1 for line in lines if line.startswith(b"f "))
    _precheck_counts(n_v, n_f, limits.items)
    return _trimesh_item(data, "obj")


def _read_off_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    tokens = []
    for line in data[:4096].split(b"\n"):
        line = line.split(b"#", 1)[0].strip()
        tokens += line.split()
        if len(tokens) >= 3:
            break
    header = tokens[0]
    numbers = tokens[1:3] if header.endswith(b"OFF") and len(tokens) >= 3 else []
    try:
        n_v, n_f = (int(numbers[0]), int(numbers[1])) if numbers else (0, 0)
    except ValueError:
        raise ItemError(
            "unreadable .off header: expected 'OFF' then vertex and face counts"
        ) from None
    _precheck_counts(n_v, n_f, limits.items)
    return _trimesh_item(data, "off")


def _read_glb_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    return _trimesh_item(data, "glb")


def _read_xyz_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    text = _as_text(data, "xyz")
    rows = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(rows) > limits.items.max_points:
        raise ItemError(
            f"point cloud has {len(rows):,} points; at most {limits.items.max_points:,} allowed "
            "(subsample it, e.g. uniformly at random)"
        )
    if not rows:
        return ItemData("points", points=np.zeros((0, 3)))
    try:
        values = np.loadtxt(io.StringIO("\n".join(rows).replace(",", " ")), ndmin=2)
    except ValueError as exc:
        raise ItemError(f"unreadable .xyz file: {exc}") from None
    if values.shape[1] < 3:
        raise ItemError(f".xyz rows need 3 numbers (x y z), got {values.shape[1]}")
    return ItemData("points", points=values[:, :3])


@dataclass(frozen=True)
class ItemFormat:
    """One item file format: the content kind `sniff` must report (None: text, no magic)
    and the reader turning bytes into an `ItemData`."""

    magic: str | None
    reader: Callable[[bytes, ArchiveLimits], ItemData]


ITEM_FORMATS: dict[str, ItemFormat] = {
    "npy": ItemFormat("npy", _read_npy_item),
    "npz": ItemFormat("zip", _read_npz_item),
    "binvox": ItemFormat("binvox", _read_binvox_item),
    "ply": ItemFormat("ply", _read_ply_item),
    "xyz": ItemFormat(None, _read_xyz_item),
    "obj": ItemFormat(None, _read_obj_item),
    "off": ItemFormat("off", _read_off_item),
    "glb": ItemFormat("glb", _read_glb_item),
}


def decode_item(data: bytes, ext: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> ItemData:
    """Decode and check one item file's bytes; `ext` without the dot. ItemError if invalid."""
    ext = ext.lower()
    fmt = ITEM_FORMATS.get(ext)
    if fmt is None:
        raise ItemError(
            f"unsupported file type '.{ext}'; use one of "
            + ", ".join(f".{e}" for e in ITEM_FORMATS)
        )
    found = sniff(data[:512])
    if fmt.magic is None and found is not None:
        raise ItemError(f"named .{ext} but the content is {_DESCRIBE[found]}")
    if fmt.magic is not None and found != fmt.magic:
        what = _DESCRIBE[found] if found else "not recognised"
        raise ItemError(
            f"named .{ext} but the content is {what} (expected {_DESCRIBE[fmt.magic]}); "
            "rename the file or convert it"
        )
    try:
        item = fmt.reader(data, limits)
    except ItemError:
        raise
    except Exception as exc:  # a parser choking on hostile bytes must not crash the scorer
        logger.debug("reader of .%s failed", ext, exc_info=True)
        raise ItemError(f"unreadable .{ext} file: {type(exc).__name__}: {exc}") from None
    return check_item(item, limits.items)


# ----------------------------------------------------------------------------- submission


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


_CONTAINER_NAMES = (
    (".tar.gz", "tgz"),
    (".tgz", "tgz"),
    (".tar", "tar"),
    (".zip", "zip"),
    (".npz", "npz"),
)
_CONTENT_TO_CONTAINER = {"zip": ("zip", "npz"), "gzip": ("tgz",), "tar": ("tar",)}


def _container_kind(path: Path) -> str:
    name = path.name.lower()
    named = next((kind for suffix, kind in _CONTAINER_NAMES if name.endswith(suffix)), None)
    with open(path, "rb") as fh:
        head = fh.read(512)
    found = sniff(head)
    allowed = _CONTENT_TO_CONTAINER.get(found or "", ())
    if named is not None:
        if named not in allowed:
            what = _DESCRIBE[found] if found else "not a recognised archive"
            raise SubmissionError(
                "archive name does not match its content",
                [f"{path.name}: named like a .{named} file but the content is {what}"],
            )
        return named
    if not allowed:
        raise SubmissionError(
            "unsupported archive format",
            [f"{path.name}: submit a .zip, .tar, .tar.gz/.tgz or .npz file"],
        )
    return allowed[0]


class _IdIndex:
    """Test item ids by class and shape, to explain why an id is unknown."""

    def __init__(self, test_ids: list[str]):
        self.ids = set(test_ids)
        self.example = test_ids[0]
        self.shapes: dict[str, dict[str, list[str]]] = {}
        for item_id in test_ids:
            cls, shape, view = item_id.split("/")
            self.shapes.setdefault(cls, {}).setdefault(shape, []).append(view)

    def hint(self, item_id: str) -> str:
        """A short, actionable reason; close matches are searched within one class only."""
        form = f" (ids look like {self.example!r}: '<class>/<shape id>/<view>')"
        parts = item_id.split("/")
        if len(parts) != 3:
            return f"; an id has three parts{form}"
        cls, shape, view = parts
        if cls in SYNSET_TO_NAME and "/".join([SYNSET_TO_NAME[cls], shape, view]) in self.ids:
            return f"; use class names, not synset ids: {SYNSET_TO_NAME[cls] + '/' + shape + '/' + view!r}"
        if cls not in self.shapes:
            return f"; unknown class {cls!r} (test classes: {', '.join(sorted(self.shapes))}){form}"
        shapes = self.shapes[cls]
        if shape in shapes:
            return f"; shape {cls}/{shape} has test views {', '.join(shapes[shape])}, not {view!r}"
        close = difflib.get_close_matches(shape, list(shapes), n=1, cutoff=0.8)
        if close:
            return f"; no test shape {shape!r} in class {cls!r}: did you mean {close[0]!r}?"
        return f"; no test shape {shape!r} in class {cls!r}{form}"


class ParsedSubmission:
    """A validated submission: manifest, which test items are present, missing or empty, and
    lazy loading of predictions (one item in memory at a time).

    Use as a context manager (or call `close()`) to release the archive and its scratch files.
    """

    def __init__(
        self,
        manifest: Manifest,
        sha256: str,
        test_ids: list[str],
        members: dict[str, _Member],
        empty: list[str],
        container: _Container,
        limits: ArchiveLimits,
        scratch_dir: Path | None,
        benchmark_id: str = "",
    ):
        self.manifest = manifest
        self.benchmark_id = benchmark_id
        self.sha256 = sha256
        self.test_ids = test_ids
        self._members = members
        self.present = [i for i in test_ids if i in members]
        self.missing = [i for i in test_ids if i not in members]
        self.empty = empty
        self._container = container
        self._limits = limits
        self._finalizer = weakref.finalize(self, _cleanup, container, scratch_dir)

    @property
    def representation(self) -> str:
        return self.manifest.representation

    def extension(self, item_id: str) -> str:
        return self._members[item_id].name.rsplit(".", 1)[-1].lower()

    def load_item(self, item_id: str) -> ItemData:
        """Decode and check one present item (ItemData: grid, points or mesh arrays)."""
        member = self._members[item_id]
        self._container.budget.used = 0  # re-reading after validation: budget per read pass
        data = self._container.read(member)
        return decode_item(data, self.extension(item_id), self._limits)

    def load(self, item_id: str) -> Prediction:
        """The prediction of one present item (KeyError if the item is missing)."""
        return to_prediction(self.load_item(item_id), self.manifest)

    def iter_predictions(
        self, item_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[str, Prediction]]:
        """Yield (item id, Prediction) for present items, in test-split order."""
        for item_id in self.present if item_ids is None else item_ids:
            yield item_id, self.load(item_id)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> ParsedSubmission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cleanup(container: _Container, scratch_dir: Path | None) -> None:
    try:
        container.close()
    finally:
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def to_prediction(item: ItemData, manifest: Manifest) -> Prediction:
    """Wrap checked item data as an `svr.types.Prediction` named after the method."""
    if item.kind == "voxels":
        return Prediction(manifest.method, occupancy=item.grid, threshold=manifest.threshold)
    if item.kind == "points":
        return Prediction(manifest.method, points=item.points)
    import trimesh

    mesh = trimesh.Trimesh(item.vertices, item.faces, process=False)
    return Prediction(manifest.method, mesh=mesh)


def _strip_common_folder(names: list[str]) -> str:
    """If everything sits in one top folder holding the manifest, return that prefix."""
    if MANIFEST_NAME in names or not names:
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        prefix = tops.pop() + "/"
        if prefix + MANIFEST_NAME in names:
            return prefix
    return ""


def open_submission(
    path: str | Path,
    benchmark: Benchmark,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    scratch: str | Path | None = None,
    manifest: Manifest | None = None,
) -> ParsedSubmission:
    """Open, check and validate a submission archive against a benchmark's test split.

    Args:
        path: the archive (.zip, .tar, .tar.gz/.tgz or .npz).
        benchmark: the benchmark whose test items the archive must name.
        limits: archive and item caps.
        scratch: parent folder for temporary files (only .tar.gz needs one); default: the
            system temp folder. Nothing is written anywhere else.
        manifest: use this manifest instead of the archive's `submission.json` (e.g. filled
            in a web form); the archive then need not hold one.

    Returns:
        A ParsedSubmission (close it when done).

    Raises:
        SubmissionError: archive-level problems, an invalid manifest, a frame mismatch, or
            item errors (all collected; `.details` lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise SubmissionError("submission file not found", [str(path)])
    test_ids = [item.item_id for item in benchmark.items("test")]
    if not test_ids:
        raise ValueError(f"benchmark {benchmark.root} has no test items")
    sha = _sha256(path)
    kind = _container_kind(path)
    scratch_dir: Path | None = None
    container: _Container
    if kind == "tgz":
        scratch_dir = Path(tempfile.mkdtemp(prefix="submission-", dir=scratch))
        try:
            tar_path = scratch_dir / "archive.tar"
            _gunzip(path, tar_path, limits)
            with open(tar_path, "rb") as fh:
                head = fh.read(512)
            if sniff(head) != "tar":
                raise SubmissionError(
                    "archive name does not match its content",
                    [f"{path.name}: a gzip file, but what it holds is not a tar archive"],
                )
            container = _TarContainer(tar_path, limits, path.name)
        except BaseException:
            shutil.rmtree(scratch_dir, ignore_errors=True)
            raise
    elif kind == "tar":
        container = _TarContainer(path, limits, path.name)
    else:
        container = _ZipContainer(path, limits, path.name)
    try:
        parsed = _validate(
            path, kind, container, benchmark, test_ids, limits, manifest, sha, scratch_dir
        )
    except BaseException:
        _cleanup(container, scratch_dir)
        raise
    return parsed


def _validate(
    path: Path,
    kind: str,
    container: _Container,
    benchmark: Benchmark,
    test_ids: list[str],
    limits: ArchiveLimits,
    manifest: Manifest | None,
    sha: str,
    scratch_dir: Path | None,
) -> ParsedSubmission:
    members = [m for m in container.members if not _is_junk(m.name)]
    prefix = _strip_common_folder([m.name for m in members])
    if prefix:
        for m in members:
            m.name = m.name[len(prefix) :]

    # The manifest.
    manifest_names = (MANIFEST_NAME, MANIFEST_NAME + ".npy") if kind == "npz" else (MANIFEST_NAME,)
    manifest_members = [m for m in members if m.name in manifest_names]
    manifest_ids = {id(m) for m in manifest_members}
    if manifest is None:
        if not manifest_members:
            raise SubmissionError(
                f"the submission has no {MANIFEST_NAME} manifest",
                [
                    f"add a file {MANIFEST_NAME} at the top level of the archive"
                    + (
                        " (or a key 'submission.json' holding the JSON text)"
                        if kind == "npz"
                        else ""
                    ),
                    "example: "
                    + Manifest("My network", "voxels", benchmark.meta.frame)
                    .to_json()
                    .replace("\n", ""),
                ],
            )
        if len(manifest_members) > 1:
            raise SubmissionError(f"the submission holds more than one {MANIFEST_NAME}")
        try:
            raw = container.read(manifest_members[0])
        except ItemError as exc:
            raise SubmissionError(f"unreadable {MANIFEST_NAME}", [str(exc)]) from None
        if manifest_members[0].name.endswith(".npy"):
            try:
                text_array = _load_npy(raw, MANIFEST_NAME, allow_text=True)
            except ItemError as exc:
                raise SubmissionError(f"invalid {MANIFEST_NAME}", [str(exc)]) from None
            if text_array.dtype.kind not in "US" or text_array.size != 1:
                raise SubmissionError(
                    f"invalid {MANIFEST_NAME}",
                    ["the 'submission.json' key must hold the JSON text as a string array"],
                )
            raw = str(text_array.reshape(()).item()).encode()
        manifest = parse_manifest(raw)
    if manifest.frame != benchmark.meta.frame:
        raise SubmissionError(
            "coordinate frame mismatch",
            [
                f"{MANIFEST_NAME} declares frame {manifest.frame!r}, but benchmark "
                f"{benchmark.meta.identifier} is in the {benchmark.meta.frame!r} frame; predict "
                f'shapes in the {benchmark.meta.frame} frame and set "frame": '
                f'"{benchmark.meta.frame}"'
            ],
        )

    # Map members to item ids.
    known_set = set(test_ids)
    id_index = _IdIndex(test_ids)
    errors: list[str] = []
    n_errors = 0

    def report(message: str) -> None:
        nonlocal n_errors
        n_errors += 1
        if len(errors) < limits.max_reported_errors:
            errors.append(message)

    by_id: dict[str, list[_Member]] = {}
    for m in members:
        if id(m) in manifest_ids:
            continue
        base = m.name.rsplit("/", 1)[-1]
        if "." not in base:
            report(
                f"{m.name}: no file extension; name items '<class>/<shape id>/<view>.<ext>' with "
                "ext one of " + ", ".join(f".{e}" for e in ITEM_FORMATS)
            )
            continue
        item_id, ext = m.name.rsplit(".", 1)
        if kind == "npz" and ext != "npy":
            report(f"{m.name}: an .npz submission may only hold arrays (one per item id)")
            continue
        if ext.lower() not in ITEM_FORMATS:
            report(
                f"{m.name}: unsupported file type '.{ext}'; use one of "
                + ", ".join(f".{e}" for e in ITEM_FORMATS)
            )
            continue
        if item_id not in known_set:
            if len(errors) < limits.max_reported_errors:
                report(
                    f"{m.name}: unknown item id {item_id!r}, not in the test split of "
                    f"{benchmark.meta.identifier}" + id_index.hint(item_id)
                )
            else:
                report("")
            continue
        by_id.setdefault(item_id, []).append(m)

    chosen: dict[str, _Member] = {}
    empty: list[str] = []
    for item_id in test_ids:
        candidates = by_id.get(item_id)
        if not candidates:
            continue
        if len(candidates) > 1:
            report(
                f"{item_id}: duplicate item, provided by "
                + " and ".join(repr(c.name) for c in candidates)
                + "; keep exactly one file per item"
            )
            continue
        m = candidates[0]
        try:
            data = container.read(m)
            item = decode_item(data, m.name.rsplit(".", 1)[1], limits)
            check_representation(item, manifest)
        except ItemError as exc:
            report(f"{m.name}: {exc}")
            continue
        chosen[item_id] = m
        if is_empty(item, manifest.threshold):
            empty.append(item_id)
        del data, item

    if n_errors:
        details = list(errors)
        if n_errors > len(errors):
            details.append(f"... and {n_errors - len(errors)} more error(s)")
        raise SubmissionError(
            f"submission rejected: {n_errors} item error(s); fix them and resubmit "
            "(a submission is scored only when every item in it is valid)",
            details,
            n_errors=n_errors,
        )
    if not chosen:
        raise SubmissionError(
            "the submission holds no test items",
            [
                "name one file per test item '<class>/<shape id>/<view>.<ext>', e.g. "
                f"'{test_ids[0]}.npy'; run `python -m leaderboard template` for a working example"
            ],
        )
    logger.info(
        "%s: %d of %d test items present (%d empty), %d missing",
        path.name,
        len(chosen),
        len(test_ids),
        len(empty),
        len(test_ids) - len(chosen),
    )
    return ParsedSubmission(
        manifest, sha, test_ids, chosen, empty, container, limits, scratch_dir,
        benchmark.meta.identifier,
    )  # fmt: skip


# ----------------------------------------------------------------------------- writing


def write_submission_zip(
    path: str | Path, manifest: Manifest, items: Iterable[tuple[str, str, bytes]]
) -> None:
    """Write a submission zip atomically: `submission.json` plus one (item id, ext, bytes)
    file per item, deflated."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_NAME, manifest.to_json())
        for item_id, ext, data in items:
            zf.writestr(f"{item_id}.{ext}", data)


def _template_item(representation: str) -> tuple[str, bytes]:
    """One example item: a sphere of radius 0.35 at the origin, as (extension, bytes)."""
    import trimesh

    if representation == "voxels":
        r = 32
        c = -0.5 + (np.arange(r) + 0.5) / r
        x, y, z = np.meshgrid(c, c, c, indexing="ij")
        buf = io.BytesIO()
        np.save(buf, x**2 + y**2 + z**2 < 0.35**2, allow_pickle=False)
        return "npy", buf.getvalue()
    if representation == "mesh":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.35)
        return "obj", mesh.export(file_type="obj").encode()
    if representation == "points":
        # A Fibonacci sphere: 2,048 evenly spread surface points, float32 (N, 3).
        n = 2048
        k = np.arange(n) + 0.5
        polar = np.arccos(1 - 2 * k / n)
        azimuth = np.pi * (1 + 5**0.5) * k
        pts = 0.35 * np.stack(
            [np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)], 1
        )
        buf = io.BytesIO()
        np.save(buf, pts.astype(np.float32), allow_pickle=False)
        return "npy", buf.getvalue()
    raise ValueError(f"representation must be one of voxels, mesh, points; got {representation!r}")


def write_template(
    benchmark: Benchmark, out: str | Path, representation: str = "voxels"
) -> Manifest:
    """Write a valid example submission for every test item of `benchmark` to `out` (.zip):
    the same sphere (radius 0.35, centred) for each item, in the given representation
    (voxels: 32^3 bool .npy; mesh: .obj; points: 2,048 points (N, 3) float32 .npy), with a
    manifest in the benchmark's frame. Returns the manifest written."""
    ext, data = _template_item(representation)
    manifest = Manifest(
        method=f"example sphere ({representation})",
        representation=representation,
        frame=benchmark.meta.frame,
        authors="template",
        training_data="none",
        description="The same centred sphere for every test item: shows the format, not a method.",
    )
    ids = [item.item_id for item in benchmark.items("test")]
    write_submission_zip(out, manifest, ((item_id, ext, data) for item_id in ids))
    return manifest
