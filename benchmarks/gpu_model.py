"""A bandwidth / FLOP model of the device path of svr.metrics on a GPU (no GPU needed).

The device path (svr.metrics.nn_torch._gemm_nearest) computes float32 GEMM candidates and refines
them exactly in float64; for two clouds of n points each this model gives one item's time on a
GPU from its memory bandwidth (bytes/s) and float32 FLOP rate (FLOP/s), and the time of a
what3d-size test set. `benchmarks/bench_scoring.py --gpu-model-only` prints it; the device run
(`--device cuda`) prints it for the GPU it measures, beside the measurement.
"""

from __future__ import annotations

# The device path of svr.metrics (_gemm_nearest) on one item, per (pred, gt) pair, both
# directions from one pass over row blocks of the (N, M) float32 matrix:
#   - the GEMM (rows, 5) x (5, M) writes the block: 4 B and 2 * 5 = 10 float32 FLOPs per pair
#     (K = 5 makes it output-bound: the FLOPs are negligible next to the write);
#   - row min (values + indices), column min, row second min (after hiding the row minima),
#     column second min (after hiding the column minima): four reads of the block, 16 B;
#   - the scatters that hide/restore minima touch O(rows + M) entries: negligible.
# The 64 MiB blocks do not stay in L2 (50 MB on an H100 / H200, 40 MB on an A100, 6 MB on a
# V100, 4 MB on a T4), so all 20 B/pair go to device memory.
GEMM_BYTES_PER_PAIR = 20
GEMM_FLOPS_PER_PAIR = 10
# Rows not certified by float32 (near ties; measured below on surface-like clouds, ~2%)
# recompute their row of the GEMM (4 B/pair) and run torch.topk over it (counted as 4 reads,
# 16 B/pair: topk's radix selection makes several passes); their 8 candidates are refined in
# float64 (O(rows) work, negligible). The float64 brute-force fallback never ran on such
# clouds in the tests (it costs ~160 B/pair per fallback row).
TOPK_BYTES_PER_PAIR = 20
# Per item, O(N + M) work: copy both clouds to the device (2 x 10,000 x 3 float64 = 480 kB over
# PCIe at ~12 GB/s ~ 40 us), centring, norms, exact refinement of 20,000 candidates (a few
# hundred bytes per point), copy of the results back; plus ~90 kernel launches (6 row blocks x
# ~10 kernels + ~30 for the rest) at ~5 us of host time each, which overlap with the kernels
# while the GPU is the bottleneck, and ~5 host synchronisations (~20 us each) that do not.
PER_ITEM_FIXED_S = 40e-6 + 5 * 20e-6
LAUNCHES_PER_ITEM = 90
LAUNCH_S = 5e-6

GPUS = {
    # name: (memory bandwidth bytes/s, float32 FLOP/s without tensor cores), vendors' sheets
    "H200": (4.8e12, 67e12),
    "H100-SXM": (3.35e12, 67e12),
    "A100-80GB": (2.0e12, 19.5e12),
    "A100-40GB": (1.555e12, 19.5e12),
    "V100": (0.9e12, 15.7e12),
    "T4": (0.32e12, 8.1e12),
}
# Fraction of the peak bandwidth that simple streaming kernels (reductions) reach in practice.
BANDWIDTH_EFFICIENCY = (1.0, 0.75)


def gemm_item_seconds(
    n_points: int, bw: float, flops: float, unsure: float, efficiency: float
) -> float:
    """Model of one item's time on a GPU: max(memory time, FLOP time) of the blocks and of
    the unsure rows' top-k, overlapped launches, plus the fixed per-item costs."""
    pairs = float(n_points) * n_points
    mem_t = pairs * (GEMM_BYTES_PER_PAIR + 2 * unsure * TOPK_BYTES_PER_PAIR) / (bw * efficiency)
    op_t = pairs * GEMM_FLOPS_PER_PAIR * (1 + 2 * unsure) / flops
    return max(mem_t, op_t, LAUNCHES_PER_ITEM * LAUNCH_S) + PER_ITEM_FIXED_S


def gpu_estimate(n_items: int, n_points: int, unsure: float) -> list[str]:
    lines = [
        f"GPU estimate (a model, not a measurement: no GPU here) for {n_items} items of "
        f"{n_points} points each side, float32 GEMM candidates + float64 refinement:",
        f"  per pair {GEMM_BYTES_PER_PAIR} B of device-memory traffic (GEMM write 4 B + 4 block "
        f"reductions 16 B) and {GEMM_FLOPS_PER_PAIR} float32 FLOPs; unsure rows {unsure:.1%} "
        f"per direction add {TOPK_BYTES_PER_PAIR} B/pair each (GEMM row + top-k); per item "
        f"{PER_ITEM_FIXED_S * 1e6:.0f} us fixed (PCIe copies, syncs) and "
        f"{LAUNCHES_PER_ITEM} launches x {LAUNCH_S * 1e6:.0f} us (hidden while the GPU is busy)",
        "  time/item = max(bytes / (bandwidth x efficiency), FLOPs / FP32 rate, launches) + fixed;"
        f" efficiency {BANDWIDTH_EFFICIENCY[0]:.0%} (peak) and {BANDWIDTH_EFFICIENCY[1]:.0%} "
        "(typical of eager reductions)",
    ]
    for name, (bw, flops) in GPUS.items():
        best, typical = (
            gemm_item_seconds(n_points, bw, flops, unsure, eff) for eff in BANDWIDTH_EFFICIENCY
        )
        lines.append(
            f"  {name:10s}: {best * 1e3:5.2f}-{typical * 1e3:5.2f} ms/item -> "
            f"{best * n_items:6.0f}-{typical * n_items:6.0f} s total"
        )
    old = float(n_points) ** 2 * 160 / GPUS["A100-80GB"][0] * n_items
    lines.append(
        f"  (the previous float64 brute force, 160 B/pair: {old:.0f} s on an A100-80GB at peak "
        "bandwidth; a fused kernel keeping the block in registers would be FLOP-bound, "
        f"~{float(n_points) ** 2 * 16 / GPUS['A100-80GB'][1] * n_items:.0f} s there, not "
        "implemented)"
    )
    return lines


def model_for(device_name: str, n_points: int, unsure: float) -> tuple[str, float, float] | None:
    """(GPUS key, best, typical seconds per item) of the model for a device name such as
    torch.cuda.get_device_name()'s "NVIDIA H200" (matched on the key's first word and
    memory size), or None when the GPU is not in the table."""
    name = device_name.upper().replace(" ", "-")
    for key, (bw, flops) in GPUS.items():
        family, _, variant = key.upper().partition("-")
        if family in name and (not variant or variant in name or variant == "SXM"):
            best, typical = (
                gemm_item_seconds(n_points, bw, flops, unsure, eff) for eff in BANDWIDTH_EFFICIENCY
            )
            return key, best, typical
    return None
