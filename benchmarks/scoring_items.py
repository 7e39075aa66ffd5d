"""Procedural scoring items for the scoring benchmarks: shapes, imperfect reconstructions of
them, and their ground truth as the benchmark build stores it.

Shapes are normalised to the unit cube [-0.5, 0.5]^3 (boxes, cylinders, capsules and spheres,
12 to 4,096 faces, anisotropically scaled); a prediction is the shape scaled by 0.9-1.1 per
axis, shifted by ~0.01 and jittered by ~0.003 per vertex (unit-cube units), like a decent
reconstruction scored by the what3d protocol.
"""

from __future__ import annotations

import numpy as np
import trimesh

from svr.data.layout import N_SURFACE_POINTS, GroundTruth, normalize_mesh
from svr.geometry import sample_surface, voxelize_mesh


def procedural_shape(rng: np.random.Generator) -> trimesh.Trimesh:
    """A random normalised shape (vertices (V, 3) in the unit cube, faces (F, 3))."""
    kind = rng.integers(0, 4)
    if kind == 0:
        mesh = trimesh.creation.box(extents=rng.uniform(0.3, 1.0, 3))
    elif kind == 1:
        mesh = trimesh.creation.cylinder(radius=rng.uniform(0.2, 0.5), height=rng.uniform(0.3, 1.0))
    elif kind == 2:
        mesh = trimesh.creation.capsule(radius=rng.uniform(0.15, 0.4), height=rng.uniform(0.2, 0.8))
    else:
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    mesh.apply_scale(rng.uniform(0.5, 1.5, 3))
    return normalize_mesh(mesh)


def perturbed(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """A plausible imperfect reconstruction: scaled, shifted and slightly jittered."""
    v = mesh.vertices * rng.uniform(0.9, 1.1, 3) + rng.normal(scale=0.01, size=3)
    v = v + rng.normal(scale=0.003, size=v.shape)
    return trimesh.Trimesh(np.clip(v, -0.5, 0.5), mesh.faces, process=False)


def ground_truth(
    mesh: trimesh.Trimesh, seed: int, n_points: int = N_SURFACE_POINTS, voxels: bool = True
) -> GroundTruth:
    """What compute_ground_truth makes, minus the occupancy samples that scoring never reads:
    `n_points` surface samples and normals (float32 (n, 3)), and the 32^3 and 128^3 occupancy
    grids (bool; None when `voxels` is False, for scoring runs that skip IoU)."""
    points, normals, _ = sample_surface(mesh.vertices, mesh.faces, n_points, seed)
    return GroundTruth(
        mesh=mesh,
        voxels_32=voxelize_mesh(mesh.vertices, mesh.faces, 32) if voxels else None,  # type: ignore[arg-type]
        voxels_128=voxelize_mesh(mesh.vertices, mesh.faces, 128) if voxels else None,  # type: ignore[arg-type]
        points=points.astype(np.float32),
        normals=normals.astype(np.float32),
        occ_points=np.zeros((0, 3), dtype=np.float32),
        occ_labels=np.zeros(0, dtype=bool),
    )
