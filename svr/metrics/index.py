"""Point sets with reusable k-d trees: :class:`PointIndex` and the cache :class:`GroundTruthIndex`
(a :class:`BoundedCache`, the least-recently-used cache the scorer's caches share).

Ground-truth point sets are reused across the views of a shape through :class:`PointIndex` (a
validated (N, 3) float64 point set, unit-cube units, with optional unit normals and a lazily
built k-d tree of the CPU backend) and :class:`GroundTruthIndex` (a bounded cache of them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from svr.metrics.nn_cpu import _backend, _build_tree, _morton_order
from svr.metrics.validation import ArrayLike, _validate_normals, _validate_points

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

__all__ = ["PointIndex", "GroundTruthIndex", "BoundedCache", "Points"]

Points = Union[ArrayLike, "PointIndex"]


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


class BoundedCache:
    """A bounded, thread-safe least-recently-used cache: ``get_or_build(key, build)`` returns
    the cached value of `key` or calls ``build()`` once for it, while concurrent requests for
    the same missing key wait for that result. ``max_entries`` bounds memory; ``None`` keeps
    everything. ``hits`` and ``misses`` count the lookups; values must not be None.
    """

    def __init__(self, max_entries: int | None = 64):
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be positive or None, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
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

    def _lookup(self, key: Hashable) -> Any:
        """The cached entry (counted as a hit) or None; call with self._lock held."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return entry

    def _prepare(self, entry: Any) -> Any:
        """Check or complete a freshly built entry before it is cached (outside the lock)."""
        return entry

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached value of `key`, or ``build()`` on a miss. Threads asking for the same
        missing key call `build` once: the others wait and get its result."""
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
                entry = self._prepare(build())
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


class GroundTruthIndex(BoundedCache):
    """A bounded, thread-safe cache of :class:`PointIndex` objects keyed by shape.

    Test items are (shape, view) pairs and in the object frame the 5 views of a shape share one
    ground truth: ``index.get(key, points, normals)`` validates the points and builds their k-d
    tree the first time a key is seen and returns the same object afterwards. ``max_entries``
    bounds memory (least recently used entries are dropped); ``None`` keeps everything.
    Concurrent first requests for one key build it once (the others wait for it);
    ``get_or_build(key, build)`` takes any ``build() -> PointIndex`` and builds the k-d tree
    and query order before the entry is cached.
    """

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

    def _prepare(self, entry: Any) -> PointIndex:
        """The built PointIndex with its k-d tree and query order."""
        if not isinstance(entry, PointIndex):
            raise TypeError(f"build() must return a PointIndex, got {type(entry)}")
        entry._search_tree(_backend())  # build outside the index lock, once per key
        entry.query_order  # noqa: B018
        return entry


def _as_index(x: Points, name: str) -> PointIndex:
    if isinstance(x, PointIndex):
        return x
    return PointIndex(_validate_points(x, name))
