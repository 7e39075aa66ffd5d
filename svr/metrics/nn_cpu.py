"""CPU nearest-neighbour backend: exact k-d tree search with exact float64 distances.

The nearest neighbours come from an exact k-d tree search: pykdtree (C, sliding-midpoint
splits, OpenMP queries) when it is installed, else ``scipy.spatial.cKDTree``; both give
identical results (tested). Queries are made in Morton (z-curve) order, which keeps
consecutive searches in the same tree leaves, and the results are put back in input order.
The distance of each returned pair is then recomputed with the exact formula of
:mod:`svr.metrics.definitions` (differences squared and summed left to right in float64), so
the values are bit-identical to a naive implementation whatever the tree's own arithmetic;
queries whose two nearest candidates are not strictly ordered by that formula (ties) are
answered by a float64 brute force, smallest index first.

Threads. ``workers`` sets the threads of one query (pykdtree's OpenMP threads, set for the
calling thread only; cKDTree's ``workers``); the batch functions instead run whole pairs in a
thread pool with single-threaded queries (both libraries release the GIL), which scales better.

Shapes: query points (N, 3) and targets (M, 3) float64; results (N,) float64 distances
(unit-cube units) and (N,) int64 indices into the targets.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from svr.metrics.index import PointIndex

logger = logging.getLogger(__name__)

# Elements of one (rows x M) float64 distance block of the brute-force path (64 MiB).
_CHUNK_ELEMENTS = 1 << 23

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


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)
