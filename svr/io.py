"""Reading and writing shapes on disk: binvox grids, meshes, atomic writes.

Conventions: occupancy grids are numpy bool arrays indexed (x, y, z); voxel (i, j, k)
of an R^3 grid covers [-0.5 + i/R, -0.5 + (i+1)/R) along x, likewise for y and z.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BinvoxHeader",
    "atomic_path",
    "atomic_write_bytes",
    "read_binvox",
    "read_binvox_bytes",
    "read_binvox_with_header",
    "write_binvox",
    "binvox_bytes",
]


@dataclass(frozen=True)
class BinvoxHeader:
    """The binvox header: grid dimensions, translation and scale of the unit cube it spans."""

    dims: tuple[int, int, int]
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0


def _parse_binvox(data: bytes, source: str) -> tuple[np.ndarray, BinvoxHeader]:
    stream = io.BytesIO(data)
    first = stream.readline().strip()
    if not first.startswith(b"#binvox"):
        raise ValueError(
            f"{source}: not a binvox file (first line {first[:40]!r}, expected '#binvox 1')"
        )
    dims: tuple[int, ...] | None = None
    translate = (0.0, 0.0, 0.0)
    scale = 1.0
    while True:
        line = stream.readline()
        if not line:
            raise ValueError(f"{source}: binvox header ends before the 'data' line")
        line = line.strip()
        if line.startswith(b"dim"):
            dims = tuple(int(v) for v in line.split()[1:])
        elif line.startswith(b"translate"):
            translate = tuple(float(v) for v in line.split()[1:])  # type: ignore[assignment]
        elif line.startswith(b"scale"):
            scale = float(line.split()[1])
        elif line.startswith(b"data"):
            break
    if dims is None or len(dims) != 3 or min(dims) <= 0:
        raise ValueError(f"{source}: binvox header has no valid 'dim d d d' line")
    if len(translate) != 3:
        raise ValueError(f"{source}: binvox 'translate' needs three numbers")
    runs = np.frombuffer(stream.read(), dtype=np.uint8)
    if runs.size % 2:
        raise ValueError(
            f"{source}: binvox run-length data has an odd number of bytes (truncated file?)"
        )
    values, counts = runs[0::2], runs[1::2].astype(np.int64)
    total = int(np.prod(dims))
    if counts.sum() != total:
        raise ValueError(
            f"{source}: binvox run-length data covers {int(counts.sum())} voxels, "
            f"the header's dim {dims} needs {total} (truncated or corrupt file)"
        )
    flat = np.repeat(values.astype(bool), counts)
    # binvox stores x slowest, then z, then y; return axes (x, y, z) like binvox-rw's fix_coords.
    grid = flat.reshape(dims).transpose(0, 2, 1)
    header = BinvoxHeader(dims=(dims[0], dims[2], dims[1]), translate=translate, scale=scale)
    return np.ascontiguousarray(grid), header


def read_binvox_with_header(path: str | os.PathLike) -> tuple[np.ndarray, BinvoxHeader]:
    """Read a binvox file. Returns (grid bool (X, Y, Z), header)."""
    return _parse_binvox(Path(path).read_bytes(), str(path))


def read_binvox(path: str | os.PathLike) -> np.ndarray:
    """Read a binvox file into a bool array with axes (x, y, z) (binvox-rw, fix_coords=True)."""
    return read_binvox_with_header(path)[0]


def read_binvox_bytes(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Like `read_binvox` for the bytes of a file already in memory."""
    return _parse_binvox(data, source)[0]


def binvox_bytes(
    grid: np.ndarray,
    translate: tuple[float, float, float] = (-0.5, -0.5, -0.5),
    scale: float = 1.0,
) -> bytes:
    """Encode a bool grid (X, Y, Z) as binvox. Default header: the unit cube [-0.5, 0.5]^3."""
    grid = np.asarray(grid)
    if grid.ndim != 3:
        raise ValueError(f"binvox needs a 3D grid, got shape {grid.shape}")
    flat = np.ascontiguousarray(grid.astype(bool).transpose(0, 2, 1)).ravel()
    out = io.BytesIO()
    dx, dy, dz = grid.shape
    out.write(b"#binvox 1\n")
    out.write(f"dim {dx} {dz} {dy}\n".encode())
    out.write(f"translate {translate[0]:g} {translate[1]:g} {translate[2]:g}\n".encode())
    out.write(f"scale {scale:g}\ndata\n".encode())
    if flat.size:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [flat.size]]))
        run_values = flat[starts].astype(np.uint8)
        full, rest = np.divmod(lengths, 255)
        pairs_per_run = full + (rest > 0)
        values = np.repeat(run_values, pairs_per_run)
        counts = np.full(values.size, 255, dtype=np.uint8)
        has_rest = rest > 0
        counts[(np.cumsum(pairs_per_run) - 1)[has_rest]] = rest[has_rest]
        out.write(np.stack([values, counts], axis=1).tobytes())
    return out.getvalue()


def write_binvox(
    path: str | os.PathLike,
    grid: np.ndarray,
    translate: tuple[float, float, float] = (-0.5, -0.5, -0.5),
    scale: float = 1.0,
) -> None:
    """Write a bool grid (X, Y, Z) as a binvox file, atomically."""
    atomic_write_bytes(path, binvox_bytes(grid, translate, scale))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(
            tmp_path, 0o644
        )  # mkstemp makes files owner-only; published data is world-readable
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to `path` through a temporary file and a rename: never half-written."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
