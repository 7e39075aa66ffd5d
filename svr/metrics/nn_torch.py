"""Device nearest-neighbour backend (torch, CUDA or CPU): exact two-stage search.

With a ``device`` (or CUDA tensors) the search runs in torch in two stages: candidates from
float32 matrix products (``|a|^2 + |b|^2 - 2 a.b`` on centred, power-of-two-scaled
coordinates) with a rigorous bound on their rounding error, then the candidates' distances
recomputed with the exact float64 formula of :mod:`svr.metrics.definitions`; rows the bound
cannot settle (near ties) are resolved from their 8 best candidates or, failing that, by a
float64 brute force (see the comment above ``_gemm_nearest``). The results are therefore
identical to the CPU backend's (distances and indices). The float64 brute force alone stays
available as the reference (``_TORCH_METHOD = "exact64"``).

Shapes: query points a (N, 3) and targets b (M, 3) as float64 tensors on one device; results
(N,) float64 *squared* distances (unit-cube units squared) and (N,) int64 indices into b, the
smallest index among equidistant nearest points. torch is imported on first use only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from svr.metrics.index import PointIndex
from svr.metrics.validation import Device, _is_tensor, _validate_points

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Elements of one (rows x M) float64 distance block of the brute-force path (64 MiB).
_CHUNK_ELEMENTS = 1 << 23


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
