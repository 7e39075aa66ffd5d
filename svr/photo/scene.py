"""Ray-cast scenes for the photo renderer: meshes with smooth normals, one Embree scene,
camera rays with roll and an off-centre principal point, framing by the object's size.

World frame and `Camera` as in `svr.render` (world units; the object fits
[-0.5, 0.5]^3; OpenCV camera axes). A photo is `size` x `size` pixels; its principal
point (cx, cy) in pixels may sit off the image centre (the photo is then an off-centre
crop of a larger one), which is how the object lands anywhere in the frame.

All geometry (object, clutter, floor, wall) goes into one Embree scene, so a photo is one
Embree call for the primary rays (plus one for anti-aliasing at edges) and one batched
call for all shadow rays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import trimesh

from svr.render import Camera

__all__ = [
    "SceneMesh",
    "PreparedMesh",
    "prepare_mesh",
    "corner_normals",
    "RayScene",
    "Hits",
    "camera_rays",
    "frame_camera",
]

_SHADOW_EPS = 2e-3  # world units: shadow rays start this far off the surface


def corner_normals(vertices: np.ndarray, faces: np.ndarray, crease_deg: float = 35.0) -> np.ndarray:
    """Smooth shading normals per face corner, float32 (F, 3, 3), unit length.

    A corner's normal averages (by area) the normals of the faces around its vertex that
    lie within `crease_deg` of its own face's normal, so curved surfaces shade smoothly
    and edges sharper than the crease angle stay sharp.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros((0, 3, 3), dtype=np.float32)
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    area2 = np.linalg.norm(cross, axis=1)
    fn = cross / np.maximum(area2, 1e-20)[:, None]
    corner_vertex = f.ravel()  # corner c = 3 * face + k
    corner_face = np.repeat(np.arange(len(f)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    sorted_vertex = corner_vertex[order]
    starts = np.searchsorted(sorted_vertex, np.arange(len(v)))
    degree = np.bincount(corner_vertex, minlength=len(v))
    # pairs (corner i, corner j sharing its vertex): sum of degree^2 over vertices
    deg_i = degree[corner_vertex]
    i_idx = np.repeat(np.arange(len(corner_vertex)), deg_i)
    within = np.arange(len(i_idx)) - np.repeat(np.cumsum(deg_i) - deg_i, deg_i)
    j_idx = order[starts[corner_vertex[i_idx]] + within]
    fi, fj = corner_face[i_idx], corner_face[j_idx]
    keep = (fn[fi] * fn[fj]).sum(1) >= np.cos(np.deg2rad(crease_deg))
    weighted = fn[fj[keep]] * area2[fj[keep], None]
    acc = np.zeros((len(corner_vertex), 3))
    for c in range(3):
        acc[:, c] = np.bincount(i_idx[keep], weights=weighted[:, c], minlength=len(corner_vertex))
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    acc = np.where(norm > 1e-12, acc / np.maximum(norm, 1e-12), fn[corner_face])
    return acc.reshape(-1, 3, 3).astype(np.float32)


@dataclass
class PreparedMesh:
    """A mesh ready for photo rendering (object frame): vertices float64 (V, 3), faces
    int32 (F, 3), corner normals float32 (F, 3, 3); `bottom` float64 (B, 3) vertices within
    5 % of the height above the lowest point (for contact shadows); `mesh` the original."""

    mesh: trimesh.Trimesh
    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    bottom: np.ndarray
    frame_points: np.ndarray = field(repr=False)  # <= 2000 vertices used for framing

    @property
    def radius(self) -> float:
        """Largest distance of a vertex from the origin, world units."""
        return float(np.linalg.norm(self.vertices, axis=1).max(initial=0.0))


def prepare_mesh(mesh: trimesh.Trimesh, crease_deg: float = 35.0) -> PreparedMesh:
    """Validate a mesh and precompute its smooth normals; ValueError when it is unusable."""
    if not isinstance(mesh, trimesh.Trimesh):
        raise ValueError(f"expected a trimesh.Trimesh, got {type(mesh).__name__}")
    if len(mesh.faces) == 0:
        raise ValueError("the mesh has no faces: there is nothing to render")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        raise ValueError("the mesh has NaN or infinite vertex coordinates")
    faces = np.asarray(mesh.faces, dtype=np.int32)
    y = vertices[:, 1]
    bottom = vertices[y <= y.min() + 0.05 * max(float(np.ptp(y)), 1e-6)]
    step = max(1, len(vertices) // 2000)
    return PreparedMesh(
        mesh=mesh,
        vertices=vertices,
        faces=faces,
        normals=corner_normals(vertices, faces, crease_deg),
        bottom=bottom,
        frame_points=vertices[::step],
    )


@dataclass
class SceneMesh:
    """One geometry of a scene: vertices float32 (V, 3) world, faces int32 (F, 3), corner
    normals float32 (F, 3, 3), face_material int32 (F,) index into the scene's materials."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    face_material: np.ndarray


@dataclass
class Hits:
    """First hits of N rays: t float32 (N,) distance along the unit ray (inf on a miss),
    geom int32 (N,) geometry index (-1 = miss), face int64 (N,) global face index (-1),
    u, v float32 (N,) barycentric coordinates of the hit (Embree's)."""

    t: np.ndarray
    geom: np.ndarray
    face: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return self.geom >= 0


def _embree():
    try:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the photo renderer needs Embree ray casting: install the pinned 'embreex' package"
        ) from exc
    return rtcore_scene, TriangleMesh


class RayScene:
    """An Embree scene of several `SceneMesh` geometries (geometry i = meshes[i])."""

    def __init__(self, meshes: Sequence[SceneMesh]) -> None:
        rtcore_scene, triangle_mesh = _embree()
        self.meshes = list(meshes)
        self._scene = rtcore_scene.EmbreeScene()
        for m in self.meshes:
            triangle_mesh(
                self._scene,
                np.ascontiguousarray(m.vertices, dtype=np.float32),
                np.ascontiguousarray(m.faces, dtype=np.int32),
            )
        counts = [len(m.faces) for m in self.meshes]
        self.face_offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.normals = np.concatenate([m.normals for m in self.meshes]).astype(np.float32)
        self.face_material = np.concatenate([m.face_material for m in self.meshes]).astype(np.int32)
        tri = np.concatenate([np.asarray(m.vertices, np.float32)[m.faces] for m in self.meshes])
        ng = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.face_normals = ng / np.maximum(np.linalg.norm(ng, axis=1, keepdims=True), 1e-20)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> Hits:
        """First hits of rays (N, 3) (unit directions) in one Embree call."""
        out = self._scene.run(
            np.ascontiguousarray(origins, dtype=np.float32),
            np.ascontiguousarray(dirs, dtype=np.float32),
            output=1,
        )
        geom = out["geomID"].astype(np.int32)
        hit = geom >= 0
        face = np.where(hit, self.face_offset[np.maximum(geom, 0)] + out["primID"], -1)
        t = np.where(hit, out["tfar"], np.inf).astype(np.float32)
        return Hits(t=t, geom=geom, face=face, u=out["u"], v=out["v"])

    def occluded(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """bool (N,): does anything block the ray (towards a directional light)?"""
        if len(origins) == 0:
            return np.zeros(0, dtype=bool)
        out = self._scene.run(
            np.ascontiguousarray(origins, dtype=np.float32),
            np.ascontiguousarray(dirs, dtype=np.float32),
            query="OCCLUDED",
        )
        return np.asarray(out) >= 0

    def surface(
        self, hits: Hits, origins: np.ndarray, dirs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points, shading normals, shadow-ray origins) float32 (H, 3) of the rays that hit.

        Normals are double-sided: turned towards the ray's origin. Shadow-ray origins sit
        a little off the surface on the viewer's side.
        """
        sel = hits.hit
        face = hits.face[sel]
        d = np.asarray(dirs, np.float32)[sel]
        points = np.asarray(origins, np.float32)[sel] + d * hits.t[sel, None]
        ng = self.face_normals[face]
        flip = np.einsum("ij,ij->i", ng, d) > 0
        ng[flip] *= -1
        u, v = hits.u[sel, None], hits.v[sel, None]
        corners = self.normals[face]
        n = (1 - u - v) * corners[:, 0] + u * corners[:, 1] + v * corners[:, 2]
        n[flip] *= -1
        # a smooth normal must not face away from the viewer: fall back to the flat one
        n = np.where((np.einsum("ij,ij->i", n, d) > 0)[:, None], ng, n)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)
        return points, n, points + ng * np.float32(_SHADOW_EPS)


def camera_rays(
    camera: Camera,
    size: int,
    principal: tuple[float, float],
    pixels: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rays (origins, unit directions) float32 (N, 3) of a `size` x `size` photo.

    pixels: int (N, 2) (col, row) of the rays, default every pixel in row-major order;
    offsets: float (N, 2) sub-pixel offsets from the pixel centre in pixels (default 0).
    principal: (cx, cy) in pixels. Roll is the camera's (`Camera.roll`).
    """
    R, _ = camera.extrinsics()
    f = camera.focal_length(size)
    if pixels is None:
        c = np.arange(size, dtype=np.float32) + 0.5
        x = np.tile(c, size)
        y = np.repeat(c, size)
    else:
        x = pixels[:, 0].astype(np.float32) + 0.5
        y = pixels[:, 1].astype(np.float32) + 0.5
    if offsets is not None:
        x = x + offsets[:, 0].astype(np.float32)
        y = y + offsets[:, 1].astype(np.float32)
    xn = (x - np.float32(principal[0])) / np.float32(f)
    yn = (y - np.float32(principal[1])) / np.float32(f)
    Rf = R.astype(np.float32)
    dirs = xn[:, None] * Rf[0] + yn[:, None] * Rf[1] + Rf[2]  # rows: R.T @ (x, y, 1)
    dirs /= np.sqrt(np.einsum("ij,ij->i", dirs, dirs))[:, None]
    origins = np.broadcast_to(camera.position.astype(np.float32), dirs.shape)
    return origins, dirs


def _projected_box(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min, max) of points projected to normalised image coordinates
    (x / z, y / z); (inf, -inf) when a point is behind the camera."""
    R, t = camera.extrinsics()
    cam = points @ R.T + t
    if cam[:, 2].min() <= 1e-3:
        return np.full(2, -np.inf), np.full(2, np.inf)
    xy = cam[:, :2] / cam[:, 2:3]
    return xy.min(0), xy.max(0)


def frame_camera(
    obj: PreparedMesh,
    azimuth: float,
    elevation: float,
    fov: float,
    roll: float,
    fill: float,
    offset: tuple[float, float],
    size: int,
    margin: float = 0.06,
) -> tuple[Camera, tuple[float, float]]:
    """Place the camera so that the object's projected bounding box spans `fill` of the
    photo along its longest side, then shift the principal point so the box lands at
    `offset` (each in [-1, 1], -1 = as far left / up as the margin allows).

    Returns (camera, principal point (cx, cy) in pixels). The box keeps `margin` (share of
    `size`, at least 3 px) from every border; the distance never goes below the object's
    radius + 0.3 (the object then fills less than asked).
    """
    if not 0.05 <= fill <= 0.95:
        raise ValueError(f"fill must be in [0.05, 0.95], got {fill}")
    pts = obj.frame_points
    tan_half = np.tan(np.deg2rad(fov) / 2)
    target = fill * 2 * tan_half  # wanted longest side in normalised image units
    min_distance = obj.radius + 0.3
    distance = max(2.5, min_distance)
    for _ in range(4):  # fixed point: the extent falls roughly as 1 / distance
        cam = Camera(azimuth % 360.0, elevation, distance, fov, roll)
        lo, hi = _projected_box(cam, pts)
        extent = float((hi - lo).max())
        if not np.isfinite(extent) or extent <= 0:
            distance *= 1.5
            continue
        distance = max(min_distance, distance * extent / target)
    cam = Camera(azimuth % 360.0, elevation, distance, fov, roll)
    lo, hi = _projected_box(cam, obj.vertices)  # every vertex: the box must hold exactly
    f = cam.focal_length(size)
    box_lo, box_hi = lo * f, hi * f  # pixels relative to the principal point
    pad = max(3.0, margin * size)
    principal = []
    for axis in range(2):
        low = pad - box_lo[axis]  # smallest principal coordinate keeping the box inside
        high = size - pad - box_hi[axis]
        if low > high:
            principal.append((low + high) / 2)
        else:
            principal.append(low + (high - low) * (np.clip(offset[axis], -1, 1) + 1) / 2)
    return cam, (float(principal[0]), float(principal[1]))
