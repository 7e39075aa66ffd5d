"""Exact point-set and voxel metrics: IoU, F-score, Chamfer distances and normal consistency.

Units are those of the normalised shapes (the unit cube [-0.5, 0.5]^3, side 1). Every metric is
computed in float64, whatever the input dtype (numpy arrays or torch tensors of any real dtype):
point sets are (N, 3), voxel grids (R, R, R), thresholds fractions of the cube's side.

One module per concern; every public name is importable from here:

- :mod:`svr.metrics.definitions`: the metrics and their exact definitions (``voxel_iou``,
  ``fscore``, ``chamfer_l1``, ``chamfer_l2``, ``normal_consistency``, ``point_metrics`` and
  their batch forms, ``nearest_distances``, ``DEFAULT_THRESHOLDS``);
- :mod:`svr.metrics.index`: ``PointIndex`` (a point set with a lazily built k-d tree) and
  ``GroundTruthIndex`` (a bounded cache of them, one per ground-truth shape);
- :mod:`svr.metrics.nn_cpu`: the CPU nearest-neighbour backend (pykdtree or scipy k-d trees,
  exact float64 distances; the default);
- :mod:`svr.metrics.nn_torch`: the device backend (torch on CUDA or CPU: float32 GEMM
  candidates with a proven error bound, exact float64 refinement); identical results;
- :mod:`svr.metrics.validation`: the input checks they share.

The backends' private tuning knobs and internals (``_backend_name``, ``_CHUNK_ELEMENTS``,
``_TORCH_METHOD``, ``_gemm_nearest``, ...) are not API, but tests and benchmarks read, set and
spy on them as ``svr.metrics.<name>``: this package forwards those reads and writes to the
module that owns each name (see ``_INTERNALS``), so a patch here changes what the backend runs.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from svr.metrics import definitions, index, nn_cpu, nn_torch, validation
from svr.metrics.definitions import (
    DEFAULT_THRESHOLDS,
    PointMetrics,
    chamfer_l1,
    chamfer_l2,
    fscore,
    fscore_batch,
    nearest_distances,
    normal_consistency,
    point_metrics,
    point_metrics_batch,
    voxel_iou,
)
from svr.metrics.index import GroundTruthIndex, PointIndex

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

# Private name -> the modules that own it (a write goes to all of them, a read to the first).
_INTERNALS: dict[str, tuple[types.ModuleType, ...]] = {
    **{
        name: (nn_cpu,)
        for name in (
            "_PYKDTREE_LEAFSIZE", "_PYKDTREE_MAX_POINTS", "_MORTON_MIN_QUERIES", "_backend_name",
            "_openmp", "_find_openmp_runtimes", "_backend", "_build_tree", "_thread_count",
            "_openmp_threads", "_morton_order", "_exact_distances", "_brute_nearest_numpy",
            "_exact_squared", "_tree_query", "_kdtree_nearest", "_nearest_in_order",
            "_default_workers", "_morton_table", "_spread_bits",
        )
    },
    **{
        name: (nn_torch,)
        for name in (
            "_resolve_device", "_torch_points", "_torch_block_sq", "_first_argmin",
            "_torch_both_directions", "_torch_one_direction", "_GEMM_CHUNK_ELEMENTS",
            "_GEMM_TOPK", "_TORCH_METHOD", "_matmul_input_roundoff", "_gemm_operands",
            "_exact_sq_candidates", "_certified", "_gemm_refine", "_gemm_nearest",
            "_device_both_directions", "_device_one_direction", "_U32",
        )
    },
    **{
        name: (validation,)
        for name in (
            "_is_tensor", "_to_numpy", "_validate_points", "_validate_normals",
            "_validate_thresholds",
        )
    },
    **{name: (definitions,) for name in ("_fscore_from", "_abs_cos", "_point_metrics")},
    "_as_index": (index,),
    # Both backends cut their float64 brute force into blocks of this many elements.
    "_CHUNK_ELEMENTS": (nn_torch, nn_cpu),
}  # fmt: skip


def _forwarded(name: str, owners: tuple[types.ModuleType, ...]) -> property:
    """A property reading `name` from its first owner and writing it to every owner (a data
    descriptor, so that pytest's monkeypatch restores the owners' values on undo)."""

    def get(_package: types.ModuleType) -> Any:
        return getattr(owners[0], name)

    def set_(_package: types.ModuleType, value: Any) -> None:
        for module in owners:
            setattr(module, name, value)

    return property(get, set_, doc=f"{name} of {owners[0].__name__}")


# This package's module type: one forwarding property per name of _INTERNALS.
_Package = type(
    "_Package",
    (types.ModuleType,),
    {name: _forwarded(name, owners) for name, owners in _INTERNALS.items()},
)
sys.modules[__name__].__class__ = _Package
