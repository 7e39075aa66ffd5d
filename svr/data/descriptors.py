"""Shape descriptors of occupancy grids, for comparing shape collections (real vs procedural).

A descriptor is a float64 vector of `FEATURE_NAMES`, computed from a bool grid (X, Y, Z)
with +y up. It is invariant to translation and scale, to rotation about the vertical axis
(the grid is turned about y so that its principal horizontal axis lies along x; a turn by a
multiple of 90 degrees is exact) and to mirroring: the grid's up axis is trusted, its
azimuth is not. Units: lengths are fractions of the shape's longest side.

Groups of features (`FEATURE_GROUPS`):

- proportions: height, length (major horizontal) and width (minor horizontal) of the
  aligned bounding box; the middle and smallest principal standard deviations of the
  occupied voxels over the largest (rotation-robust, up axis ignored).
- fill: occupied share of the aligned bounding box.
- height profile: share of the occupied voxels in each of 6 equal height bands, bottom up.
- footprint: share of the top-view silhouette covered by the bottom, middle and top
  thirds of the height (a table: small, small, 1; a cabinet: 1, 1, 1).
- thickness: 25th, 50th and 90th percentiles of the local thickness (twice the distance
  to the nearest empty voxel) over the occupied voxels.
- silhouettes: fill (area / bounding rectangle) and compactness (16 area / perimeter^2,
  1 for a square) of the top, front and side projections.

`connected_components` (at 32^3) is reported beside the descriptor, not inside it: mean
shapes break into fragments that a single generated solid never has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_GROUPS",
    "describe_grid",
    "connected_components",
    "align_grid",
    "Standardizer",
    "nearest_neighbours",
    "neighbour_class_accuracy",
]

N_BANDS = 6

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "proportions": ("height", "length", "width", "pca_mid", "pca_min"),
    "fill": ("fill",),
    "height profile": tuple(f"band_{i}" for i in range(N_BANDS)),
    "footprint": ("footprint_low", "footprint_mid", "footprint_high"),
    "thickness": ("thickness_q25", "thickness_q50", "thickness_q90"),
    "silhouettes": (
        "top_fill",
        "top_compactness",
        "front_fill",
        "front_compactness",
        "side_fill",
        "side_compactness",
    ),
}
FEATURE_NAMES: tuple[str, ...] = tuple(n for names in FEATURE_GROUPS.values() for n in names)


def _validate_grid(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid)
    if g.ndim != 3:
        raise ValueError(f"occupancy grid must be 3D (X, Y, Z), got shape {g.shape}")
    g = g.astype(bool)
    if not g.any():
        raise ValueError("the occupancy grid is empty: nothing to describe")
    return g


def _crop(grid: np.ndarray) -> np.ndarray:
    idx = np.argwhere(grid)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]


def align_grid(grid: np.ndarray) -> np.ndarray:
    """Turn a bool grid (X, Y, Z) about y so its principal horizontal axis lies along x.

    Returns the aligned grid cropped to its occupied bounding box (bool, (x, y, z) axes,
    extent along x >= extent along z). Angles within 2 degrees of a multiple of 90 are
    snapped, so axis-aligned shapes are turned exactly (by np.rot90).
    """
    g = _crop(_validate_grid(grid))
    xz = np.argwhere(g)[:, [0, 2]].astype(np.float64)
    xz -= xz.mean(axis=0)
    cov = xz.T @ xz / max(len(xz), 1)
    w, v = np.linalg.eigh(cov)
    major = v[:, 1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    nearest = 90.0 * round(angle / 90.0)
    if abs(angle - nearest) > 2.0 and w[1] > 1.05 * w[0]:
        # rotate the (x, z) plane by -angle: nearest-neighbour resampling
        g = ndimage.rotate(g.astype(np.uint8), -angle, axes=(0, 2), reshape=True, order=0) > 0
        g = _crop(g)
    if g.shape[2] > g.shape[0]:
        g = np.rot90(g, k=1, axes=(0, 2))
    return np.ascontiguousarray(g)


def _silhouette(mask: np.ndarray) -> tuple[float, float]:
    """(fill, compactness) of a 2D bool mask: area / bounding rectangle, 16 A / P^2.

    P counts pixel edges between the mask and its complement (holes included), so an
    axis-aligned square scores 1, a 1:4 rectangle 0.64, a disc pi/4, ragged or holed masks
    less."""
    m = _crop3(mask)
    area = float(m.sum())
    padded = np.pad(m, 1)
    perimeter = float(
        np.count_nonzero(padded[1:, :] != padded[:-1, :])
        + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    )
    return area / m.size, 16.0 * area / max(perimeter, 1.0) ** 2


def _crop3(mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return mask[lo[0] : hi[0], lo[1] : hi[1]]


def describe_grid(grid: np.ndarray) -> np.ndarray:
    """Descriptor float64 (len(FEATURE_NAMES),) of a bool occupancy grid (X, Y, Z), +y up.

    Raises ValueError for a grid that is not 3D or is empty.
    """
    g = align_grid(grid)
    ex, ey, ez = (float(s) for s in g.shape)
    longest = max(ex, ey, ez)
    idx = np.argwhere(g).astype(np.float64)
    n = float(len(idx))

    centred = idx - idx.mean(axis=0)
    sd = np.sqrt(np.clip(np.linalg.eigvalsh(centred.T @ centred / n), 0.0, None))[::-1]
    pca_mid, pca_min = (sd[1] / sd[0], sd[2] / sd[0]) if sd[0] > 0 else (1.0, 1.0)

    fill = n / (ex * ey * ez)

    y = idx[:, 1]
    band = np.minimum((y / ey * N_BANDS).astype(np.int64), N_BANDS - 1)
    bands = np.bincount(band, minlength=N_BANDS) / n

    top_view = g.any(axis=1)
    top_area = float(top_view.sum())
    thirds = np.array_split(np.arange(g.shape[1]), 3)
    footprint = [float(g[:, t, :].any(axis=1).sum()) / top_area for t in thirds]

    edt = ndimage.distance_transform_edt(np.pad(g, 1))[1:-1, 1:-1, 1:-1]
    thickness = 2.0 * edt[g] / longest
    q25, q50, q90 = np.percentile(thickness, [25, 50, 90])

    top = _silhouette(top_view)  # (x, z)
    front = _silhouette(g.any(axis=2))  # seen along z: (x, y)
    side = _silhouette(g.any(axis=0))  # seen along x: (y, z)

    out = np.array(
        [
            ey / longest,
            ex / longest,
            ez / longest,
            pca_mid,
            pca_min,
            fill,
            *bands,
            *footprint,
            q25,
            q50,
            q90,
            *top,
            *front,
            *side,
        ],
        dtype=np.float64,
    )
    return out


def connected_components(grid: np.ndarray, resolution: int = 32) -> int:
    """Number of 6-connected components of a bool grid (R, R, R) pooled to resolution^3.

    A coarse voxel is occupied if any of its fine voxels is (R must be a multiple of
    `resolution`, or equal to it).
    """
    g = _validate_grid(grid)
    r = g.shape[0]
    if g.shape != (r, r, r) or r % resolution:
        raise ValueError(
            f"need a cubic grid whose side is a multiple of {resolution}, got {g.shape}"
        )
    f = r // resolution
    coarse = g.reshape(resolution, f, resolution, f, resolution, f).any(axis=(1, 3, 5))
    _, count = ndimage.label(coarse)
    return int(count)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature z-scores with group weights: each group of FEATURE_GROUPS weighs the same.

    mean, scale: float64 (D,); weight: float64 (D,), 1 / sqrt(size of the feature's group).
    """

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray

    @classmethod
    def fit(cls, descriptors: np.ndarray) -> Standardizer:
        """Fit on descriptors float (N, D); features with zero spread get scale 1."""
        d = np.asarray(descriptors, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] != len(FEATURE_NAMES) or len(d) < 2:
            raise ValueError(f"need (N >= 2, {len(FEATURE_NAMES)}) descriptors, got {d.shape}")
        scale = d.std(axis=0)
        scale[scale < 1e-12] = 1.0
        weight = np.concatenate(
            [np.full(len(names), 1 / np.sqrt(len(names))) for names in FEATURE_GROUPS.values()]
        )
        return cls(d.mean(axis=0), scale, weight)

    def __call__(self, descriptors: np.ndarray) -> np.ndarray:
        """Weighted z-scores float64 (N, D) of descriptors (N, D)."""
        return (np.asarray(descriptors, dtype=np.float64) - self.mean) / self.scale * self.weight


def nearest_neighbours(
    queries: np.ndarray, references: np.ndarray, k: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Indices int64 (Q, k) and Euclidean distances float64 (Q, k) of each query's k nearest
    references (rows of already standardised descriptors (Q, D) and (N, D)), nearest first."""
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(references, dtype=np.float64)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise ValueError(f"queries {q.shape} and references {r.shape} must be (*, D) alike")
    if not 1 <= k <= len(r):
        raise ValueError(f"k must be in [1, {len(r)}], got {k}")
    d2 = (q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2 * q @ r.T
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    dist = np.sqrt(np.clip(np.take_along_axis(d2, order, axis=1), 0.0, None))
    return order, dist


def neighbour_class_accuracy(
    query_labels: np.ndarray, neighbour_labels: np.ndarray
) -> tuple[float, float, dict[str, float]]:
    """Share of queries whose nearest neighbour has the query's label.

    query_labels: str (Q,); neighbour_labels: str (Q,), the label of each query's nearest
    reference. Returns (accuracy over queries, mean of the per-label accuracies, per label).
    """
    ql = np.asarray(query_labels)
    nl = np.asarray(neighbour_labels)
    if ql.shape != nl.shape or ql.ndim != 1 or len(ql) == 0:
        raise ValueError(f"need two label vectors of one length, got {ql.shape}, {nl.shape}")
    hit = ql == nl
    per = {str(c): float(hit[ql == c].mean()) for c in sorted(set(ql.tolist()))}
    return float(hit.mean()), float(np.mean(list(per.values()))), per
