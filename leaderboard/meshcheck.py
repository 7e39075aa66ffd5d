"""Pre-checks of mesh item files, before any parser allocates memory for their content.

Each check reads only headers, or streams over the bytes in fixed windows of `_WINDOW` bytes
(bounded memory, no Python list per line or per token), and raises `ItemError` when a file
would make its parser build more than the per-item limits allow:

- `iter_lines`: the lines of a text file in windows, with each line's token count (tokens are
  runs of bytes that are not ASCII whitespace, control or non-ASCII bytes, so the count is an
  upper bound of what any whitespace splitter finds).
- `check_obj`: vertex lines, polygon corners (an n-gon counts n-2 triangles), vertex-attribute
  numbers and group lines of an OBJ, counted the way trimesh reads them.
- `parse_ply_header` / `check_ply`: a PLY header, and element counts and list sizes bounded
  by the bytes (binary) or tokens (ASCII) actually present.
(`leaderboard.glbcheck` checks binary glTF the same way.)

Counts are item-level: `ItemLimits.max_faces` triangles, `max_vertices` vertices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from leaderboard.validation import ItemError, ItemLimits

__all__ = [
    "PlyElement",
    "PlyHeader",
    "check_obj",
    "check_ply",
    "iter_lines",
    "parse_ply_header",
    "too_many_faces",
    "too_many_vertices",
]

_WINDOW = 1 << 20
_MAX_OBJ_GROUPS = 100_000  # o / g / s / usemtl lines of one OBJ
_OBJ_NUMBERS_PER_VERTEX = 7  # x y z plus an optional colour (r g b) or weight

# Token separators: ASCII whitespace and control bytes, DEL and every non-ASCII byte.
_SEP = np.zeros(256, dtype=bool)
_SEP[:0x21] = True
_SEP[0x7F:] = True


def too_many_faces(count: int | str, limits: ItemLimits, how: str = "") -> ItemError:
    """The refusal of a mesh over the face limit; `count` may be a phrase ("more than ...")."""
    text = f"{count:,}" if isinstance(count, int) else count
    return ItemError(
        f"mesh has {text} faces{how}; at most {limits.max_faces:,} allowed (decimate it)"
    )


def too_many_vertices(count: int | str, limits: ItemLimits) -> ItemError:
    text = f"{count:,}" if isinstance(count, int) else count
    return ItemError(f"mesh has {text} vertices; at most {limits.max_vertices:,} allowed")


# ----------------------------------------------------------------------------- text lines


def iter_lines(
    data: bytes, start: int = 0, window: int = _WINDOW
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The lines of `data[start:]` (ended by b"\\n"), a window of bytes at a time.

    Yields (starts, ends, tokens, first): int64 arrays (L,) of each line's byte offset in
    `data`, the offset of its newline (or len(data)), its number of tokens, and the offset
    of its first token (-1 for a blank line). A line is reported once, in the window where
    it ends. Memory: a few times `window` bytes.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    n = buf.size
    line_start, line_tokens, line_first = start, 0, -1
    prev_sep = True
    pos = start
    while pos < n:
        end = min(pos + window, n)
        chunk = buf[pos:end]
        sep = _SEP[chunk]
        begins = ~sep
        begins[1:] &= sep[:-1]
        if not prev_sep:
            begins[0] = False
        prev_sep = bool(sep[-1])
        tok_pos = np.flatnonzero(begins) + pos
        newlines = np.flatnonzero(chunk == 10) + pos
        del sep, begins
        if newlines.size == 0:
            if tok_pos.size and line_first < 0:
                line_first = int(tok_pos[0])
            line_tokens += int(tok_pos.size)
            pos = end
            continue
        cut = np.searchsorted(tok_pos, newlines)
        before = np.concatenate(([0], cut[:-1]))
        tokens = cut - before
        first = np.full(newlines.size, -1, dtype=np.int64)
        inside = tokens > 0
        first[inside] = tok_pos[before[inside]]
        tokens[0] += line_tokens
        if line_first >= 0:
            first[0] = line_first
        starts = np.empty(newlines.size, dtype=np.int64)
        starts[0] = line_start
        starts[1:] = newlines[:-1] + 1
        yield starts, newlines, tokens.astype(np.int64), first
        line_start = int(newlines[-1]) + 1
        rest = int(tok_pos.size - cut[-1])
        line_tokens = rest
        line_first = int(tok_pos[cut[-1]]) if rest else -1
        pos = end
    if line_start < n:
        yield (
            np.array([line_start], np.int64),
            np.array([n], np.int64),
            np.array([line_tokens], np.int64),
            np.array([line_first], np.int64),
        )


def _first_token(buf: np.ndarray, window: int = _WINDOW) -> int:
    """Offset of the first byte that is not a separator (-1 if none), a window at a time."""
    for pos in range(0, buf.size, window):
        text = ~_SEP[buf[pos : pos + window]]
        if text.any():
            return pos + int(text.argmax())
    return -1


def _byte_at(buf: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """buf[positions], with 0x20 (a separator) past the end."""
    inside = positions < buf.size
    out = np.full(positions.shape, 0x20, dtype=np.uint8)
    out[inside] = buf[positions[inside]]
    return out


def check_line_breaks(data: bytes, what: str) -> None:
    """Refuse line breaks other than LF and CRLF (a splitter that honours them would see other
    lines than the checks did)."""
    lone_cr = data.count(b"\r") - data.count(b"\r\n")
    odd = [
        b"\x0b",
        b"\x0c",
        b"\x1c",
        b"\x1d",
        b"\x1e",
        b"\xc2\x85",
        b"\xe2\x80\xa8",
        b"\xe2\x80\xa9",
    ]
    if lone_cr or any(mark in data for mark in odd):
        raise ItemError(
            f"the {what} file uses line breaks other than LF or CRLF (a lone CR, form feed or "
            "Unicode separator); save it with ordinary line endings"
        )


# ----------------------------------------------------------------------------- OBJ


@dataclass
class ObjCounts:
    """What an OBJ holds, counted before parsing: vertex lines, triangles (an n-gon counts
    n-2), numbers on vertex lines and on vt/vn lines, and o/g/s/usemtl lines."""

    vertices: int = 0
    triangles: int = 0
    vertex_numbers: int = 0
    attribute_numbers: int = 0
    groups: int = 0


def check_obj(data: bytes, limits: ItemLimits) -> ObjCounts:
    """Count an OBJ's vertices and triangles in one streaming pass; ItemError over the limits.

    Lines are recognised as trimesh reads them (a line starting with "f" or "v" and a
    separator, "vt"/"vn" lines, o/g/s/usemtl lines); the count is an upper bound of what
    trimesh builds, so nothing larger than the limits is ever parsed.
    """
    if b"\\\n" in data or b"\\\r\n" in data:
        raise ItemError(
            "the .obj file continues lines with a backslash, which is not supported; "
            "write each face and vertex on one line"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    text_start = _first_token(buf)
    if text_start < 0:
        return ObjCounts()
    counts = ObjCounts(groups=data.count(b"usemtl"))
    f, v, o, g, s = (ord(c) for c in "fvogs")
    for starts, _, tokens, _ in iter_lines(data, text_start):
        first, second = _byte_at(buf, starts), _byte_at(buf, starts + 1)
        ends_keyword = _SEP[second]
        faces = (first == f) & ends_keyword
        counts.triangles += int(np.maximum(tokens[faces] - 3, 0).sum())
        verts = (first == v) & ends_keyword
        counts.vertices += int(verts.sum())
        counts.vertex_numbers += int(np.maximum(tokens[verts] - 1, 0).sum())
        attrs = (first == v) & ~ends_keyword
        counts.attribute_numbers += int(np.maximum(tokens[attrs] - 1, 0).sum())
        counts.groups += int((((first == o) | (first == g) | (first == s)) & ends_keyword).sum())
        _check_obj_counts(counts, limits)
    return counts


def _check_obj_counts(counts: ObjCounts, limits: ItemLimits) -> None:
    if counts.triangles > limits.max_faces:
        raise too_many_faces(
            f"more than {limits.max_faces:,}", limits, " (its f lines counted: a polygon of n "
            "corners is n-2 triangles)"
        )  # fmt: skip
    if counts.vertices > limits.max_vertices:
        raise too_many_vertices(f"more than {limits.max_vertices:,}", limits)
    most = _OBJ_NUMBERS_PER_VERTEX * limits.max_vertices
    if counts.vertex_numbers > most or counts.attribute_numbers > most:
        raise ItemError(
            f"the .obj file's v / vt / vn lines hold more than {most:,} numbers; a vertex line "
            "holds x y z (and at most an r g b colour), at most "
            f"{limits.max_vertices:,} vertices allowed"
        )
    if counts.groups > _MAX_OBJ_GROUPS:
        raise ItemError(
            f"the .obj file has more than {_MAX_OBJ_GROUPS:,} o / g / s / usemtl lines; "
            "store the shape as one object"
        )


# ----------------------------------------------------------------------------- PLY


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_HEADER_MAX = 65536


@dataclass
class PlyProperty:
    """One property: a scalar of `dtype`, or (with `count_dtype`) a list of `dtype` values."""

    name: str
    dtype: str
    count_dtype: str | None = None


@dataclass
class PlyElement:
    """One element of a PLY header: name, record count and properties, in file order."""

    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def lists(self) -> list[PlyProperty]:
        return [p for p in self.properties if p.count_dtype is not None]

    def scalar_bytes(self) -> int:
        """Bytes per binary record of its scalars and list counts (list entries excluded)."""
        return sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in self.properties)


@dataclass
class PlyHeader:
    """A parsed PLY header: format ("ascii", "binary_little_endian", "binary_big_endian"),
    elements in order, and the byte offset where the data begin."""

    fmt: str
    elements: list[PlyElement]
    data_start: int

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


def parse_ply_header(data: bytes) -> PlyHeader:
    """Parse the header of a PLY file (at most 64 KiB); ItemError if it is malformed."""
    end = data.find(b"end_header", 0, _PLY_HEADER_MAX)
    if end < 0:
        raise ItemError("unreadable .ply file: no 'end_header' in the first 64 KiB")
    newline = data.find(b"\n", end)
    data_start = len(data) if newline < 0 else newline + 1
    fmt = ""
    elements: list[PlyElement] = []
    for raw in data[:end].decode("ascii", "replace").splitlines()[1:]:
        parts = raw.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "format" and len(parts) >= 2:
            fmt = parts[1]
        elif parts[0] == "element" and len(parts) == 3 and parts[2].isdigit():
            elements.append(PlyElement(parts[1], int(parts[2])))
        elif parts[0] == "property" and elements:
            prop = _ply_property(parts, raw)
            elements[-1].properties.append(prop)
        else:
            raise ItemError(f"unreadable .ply header line {raw[:60]!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ItemError(f"unreadable .ply header: unknown format {fmt!r}")
    return PlyHeader(fmt, elements, data_start)


def _ply_property(parts: list[str], raw: str) -> PlyProperty:
    if len(parts) == 3 and parts[1] in _PLY_TYPES:
        return PlyProperty(parts[2], _PLY_TYPES[parts[1]])
    if len(parts) == 5 and parts[1] == "list" and {parts[2], parts[3]} <= set(_PLY_TYPES):
        if _PLY_TYPES[parts[2]][0] not in "iu":
            raise ItemError(f"unreadable .ply header: list count type {parts[2]!r} is not integer")
        return PlyProperty(parts[4], _PLY_TYPES[parts[3]], _PLY_TYPES[parts[2]])
    raise ItemError(f"unreadable .ply header line {raw[:60]!r}")


def _ply_faces(header: PlyHeader) -> PlyElement | None:
    return header.element("face")


def check_ply(data: bytes, header: PlyHeader, limits: ItemLimits) -> int:
    """Bound a PLY's vertices and triangles by the header and the data present.

    Binary: every element needs its records' scalar bytes; list entries are bounded by the
    bytes left over. ASCII: list entries are bounded by the tokens left over once every
    record's scalars and list counts are taken. Returns the triangle bound.
    """
    vertex = header.element("vertex")
    n_vertices = vertex.count if vertex is not None else 0
    faces = _ply_faces(header)
    n_faces = faces.count if faces is not None else 0
    if n_faces > limits.max_faces:
        raise too_many_faces(n_faces, limits)
    if n_faces == 0 and n_vertices > limits.max_points:
        raise ItemError(
            f"point cloud has {n_vertices:,} points; at most {limits.max_points:,} allowed "
            "(subsample it, e.g. uniformly at random)"
        )
    if n_vertices > limits.max_vertices:
        raise too_many_vertices(n_vertices, limits)
    for element in header.elements:
        if element is not faces and element.lists and element.count:
            raise ItemError(
                f"the .ply element {element.name!r} has list properties; only 'face' may "
                "hold lists (vertex indices)"
            )
        if element is faces and len(element.lists) > 1:
            raise ItemError(
                "the .ply 'face' element has several list properties (e.g. texture "
                "coordinates); keep only vertex_indices"
            )
    if header.fmt == "ascii":
        entries = _ply_ascii_entries(data, header)
    else:
        entries = _ply_binary_entries(data, header)
    if faces is None or not faces.lists:
        return 0
    triangles = max(entries - 2 * n_faces, 0)
    if triangles > limits.max_faces:
        raise too_many_faces(
            f"up to {triangles:,}", limits, f" (its {n_faces:,} face lists can hold "
            f"{entries:,} corners; a polygon of n corners counts n-2 triangles)"
        )  # fmt: skip
    return triangles


def _ply_binary_entries(data: bytes, header: PlyHeader) -> int:
    """Upper bound of the face list entries the binary data can hold."""
    body = len(data) - header.data_start
    fixed = sum(e.count * e.scalar_bytes() for e in header.elements)
    if fixed > body:
        raise ItemError(
            f"truncated .ply file: its header declares at least {fixed:,} bytes of data, "
            f"but only {body:,} follow"
        )
    faces = _ply_faces(header)
    if faces is None or not faces.lists:
        return 0
    return (body - fixed) // np.dtype(faces.lists[0].dtype).itemsize


def _ply_ascii_entries(data: bytes, header: PlyHeader) -> int:
    """Upper bound of the face list entries an ASCII PLY's tokens can hold."""
    check_line_breaks(data, ".ply")
    tokens = 0
    for _, _, counts, _ in iter_lines(data, header.data_start):
        tokens += int(counts.sum())
    fixed = sum(e.count * len(e.properties) for e in header.elements)
    if fixed > tokens:
        raise ItemError(
            f"truncated .ply file: its header declares at least {fixed:,} values, but the "
            f"data hold {tokens:,}"
        )
    return tokens - fixed
