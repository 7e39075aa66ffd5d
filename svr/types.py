"""Data that crosses module boundaries: predictions of the reconstruction methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from svr.geometry import grid_to_mesh, sample_surface, voxelize_mesh

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """One reconstructed shape in the unit cube [-0.5, 0.5]^3, in any of three representations.

    mesh: a triangle mesh, or None; occupancy: (R, R, R) float probabilities in [0, 1] or
    bool, axes (x, y, z), or None; points: (N, 3) float surface points, or None.
    `info` carries what the method recognised (class probabilities, cluster id, retrieved
    training shape) as plain values. At least one representation is set.
    """

    method: str
    mesh: trimesh.Trimesh | None = None
    occupancy: np.ndarray | None = None
    points: np.ndarray | None = None
    threshold: float = 0.5
    info: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mesh is None and self.occupancy is None and self.points is None:
            raise ValueError(
                f"{self.method}: a prediction needs a mesh, an occupancy grid or points"
            )

    def to_mesh(self) -> trimesh.Trimesh | None:
        """The mesh, or marching cubes of the occupancy grid; None for a point cloud."""
        if self.mesh is not None:
            return self.mesh
        if self.occupancy is not None:
            v, f = grid_to_mesh(np.asarray(self.occupancy, dtype=np.float32), self.threshold)
            return trimesh.Trimesh(v, f, process=False)
        return None

    def to_points(self, n: int = 10_000, seed: int = 0) -> np.ndarray:
        """Surface points (n, 3) float64: the points themselves or samples of the surface."""
        if self.points is not None and self.mesh is None and self.occupancy is None:
            return np.asarray(self.points, dtype=np.float64)
        mesh = self.to_mesh()
        if mesh is None or len(mesh.faces) == 0:
            return np.zeros((0, 3))
        return sample_surface(mesh.vertices, mesh.faces, n, seed)[0]

    def to_grid(self, resolution: int = 32) -> np.ndarray | None:
        """Bool occupancy (R, R, R): the grid thresholded (if its resolution matches) or the
        mesh voxelised; None for a point cloud."""
        if self.occupancy is not None and self.occupancy.shape[0] == resolution:
            return np.asarray(self.occupancy) >= self.threshold
        mesh = self.to_mesh()
        if mesh is None:
            return None
        return voxelize_mesh(mesh.vertices, mesh.faces, resolution)
