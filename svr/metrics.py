"""Exact point-set and voxel metrics: IoU, F-score, Chamfer distances and normal consistency.

Units are those of the normalised shapes (the unit cube [-0.5, 0.5]^3, side 1). Every metric is
computed in float64, whatever the input dtype (numpy arrays or torch tensors of any real dtype).

Definitions (followed to the letter; tested against a naive double loop):

- **Distance** between points p and q: ``sqrt((px-qx)^2 + (py-qy)^2 + (pz-qz)^2)`` with the
  squares summed left to right in float64 (the same rounding as ``np.sqrt(((p - q)**2).sum(-1))``).
  The inexact ``|p|^2 + |q|^2 - 2 p.q`` expansion only selects candidates on the device path;
  every reported distance comes from the formula above.
- **Nearest distance** of a point p to a set B: ``min_{q in B} dist(p, q)``; the reported index is
  the smallest index among equidistant nearest points (see :func:`nearest_distances`).
- ``voxel_iou(pred, gt, threshold)``: a voxel is occupied where ``value >= threshold``;
  IoU = |A and B| / |A or B|; NaN when both grids are empty.
- ``fscore(pred, gt, thresholds)``: for each threshold t,
  precision = share of predicted points whose nearest ground-truth point is *strictly* closer
  than t; recall = share of ground-truth points whose nearest predicted point is strictly closer
  than t; F = 2PR / (P + R), and F = 0 when P + R = 0. When either set is empty P = R = F = 0.
  Thresholds are fractions of the unit cube's side; F@0.01 is the headline. (The what3d release
  swaps the names of precision and recall; we do not.)
- ``chamfer_l1``: 0.5 * (mean dist pred->gt + mean dist gt->pred), not squared (Occupancy
  Networks' convention). ``chamfer_l2``: mean *squared* dist pred->gt + mean squared dist
  gt->pred (PyTorch3D's convention). NaN when either set is empty.
- ``normal_consistency``: the mean absolute cosine between each sample's normal and the normal of
  its nearest neighbour in the other set, averaged over both directions:
  0.5 * (mean_p |cos(n_p, n_nn(p))| + mean_g |cos(n_g, n_nn(g))|). NaN when either set is empty.

Backends. On the CPU the nearest neighbours come from an exact k-d tree search: pykdtree (C,
sliding-midpoint splits, OpenMP queries) when it is installed, else ``scipy.spatial.cKDTree``;
both give identical results (tested). Queries are made in Morton (z-curve) order, which
keeps consecutive searches in the same tree leaves, and the results are put back in input order.
The distance of each returned pair is then recomputed with the formula above, so the values are
bit-identical to a naive implementation whatever the tree's own arithmetic. With a ``device``
(or CUDA tensors) the search runs in torch in two stages: candidates from float32 matrix
products (``|a|^2 + |b|^2 - 2 a.b`` on centred, power-of-two-scaled coordinates) with a rigorous
bound on their rounding error, then the candidates' distances recomputed with the exact float64
formula above; rows the bound cannot settle (near ties) are resolved from their 8 best
candidates or, failing that, by a float64 brute force (see the comment above
``_gemm_nearest``). Both backends therefore give identical distances and indices. The
float64 brute force alone stays available as the reference (``_TORCH_METHOD = "exact64"``).

Threads. ``workers`` sets the threads of one query (pykdtree's OpenMP threads, set for the
calling thread only; cKDTree's ``workers``); the batch functions instead run whole pairs in a
thread pool with single-threaded queries (both libraries release the GIL), which scales better.

Ground-truth point sets are reused across the views of a shape through :class:`PointIndex` (a
point set with a lazily built k-d tree) and :class:`GroundTruthIndex` (a bounded cache of them).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import torch
    from scipy.spatial import cKDTree

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PointIndex",
    "GroundTruthIndex",
    "PointMetrics",
    "voxel_iou",
    "nearest_distances",
    "fscore",
    "chamfer_l1",
    "chamfer_l2",
    "normal_consistency",
    "point_metrics",
    "point_metrics_batch",
    "fscore_batch",
]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)

# Elements of one (rows x M) float64 distance block of the brute-force path (64 MiB).
_CHUNK_ELEMENTS = 1 << 23

ArrayLike = Union[np.ndarray, "torch.Tensor", Sequence]
Points = Union[ArrayLike, "PointIndex"]
Device = Union[str, "torch.device", None]


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


def _is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _to_numpy(x: Any) -> np.ndarray:
    if _is_tensor(x):
        import torch

        x = x.detach().cpu()
        if x.is_floating_point():  # also covers dtypes numpy lacks (bfloat16)
            x = x.to(torch.float64)
        return x.numpy()
    return np.asarray(x)


def _validate_points(x: Any, name: str) -> np.ndarray:
    """(N, 3) finite real array -> C-contiguous float64 (N, 3). Empty input gives (0, 3)."""
    arr = _to_numpy(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"{name} must be a real numeric array of shape (N, 3), got dtype {arr.dtype}"
        )
    if arr.size == 0 and arr.ndim <= 2 and (arr.ndim < 2 or arr.shape[1] in (0, 3)):
        return np.zeros((0, 3), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {tuple(arr.shape)}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates; remove or fix those points")
    return out


def _validate_normals(x: Any, n: int, name: str) -> np.ndarray:
    """(N, 3) normals matching N points -> unit float64 (N, 3)."""
    normals = _validate_points(x, name)
    if len(normals) != n:
        raise ValueError(f"{name} has {len(normals)} normals for {n} points; they must match")
    length = np.sqrt((normals * normals).sum(axis=1))
    if n and (length == 0).any():
        raise ValueError(f"{name} contains zero-length normals; a cosine is undefined for them")
    return normals / length[:, None] if n else normals


def _validate_thresholds(thresholds: float | Sequence[float]) -> tuple[np.ndarray, bool]:
    scalar = np.ndim(thresholds) == 0
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or t.size == 0:
        raise ValueError(
            f"thresholds must be a positive number or a 1-D sequence, got {thresholds!r}"
        )
    if not (np.isfinite(t).all() and (t > 0).all()):
        raise ValueError(f"thresholds must be finite and positive, got {t.tolist()}")
    return t, scalar


# ------------------------------------------------------------------------------------------------
# Point sets with reusable k-d trees
# ------------------------------------------------------------------------------------------------


class PointIndex:
    """A validated point set (N, 3) float64, with optional unit normals and a lazy k-d tree.

    Build one per ground-truth point set and pass it wherever a point set is accepted: the
    k-d tree (and the Morton query order) is built on first use and reused by every later
    query (thread-safe).
    """

    def __init__(self, points: ArrayLike, normals: ArrayLike | None = None):
        self.points = _validate_points(points, "points")
        self.normals = (
            None if normals is None else _validate_normals(normals, len(self.points), "normals")
        )
        self._trees: dict[str, Any] = {}
        self._order: np.ndarray | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.points)

    @property
    def query_order(self) -> np.ndarray:
        """A permutation (N,) int64 putting the points in Morton (z-curve) order; querying in
        this order is faster (neighbouring queries visit the same tree leaves)."""
        if self._order is None:
            self._order = _morton_order(self.points)
        return self._order

    @property
    def tree(self) -> cKDTree:
        """The scipy cKDTree of the points (built once; the search uses it when pykdtree is
        not installed).

        Sliding-midpoint splits (``balanced_tree=False``) and 48-point leaves: on 10,000 surface
        samples this builds ~1.7x faster than scipy's defaults and answers queries 5-30% faster
        (measured with leaves of 8..256 points on several shapes); the search stays exact.
        """
        return self._search_tree("scipy")

    def _search_tree(self, backend: str) -> Any:
        """The k-d tree of `backend` ("pykdtree" or "scipy"), built once."""
        tree = self._trees.get(backend)
        if tree is None:
            with self._lock:
                tree = self._trees.get(backend)
                if tree is None:
                    tree = _build_tree(self.points, backend)
                    self._trees[backend] = tree
        return tree


class GroundTruthIndex:
    """A bounded, thread-safe cache of :class:`PointIndex` objects keyed by shape.

    Test items are (shape, view) pairs and in the object frame the 5 views of a shape share one
    ground truth: ``index.get(key, points, normals)`` validates the points and builds their k-d
    tree the first time a key is seen and returns the same object afterwards. ``max_entries``
    bounds memory (least recently used entries are dropped); ``None`` keeps everything.
    Concurrent first requests for one key build it once (the others wait for it).
    """

    def __init__(self, max_entries: int | None = 64):
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be positive or None, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, PointIndex] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _lookup(self, key: Hashable) -> PointIndex | None:
        """The cached entry (counted as a hit) or None; call with self._lock held."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return entry

    def get(
        self, key: Hashable, points: ArrayLike | None = None, normals: ArrayLike | None = None
    ) -> PointIndex:
        """The cached PointIndex of `key`, built from `points` (and `normals`) on a miss.

        Raises KeyError when `key` is not cached and no points are given.
        """
        if points is None:
            with self._lock:
                entry = self._lookup(key)
            if entry is None:
                raise KeyError(f"{key!r} is not in the ground-truth index and no points were given")
            return entry
        return self.get_or_build(key, lambda: PointIndex(points, normals))

    def get_or_build(self, key: Hashable, build: Callable[[], PointIndex]) -> PointIndex:
        """The cached PointIndex of `key`, or ``build()`` on a miss (its k-d tree and query
        order are built before it is cached). Threads asking for the same missing key call
        `build` once: the others wait and get its result."""
        with self._lock:
            entry = self._lookup(key)
            if entry is not None:
                return entry
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                entry = self._lookup(key)
            if entry is not None:
                return entry
            try:
                entry = build()
                if not isinstance(entry, PointIndex):
                    raise TypeError(f"build() must return a PointIndex, got {type(entry)}")
                entry._search_tree(_backend())  # build outside the index lock, once per key
                entry.query_order  # noqa: B018
                with self._lock:
                    self.misses += 1
                    self._entries[key] = entry
                    self._entries.move_to_end(key)
                    while self.max_entries is not None and len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            finally:
                with self._lock:
                    if self._building.get(key) is building:
                        del self._building[key]
        return entry


def _as_index(x: Points, name: str) -> PointIndex:
    if isinstance(x, PointIndex):
        return x
    return PointIndex(_validate_points(x, name))


# ------------------------------------------------------------------------------------------------
# Nearest-neighbour core
# ------------------------------------------------------------------------------------------------


# pykdtree leaves: 24-32 points answer 10,000 queries on 10,000 surface samples fastest
# (measured with leaves of 8..96 points); 32 builds ~20% faster than 16.
_PYKDTREE_LEAFSIZE = 32
# pykdtree indexes points with uint32.
_PYKDTREE_MAX_POINTS = 2**32 - 2
# Fewer queries than this are not worth sorting into Morton order.
_MORTON_MIN_QUERIES = 256

_backend_lock = threading.Lock()
_backend_name: str | None = None  # "pykdtree" or "scipy", resolved on first use
_openmp: tuple[Any, ...] = ()  # ctypes handles of the OpenMP runtimes pykdtree may use


def _find_openmp_runtimes() -> tuple[Any, ...]:
    """ctypes handles of every OpenMP runtime loaded in this process (Linux: read from
    /proc/self/maps), or () when none can be found (queries then use the runtimes' default
    thread count).

    pykdtree's wheels bundle a libgomp, but when another library (torch) put a libgomp in the
    global symbol scope first, pykdtree's OpenMP calls bind to that one; called right after
    pykdtree is imported, this lists every runtime its calls can be bound to.
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split(maxsplit=5)[-1].strip() for line in f if line.count(" ") >= 5}
    except OSError:
        return ()
    libs = []
    for path in sorted(paths):
        if not os.path.basename(path).startswith(("libgomp", "libomp", "libiomp")):
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.omp_get_max_threads.restype = ctypes.c_int
            lib.omp_set_num_threads.argtypes = [ctypes.c_int]
        except (OSError, AttributeError):
            continue
        libs.append(lib)
    return tuple(libs)


def _backend() -> str:
    """The CPU nearest-neighbour library: "pykdtree" when importable, else "scipy"."""
    global _backend_name, _openmp
    if _backend_name is None:
        with _backend_lock:
            if _backend_name is None:
                try:
                    import pykdtree.kdtree  # noqa: F401
                except ImportError:
                    logger.info("pykdtree is not installed; using scipy's cKDTree (slower)")
                    _backend_name = "scipy"
                else:
                    _openmp = _find_openmp_runtimes()
                    _backend_name = "pykdtree"
    return _backend_name


def _build_tree(points: np.ndarray, backend: str) -> Any:
    """A k-d tree of (N, 3) float64 points with `backend`."""
    if backend == "pykdtree" and len(points) <= _PYKDTREE_MAX_POINTS:
        from pykdtree.kdtree import KDTree

        return KDTree(points, leafsize=_PYKDTREE_LEAFSIZE)
    from scipy.spatial import cKDTree

    return cKDTree(points, leafsize=48, balanced_tree=False)


def _thread_count(workers: int) -> int:
    if workers == -1:
        return _default_workers()
    if workers < 1:
        raise ValueError(
            f"workers must be a positive thread count or -1 (all cores), got {workers}"
        )
    return workers


@contextmanager
def _openmp_threads(n: int) -> Iterator[None]:
    """Run the OpenMP regions (pykdtree's queries) started by this thread with `n` threads.

    The thread count of libgomp and libomp is a per-thread setting: this sets it for the
    calling thread only, in every runtime pykdtree may be bound to, and restores it on exit.
    """
    changed = []
    for lib in _openmp:
        previous = lib.omp_get_max_threads()
        if previous != n:
            lib.omp_set_num_threads(n)
            changed.append((lib, previous))
    try:
        yield
    finally:
        for lib, previous in changed:
            lib.omp_set_num_threads(previous)


_MORTON_TABLE: np.ndarray | None = None


def _morton_table() -> np.ndarray:
    """(1024,) uint64: each 10-bit value with two zero bits inserted after every bit."""
    global _MORTON_TABLE
    if _MORTON_TABLE is None:
        _MORTON_TABLE = _spread_bits(np.arange(1024, dtype=np.uint64))
    return _MORTON_TABLE


def _spread_bits(x: np.ndarray) -> np.ndarray:
    """Insert two zero bits between the low 10 bits of each uint64 (Morton interleave)."""
    x = (x | (x << np.uint64(16))) & np.uint64(0x030000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x0300F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x030C30C3)
    return (x | (x << np.uint64(2))) & np.uint64(0x09249249)


def _morton_order(points: np.ndarray) -> np.ndarray:
    """Permutation (N,) int64 sorting (N, 3) points along a 2^10-per-axis Morton curve (the
    order among points of one cell is unspecified but deterministic)."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    columns = [points[:, k] for k in range(3)]  # 1-D reductions: ~10x faster than axis=0
    lo = [float(c.min()) for c in columns]
    span = max(float(c.max()) - low for c, low in zip(columns, lo, strict=True))
    scale = 1023.0 / span if span > 0 else 0.0
    table = _morton_table()
    code = None
    for k, (c, low) in enumerate(zip(columns, lo, strict=True)):
        cell = np.minimum(((c - low) * scale).astype(np.intp), 1023)
        bits = table[cell] << np.uint64(k) if k else table[cell]
        code = bits if code is None else code | bits
    return np.argsort(code).astype(np.int64, copy=False)


def _exact_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dist(a_i, b_i) for (N, 3) float64 arrays: sqrt of squares summed left to right."""
    s = _exact_squared(a, b)
    return np.sqrt(s, out=s)


def _brute_nearest_numpy(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest neighbours by explicit differences, first index on ties (small inputs)."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, len(b)))
    idx = np.empty(len(a), dtype=np.int64)
    for start in range(0, len(a), rows):
        block = a[start : start + rows]
        s = (block[:, None, 0] - b[None, :, 0]) ** 2
        s += (block[:, None, 1] - b[None, :, 1]) ** 2
        s += (block[:, None, 2] - b[None, :, 2]) ** 2
        idx[start : start + rows] = np.argmin(s, axis=1)
    return _exact_distances(a, b.take(idx, axis=0)), idx


def _exact_squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise squared distances of (N, 3) float64 arrays: (a-b)_x^2 + (a-b)_y^2 + (a-b)_z^2,
    added left to right (each operation rounded separately, in place for speed)."""
    d = np.subtract(a, b)
    np.multiply(d, d, out=d)
    s = d[:, 0].copy()
    s += d[:, 1]
    s += d[:, 2]
    return s


def _tree_query(
    a: np.ndarray, b: PointIndex, k: int, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest points of b for each point of a: (N,) or (N, k) distances (squared for
    pykdtree) and indices, from the tree of the active backend."""
    backend = _backend()
    tree = b._search_tree(backend)
    if backend == "pykdtree" and len(b) <= _PYKDTREE_MAX_POINTS:
        with _openmp_threads(_thread_count(workers)):
            return tree.query(a, k=k, sqr_dists=True)
    return tree.query(a, k=k, workers=workers)


def _kdtree_nearest(
    a: np.ndarray, b: PointIndex, resolve_ties: bool, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbours with the k-d tree; distances recomputed exactly from the indices.

    With `resolve_ties`, each query's two nearest candidates are compared with the exact
    formula; where the second is not strictly farther (a tie, or an order the tree's own
    rounding could have swapped) the query is answered by brute force (first index on ties).
    """
    if resolve_ties and len(b) >= 2:
        _, idx2 = _tree_query(a, b, 2, workers)
        idx = idx2[:, 0].astype(np.int64)
        second = idx2[:, 1].astype(np.int64)
        sq = _exact_squared(a, b.points.take(idx, axis=0))
        unsure = np.flatnonzero(_exact_squared(a, b.points.take(second, axis=0)) <= sq)
        if unsure.size:
            _, idx[unsure] = _brute_nearest_numpy(a[unsure], b.points)
            sq[unsure] = _exact_squared(a[unsure], b.points[idx[unsure]])
        return np.sqrt(sq), idx
    _, idx = _tree_query(a, b, 1, workers)
    idx = idx.astype(np.int64)
    # take() gathers rows ~2x faster than fancy indexing
    return _exact_distances(a, b.points.take(idx, axis=0)), idx


def _nearest_in_order(
    a: np.ndarray, order: np.ndarray, b: PointIndex, resolve_ties: bool, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_kdtree_nearest` of the points a (N, 3) queried in `order` (a permutation, e.g.
    Morton order: faster), returned in the order of a."""
    d_sorted, i_sorted = _kdtree_nearest(a.take(order, axis=0), b, resolve_ties, workers)
    dist = np.empty_like(d_sorted)
    idx = np.empty_like(i_sorted)
    dist[order] = d_sorted
    idx[order] = i_sorted
    return dist, idx


def _resolve_device(device: Device, *inputs: Any) -> Any:
    """None -> the k-d tree on the CPU unless an input is a CUDA tensor; else a torch.device."""
    if device is None:
        for x in inputs:
            if _is_tensor(x) and x.device.type != "cpu":
                return x.device
        return None
    import torch

    return torch.device(device)


def _torch_points(x: Any, name: str, device: Any) -> torch.Tensor:
    import torch

    if isinstance(x, PointIndex):
        arr = x.points
    else:
        arr = _validate_points(x, name)
    return torch.as_tensor(arr, dtype=torch.float64, device=device)


def _torch_block_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) squared distances by explicit differences, each operation rounded separately."""
    s = a[:, None, 0] - b[None, :, 0]
    s.mul_(s)
    d = a[:, None, 1] - b[None, :, 1]
    d.mul_(d)
    s.add_(d)
    d = a[:, None, 2] - b[None, :, 2]
    d.mul_(d)
    s.add_(d)
    return s


def _first_argmin(block: torch.Tensor, minimum: torch.Tensor, dim: int) -> torch.Tensor:
    """Smallest index along `dim` where `block` equals `minimum` (ties broken to the first)."""
    import torch

    hits = (block == minimum.unsqueeze(dim)).to(torch.uint8)
    return torch.argmax(hits, dim=dim)


def _torch_both_directions(
    a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Squared nearest distances and first indices a->b and b->a from one pass over the blocks."""
    import torch

    n, m = len(a), len(b)
    rows = max(1, _CHUNK_ELEMENTS // max(1, m))
    ab_sq = torch.empty(n, dtype=torch.float64, device=a.device)
    ab_idx = torch.empty(n, dtype=torch.int64, device=a.device)
    ba_sq = torch.full((m,), math.inf, dtype=torch.float64, device=a.device)
    ba_idx = torch.zeros(m, dtype=torch.int64, device=a.device)
    for start in range(0, n, rows):
        block = _torch_block_sq(a[start : start + rows], b)
        row_min = block.min(dim=1).values
        ab_sq[start : start + rows] = row_min
        ab_idx[start : start + rows] = _first_argmin(block, row_min, 1)
        col_min = block.min(dim=0).values
        col_idx = _first_argmin(block, col_min, 0) + start
        better = col_min < ba_sq  # strict: earlier blocks keep ties (first index wins)
        ba_sq = torch.where(better, col_min, ba_sq)
        ba_idx = torch.where(better, col_idx, ba_idx)
    return ab_sq, ab_idx, ba_sq, ba_idx


def _torch_one_direction(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    n, m = len(a), len(b)
    rows = max(1, _CHUNK_ELEMENTS // max(1, m))
    sq = torch.empty(n, dtype=torch.float64, device=a.device)
    idx = torch.empty(n, dtype=torch.int64, device=a.device)
    for start in range(0, n, rows):
        block = _torch_block_sq(a[start : start + rows], b)
        row_min = block.min(dim=1).values
        sq[start : start + rows] = row_min
        idx[start : start + rows] = _first_argmin(block, row_min, 1)
    return sq, idx


# ------------------------------------------------------------------------------------------------
# Device path: float32 GEMM candidates, exact float64 refinement
# ------------------------------------------------------------------------------------------------
#
# Stage 1 computes approximate squared distances D~ = |a|^2 + |b|^2 - 2 a.b in float32 as one
# (rows, 5) x (5, M) matrix product of augmented operands [x, y, z, |a|^2, 1] and
# [-2x, -2y, -2z, 1, |b|^2], on coordinates centred on the middle of the union's bounding box
# and scaled by a power of two s so that every centred coordinate lies in [-C, C], C <= 1.
# One pass over each block gives, per row (and per column), the approximate minimum, its index
# j* and the second smallest value v2 (every other entry of the row is >= v2).
#
# Error bound. With u = 2^-24 (float32 unit roundoff), for every pair the computed D~ differs
# from s^2 * d^2 (d the exact real distance of the original float64 points) by at most
#     E = (96 u + 25 u_in) C^2 + 2^-120,
# where u_in is 0 when float32 matmuls run at full precision and 2^-8 when torch may round
# their inputs (TF32 / bfloat16 modes: see _matmul_input_roundoff). Derivation, rho = u + 2^-52:
#   (1) float32 copies of the centred, scaled coordinates: |x^ - x'| <= rho C per coordinate,
#       so |d^^2 - d'^2| <= 2 sqrt3 rho C (2 d' + 2 sqrt3 rho C) <= 24 rho C^2 + O(rho^2)
#       (d' <= 2 sqrt3 C) -> <= 25 u C^2;
#   (2) squared norms (exact float32 squares summed in float64, rounded to float32):
#       relative error <= u + 2^-52, |a^|^2 <= 3 C^2 (1+u)^2 -> both norms <= 6.1 u C^2;
#   (3) a length-5 inner product summed in any order, with or without FMA: error
#       <= gamma_5 * sum_k |A_k B_k| <= 5.01 u * 12.01 C^2 <= 60.2 u C^2, plus, if the inputs
#       are rounded to u_in, 2 u_in * 12.01 C^2;
#   total 91.3 u C^2 + 24.02 u_in C^2, rounded up; 2^-120 covers float32/float64 underflow.
# The exact float64 formula (difference, square, add left to right) has relative error at
# most gamma_5(2^-53) < 2^-50 against d^2. Hence for any j != j*:
#     s^2 * exact(j) >= (D~_j - E) (1 - 2^-50) >= (v2 - E) (1 - 2^-50),
# and a row is *certified* when (v2 - E)(1 - 2^-48) > s^2 * exact(j*) (evaluated in float64,
# the extra 2^-48 absorbs its two roundings): every other point is then strictly farther than
# j* in the exact float64 arithmetic, so j* is the answer, ties included.
# Rows that fail (near ties, duplicates) get the K = 8 smallest D~ (torch.topk), whose exact
# distances are computed; the smallest exact value wins, smallest index among equal values; the
# result is certified when (v_K - E)(1 - 2^-48) > s^2 * exact(best) (every point outside the K
# is then strictly farther). Rows failing that too (more than K points within the margin, or
# coordinates so spread that E swamps the gaps) use the exact float64 brute force
# (_torch_one_direction). Distances therefore equal the CPU path's bit for bit.

# Elements of one (rows x M) float32 block of approximate distances (64 MiB, 1,677 rows for
# M = 10,000).
_GEMM_CHUNK_ELEMENTS = 1 << 24
# Candidates refined exactly for the rows that stage 1 cannot certify.
_GEMM_TOPK = 8
# Device path: "gemm" (float32 candidates + exact float64 refinement) or "exact64" (the
# chunked float64 brute force, kept as the reference).
_TORCH_METHOD = "gemm"

_U32 = 2.0**-24


def _matmul_input_roundoff(device: Any) -> float:
    """0.0 when float32 matmuls on `device` use full float32 inputs, else 2^-8 (a bound for
    TF32's 2^-11 and bfloat16's 2^-8 input rounding, which torch may use when
    ``torch.set_float32_matmul_precision`` is not "highest" or TF32 is allowed on CUDA)."""
    import torch

    reduced = torch.get_float32_matmul_precision() != "highest"
    if device.type == "cuda":
        reduced = reduced or bool(torch.backends.cuda.matmul.allow_tf32)
    return 2.0**-8 if reduced else 0.0


def _gemm_operands(
    a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Augmented float32 operands A (N, 5) and B (M, 5) with A @ B.T = approximate squared
    distances of the centred, scaled points, the scale s^2 (a power of two) of those squared
    distances, and the error bound E of every entry (see the comment above)."""
    import torch

    lo = torch.minimum(a.min(dim=0).values, b.min(dim=0).values)
    hi = torch.maximum(a.max(dim=0).values, b.max(dim=0).values)
    centre = 0.5 * lo + 0.5 * hi  # no overflow for huge coordinates
    ac, bc = a - centre, b - centre
    c64 = float(torch.maximum(ac.abs().max(), bc.abs().max()))
    # s = 2^-e puts the extent in [0.5, 1); |e| <= 510 keeps s^2 a finite, normal float64 (more
    # extreme extents make the bound infinite or useless and the rows fall back to float64).
    exponent = 0 if c64 == 0 or not math.isfinite(c64) else math.frexp(c64)[1]
    scale = math.ldexp(1.0, -min(max(exponent, -510), 510))
    a32 = (ac * scale).to(torch.float32)
    b32 = (bc * scale).to(torch.float32)
    na = a32.double().square().sum(dim=1).to(torch.float32)
    nb = b32.double().square().sum(dim=1).to(torch.float32)
    one_a = torch.ones_like(na)
    one_b = torch.ones_like(nb)
    big_a = torch.cat([a32, na[:, None], one_a[:, None]], dim=1)
    big_b = torch.cat([-2.0 * b32, one_b[:, None], nb[:, None]], dim=1)
    c = scale * c64 * (1.0 + 2.0**-50)
    u_in = _matmul_input_roundoff(a.device)
    bound = (96.0 * _U32 + 25.0 * u_in) * c * c + 2.0**-120
    return big_a, big_b, scale * scale, bound


def _exact_sq_candidates(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact squared distances (..., ) of float64 points q (..., 3) and t (..., 3)
    (broadcast), with the rounding of the naive formula."""
    s = q[..., 0] - t[..., 0]
    s = s * s
    d = q[..., 1] - t[..., 1]
    s = s + d * d
    d = q[..., 2] - t[..., 2]
    return s + d * d


def _certified(v_bound: torch.Tensor, exact_sq: torch.Tensor, scale2: float, bound: float):
    """(n,) bool: every point whose approximate value is >= v_bound is exactly farther than
    exact_sq (see the derivation above)."""
    import torch

    return (v_bound.to(torch.float64) - bound) * (1.0 - 2.0**-48) > exact_sq * scale2


def _gemm_refine(
    q: torch.Tensor,
    t: torch.Tensor,
    idx: torch.Tensor,
    second: torch.Tensor,
    approx_rows: Callable[[torch.Tensor], torch.Tensor],
    scale2: float,
    bound: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact squared distances (n,) float64 and indices (n,) int64 of the nearest points of t
    to q (both float64), from the stage-1 candidates `idx` and second-smallest values `second`;
    `approx_rows(rows)` recomputes the (len(rows), len(t)) float32 approximations."""
    import torch

    m = len(t)
    best = _exact_sq_candidates(q, t.index_select(0, idx))
    unsure = torch.nonzero(~_certified(second, best, scale2, bound)).squeeze(1)
    if unsure.numel() == 0:
        return best, idx
    k = min(_GEMM_TOPK, m)
    rows_per = max(1, _GEMM_CHUNK_ELEMENTS // max(1, m))
    failed = []
    for start in range(0, unsure.numel(), rows_per):
        rows = unsure[start : start + rows_per]
        values, cand = torch.topk(approx_rows(rows), k, dim=1, largest=False, sorted=True)
        sq = _exact_sq_candidates(q.index_select(0, rows)[:, None, :], t[cand])
        smin = sq.min(dim=1).values
        first = torch.where(sq == smin[:, None], cand, torch.full_like(cand, m)).min(dim=1).values
        best[rows] = smin
        idx[rows] = first
        if k < m:
            failed.append(rows[~_certified(values[:, -1], smin, scale2, bound)])
    rest = torch.cat(failed) if failed else unsure[:0]
    if rest.numel():
        logger.debug("%d of %d rows fall back to the float64 brute force", rest.numel(), len(q))
        sq, ii = _torch_one_direction(q.index_select(0, rest), t)
        best[rest] = sq
        idx[rest] = ii
    return best, idx


def _gemm_nearest(
    a: torch.Tensor, b: torch.Tensor, both: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Exact squared nearest distances (float64) and first indices (int64) a->b and, when
    `both`, b->a (else None), by float32 GEMM candidates and float64 refinement."""
    import torch

    big_a, big_b, scale2, bound = _gemm_operands(a, b)
    bt = big_b.t().contiguous()  # (5, M)
    n, m = len(a), len(b)
    dev = a.device
    rows = max(1, _GEMM_CHUNK_ELEMENTS // max(1, m))
    inf = math.inf
    row_idx = torch.empty(n, dtype=torch.int64, device=dev)
    row_second = torch.empty(n, dtype=torch.float32, device=dev)
    if both:
        col_first = torch.full((m,), inf, dtype=torch.float32, device=dev)
        col_second = torch.full((m,), inf, dtype=torch.float32, device=dev)
        col_idx = torch.zeros(m, dtype=torch.int64, device=dev)
        all_cols = torch.arange(m, device=dev)
    for start in range(0, n, rows):
        block = torch.mm(big_a[start : start + rows], bt)  # (r, M) float32
        r = len(block)
        all_rows = torch.arange(r, device=dev)
        v1, j1 = block.min(dim=1)
        if both:
            c1, i1 = block.min(dim=0)
        block[all_rows, j1] = inf  # hide each row's minimum: the next minimum is the second
        row_second[start : start + r] = block.min(dim=1).values
        row_idx[start : start + r] = j1
        if both:
            block[all_rows, j1] = v1
            block[i1, all_cols] = inf
            c2 = block.min(dim=0).values
            # second smallest of {first, second, c1, c2} with first <= second and c1 <= c2
            col_second = torch.minimum(torch.maximum(col_first, c1), torch.minimum(col_second, c2))
            col_idx = torch.where(c1 < col_first, i1 + start, col_idx)
            col_first = torch.minimum(col_first, c1)
    ab_sq, ab_idx = _gemm_refine(
        a, b, row_idx, row_second, lambda q: torch.mm(big_a[q], bt), scale2, bound
    )
    if not both:
        return ab_sq, ab_idx, None, None
    ba_sq, ba_idx = _gemm_refine(
        b, a, col_idx, col_second, lambda q: torch.mm(big_a, bt[:, q]).t(), scale2, bound
    )
    return ab_sq, ab_idx, ba_sq, ba_idx


def _device_both_directions(
    a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Squared nearest distances and first indices a->b and b->a with the selected method."""
    if _TORCH_METHOD == "exact64":
        return _torch_both_directions(a, b)
    ab_sq, ab_idx, ba_sq, ba_idx = _gemm_nearest(a, b, both=True)
    return ab_sq, ab_idx, ba_sq, ba_idx  # type: ignore[return-value]


def _device_one_direction(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared nearest distances and first indices a->b with the selected method."""
    if _TORCH_METHOD == "exact64":
        return _torch_one_direction(a, b)
    ab_sq, ab_idx, _, _ = _gemm_nearest(a, b, both=False)
    return ab_sq, ab_idx


def nearest_distances(
    a: ArrayLike, b: Points, device: Device = None, workers: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point of `a` to its nearest point in `b`, and that point's index.

    Args:
        a: (N, 3) query points (numpy or torch, any real dtype).
        b: (M, 3) target points, or a :class:`PointIndex` (its k-d tree is reused).
        device: None for the exact k-d tree on the CPU (or the tensors' CUDA device); a torch
            device ("cpu", "cuda", ...) for the exact two-stage search (float32 GEMM
            candidates, float64 refinement) on it.
        workers: threads of the k-d tree query (-1: all cores).

    Returns:
        dist (N,) float64 distances (unit-cube units) and index (N,) int64 into `b`, the smallest
        index among equidistant nearest points. Both backends return identical arrays.
        When `b` is empty, dist is +inf and index is -1.
    """
    a_np = _validate_points(a, "a")
    dev = _resolve_device(device, a, b)
    b_idx = _as_index(b, "b") if dev is None or not _is_tensor(b) else None
    m = len(b_idx) if b_idx is not None else len(b)
    if len(a_np) == 0 or m == 0:
        return np.full(len(a_np), math.inf), np.full(len(a_np), -1, dtype=np.int64)
    if dev is None:
        if len(a_np) > _MORTON_MIN_QUERIES:
            return _nearest_in_order(a_np, _morton_order(a_np), b_idx, True, workers)
        return _kdtree_nearest(a_np, b_idx, resolve_ties=True, workers=workers)
    at = _torch_points(a_np, "a", dev)
    bt = _torch_points(b if b_idx is None else b_idx, "b", dev)
    sq, idx = _device_one_direction(at, bt)
    return np.sqrt(sq.cpu().numpy()), idx.cpu().numpy()


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


def voxel_iou(pred: ArrayLike, gt: ArrayLike, threshold: float = 0.5) -> float:
    """Intersection over union of two occupancy grids of the same shape.

    Args:
        pred, gt: grids of any shape (usually (R, R, R)), bool, integer or float; a voxel is
            occupied where value >= threshold (bools count as 0/1).
        threshold: occupancy threshold.

    Returns:
        |A and B| / |A or B| as a float in [0, 1]; NaN when both grids are empty.
    """
    p = _to_numpy(pred)
    g = _to_numpy(gt)
    if p.shape != g.shape:
        raise ValueError(f"grid shapes differ: prediction {p.shape} vs ground truth {g.shape}")
    for arr, name in ((p, "pred"), (g, "gt")):
        if arr.dtype != bool and np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
            raise ValueError(f"{name} grid contains NaN values")
    pa = p >= threshold
    ga = g >= threshold
    union = int(np.count_nonzero(pa | ga))
    if union == 0:
        return math.nan
    return int(np.count_nonzero(pa & ga)) / union


@dataclass
class PointMetrics:
    """All point-set metrics of one (prediction, ground truth) pair.

    precision, recall, fscore: (T,) float64 per threshold (in `thresholds` order);
    chamfer_l1, chamfer_l2: floats (NaN when a set is empty); normal_consistency: float or None
    when normals were not given (NaN when a set is empty); n_pred, n_gt: set sizes.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    fscore: np.ndarray
    chamfer_l1: float
    chamfer_l2: float
    normal_consistency: float | None
    n_pred: int
    n_gt: int


def _fscore_from(
    d_pg: np.ndarray, d_gp: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(d_pg) == 0 or len(d_gp) == 0:
        zero = np.zeros(len(t))
        return zero, zero.copy(), zero.copy()
    # Share of distances strictly below each threshold (one 1-D pass per threshold: ~5x faster
    # than counting an (N, T) comparison along its first axis).
    precision = np.array([np.count_nonzero(d_pg < x) for x in t], dtype=np.int64) / len(d_pg)
    recall = np.array([np.count_nonzero(d_gp < x) for x in t], dtype=np.int64) / len(d_gp)
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return precision.astype(np.float64), recall.astype(np.float64), f.astype(np.float64)


def _abs_cos(n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    c = n1[:, 0] * n2[:, 0]
    c += n1[:, 1] * n2[:, 1]
    c += n1[:, 2] * n2[:, 2]
    return np.minimum(np.abs(c), 1.0)


def _point_metrics(
    pred: Points,
    gt: Points,
    thresholds: float | Sequence[float],
    pred_normals: ArrayLike | None,
    gt_normals: ArrayLike | None,
    device: Device,
    workers: int,
) -> PointMetrics:
    t, _ = _validate_thresholds(thresholds)
    dev = _resolve_device(device, pred, gt)
    p = _as_index(pred, "pred_points")
    g = _as_index(gt, "gt_points")
    pn = (
        p.normals
        if pred_normals is None
        else _validate_normals(pred_normals, len(p), "pred_normals")
    )
    gn = g.normals if gt_normals is None else _validate_normals(gt_normals, len(g), "gt_normals")
    explicit = pred_normals is not None or gt_normals is not None
    if explicit and (pn is None or gn is None):
        raise ValueError(
            "normal consistency needs normals for both the prediction and the ground truth"
        )
    want_normals = pn is not None and gn is not None
    if len(p) == 0 or len(g) == 0:
        zero = np.zeros(len(t))
        return PointMetrics(
            t, zero, zero.copy(), zero.copy(), math.nan, math.nan,
            math.nan if want_normals else None, len(p), len(g),
        )  # fmt: skip
    if dev is None:
        # Both directions are queried in the sets' (cached) Morton orders, then put back.
        d_pg, i_pg = _nearest_in_order(p.points, p.query_order, g, want_normals, workers)
        d_gp, i_gp = _nearest_in_order(g.points, g.query_order, p, want_normals, workers)
    else:
        pt = _torch_points(p, "pred_points", dev)
        gt_t = _torch_points(g, "gt_points", dev)
        sq_pg, ti_pg, sq_gp, ti_gp = _device_both_directions(pt, gt_t)
        d_pg, i_pg = np.sqrt(sq_pg.cpu().numpy()), ti_pg.cpu().numpy()
        d_gp, i_gp = np.sqrt(sq_gp.cpu().numpy()), ti_gp.cpu().numpy()
    precision, recall, f = _fscore_from(d_pg, d_gp, t)
    cd_l1 = 0.5 * (float(d_pg.mean()) + float(d_gp.mean()))
    cd_l2 = float((d_pg * d_pg).mean()) + float((d_gp * d_gp).mean())
    nc = None
    if want_normals:
        near_g, near_p = gn.take(i_pg, axis=0), pn.take(i_gp, axis=0)
        nc = 0.5 * (float(_abs_cos(pn, near_g).mean()) + float(_abs_cos(gn, near_p).mean()))
    return PointMetrics(t, precision, recall, f, cd_l1, cd_l2, nc, len(p), len(g))


def point_metrics(
    pred: Points,
    gt: Points,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    pred_normals: ArrayLike | None = None,
    gt_normals: ArrayLike | None = None,
    device: Device = None,
    workers: int = -1,
) -> PointMetrics:
    """F-score, precision, recall, both Chamfer distances (and normal consistency when normals
    are given, or carried by PointIndex inputs) from one nearest-neighbour query per direction.

    Args:
        pred, gt: (N, 3) / (M, 3) point sets or PointIndex objects (reused k-d trees).
        thresholds: distance thresholds (unit-cube units).
        pred_normals, gt_normals: optional (N, 3) / (M, 3) normals (need not be unit length).
        device: None for the CPU k-d tree, else the torch device of the two-stage search.
        workers: k-d tree query threads (-1: all cores).
    """
    return _point_metrics(pred, gt, thresholds, pred_normals, gt_normals, device, workers)


def fscore(
    pred_points: ArrayLike,
    gt_points: Points,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    device: Device = None,
) -> dict[str, np.ndarray | float]:
    """F-score, precision and recall at distance thresholds.

    Args:
        pred_points: (N, 3) predicted surface points.
        gt_points: (M, 3) ground-truth surface points (or a PointIndex).
        thresholds: a sequence of T thresholds, or one number (unit-cube units).
        device: None for the CPU k-d tree, else the torch device of the two-stage search.

    Returns:
        {"precision", "recall", "fscore"}: each a (T,) float64 array for a sequence of
        thresholds, or a Python float when a single scalar threshold was given.
    """
    _, scalar = _validate_thresholds(thresholds)
    m = _point_metrics(pred_points, gt_points, thresholds, None, None, device, -1)
    out = {"precision": m.precision, "recall": m.recall, "fscore": m.fscore}
    if scalar:
        return {k: float(v[0]) for k, v in out.items()}
    return out


def chamfer_l1(pred: ArrayLike, gt: Points, device: Device = None) -> float:
    """0.5 * (mean distance pred->gt + mean distance gt->pred), float; NaN if a set is empty."""
    return _point_metrics(pred, gt, DEFAULT_THRESHOLDS, None, None, device, -1).chamfer_l1


def chamfer_l2(pred: ArrayLike, gt: Points, device: Device = None) -> float:
    """mean squared distance pred->gt + mean squared distance gt->pred; NaN if a set is empty."""
    return _point_metrics(pred, gt, DEFAULT_THRESHOLDS, None, None, device, -1).chamfer_l2


def normal_consistency(
    pred_points: ArrayLike,
    pred_normals: ArrayLike,
    gt_points: ArrayLike,
    gt_normals: ArrayLike,
    device: Device = None,
) -> float:
    """Mean |cos| between each sample's normal and its nearest neighbour's normal in the other
    set, averaged over both directions; normals (N, 3) need not be unit length (zero-length
    normals are rejected). Float in [0, 1]; NaN when either set is empty."""
    if pred_normals is None or gt_normals is None:
        raise ValueError("normal_consistency needs both pred_normals and gt_normals")
    m = _point_metrics(
        pred_points, gt_points, DEFAULT_THRESHOLDS, pred_normals, gt_normals, device, -1
    )
    return float(m.normal_consistency)  # type: ignore[arg-type]


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def point_metrics_batch(
    preds: Sequence[Points],
    gts: Sequence[Points],
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    pred_normals: Sequence[ArrayLike | None] | None = None,
    gt_normals: Sequence[ArrayLike | None] | None = None,
    device: Device = None,
    threads: int | None = None,
) -> list[PointMetrics]:
    """:func:`point_metrics` over pairs (preds[i], gts[i]), in parallel on the CPU.

    Pass the same PointIndex for items that share a ground truth (see GroundTruthIndex): its
    k-d tree is built once. On the CPU, `threads` pairs run concurrently (default: all cores),
    each query single-threaded; with a device the pairs run one after another on it.
    """
    if len(preds) != len(gts):
        raise ValueError(f"got {len(preds)} predictions for {len(gts)} ground truths")
    pn = list(pred_normals) if pred_normals is not None else [None] * len(preds)
    gn = list(gt_normals) if gt_normals is not None else [None] * len(preds)
    if len(pn) != len(preds) or len(gn) != len(preds):
        raise ValueError("pred_normals / gt_normals must have one entry per pair")
    dev_given = device is not None
    n_threads = 1 if dev_given else (threads or _default_workers())

    def one(i: int) -> PointMetrics:
        return _point_metrics(preds[i], gts[i], thresholds, pn[i], gn[i], device, 1)

    if n_threads <= 1 or len(preds) <= 1:
        return [one(i) for i in range(len(preds))]
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return list(pool.map(one, range(len(preds))))


def fscore_batch(
    preds: Sequence[Points],
    gts: Sequence[Points],
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    device: Device = None,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """F-score, precision and recall of B pairs: {"precision", "recall", "fscore"} -> (B, T)
    float64 arrays (thresholds in the given order). See :func:`point_metrics_batch`."""
    t, _ = _validate_thresholds(thresholds)
    results = point_metrics_batch(preds, gts, t, device=device, threads=threads)
    shape = (len(results), len(t))
    return {
        "precision": np.array([r.precision for r in results], dtype=np.float64).reshape(shape),
        "recall": np.array([r.recall for r in results], dtype=np.float64).reshape(shape),
        "fscore": np.array([r.fscore for r in results], dtype=np.float64).reshape(shape),
    }
