"""Bounded-memory readers of the text item formats: OFF meshes, ASCII PLY and .xyz points.

Rows (one record per line) are located in one streaming pass (`leaderboard.meshcheck.
iter_lines`), their counts checked against the header and the per-item limits, and then
parsed in blocks of at most `_BLOCK_TOKENS` numbers with `np.fromstring`, so memory stays
within the output arrays plus a few MB whatever the file holds. (trimesh's readers of these
formats build one Python object per line or per token: +300 MB for a 500,000-face file.)

Polygons are split into triangle fans (an n-gon gives n-2 triangles: (0, i, i+1)).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from leaderboard.meshcheck import (
    PlyHeader,
    check_line_breaks,
    iter_lines,
    too_many_faces,
)
from leaderboard.validation import ItemData, ItemError, ItemLimits

__all__ = ["read_off", "read_ply_ascii", "read_xyz"]

_BLOCK_TOKENS = 1 << 19  # numbers parsed at once
_MAX_ROW_TOKENS = 1024  # numbers on one line (a face of ~1,000 corners)
_HEADER_BYTES = 65536


@dataclass
class _Rows:
    """Rows of a text table: the offset of each row's first number and of its line end
    (int64 (R,)), its count of numbers (int64 (R,)), and the offset after the last row."""

    first: np.ndarray
    ends: np.ndarray
    tokens: np.ndarray
    after: int


def _collect_rows(
    data: bytes,
    start: int,
    n_rows: int | None,
    comment: bool,
    what: str,
    cap: tuple[int, Callable[[int], ItemError]] | None = None,
    rows_are: str = "rows",
) -> _Rows:
    """The next `n_rows` non-blank rows from `start` (all rows when None); lines whose first
    token starts with '#' are skipped when `comment`. ItemError for a row over
    `_MAX_ROW_TOKENS` numbers, fewer rows than `n_rows`, or (`cap` = (most, error)) more
    rows than `most`: the rest is then only counted, `error(count)` raised."""
    buf = np.frombuffer(data, dtype=np.uint8)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    have = 0
    after = start
    for _, ends, tokens, first in iter_lines(data, start):
        keep = tokens > 0
        if comment:
            keep &= buf[np.maximum(first, 0)] != ord("#")
        if cap is not None and have > cap[0]:
            have += int(keep.sum())
            continue
        idx = np.flatnonzero(keep)
        if n_rows is not None and have + idx.size >= n_rows:
            idx = idx[: n_rows - have]
        if idx.size:
            if int(tokens[idx].max()) > _MAX_ROW_TOKENS:
                raise ItemError(
                    f"a line of the {what} holds more than {_MAX_ROW_TOKENS:,} numbers; "
                    "faces may have at most 1,000 corners"
                )
            parts.append((first[idx], ends[idx], tokens[idx]))
            have += idx.size
            if cap is not None and have > cap[0]:
                parts.clear()
            after = int(ends[idx[-1]]) + 1
        if n_rows is not None and have >= n_rows:
            break
    if cap is not None and have > cap[0]:
        raise cap[1](have)
    if n_rows is not None and have < n_rows:
        raise ItemError(
            f"truncated {what}: its header declares {n_rows:,} {rows_are}, found {have:,}"
        )
    if not parts:
        empty = np.zeros(0, np.int64)
        return _Rows(empty, empty, empty, after)
    return _Rows(*(np.concatenate(p) for p in zip(*parts, strict=True)), after=after)


def _refuse_rows_after(data: bytes, pos: int, comment: bool, what: str, declared: str) -> None:
    """ItemError if a row follows `pos` (a header whose counts are lower than the file's)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    for _, _, tokens, first in iter_lines(data, pos):
        keep = tokens > 0
        if comment:
            keep &= buf[np.maximum(first, 0)] != ord("#")
        if keep.any():
            raise ItemError(
                f"the {what} header declares {declared}, but more rows follow (corrupt or "
                "hostile file); write the counts of what the file holds"
            )


def _numbers(raw: bytes, what: str, comment: bool) -> np.ndarray:
    """The numbers of one text block, float64 (N,); ItemError for anything else."""
    raw = bytes(raw)  # np.fromstring takes read-only bytes (the block only is copied)
    if comment and b"#" in raw:
        raw = b"\n".join(line.split(b"#", 1)[0] for line in raw.split(b"\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return np.fromstring(raw, dtype=np.float64, sep=" ")
        except ValueError:
            raise ItemError(f"unreadable {what}: a value is not a number") from None


def _row_blocks(
    data: bytes, rows: _Rows, what: str, comment: bool
) -> Iterator[tuple[int, np.ndarray | None, list[np.ndarray]]]:
    """Parse rows in blocks of about `_BLOCK_TOKENS` numbers: (index of the block's first
    row, float64 table (B, width) when every row has the same width, else None and one
    float64 array per row)."""
    total = np.cumsum(rows.tokens)
    n = rows.tokens.size
    i = 0
    while i < n:
        base = total[i - 1] if i else 0
        j = int(np.searchsorted(total, base + _BLOCK_TOKENS, side="right"))
        j = min(max(j, i + 1), n)
        toks = rows.tokens[i:j]
        width = int(toks[0])
        if int(toks.min()) == width == int(toks.max()):
            raw = data[int(rows.first[i]) : int(rows.ends[j - 1])]
            if b"#" not in raw:
                values = _numbers(raw, what, comment)
                if values.size == (j - i) * width:
                    yield i, values.reshape(j - i, width), []
                    i = j
                    continue
        each = [
            _numbers(data[int(s) : int(e)], what, comment)
            for s, e in zip(rows.first[i:j], rows.ends[i:j], strict=True)
        ]
        yield i, None, each
        i = j


def _read_vertices(data: bytes, rows: _Rows, columns: tuple[int, int, int], what: str,
                   comment: bool = False) -> np.ndarray:  # fmt: skip
    """Columns `columns` of every row as float64 (R, 3)."""
    out = np.empty((rows.tokens.size, 3), dtype=np.float64)
    need = max(columns) + 1
    cols = list(columns)
    for i, table, each in _row_blocks(data, rows, what, comment):
        if table is None:
            widths = [row.size for row in each]
            if min(widths) >= need:
                table = np.stack([row[:need] for row in each])
            else:
                k = widths.index(min(widths))
                raise ItemError(f"{what}: vertex row {i + k + 1} holds {widths[k]} numbers, "
                                f"at least {need} expected")  # fmt: skip
        if table.shape[1] < need:
            raise ItemError(f"{what}: vertex rows hold {table.shape[1]} numbers, at least "
                            f"{need} expected")  # fmt: skip
        out[i : i + table.shape[0]] = table[:, cols]
    return out


def _fan(corners: np.ndarray) -> np.ndarray:
    """Triangle fan of polygons with the same corner count: (F, k) -> (F * (k - 2), 3)."""
    k = corners.shape[1]
    tris = [np.stack([corners[:, 0], corners[:, j], corners[:, j + 1]], 1) for j in range(1, k - 1)]
    return np.stack(tris, axis=1).reshape(-1, 3)


def _read_faces(data: bytes, rows: _Rows, count_col: int, what: str, limits: ItemLimits,
                comment: bool = False) -> np.ndarray:  # fmt: skip
    """Polygons stored as [..., k, i_1 .. i_k, ...] rows (k at `count_col`) as triangles
    int64 (T, 3), in row order; ItemError once T would pass `limits.max_faces`."""
    if int(rows.tokens.sum()) > 8 * max(limits.max_faces, rows.tokens.size):
        raise too_many_faces(f"more than {limits.max_faces:,}", limits, " (counted by its numbers)")
    parts: list[np.ndarray] = []
    total = 0
    for i, table, each in _row_blocks(data, rows, what, comment):
        groups: list[np.ndarray]
        ks = table[:, count_col] if table is not None and table.shape[1] > count_col else None
        k = int(ks[0]) if ks is not None and ks.size else 0
        if ks is not None and np.all(ks == k) and 3 <= k and count_col + 1 + k <= table.shape[1]:
            groups = [table[:, count_col + 1 : count_col + 1 + k]]
        else:
            each = each or list(table)  # type: ignore[arg-type]
            groups = _runs([_face_row(row, count_col, what, i + r) for r, row in enumerate(each)])
        fans = []
        for corners in groups:
            total += corners.shape[0] * (corners.shape[1] - 2)
            if total > limits.max_faces:
                raise too_many_faces(f"more than {limits.max_faces:,}", limits,
                                     " (a polygon of n corners is n-2 triangles)")  # fmt: skip
            if not np.all(corners == np.floor(corners)):
                raise ItemError(f"{what}: face vertex indices must be integers")
            fans.append(_fan(corners.astype(np.int64)))
        parts.append(np.concatenate(fans))
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)


def _runs(polygons: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive polygons (1, k) of equal k stacked: (n, k) arrays, in order."""
    out: list[np.ndarray] = []
    start = 0
    for end in range(1, len(polygons) + 1):
        if end == len(polygons) or polygons[end].shape[1] != polygons[start].shape[1]:
            out.append(np.concatenate(polygons[start:end]))
            start = end
    return out


def _face_row(row: np.ndarray, count_col: int, what: str, index: int) -> np.ndarray:
    if row.size <= count_col or row[count_col] != int(row[count_col]):
        raise ItemError(f"{what}: face row {index + 1} does not start with its corner count")
    k = int(row[count_col])
    if k < 3 or count_col + 1 + k > row.size:
        held = row.size - count_col - 1
        raise ItemError(
            f"{what}: face row {index + 1} declares {k} corners but holds {held} indices "
            "(a face needs at least 3)"
        )
    return row[None, count_col + 1 : count_col + 1 + k]


# ----------------------------------------------------------------------------- OFF


def _off_header(data: bytes) -> tuple[int, int, int]:
    """(vertices, faces, offset after the counts) of an OFF file; dimension variants refused."""
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 3 and pos < min(len(data), _HEADER_BYTES):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        tokens += data[pos:end].split(b"#", 1)[0].split()
        pos = end + 1
    if not tokens or not tokens[0].endswith(b"OFF"):
        raise ItemError("unreadable .off header: expected 'OFF' then vertex and face counts")
    if tokens[0][-4:-3] in (b"4", b"n"):
        raise ItemError(f"the .off file is {tokens[0].decode('ascii', 'replace')}: only 3D OFF")
    try:
        n_v, n_f = int(tokens[1]), int(tokens[2])
    except (ValueError, IndexError):
        raise ItemError(
            "unreadable .off header: expected 'OFF' then vertex and face counts"
        ) from None
    if n_v < 0 or n_f < 0:
        raise ItemError("unreadable .off header: negative vertex or face count")
    return n_v, n_f, pos


def read_off(data: bytes, limits: ItemLimits) -> ItemData:
    """An OFF mesh: vertices float64 (V, 3), triangles int64 (F, 3). The header's counts are
    checked against the limits before any row is read, and against the rows present."""
    check_line_breaks(data, ".off")
    n_v, n_f, start = _off_header(data)
    if n_f > limits.max_faces:
        raise too_many_faces(n_f, limits)
    if n_v > limits.max_vertices:
        raise ItemError(f"mesh has {n_v:,} vertices; at most {limits.max_vertices:,} allowed")
    vrows = _collect_rows(data, start, n_v, True, ".off file", rows_are="vertices")
    frows = _collect_rows(data, vrows.after, n_f, True, ".off file", rows_are="faces")
    _refuse_rows_after(data, frows.after, True, ".off", f"{n_v:,} vertices and {n_f:,} faces")
    vertices = _read_vertices(data, vrows, (0, 1, 2), ".off file", comment=True)
    faces = _read_faces(data, frows, 0, ".off file", limits, comment=True)
    return ItemData("mesh", vertices=vertices, faces=faces)


# ----------------------------------------------------------------------------- ASCII PLY


def read_ply_ascii(data: bytes, header: PlyHeader, limits: ItemLimits) -> ItemData:
    """An ASCII PLY: a mesh (vertices float64 (V, 3), triangles int64 (F, 3)) when it has
    faces, else points float64 (N, 3). One record per line, elements in header order."""
    check_line_breaks(data, ".ply")
    pos = header.data_start
    vertices = np.zeros((0, 3))
    faces: np.ndarray | None = None
    for element in header.elements:
        rows = _collect_rows(
            data, pos, element.count, False, ".ply file", rows_are=f"{element.name} records"
        )
        pos = rows.after
        names = [p.name for p in element.properties]
        if element.name == "vertex":
            if not {"x", "y", "z"} <= set(names):
                raise ItemError("the .ply vertex element has no x, y, z properties")
            cols = (names.index("x"), names.index("y"), names.index("z"))
            vertices = _read_vertices(data, rows, cols, ".ply file")
        elif element.name == "face" and element.lists:
            col = next(i for i, p in enumerate(element.properties) if p.count_dtype is not None)
            faces = _read_faces(data, rows, col, ".ply file", limits)
    counts = ", ".join(f"{e.count:,} {e.name}" for e in header.elements)
    _refuse_rows_after(data, pos, False, ".ply", counts)
    if faces is None:
        return ItemData("points", points=vertices)
    return ItemData("mesh", vertices=vertices, faces=faces)


# ----------------------------------------------------------------------------- .xyz


def read_xyz(data: bytes, limits: ItemLimits) -> ItemData:
    """A point cloud of .xyz rows "x y z [...]" (commas allowed, '#' comments): float64
    (N, 3). Rows are counted against `limits.max_points` before any is parsed."""
    check_line_breaks(data, ".xyz")
    if b"," in data:
        data = data.replace(b",", b" ")

    def over(count: int) -> ItemError:
        return ItemError(
            f"point cloud has {count:,} points; at most {limits.max_points:,} allowed "
            "(subsample it, e.g. uniformly at random)"
        )

    rows = _collect_rows(data, 0, None, True, ".xyz file", cap=(limits.max_points, over))
    if rows.tokens.size == 0:
        return ItemData("points", points=np.zeros((0, 3)))
    if int(rows.tokens.min()) < 3:
        raise ItemError(f".xyz rows need 3 numbers (x y z), got {int(rows.tokens.min())}")
    return ItemData("points", points=_read_vertices(data, rows, (0, 1, 2), ".xyz file", True))
