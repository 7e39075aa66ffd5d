"""Solid primitives for the procedural shape families, built on manifold3d.

Every function returns a closed, oriented `manifold3d.Manifold` in world coordinates
(+y up, front towards +z; units are whatever the family works in, normalised later).
Points are 3-sequences of floats; sizes are full extents (not half extents).
Segment counts are kept small (8..32) so that a whole shape stays under ~20k faces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from manifold3d import CrossSection, Manifold, OpType

__all__ = [
    "box",
    "box_between",
    "cylinder",
    "capsule",
    "sphere",
    "ellipsoid",
    "rounded_box",
    "hull_points",
    "tapered_box",
    "extrude_profile",
    "revolve_profile",
    "tube",
    "rotation_matrix",
    "transform",
    "union",
    "beam",
    "plate",
]

Vec = Sequence[float]


def _affine(rot: np.ndarray, offset: Vec) -> np.ndarray:
    """A (3, 4) float64 affine matrix [R | t] for `Manifold.transform`."""
    out = np.zeros((3, 4), dtype=np.float64)
    out[:, :3] = rot
    out[:, 3] = np.asarray(offset, dtype=np.float64)
    return out


def rotation_matrix(axis: Vec, angle: float) -> np.ndarray:
    """(3, 3) float64 rotation by `angle` radians about `axis` (right-hand rule)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    x, y, z = a
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    return np.array(
        [
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ]
    )


def transform(solid: Manifold, rot: np.ndarray | None = None, offset: Vec = (0, 0, 0)) -> Manifold:
    """Apply x -> rot @ x + offset to a solid; rot is (3, 3), identity if None."""
    r = np.eye(3) if rot is None else np.asarray(rot, dtype=np.float64)
    return solid.transform(_affine(r, offset))


def _z_to(direction: np.ndarray) -> np.ndarray:
    """A (3, 3) rotation taking +z to the unit vector `direction`."""
    d = direction / np.linalg.norm(direction)
    z = np.array([0.0, 0.0, 1.0])
    c = float(np.dot(z, d))
    if c > 1 - 1e-12:
        return np.eye(3)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    axis = np.cross(z, d)
    return rotation_matrix(axis, float(np.arccos(np.clip(c, -1.0, 1.0))))


def box(size: Vec, center: Vec = (0, 0, 0)) -> Manifold:
    """Axis-aligned box of full extents `size` centred at `center`."""
    return Manifold.cube(tuple(float(s) for s in size), True).translate(
        tuple(float(c) for c in center)
    )


def box_between(lo: Vec, hi: Vec) -> Manifold:
    """Axis-aligned box spanning corner `lo` to corner `hi`."""
    lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
    return box(hi_a - lo_a, (lo_a + hi_a) / 2)


def cylinder(p0: Vec, p1: Vec, r0: float, r1: float | None = None, segments: int = 20) -> Manifold:
    """Cylinder (or truncated cone from radius r0 at p0 to r1 at p1) along segment p0-p1."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    d = b - a
    h = float(np.linalg.norm(d))
    r_hi = r0 if r1 is None else r1
    solid = Manifold.cylinder(h, float(r0), float(r_hi), int(segments), False)
    return transform(solid, _z_to(d), a)


def sphere(center: Vec, r: float, segments: int = 16) -> Manifold:
    """Sphere of radius r."""
    return Manifold.sphere(float(r), int(segments)).translate(tuple(float(c) for c in center))


def ellipsoid(center: Vec, radii: Vec, segments: int = 20) -> Manifold:
    """Axis-aligned ellipsoid with semi-axes `radii`."""
    return (
        Manifold.sphere(1.0, int(segments))
        .scale(tuple(float(r) for r in radii))
        .translate(tuple(float(c) for c in center))
    )


def capsule(p0: Vec, p1: Vec, r: float, segments: int = 12) -> Manifold:
    """Segment p0-p1 swept by a sphere of radius r (convex hull of two spheres)."""
    return Manifold.batch_hull([sphere(p0, r, segments), sphere(p1, r, segments)])


def hull_points(points: np.ndarray) -> Manifold:
    """Convex hull of (N, 3) points (N >= 4, not coplanar)."""
    return Manifold.hull_points(np.asarray(points, dtype=np.float64))


def rounded_box(size: Vec, radius: float, center: Vec = (0, 0, 0), segments: int = 8) -> Manifold:
    """Box of full extents `size` with edges and corners rounded by `radius`."""
    s = np.asarray(size, float) / 2
    r = float(min(radius, *(s * 0.999)))
    c = np.asarray(center, float)
    corners = [
        sphere(c + np.array([sx, sy, sz]) * (s - r), r, segments)
        for sx in (-1, 1)
        for sy in (-1, 1)
        for sz in (-1, 1)
    ]
    return Manifold.batch_hull(corners)


def tapered_box(
    bottom: Vec, top: Vec, y0: float, y1: float, center_xz: Vec = (0, 0), top_shift: Vec = (0, 0)
) -> Manifold:
    """Frustum with rectangular (x, z) sections `bottom` at height y0 and `top` at y1.

    `top_shift` moves the top section in (x, z) relative to the bottom one.
    """
    cx, cz = float(center_xz[0]), float(center_xz[1])
    pts = []
    for (wx, wz), y, (sx, sz) in ((bottom, y0, (0, 0)), (top, y1, top_shift)):
        for ex in (-0.5, 0.5):
            for ez in (-0.5, 0.5):
                pts.append((cx + sx + ex * wx, y, cz + sz + ez * wz))
    return hull_points(np.array(pts))


def _ccw(poly: np.ndarray) -> np.ndarray:
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return poly if area > 0 else poly[::-1]


# Maps (profile u, profile v, extrusion w) to world coordinates for each extrusion axis;
# all three are proper rotations (det +1).
_EXTRUDE_FRAMES = {
    # profile in (z, y), extruded along x
    "x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    # profile in (x, z), extruded along y
    "y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    # profile in (x, y), extruded along z
    "z": np.eye(3),
}


def extrude_profile(
    profile: np.ndarray, depth: float, axis: str = "x", center: float = 0.0
) -> Manifold:
    """Extrude a simple 2D polygon (N, 2) by `depth`, centred at `center` along `axis`.

    axis "x": profile coordinates are (z, y) (a side view), extruded along x.
    axis "y": profile coordinates are (x, z) (a top view), extruded along y.
    axis "z": profile coordinates are (x, y) (a front view), extruded along z.
    """
    poly = _ccw(np.asarray(profile, dtype=np.float64))
    solid = Manifold.extrude(CrossSection([poly]), float(depth))
    solid = solid.translate((0.0, 0.0, -float(depth) / 2))
    frame = _EXTRUDE_FRAMES[axis]
    offset = np.zeros(3)
    offset["xyz".index(axis)] = float(center)
    return transform(solid, frame, offset)


def revolve_profile(profile: np.ndarray, segments: int = 24, center: Vec = (0, 0, 0)) -> Manifold:
    """Revolve a 2D polygon of (radius >= 0, height) points about the vertical (y) axis."""
    poly = _ccw(np.asarray(profile, dtype=np.float64))
    solid = Manifold.revolve(CrossSection([poly]), int(segments))
    # revolve gives the profile's height along z; turn z into y.
    frame = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    return transform(solid, frame, center)


def tube(points: np.ndarray, r: float, segments: int = 12) -> Manifold:
    """A polyline (N, 3) swept by a sphere of radius r: union of capsules."""
    pts = np.asarray(points, dtype=np.float64)
    pieces = [capsule(pts[i], pts[i + 1], r, segments) for i in range(len(pts) - 1)]
    return union(pieces)


def union(solids: list[Manifold]) -> Manifold:
    """Boolean union of solids (part identities are not tracked here)."""
    if not solids:
        raise ValueError("union of an empty list of solids")
    return Manifold.batch_boolean(list(solids), OpType.Add)


def beam(p0: Vec, p1: Vec, width: float, depth: float | None = None) -> Manifold:
    """A bar from p0 to p1: the hull of two axis-aligned boxes centred at the ends.

    Each end box measures (width, depth, width) along (x, y, z); depth defaults to width.
    Slanted bars thus get slightly bevelled ends, which is fine for furniture members.
    """
    d = width if depth is None else depth
    size = (float(width), float(d), float(width))
    return Manifold.batch_hull([box(size, p0), box(size, p1)])


def plate(corners: np.ndarray, thickness: float, normal: Vec) -> Manifold:
    """A flat convex plate: corners (N, 3) offset by +-thickness/2 along `normal`, hulled."""
    c = np.asarray(corners, dtype=np.float64)
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n) * (float(thickness) / 2)
    return hull_points(np.concatenate([c + n, c - n]))
