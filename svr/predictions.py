"""A predicted item's arrays and their conversions to what the metrics read.

:class:`PredictionData` holds one item as read from a submission or made by a model;
:func:`prediction_occupancy` and :func:`prediction_surface` turn it into the grid IoU reads and
the surface samples F-score and Chamfer read (the rules are in :mod:`svr.evaluation`).

:class:`PredictionCache` keeps those conversions of recent predictions by content: a
retrieval-style method answers many test items with the same shape (Clustering with one of
its 100 cluster shapes, Oracle NN the same training shape for the 5 views of a test shape),
and each distinct answer is then meshed, sampled and voxelised once instead of once per item.
The arrays are those the conversions return, so scores are the same with or without it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from svr.geometry import grid_to_mesh, sample_surface, voxelize_mesh
from svr.metrics.index import BoundedCache

if TYPE_CHECKING:
    from svr.types import Prediction

__all__ = [
    "GRID_MIN_RESOLUTION",
    "GRID_MAX_RESOLUTION",
    "PredictionData",
    "PredictionCache",
    "prediction_digest",
    "prediction_occupancy",
    "prediction_surface",
    "resample_occupancy",
    "subsample_points",
]

GRID_MIN_RESOLUTION = 16
GRID_MAX_RESOLUTION = 256


def _finite_array(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(x)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=dtype)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


@dataclass
class PredictionData:
    """The arrays of one predicted item, as read from a submission or made by a model.

    vertices (V, 3) float and faces (F, 3) int: a triangle mesh (both or neither);
    grid (R, R, R), R in 16..256, bool / integer / float, indexed (x, y, z), occupied where
    value >= threshold; points (N, 3) float surface points. At least one is set. IoU uses the
    grid, else the voxelised mesh; F-score and Chamfer use the mesh, else the marching-cubes
    surface of the grid, else the points. Coordinates are in the unit cube [-0.5, 0.5]^3.
    """

    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    grid: np.ndarray | None = None
    threshold: float = 0.5
    points: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.vertices is None) != (self.faces is None):
            raise ValueError("a mesh needs both vertices and faces")
        if self.vertices is None and self.grid is None and self.points is None:
            raise ValueError("a prediction needs a mesh, a voxel grid or a point cloud")
        if not math.isfinite(float(self.threshold)):
            raise ValueError(f"threshold must be finite, got {self.threshold}")
        if self.vertices is not None:
            self.vertices = _finite_array(self.vertices, "vertices")
            faces = np.asarray(self.faces)
            if faces.size == 0:
                faces = np.zeros((0, 3), dtype=np.int64)
            if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
                raise ValueError(
                    f"faces must be integers of shape (F, 3), got {faces.dtype} {faces.shape}"
                )
            if faces.size and (faces.min() < 0 or faces.max() >= len(self.vertices)):
                raise ValueError(
                    f"faces index vertices outside 0..{len(self.vertices) - 1} (indices start at 0)"
                )
            self.faces = faces.astype(np.int64, copy=False)
        if self.grid is not None:
            grid = np.asarray(self.grid)
            if grid.ndim != 3 or len(set(grid.shape)) != 1:
                raise ValueError(f"a voxel grid must be cubic (R, R, R), got {grid.shape}")
            r = grid.shape[0]
            if not GRID_MIN_RESOLUTION <= r <= GRID_MAX_RESOLUTION:
                raise ValueError(
                    f"grid resolution {r} is outside {GRID_MIN_RESOLUTION}..{GRID_MAX_RESOLUTION}"
                )
            if grid.dtype != bool and not (
                np.issubdtype(grid.dtype, np.integer) or np.issubdtype(grid.dtype, np.floating)
            ):
                raise ValueError(f"a voxel grid must be bool, integer or float, got {grid.dtype}")
            if np.issubdtype(grid.dtype, np.floating) and not np.isfinite(grid).all():
                raise ValueError("the voxel grid contains NaN or infinite values")
            self.grid = grid
        if self.points is not None:
            self.points = _finite_array(self.points, "points")

    @property
    def kind(self) -> str:
        """The representation scored for the surface: "mesh", "voxels" or "points"."""
        if self.vertices is not None:
            return "mesh"
        if self.grid is not None:
            return "voxels"
        return "points"

    @property
    def occupancy(self) -> np.ndarray | None:
        """The grid's bool occupancy (value >= threshold), or None without a grid."""
        return None if self.grid is None else np.asarray(self.grid >= self.threshold)

    @classmethod
    def from_prediction(cls, pred: Prediction) -> PredictionData:
        """Arrays of a :class:`svr.types.Prediction` (mesh, occupancy and points as set)."""
        mesh = pred.mesh
        return cls(
            vertices=None if mesh is None else np.asarray(mesh.vertices),
            faces=None if mesh is None else np.asarray(mesh.faces),
            grid=None if pred.occupancy is None else np.asarray(pred.occupancy),
            threshold=pred.threshold,
            points=None if pred.points is None else np.asarray(pred.points),
        )


def resample_occupancy(occupancy: np.ndarray, resolution: int) -> np.ndarray:
    """A bool (R, R, R) grid at another resolution (bool (r, r, r)) over the same unit cube.

    Same resolution: unchanged. R a multiple of r: mean pooling of R/r blocks, occupied when at
    least half of the sub-voxels are. Otherwise nearest voxel centre: target voxel i reads source
    voxel floor((i + 0.5) * R / r), the one containing its centre.
    """
    occ = np.asarray(occupancy, dtype=bool)
    if occ.ndim != 3 or len(set(occ.shape)) != 1:
        raise ValueError(f"occupancy must be cubic (R, R, R), got {occ.shape}")
    r_src = occ.shape[0]
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if r_src == resolution:
        return occ
    if r_src % resolution == 0:
        f = r_src // resolution
        blocks = occ.reshape(resolution, f, resolution, f, resolution, f)
        counts = blocks.sum(axis=(1, 3, 5), dtype=np.int64)
        return 2 * counts >= f**3
    idx = ((2 * np.arange(resolution, dtype=np.int64) + 1) * r_src) // (2 * resolution)
    return occ[np.ix_(idx, idx, idx)]


def subsample_points(
    points: np.ndarray, n: int, seed: int, normals: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """At most `n` of the points (N, 3) (and their normals), chosen without replacement with
    numpy's default_rng(seed), in their original order; all of them when N <= n."""
    if len(points) <= n:
        return points, normals
    keep = np.sort(np.random.default_rng(seed).choice(len(points), size=n, replace=False))
    return points[keep], None if normals is None else normals[keep]


def prediction_surface(
    data: PredictionData, n_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Surface points (n, 3) float64 and normals (or None for point clouds) of a prediction."""
    if data.vertices is not None:
        pts, normals, _ = sample_surface(data.vertices, data.faces, n_samples, seed)
        return pts, normals
    if data.grid is not None:
        grid = data.grid
        if np.issubdtype(grid.dtype, np.floating):
            v, f = grid_to_mesh(grid, level=float(data.threshold))
        else:
            v, f = grid_to_mesh(data.occupancy.astype(np.float32), level=0.5)
        pts, normals, _ = sample_surface(v, f, n_samples, seed)
        return pts, normals
    pts, _ = subsample_points(data.points, n_samples, seed)
    return pts, None


def prediction_occupancy(data: PredictionData, resolution: int) -> np.ndarray | None:
    """Bool (r, r, r) occupancy for IoU at `resolution`: the grid resampled, else the mesh
    voxelised; None for a point cloud."""
    if data.grid is not None:
        return resample_occupancy(data.occupancy, resolution)
    if data.vertices is not None:
        return voxelize_mesh(data.vertices, data.faces, resolution)
    return None


def prediction_digest(data: PredictionData) -> bytes:
    """A 16-byte BLAKE2b digest of everything the conversions read: the arrays (with their
    dtypes and shapes) and the threshold. Equal digests: equal conversions."""
    h = hashlib.blake2b(digest_size=16)
    for tag, arr in (("v", data.vertices), ("f", data.faces), ("g", data.grid), ("p", data.points)):
        if arr is None:
            continue
        a = np.ascontiguousarray(arr)
        h.update(f"{tag}{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    h.update(repr(float(data.threshold)).encode())
    return h.digest()


class PredictionCache(BoundedCache):
    """A :class:`svr.metrics.index.BoundedCache` of predictions' conversions, keyed by
    :func:`prediction_digest`.

    Per entry: the surface samples and normals (n, 3) float64 of one (n_samples, seed), or an
    occupancy grid of one resolution (a voxelised mesh or a pooled grid), kept bit-packed
    (R, R, R/8 rounded up) uint8. At most 0.5 MB per entry at 10,000 samples and 128^3;
    `max_entries` bounds the memory. Returned surface arrays are read-only.
    """

    def surface(
        self, data: PredictionData, digest: bytes, n_samples: int, seed: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:func:`prediction_surface` of `data` (whose digest is `digest`), cached."""

        def build() -> tuple[np.ndarray, np.ndarray | None]:
            pts, normals = prediction_surface(data, n_samples, seed)
            for a in (pts, normals):
                if a is not None:
                    a.flags.writeable = False
            return pts, normals

        return self.get_or_build((digest, ("surface", n_samples, seed)), build)

    def occupancy(self, data: PredictionData, digest: bytes, resolution: int) -> np.ndarray | None:
        """:func:`prediction_occupancy` of `data` at `resolution`, cached bit-packed where the
        conversion costs more than the packing: a mesh voxelised, a finer grid pooled. A grid
        of this resolution or coarser, and a point cloud, are converted each time."""
        if data.vertices is None and (data.grid is None or data.grid.shape[0] <= resolution):
            return prediction_occupancy(data, resolution)

        def build() -> np.ndarray:  # a mesh or a grid: never None
            return np.packbits(prediction_occupancy(data, resolution), axis=2)

        packed = self.get_or_build((digest, ("occupancy", resolution)), build)
        return np.unpackbits(packed, axis=2, count=resolution).astype(bool)
