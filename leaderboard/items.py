"""Item formats of a submission: recognising a file by its content and decoding it.

`decode_item(data, ext)` turns one file's bytes into an `ItemData` (a voxel grid, points or a
mesh) and checks it against the per-item limits, or raises `ItemError` with a message a
researcher can act on. Formats (`ITEM_FORMATS`): `.npy` / `.npz` voxel grid (R, R, R) or
points (N, 3) (an item `.npz` holds one array, or `vertices` + `faces` for a mesh),
`.binvox` grid, `.ply` points or mesh, `.xyz` points, `.obj` / `.off` / `.glb` meshes; `sniff`
names the format of bytes whatever their file name. `.npy` data are loaded with
`allow_pickle=False` after checking the header's dtype and shape against the bytes present.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from leaderboard.containers import DEFAULT_LIMITS, ArchiveLimits, _ZipContainer
from leaderboard.glbcheck import check_glb
from leaderboard.meshcheck import check_obj, check_ply, parse_ply_header
from leaderboard.textmesh import read_off, read_ply_ascii, read_xyz
from leaderboard.validation import ItemData, ItemError, ItemLimits, SubmissionError, check_item
from svr.io import read_binvox_bytes

__all__ = ["ITEM_FORMATS", "ItemFormat", "decode_item", "sniff"]

logger = logging.getLogger(__name__)

_MiB = 1 << 20
_TEXT_WINDOW = 1 << 20

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


# ----------------------------------------------------------------------------- item formats


def _load_npy(data: bytes, what: str = ".npy file", allow_text: bool = False) -> np.ndarray:
    """Parse .npy bytes: the header is checked against the data size, then the array is a
    view of `data` (no copy; never unpickled). Object (pickled) arrays are refused."""
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
    # A view of the bytes already in memory (np.load would copy them).
    array = np.frombuffer(data, dtype=dtype, count=count, offset=fp.tell())
    return array.reshape(shape, order="F" if fortran else "C")


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
            # Each run is two bytes covering at least one voxel.
            if len(data) > 1024 + 2 * dims[0] ** 3:
                raise ItemError(
                    f"binvox file is {len(data):,} bytes, more than a {dims[0]}^3 grid's "
                    "run-length data can take (corrupt or padded file)"
                )
            break
        if line.startswith(b"data"):
            break
    try:
        grid = read_binvox_bytes(data, "binvox")
    except ValueError as exc:
        raise ItemError(f"unreadable binvox file: {exc}") from None
    return ItemData("voxels", grid=grid)


def _trimesh_item(data: bytes, file_type: str) -> ItemData:
    """Load checked bytes with trimesh (materials and textures skipped)."""
    import trimesh

    try:
        loaded = trimesh.load(
            io.BytesIO(data), file_type=file_type, process=False, skip_materials=True
        )
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
    header = parse_ply_header(data)
    check_ply(data, header, limits.items)
    if header.fmt == "ascii":
        return read_ply_ascii(data, header, limits.items)
    return _trimesh_item(data, "ply")


def _check_text(data: bytes, ext: str, limits: ItemLimits) -> None:
    """UTF-8 text of at most `limits.max_text_bytes`, checked a window at a time."""
    if len(data) > limits.max_text_bytes:
        raise ItemError(
            f"the .{ext} file is {len(data) / _MiB:.0f} MB; text items may be at most "
            f"{limits.max_text_bytes / _MiB:.0f} MB (store meshes as binary .ply or .glb, "
            "points as .npy)"
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for pos in range(0, len(data), _TEXT_WINDOW):
            decoder.decode(data[pos : pos + _TEXT_WINDOW])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ItemError(f"named .{ext} but the content is not text") from None


def _read_obj_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    _check_text(data, "obj", limits.items)
    check_obj(data, limits.items)
    return _trimesh_item(data, "obj")


def _read_off_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    _check_text(data, "off", limits.items)
    return read_off(data, limits.items)


def _read_glb_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    check_glb(data, limits.items)
    return _trimesh_item(data, "glb")


def _read_xyz_item(data: bytes, limits: ArchiveLimits) -> ItemData:
    _check_text(data, "xyz", limits.items)
    return read_xyz(data, limits.items)


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
