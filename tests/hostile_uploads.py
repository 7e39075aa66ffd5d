"""Uploads that once cost the server gigabytes, and honest large ones, written to real files.

Used by tests/test_limits.py (through the real server) and benchmarks/bench_memory.py. Each
`hostile_*` builder writes a submission archive for one test item (the others missing) whose
refusal must say `fragment`; the figures in the comments are what each cost before it was
bounded (RSS growth of the server, or scratch disk).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MiB = 1 << 20


@dataclass(frozen=True)
class Upload:
    """An archive to submit (or, for `data_url`, an image to send inline) and what its refusal
    must contain ("" for an honest upload that must be accepted)."""

    name: str
    path: Path
    fragment: str


def manifest(representation: str = "mesh") -> bytes:
    return json.dumps(
        {"method": "hostile", "representation": representation, "frame": "object"}
    ).encode()


def write_zip(path: Path, files: dict[str, bytes], representation: str = "mesh") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("submission.json", manifest(representation))
        for name, data in files.items():
            zf.writestr(name, data)
    return path


TRIANGLE_V = b"v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\n"


def obj_polygon(folder: Path, item_id: str, corners: int = 25_000_000) -> Upload:
    """One `f` line of `corners` indices (was +1.6 GB RSS for a 12.8 MB upload)."""
    data = TRIANGLE_V + b"f " + b"1 2 3 " * (corners // 3) + b"\n"
    return Upload("OBJ: one polygon line", write_zip(folder / "obj_polygon.zip",
                                                     {f"{item_id}.obj": data}), "faces")  # fmt: skip


def obj_face_lines(folder: Path, item_id: str, lines: int = 10_000_000) -> Upload:
    """`lines` face lines in a ~120 KB zip (was +645 MB for the pre-check alone); 10 M lines
    are 80 MB, over the text item cap."""
    data = TRIANGLE_V + b"f 1 2 3\n" * lines
    fragment = "at most 64 MB" if len(data) > 64 * MiB else "faces"
    return Upload(f"OBJ: {lines / 1e6:g} M face lines", write_zip(
        folder / f"obj_lines_{lines}.zip", {f"{item_id}.obj": data}), fragment)  # fmt: skip


def glb_bytes(positions: np.ndarray, indices: np.ndarray, nodes: int = 1,
              lie: int = 0) -> bytes:  # fmt: skip
    """A minimal GLB: one mesh (float32 positions, uint32 triangle indices) placed by
    `nodes` nodes; `lie` adds that many elements to the index accessor's count."""
    pos = np.ascontiguousarray(positions, np.float32).tobytes()
    idx = np.ascontiguousarray(indices, np.uint32).tobytes()
    doc = {
        "asset": {"version": "2.0"},
        "buffers": [{"byteLength": len(pos) + len(idx)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos)},
            {"buffer": 0, "byteOffset": len(pos), "byteLength": len(idx)},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(positions),
                "type": "VEC3",
                "min": [float(v) for v in positions.min(0)],
                "max": [float(v) for v in positions.max(0)],
            },
            {"bufferView": 1, "componentType": 5125, "count": indices.size + lie, "type": "SCALAR"},
        ],  # fmt: skip
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "nodes": [{"mesh": 0} for _ in range(nodes)],
        "scenes": [{"nodes": list(range(nodes))}],
        "scene": 0,
    }
    raw = json.dumps(doc).encode()
    raw += b" " * (-len(raw) % 4)
    binary = pos + idx
    binary += b"\0" * (-len(binary) % 4)
    length = 12 + 8 + len(raw) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, length)
        + struct.pack("<I4s", len(raw), b"JSON") + raw
        + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    )  # fmt: skip


def grid_mesh(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A height-field sheet: vertices float (n*n, 3) in the unit cube, 2 (n-1)^2 triangles."""
    x = np.linspace(-0.4, 0.4, n)
    xx, yy = np.meshgrid(x, x)
    vertices = np.stack([xx.ravel(), yy.ravel(), 0.1 * np.sin(8 * xx).ravel()], 1)
    i = np.arange(n * n).reshape(n, n)
    a, b, c, d = i[:-1, :-1].ravel(), i[1:, :-1].ravel(), i[1:, 1:].ravel(), i[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return vertices, faces


def glb_large(folder: Path, item_id: str) -> Upload:
    """1.8 M triangles in one GLB, ~21.6 MB (was +1.1 GB)."""
    vertices, faces = grid_mesh(950)
    data = glb_bytes(vertices, faces)
    return Upload("GLB: 1.8 M triangles", write_zip(folder / "glb_large.zip",
                                                    {f"{item_id}.glb": data}), "faces")  # fmt: skip


def glb_instanced(folder: Path, item_id: str) -> Upload:
    """A 5,000-triangle mesh placed by 1,000 nodes: 5 M triangles once concatenated."""
    vertices, faces = grid_mesh(51)
    data = glb_bytes(vertices, faces, nodes=1000)
    return Upload("GLB: 1,000 instances", write_zip(folder / "glb_instanced.zip",
                                                    {f"{item_id}.glb": data}), "faces")  # fmt: skip


def glb_lying(folder: Path, item_id: str) -> Upload:
    """An index accessor counting more elements than its buffer view holds."""
    vertices, faces = grid_mesh(11)
    data = glb_bytes(vertices, faces, lie=3_000_000)
    return Upload("GLB: lying accessor", write_zip(folder / "glb_lying.zip",
                                                   {f"{item_id}.glb": data}), "inconsistent")  # fmt: skip


_PLY_HEAD = (
    "ply\nformat {fmt} 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    "property float z\nelement face {faces}\nproperty list {count} int vertex_indices\n"
    "end_header\n"
)


def ply_binary_polygon(folder: Path, item_id: str, corners: int = 25_000_000) -> Upload:
    """One binary face listing `corners` indices (an int list count)."""
    head = _PLY_HEAD.format(fmt="binary_little_endian", faces=1, count="int").encode()
    body = np.zeros(9, "<f4").tobytes() + np.array([corners], "<i4").tobytes()
    body += np.tile(np.array([0, 1, 2], "<i4"), corners // 3 + 1)[:corners].tobytes()
    return Upload("PLY: one face of 25 M corners", write_zip(folder / "ply_polygon.zip",
                                                             {f"{item_id}.ply": head + body}),
                  "faces")  # fmt: skip


def ply_ascii_lying(folder: Path, item_id: str, lines: int = 5_000_000) -> Upload:
    """An ASCII PLY declaring one face, followed by `lines` face rows."""
    head = _PLY_HEAD.format(fmt="ascii", faces=1, count="uchar").encode()
    body = b"0 0 0\n0.1 0 0\n0 0.1 0\n" + b"3 0 1 2\n" * lines
    return Upload("PLY ascii: header lies", write_zip(folder / "ply_lying.zip",
                                                      {f"{item_id}.ply": head + body}),
                  "faces")  # fmt: skip


def off_lying(folder: Path, item_id: str, lines: int = 5_000_000) -> Upload:
    """An OFF declaring one face, followed by `lines` face rows."""
    data = b"OFF\n3 1 0\n0 0 0\n0.1 0 0\n0 0.1 0\n" + b"3 0 1 2\n" * lines
    return Upload("OFF: header lies", write_zip(folder / "off_lying.zip",
                                                {f"{item_id}.off": data}), "more rows follow")  # fmt: skip


def tgz_scratch_bomb(folder: Path, unpacked: int = 1100 * MiB) -> Upload:
    """A .tar.gz that decompresses to `unpacked` bytes at a ratio under the 1000:1 bomb limit
    (was 2.0 GB written to SVR_HOME/scratch from 2.3 MB); gzip members of 1 MiB each."""
    rng = np.random.default_rng(0)
    block = bytearray(MiB)
    block[:: MiB // 1200] = rng.integers(1, 255, len(block[:: MiB // 1200]), np.uint8).tobytes()
    member = gzip.compress(bytes(block), 9)
    path = folder / "scratch_bomb.tar.gz"
    with open(path, "wb") as out:
        for _ in range(unpacked // MiB):
            out.write(member)
    return Upload(".tar.gz: scratch bomb", path, "cannot be unpacked")


def data_url_png(width: int = 9000, height: int = 9000) -> str:
    """A `data:` URL of a width x height PNG (81 MP; ~0.3 MB: was +1.03 GB and 14.6 s)."""
    from PIL import Image

    img = Image.new("L", (width, height), 0)
    img.paste(255, (width // 4, height // 4, width // 2, height // 2))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def honest_meshes(folder: Path, item_ids: list[str], n: int = 60) -> Upload:
    """Every item a 2 (n-1)^2-triangle OBJ sheet (60: ~7,000 faces each), the realistic
    large mesh submission."""
    import trimesh

    vertices, faces = grid_mesh(n)
    data = trimesh.Trimesh(vertices, faces, process=False).export(file_type="obj").encode()
    files = {f"{i}.obj": data for i in item_ids}
    return Upload(
        "honest: meshes for every item", write_zip(folder / "honest_meshes.zip", files), ""
    )


def _template_items(item_ids: list[str], representation: str) -> dict[str, bytes]:
    """The template sphere (`leaderboard.archive`) for each of `item_ids`."""
    from leaderboard.archive import _template_item

    ext, data = _template_item(representation)
    return {f"{i}.{ext}": data for i in item_ids}


def honest_largest_items(folder: Path, item_ids: list[str]) -> list[Upload]:
    """Complete submissions whose first item is at the limits, one per format: a
    500,000-face OBJ, ASCII PLY, OFF and GLB, and a 256^3 float32 probability grid (.npy);
    the other items are the template's sphere."""
    import trimesh

    vertices, faces = grid_mesh(501)
    mesh = trimesh.Trimesh(vertices, faces[:500_000], process=False)
    first, rest = item_ids[0], _template_items(item_ids[1:], "mesh")
    out = []
    for ext, data in (
        ("obj", mesh.export(file_type="obj").encode()),
        ("ply", trimesh.exchange.ply.export_ply(mesh, encoding="ascii")),
        ("off", mesh.export(file_type="off").encode()),
        ("glb", mesh.export(file_type="glb")),
    ):
        label = "ply ascii" if ext == "ply" else ext
        path = write_zip(folder / f"largest_{ext}.zip", {f"{first}.{ext}": data, **rest})
        out.append(Upload(f"honest: 500k-face {label}", path, ""))
    c = -0.5 + (np.arange(256) + 0.5) / 256
    x, y, z = np.meshgrid(c, c, c, indexing="ij", sparse=True)
    grid = np.clip(0.5 + 4 * (0.3 - np.sqrt(x**2 + y**2 + z**2)), 0, 1).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, grid)
    files = {f"{first}.npy": buf.getvalue(), **_template_items(item_ids[1:], "voxels")}
    path = write_zip(folder / "largest_grid.zip", files, "voxels")
    out.append(Upload("honest: 256^3 float32 grid", path, ""))
    return out


def hostile_uploads(folder: Path, item_id: str) -> list[Upload]:
    """Every hostile archive above for test item `item_id`."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        obj_polygon(folder, item_id),
        obj_face_lines(folder, item_id),
        obj_face_lines(folder, item_id, 7_000_000),
        glb_large(folder, item_id),
        glb_instanced(folder, item_id),
        glb_lying(folder, item_id),
        ply_binary_polygon(folder, item_id),
        ply_ascii_lying(folder, item_id),
        off_lying(folder, item_id),
        tgz_scratch_bomb(folder),
    ]
