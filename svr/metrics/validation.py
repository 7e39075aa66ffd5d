"""Input checks shared by the metrics and both nearest-neighbour backends.

Point sets are (N, 3) arrays of finite real coordinates (numpy arrays or torch tensors of any
real dtype, unit-cube units); every check returns C-contiguous float64 copies and raises a
ValueError that says what to fix.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import torch

ArrayLike = Union[np.ndarray, "torch.Tensor", Sequence]
Device = Union[str, "torch.device", None]


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
