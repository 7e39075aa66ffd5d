"""Geometry shared by the benchmark builder, the models and the scorer.

Units: the unit cube [-0.5, 0.5]^3 of the normalised shapes. Occupancy grids are bool
arrays indexed (x, y, z); voxel (i, j, k) of an R^3 grid covers
[-0.5 + i/R, -0.5 + (i+1)/R) along x (likewise y, z) and its centre is -0.5 + (i + 0.5)/R.

Inside tests use ray parity with Embree (trimesh's `ray_pyembree`), cast along the three
axes and combined by majority vote: exact for watertight meshes, and robust to the odd
ray that grazes an edge. For meshes that are not watertight the vote still gives the
answer most axis directions agree on (documented as the scorer's inside test).
"""

from __future__ import annotations

import numpy as np
import trimesh

__all__ = [
    "voxel_centers",
    "sample_surface",
    "voxelize_mesh",
    "points_inside",
    "grid_to_mesh",
]

# A tiny, fixed offset of ray origins so that rays through voxel centres do not run exactly
# along the edges of axis-aligned geometry (which would report doubled hits).
_RAY_JITTER = np.array([1.234567e-7, 2.345678e-7, 3.456789e-7])


def voxel_centers(resolution: int) -> np.ndarray:
    """Coordinates of the R voxel centres along one axis, float64 (R,)."""
    return -0.5 + (np.arange(resolution, dtype=np.float64) + 0.5) / resolution


def _as_mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    return trimesh.Trimesh(
        np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=False
    )


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample `n` points uniformly by area on a triangle mesh, reproducibly.

    Args:
        vertices: (V, 3) float vertex positions.
        faces: (F, 3) int vertex indices.
        n: number of samples.
        seed: seed of the numpy generator; the same inputs and seed give the same samples.

    Returns:
        points (n, 3) float64, unit normals (n, 3) float64 of the sampled faces, and the
        face index (n,) int64 of each sample. Zero-area faces are never sampled; a mesh with
        no area (or no faces) gives empty (0, 3) arrays.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if f.size and (f.ndim != 2 or f.shape[1] != 3):
        raise ValueError(f"faces must have shape (F, 3), got {f.shape}")
    empty = (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    if n <= 0 or f.size == 0:
        return empty
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"faces index vertices outside 0..{len(v) - 1}")
    tri = v[f.reshape(-1, 3)]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not np.isfinite(total) or total <= 0:
        return empty
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(double_area)
    face_index = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    face_index = np.minimum(face_index, len(cdf) - 1)
    # Guard against landing on a zero-area face through float ties.
    zero = double_area[face_index] == 0
    if zero.any():
        face_index[zero] = np.searchsorted(cdf, cdf[face_index[zero]], side="left")
    r1 = np.sqrt(rng.random(n))
    r2 = rng.random(n)
    a, b, c = tri[face_index, 0], tri[face_index, 1], tri[face_index, 2]
    points = (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c
    normals = cross[face_index] / double_area[face_index, None]
    return points, normals, face_index


def _parity_along_axis(mesh: trimesh.Trimesh, axis: int, resolution: int) -> np.ndarray:
    """Inside test at voxel centres by counting crossings along rays parallel to `axis`."""
    c = voxel_centers(resolution)
    others = [a for a in range(3) if a != axis]
    u, w = np.meshgrid(c, c, indexing="ij")
    origins = np.zeros((u.size, 3))
    origins[:, others[0]] = u.ravel()
    origins[:, others[1]] = w.ravel()
    start = min(float(mesh.bounds[0, axis]), -0.5) - 1.0
    origins[:, axis] = start
    origins += _RAY_JITTER
    directions = np.zeros_like(origins)
    directions[:, axis] = 1.0
    locations, ray_index, _ = mesh.ray.intersects_location(origins, directions, multiple_hits=True)
    counts = np.zeros((u.size, resolution + 1), dtype=np.int64)
    if len(ray_index):
        first_centre_after = np.searchsorted(
            c + _RAY_JITTER[axis], locations[:, axis], side="right"
        )
        np.add.at(counts, (ray_index, first_centre_after), 1)
    inside = (np.cumsum(counts, axis=1)[:, :resolution] % 2).astype(bool)
    grid = inside.reshape(resolution, resolution, resolution)  # (other0, other1, axis)
    order = np.argsort(others + [axis])
    return grid.transpose(order)


def voxelize_mesh(vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """Solid occupancy of a mesh at the voxel centres of an R^3 grid over the unit cube.

    Returns a bool array (R, R, R) indexed (x, y, z): True where the voxel centre is inside
    (ray parity along x, y and z, majority of three). Parts outside the unit cube are cut.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    f = np.asarray(faces)
    if f.size == 0:
        return np.zeros((resolution,) * 3, dtype=bool)
    mesh = _as_mesh(vertices, faces)
    votes = sum(_parity_along_axis(mesh, axis, resolution).astype(np.uint8) for axis in range(3))
    return votes >= 2


def points_inside(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inside test for arbitrary points (N, 3): ray parity along +x, +y, +z, majority vote.

    Returns bool (N,).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces)
    if f.size == 0 or len(pts) == 0:
        return np.zeros(len(pts), dtype=bool)
    mesh = _as_mesh(vertices, faces)
    votes = np.zeros(len(pts), dtype=np.uint8)
    for axis in range(3):
        directions = np.zeros_like(pts)
        directions[:, axis] = 1.0
        _, ray_index, _ = mesh.ray.intersects_location(
            pts + _RAY_JITTER, directions, multiple_hits=True
        )
        crossings = np.bincount(ray_index, minlength=len(pts))
        votes += (crossings % 2).astype(np.uint8)
    return votes >= 2


def grid_to_mesh(values: np.ndarray, level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on a cubic grid over the unit cube (voxel-centre convention above).

    The grid is padded with zeros so the surface is closed. Returns vertices (V, 3) float64
    in unit-cube coordinates and faces (F, 3) int64 oriented outwards (values above `level`
    are inside). An empty or full-below-level grid gives empty arrays.
    """
    from skimage.measure import marching_cubes

    grid = np.asarray(values, dtype=np.float32)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"marching cubes needs a cubic grid (R, R, R), got {grid.shape}")
    resolution = grid.shape[0]
    padded = np.pad(grid, 1, mode="constant", constant_values=min(0.0, level - 1.0))
    if not (padded.max() > level and padded.min() < level):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _, _ = marching_cubes(padded, level=level, gradient_direction="descent")
    verts = -0.5 + (verts.astype(np.float64) - 0.5) / resolution
    # skimage winds faces for (z, y, x) indexing; our grids are (x, y, z), so flip them.
    return verts, np.ascontiguousarray(faces[:, ::-1]).astype(np.int64)
