"""Pre-check of binary glTF (.glb) items before trimesh loads them.

`check_glb` reads the 12-byte header, the JSON chunk (at most `GLB_MAX_JSON` bytes) and the
BIN chunk's length, checks every accessor, buffer view and buffer (counts, component types,
strides and byte ranges inside the binary chunk; no external or data-URI buffers, no sparse
accessors, no required extensions such as Draco), and counts the vertices and triangles of
every mesh over every node that places it, refusing counts over the per-item limits.
"""

from __future__ import annotations

import json
import struct

from leaderboard.meshcheck import too_many_faces, too_many_vertices
from leaderboard.validation import ItemError, ItemLimits

__all__ = ["GLB_MAX_JSON", "check_glb"]

GLB_MAX_JSON = 1 << 20  # bytes of a .glb's JSON chunk
_GLB_COMPONENT = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_GLB_TYPE = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_GLB_SUPPORTED_EXT: frozenset[str] = frozenset(
    {"KHR_materials_unlit", "KHR_texture_transform", "KHR_materials_emissive_strength"}
)


def _glb_error(message: str) -> ItemError:
    return ItemError(f"unreadable .glb file: {message}")


def _as_list(doc: dict, key: str) -> list[dict]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _glb_error(f"'{key}' must be a list of objects")
    return value


def _index(obj: dict, key: str, size: int, what: str, required: bool = True) -> int | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise _glb_error(f"{what}.{key} is not a valid index (got {value!r}, {size} available)")
    return value


def _non_negative(obj: dict, key: str, what: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _glb_error(f"{what}.{key} must be a non-negative integer (got {value!r})")
    return value


def _glb_chunks(data: bytes) -> tuple[bytes, int]:
    """(JSON chunk bytes, BIN chunk length) of a GLB, checking the container structure."""
    if len(data) < 20:
        raise _glb_error("shorter than a GLB header")
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise _glb_error(f"expected glTF version 2, got version {version}")
    if length > len(data):
        raise _glb_error(f"truncated: the header declares {length:,} bytes, {len(data):,} present")
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    if json_type != b"JSON":
        raise _glb_error("the first chunk is not the JSON chunk")
    if json_len > GLB_MAX_JSON:
        raise _glb_error(
            f"its JSON chunk is {json_len:,} bytes; at most {GLB_MAX_JSON:,} allowed "
            "(export one mesh, without animations or extras)"
        )
    if 20 + json_len > length:
        raise _glb_error("the JSON chunk runs past the end of the file")
    raw = data[20 : 20 + json_len]
    bin_len = 0
    pos = 20 + json_len + (-json_len % 4)
    if pos + 8 <= length:
        bin_len, bin_type = struct.unpack_from("<I4s", data, pos)
        if bin_type != b"BIN\x00":
            raise _glb_error("the second chunk is not a BIN chunk")
        if pos + 8 + bin_len > length:
            raise _glb_error("the BIN chunk runs past the end of the file")
    return raw, bin_len


def _glb_views(doc: dict, bin_len: int) -> list[tuple[int, int]]:
    """(byteLength, byteStride or 0) of every buffer view, checked against the BIN chunk."""
    buffers = _as_list(doc, "buffers")
    for i, buffer in enumerate(buffers):
        if "uri" in buffer:
            raise _glb_error(
                f"buffers[{i}] refers to a URI; a .glb item must keep its data in its own BIN chunk"
            )
        if _non_negative(buffer, "byteLength", f"buffers[{i}]") > bin_len:
            raise _glb_error(f"buffers[{i}] is longer than the BIN chunk ({bin_len:,} bytes)")
    views = []
    for i, view in enumerate(_as_list(doc, "bufferViews")):
        what = f"bufferViews[{i}]"
        buffer = _index(view, "buffer", len(buffers), what)
        offset = _non_negative(view, "byteOffset", what, 0)
        size = _non_negative(view, "byteLength", what)
        stride = _non_negative(view, "byteStride", what, 0)
        if offset + size > buffers[buffer]["byteLength"]:
            raise _glb_error(f"{what} runs past the end of its buffer")
        if stride and not 4 <= stride <= 252:
            raise _glb_error(f"{what}.byteStride {stride} is outside 4..252")
        views.append((size, stride))
    return views


def _glb_accessor_counts(doc: dict, views: list[tuple[int, int]]) -> list[int]:
    """Element count of every accessor, each checked to fit inside its buffer view."""
    counts = []
    for i, acc in enumerate(_as_list(doc, "accessors")):
        what = f"accessors[{i}]"
        if "sparse" in acc:
            raise _glb_error(f"{what} is sparse, which is not supported; export plain arrays")
        view = _index(acc, "bufferView", len(views), what, required=False)
        if view is None:
            raise _glb_error(f"{what} has no bufferView (implicit zeros are not supported)")
        component = acc.get("componentType")
        kind = acc.get("type")
        if component not in _GLB_COMPONENT or kind not in _GLB_TYPE:
            raise _glb_error(f"{what} has componentType {component!r} / type {kind!r}")
        count = _non_negative(acc, "count", what)
        offset = _non_negative(acc, "byteOffset", what, 0)
        element = _GLB_COMPONENT[component] * _GLB_TYPE[kind]
        size, stride = views[view]
        needed = offset + (0 if count == 0 else (count - 1) * max(stride, element) + element)
        if needed > size:
            raise _glb_error(
                f"{what} needs {needed:,} bytes but its buffer view holds {size:,} (the byte "
                "lengths are inconsistent with the binary chunk)"
            )
        counts.append(count)
    return counts


def _glb_instances(doc: dict, n_meshes: int) -> list[int]:
    """How many scene nodes place each mesh; refuses shared children and cycles."""
    nodes = _as_list(doc, "nodes")
    parent: dict[int, int] = {}
    for i, node in enumerate(nodes):
        children = node.get("children", [])
        if not isinstance(children, list):
            raise _glb_error(f"nodes[{i}].children must be a list")
        for c in children:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < len(nodes):
                raise _glb_error(f"nodes[{i}].children holds an invalid index {c!r}")
            if c in parent or c == i:
                raise _glb_error(
                    f"node {c} has more than one parent (the node graph must be a tree)"
                )
            parent[c] = i
    for start in range(len(nodes)):  # walking up from any node must end at a root
        seen, node = 0, start
        while node in parent:
            node, seen = parent[node], seen + 1
            if seen > len(nodes):
                raise _glb_error("the node graph has a cycle")
    placed = [0] * n_meshes
    for i, node in enumerate(nodes):
        mesh = _index(node, "mesh", n_meshes, f"nodes[{i}]", required=False)
        if mesh is not None:
            placed[mesh] += 1
    return placed


def check_glb(data: bytes, limits: ItemLimits) -> tuple[int, int]:
    """Check a .glb before loading it; returns (vertices, triangles) over all mesh instances.

    ItemError for a malformed container, external buffers, accessors that do not fit their
    buffer views, unsupported required extensions, or counts over the per-item limits.
    """
    raw, bin_len = _glb_chunks(data)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _glb_error(f"its JSON chunk is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _glb_error("its JSON chunk is not an object")
    required = doc.get("extensionsRequired", [])
    if not isinstance(required, list) or set(map(str, required)) - _GLB_SUPPORTED_EXT:
        raise _glb_error(
            f"it requires the extensions {required!r} (e.g. Draco compression), which are not "
            "supported; export without compression"
        )
    counts = _glb_accessor_counts(doc, _glb_views(doc, bin_len))
    meshes = _as_list(doc, "meshes")
    placed = _glb_instances(doc, len(meshes))
    vertices = triangles = 0
    for m, mesh in enumerate(meshes):
        prims = mesh.get("primitives", [])
        if not isinstance(prims, list) or not all(isinstance(p, dict) for p in prims):
            raise _glb_error(f"meshes[{m}].primitives must be a list of objects")
        mesh_v = mesh_t = 0
        for p, prim in enumerate(prims):
            what = f"meshes[{m}].primitives[{p}]"
            attrs = prim.get("attributes", {})
            if not isinstance(attrs, dict):
                raise _glb_error(f"{what}.attributes must be an object")
            for name in attrs:
                _index(attrs, name, len(counts), f"{what}.attributes")
            if "targets" in prim:
                raise _glb_error(f"{what} has morph targets, which are not supported")
            n_v = counts[attrs["POSITION"]] if "POSITION" in attrs else 0
            indices = _index(prim, "indices", len(counts), what, required=False)
            n_i = counts[indices] if indices is not None else n_v
            mode = prim.get("mode", 4)
            mesh_v += n_v
            mesh_t += n_i // 3 if mode == 4 else max(n_i - 2, 0) if mode in (5, 6) else 0
        vertices += mesh_v * max(placed[m], 1)
        triangles += mesh_t * max(placed[m], 1)
        if triangles > limits.max_faces:
            raise too_many_faces(
                f"at least {triangles:,}", limits, " (counted over every placement of each mesh)"
            )
        if vertices > limits.max_vertices:
            raise too_many_vertices(f"at least {vertices:,}", limits)
    return vertices, triangles
