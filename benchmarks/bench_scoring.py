"""Scoring throughput: svr.evaluation end to end per representation, and a what3d-style reference.

Builds a small benchmark-layout folder in a temporary directory (procedural shapes, 5 views
each), writes one prediction file per item for each representation (point clouds of 10,000
points, 32^3 voxel grids, meshes), then times, per representation, the full path: load the
ground truth and the prediction files, convert, compute every metric. Prints items/second and
peak memory (grids and meshes are timed on fewer items: their conversions dominate and are
slow).

Beside it, on the same in-memory point clouds (10,000 points each side), a what3d-style
reference: a Python loop over pairs that builds a scipy cKDTree on each cloud, queries both
directions single-threaded and computes F-score at all thresholds and Chamfer. Reference and
ours alternate on chunks of 10 items (so both see the same machine load, which other processes
change all the time); ours runs as the Scorer does by default (items in a thread pool, one
per core, single-threaded queries) and also on one thread, which separates the gain of the
search itself from that of the second core (which only shows when a core is free: under
contention the scheduler's share of this process does not grow with its threads, and the wall
clock ratio falls to the CPU-time ratio). It prints ours / reference throughput (wall clock)
and CPU time per item, and checks that all give identical results.

Finally it prints an estimate of the GPU time for the full what3d test set from a bandwidth /
FLOP model of the device path of svr.metrics (float32 GEMM candidates + exact float64
refinement; no GPU is needed), beside a CPU run of that path that measures its unsure-row
share, GEMM FLOP rate and reduction bandwidth.

    python benchmarks/bench_scoring.py            # --items 200, under ~2 minutes on 2 cores
    python benchmarks/bench_scoring.py --no-end-to-end --rounds 4   # the point-cloud ratio only
    python benchmarks/bench_scoring.py --gpu-model-only             # the GPU estimate only

With ``--device`` it instead measures the device path (benchmarks/scoring_device.py): exactness
against the CPU path on the same mesh items and throughput on a what3d-size set of 52,160:

    python benchmarks/bench_scoring.py --device cuda --items 52160 --json $OUT/gpu.json
    python benchmarks/bench_scoring.py --device cpu --items 100 --points 1000   # small, on a CPU
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_model import (  # noqa: E402
    GEMM_BYTES_PER_PAIR,
    GEMM_FLOPS_PER_PAIR,
    TOPK_BYTES_PER_PAIR,
    gpu_estimate,
)
from benchmarks.scoring_items import ground_truth, perturbed, procedural_shape  # noqa: E402
from svr.data.layout import GroundTruth, write_ground_truth  # noqa: E402
from svr.evaluation import DEFAULT_PROTOCOL, PredictionData, Scorer, subsample_points  # noqa: E402
from svr.geometry import sample_surface, voxelize_mesh  # noqa: E402

VIEWS = 5
WHAT3D_TEST_ITEMS = 52_160


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def build(root: Path, n_shapes: int, n_points: int, seed: int) -> list[tuple[str, int]]:
    """Ground truths under root/test/bench/<shape>/ and predictions under root/pred/<repr>/."""
    rng = np.random.default_rng(seed)
    items = []
    for s in tqdm(range(n_shapes), desc="ground truth + predictions", file=sys.stderr):
        shape_id = f"s{s:04d}"
        mesh = procedural_shape(rng)
        gt = ground_truth(mesh, seed + s)
        write_ground_truth(root / "test" / "bench" / shape_id, gt)
        for view in range(VIEWS):
            item = f"{shape_id}_{view}"
            pred = perturbed(mesh, rng)
            pts = sample_surface(
                pred.vertices, pred.faces, n_points, seed + 1000 + s * VIEWS + view
            )[0]
            for kind in ("points", "voxels", "mesh"):
                (root / "pred" / kind).mkdir(parents=True, exist_ok=True)
            np.save(root / "pred" / "points" / f"{item}.npy", pts.astype(np.float32))
            np.save(
                root / "pred" / "voxels" / f"{item}.npy",
                voxelize_mesh(pred.vertices, pred.faces, 32),
            )
            pred.export(root / "pred" / "mesh" / f"{item}.ply")
            items.append((shape_id, view))
    return items


def load_gt(root: Path, shape_id: str) -> GroundTruth:
    """The arrays the scorer needs (no mesh, no occupancy samples)."""
    d = root / "test" / "bench" / shape_id
    return GroundTruth(
        mesh=None,  # type: ignore[arg-type]
        voxels_32=np.load(d / "voxels_32.npy"),
        voxels_128=np.load(d / "voxels_128.npy"),
        points=np.load(d / "points.npy"),
        normals=np.load(d / "normals.npy"),
        occ_points=None,  # type: ignore[arg-type]
        occ_labels=None,  # type: ignore[arg-type]
    )


def load_pred(root: Path, kind: str, item: str) -> PredictionData:
    if kind == "points":
        return PredictionData(points=np.load(root / "pred" / kind / f"{item}.npy"))
    if kind == "voxels":
        return PredictionData(grid=np.load(root / "pred" / kind / f"{item}.npy"))
    mesh = trimesh.load(root / "pred" / kind / f"{item}.ply", force="mesh", process=False)
    return PredictionData(vertices=mesh.vertices, faces=mesh.faces)


# ------------------------------------------------------------------------------------------------
# Timed runs
# ------------------------------------------------------------------------------------------------


def score_end_to_end(root: Path, items: list[tuple[str, int]], kind: str, batch: int = 20) -> float:
    """Seconds to load, convert and score every item with a fresh Scorer (empty caches)."""
    scorer = Scorer(DEFAULT_PROTOCOL, device=None)
    start = time.perf_counter()
    gts: dict[str, GroundTruth] = {}
    for i in range(0, len(items), batch):
        triples = []
        for shape_id, view in items[i : i + batch]:
            if shape_id not in gts:
                gts = {shape_id: load_gt(root, shape_id)}  # items come grouped by shape
            triples.append((load_pred(root, kind, f"{shape_id}_{view}"), gts[shape_id], shape_id))
        scorer.score_many(triples)
    return time.perf_counter() - start


def what3d_reference(preds: list[np.ndarray], gts: list[np.ndarray], thresholds) -> list[dict]:
    """The what3d-style loop: per pair, a cKDTree on each cloud, both directions, all thresholds."""
    out = []
    for pred, gt in zip(preds, gts, strict=True):
        pred_tree, gt_tree = cKDTree(pred), cKDTree(gt)
        d_pg, _ = gt_tree.query(pred, k=1, workers=1)
        d_gp, _ = pred_tree.query(gt, k=1, workers=1)
        row = {
            "chamfer_l1": 0.5 * (d_pg.mean() + d_gp.mean()),
            "chamfer_l2": (d_pg**2).mean() + (d_gp**2).mean(),
        }
        for t in thresholds:
            p, r = float(np.mean(d_pg < t)), float(np.mean(d_gp < t))
            row[f"precision@{t:g}"], row[f"recall@{t:g}"] = p, r
            row[f"fscore@{t:g}"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
        out.append(row)
    return out


def ours_points(preds, gts, keys, threads: int | None = None) -> list[dict]:
    """Our Scorer on fresh caches: items in a pool of `threads` threads (None: one per core,
    single-threaded queries), or one after another with single-threaded queries (1)."""
    scorer = Scorer(DEFAULT_PROTOCOL, device=None)
    if threads == 1:
        return [
            scorer.score(p, g, k, workers=1).to_dict()
            for p, g, k in zip(preds, gts, keys, strict=True)
        ]
    return [s.to_dict() for s in scorer.score_many(zip(preds, gts, keys, strict=True), threads)]


def compare(ref: list[dict], ours: list[dict]) -> None:
    """F-score, precision and recall identical; Chamfer equal to the last bits of a sum."""
    for a, b in zip(ref, ours, strict=True):
        for key, value in a.items():
            if key.startswith("chamfer"):
                if not math.isclose(value, b[key], rel_tol=1e-12, abs_tol=0.0):
                    raise SystemExit(f"MISMATCH {key}: reference {value} vs ours {b[key]}")
            elif value != b[key]:
                raise SystemExit(f"MISMATCH {key}: reference {value} vs ours {b[key]}")


def nn_backend_description() -> str:
    from svr.metrics import nn_cpu as metrics

    name = metrics._backend()
    if name == "pykdtree":
        from importlib.metadata import version

        threads = "per-thread OpenMP control" if metrics._openmp else "OpenMP default threads"
        return (
            f"pykdtree {version('pykdtree')} (leaves of {metrics._PYKDTREE_LEAFSIZE} points, "
            f"{threads}), queries in Morton order"
        )
    return "scipy cKDTree (pykdtree is not installed), queries in Morton order"


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def traced_peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------------------------------------
# CPU check of the GPU model (benchmarks/gpu_model.py)
# ------------------------------------------------------------------------------------------------


def copy_bandwidth() -> float:
    """Bytes per second of a large numpy copy (read + write) on this machine."""
    src = np.ones(2**25)  # 256 MiB
    dst = np.empty_like(src)
    np.copyto(dst, src)
    start = time.perf_counter()
    np.copyto(dst, src)
    return 2 * src.nbytes / (time.perf_counter() - start)


def _surface_pair(rng: np.random.Generator, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth on a normalised procedural shape and a jittered prediction of it."""
    mesh = procedural_shape(rng)
    gt = sample_surface(mesh.vertices, mesh.faces, n_points, seed=int(rng.integers(1 << 30)))[0]
    pred = sample_surface(mesh.vertices, mesh.faces, n_points, seed=int(rng.integers(1 << 30)))[0]
    pred = pred + rng.normal(scale=0.003, size=pred.shape)
    return np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)


def cpu_check_of_model(
    rng: np.random.Generator, n_points: int, items: int = 3
) -> tuple[str, float]:
    """Run the GEMM path on the CPU (torch, this machine's threads) on surface-like items:
    measure items/s, the GEMM's FLOP rate, the reductions' bandwidth and the share of unsure
    rows; compare the model's prediction for this CPU with the measured time.

    Returns the report and the measured share of unsure rows per direction.
    """
    import torch

    import svr.metrics.nn_torch as metrics

    pairs_data = [_surface_pair(rng, n_points) for _ in range(items)]
    tensors = [(torch.from_numpy(p), torch.from_numpy(g)) for p, g in pairs_data]
    unsure_rows = []
    original = metrics._gemm_refine

    def counting(q, t, idx, second, approx_rows, scale2, bound):
        best = metrics._exact_sq_candidates(q, t.index_select(0, idx))
        unsure_rows.append(int((~metrics._certified(second, best, scale2, bound)).sum()))
        return original(q, t, idx, second, approx_rows, scale2, bound)

    metrics._gemm_refine = counting
    try:
        metrics._gemm_nearest(*tensors[0], both=True)  # warm-up
        unsure_rows.clear()
        start = time.perf_counter()
        for a, b in tensors:
            metrics._gemm_nearest(a, b, both=True)
        per_item = (time.perf_counter() - start) / items
    finally:
        metrics._gemm_refine = original
    unsure = sum(unsure_rows) / (2 * items * n_points)

    a, b = tensors[0]
    big_a, big_b, _, _ = metrics._gemm_operands(a, b)
    bt = big_b.t().contiguous()
    rows = metrics._GEMM_CHUNK_ELEMENTS // n_points
    block = torch.mm(big_a[:rows], bt)
    start = time.perf_counter()
    for s in range(0, n_points, rows):
        torch.mm(big_a[s : s + rows], bt, out=block[: len(big_a[s : s + rows])])
    gemm_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(math.ceil(n_points / rows)):
        block.min(dim=1)
        block.min(dim=0)
    reduce_s = 2 * (time.perf_counter() - start)  # four reductions per block in the kernel
    pairs = float(n_points) ** 2
    cpu_bw = copy_bandwidth()
    gemm_flops = pairs * GEMM_FLOPS_PER_PAIR / gemm_s
    model = pairs * (GEMM_BYTES_PER_PAIR + 2 * unsure * TOPK_BYTES_PER_PAIR) / cpu_bw
    report = (
        f"CPU run of the same path (torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{items} surface-like items of {n_points} points): {1 / per_item:.2f} items/s "
        f"({per_item * 1e3:.0f} ms/item); unsure rows {unsure:.2%} per direction, refined by "
        f"top-{metrics._GEMM_TOPK}; GEMM {gemm_flops / 1e9:.1f} GFLOP/s (K = 5: bound by writing "
        f"{pairs * 4 / gemm_s / 1e9:.1f} GB/s of output), reductions "
        f"{pairs * 16 / reduce_s / 1e9:.1f} GB/s; numpy copy bandwidth {cpu_bw / 1e9:.1f} GB/s. "
        f"The bandwidth model predicts {model * 1e3:.0f} ms/item on this CPU, measured "
        f"{per_item * 1e3:.0f} ms (ratio {per_item / model:.1f}: CPU reductions are not "
        "bandwidth-bound the way GPU ones are, so the CPU only bounds the model from above)"
    )
    return report, unsure


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--items",
        type=int,
        default=None,
        help="items per representation (5 per shape; default 200); with --device, items of the "
        f"metric stage (default {WHAT3D_TEST_ITEMS})",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the reference comparison")
    parser.add_argument(
        "--voxel-items", type=int, default=100, help="items timed end to end for voxel grids"
    )
    parser.add_argument(
        "--mesh-items", type=int, default=40, help="items timed end to end for meshes"
    )
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end timings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gpu-model-only", action="store_true", help="only the GPU estimate and its CPU check"
    )
    device = parser.add_argument_group(
        "device scoring (--device): exactness against the CPU path and throughput on mesh items"
    )
    device.add_argument(
        "--device", help="cuda, cuda:N, cpu or auto (cuda when available): run the device benchmark"
    )
    device.add_argument("--check-items", type=int, default=200, help="items of the exactness check")
    device.add_argument("--pool-shapes", type=int, default=256, help="distinct procedural shapes")
    device.add_argument(
        "--points", type=int, default=None, help="samples per item (default: the protocol's 10,000)"
    )
    device.add_argument(
        "--budget-s", type=float, default=300.0, help="stop the metric stage after this long"
    )
    device.add_argument(
        "--tolerance", type=float, default=0.0, help="max |CPU - device| per metric (default 0)"
    )
    device.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    args = parser.parse_args(argv)
    if args.device is not None:
        from benchmarks.scoring_device import run

        return run(
            args.device,
            items=WHAT3D_TEST_ITEMS if args.items is None else args.items,
            check_items=args.check_items,
            pool_shapes=args.pool_shapes,
            points=args.points,
            budget_s=args.budget_s,
            tolerance=args.tolerance,
            seed=args.seed,
            json_path=args.json,
        )
    if args.items is None:
        args.items = 200
    n_shapes = max(1, math.ceil(args.items / VIEWS))
    n_points = DEFAULT_PROTOCOL.n_samples
    rng = np.random.default_rng(args.seed)
    if args.gpu_model_only:
        report, unsure = cpu_check_of_model(rng, n_points)
        for line in gpu_estimate(WHAT3D_TEST_ITEMS, n_points, unsure):
            print(line)
        print(report)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp:
        root = Path(tmp)
        items = build(root, n_shapes, n_points, args.seed)[: args.items]
        print(
            f"{len(items)} items ({n_shapes} shapes x {VIEWS} views), protocol "
            f"{DEFAULT_PROTOCOL.identifier}; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} (other processes make every figure below noisier)"
        )

        if not args.no_end_to_end:
            print("\nEnd to end (load ground truth and prediction files, convert, all metrics):")
        for kind in () if args.no_end_to_end else ("points", "voxels", "mesh"):
            limit = {"points": len(items), "voxels": args.voxel_items, "mesh": args.mesh_items}
            subset = items[: limit[kind]]
            seconds = score_end_to_end(root, subset, kind)
            sub = subset[: min(len(subset), 20)]
            peak = traced_peak_mb(lambda sub=sub, kind=kind: score_end_to_end(root, sub, kind))
            print(
                f"  {kind:7s}: {len(subset) / seconds:7.1f} items/s ({len(subset)} items, "
                f"{seconds:6.2f} s); peak traced allocations {peak:6.1f} MB (20 items); "
                f"process max RSS {maxrss_mb():6.0f} MB"
            )

        # The same in-memory float64 clouds for both: predictions as loaded, ground truth as the
        # protocol subsamples it (10,000 of 100,000 points), so that neither side pays for the
        # subsampling; ours gets them as GroundTruth objects holding just those points.
        preds, gts, gt_clouds, keys = [], [], [], []
        cache: dict[str, tuple[GroundTruth, np.ndarray]] = {}
        for shape_id, view in items:
            if shape_id not in cache:
                full = load_gt(root, shape_id)
                cloud = subsample_points(np.asarray(full.points), n_points, DEFAULT_PROTOCOL.seed)[
                    0
                ]
                cloud = np.asarray(cloud, dtype=np.float64)
                light = GroundTruth(None, None, None, cloud, None, None, None)  # type: ignore[arg-type]
                cache[shape_id] = (light, cloud)
            gt, cloud = cache[shape_id]
            pts = np.load(root / "pred" / "points" / f"{shape_id}_{view}.npy").astype(np.float64)
            preds.append(pts)
            gts.append(gt)
            gt_clouds.append(cloud)
            keys.append(shape_id)
        pred_data = [PredictionData(points=p) for p in preds]

        # Alternate reference and ours on chunks of 10 items so that all see the same load (the
        # machine is shared), starting each chunk with a different variant; each chunk starts
        # with a fresh Scorer cache for its shapes.
        variants = {
            "reference": lambda sl: what3d_reference(
                preds[sl], gt_clouds[sl], DEFAULT_PROTOCOL.thresholds
            ),
            "ours": lambda sl: ours_points(pred_data[sl], gts[sl], keys[sl]),
            "ours_1": lambda sl: ours_points(pred_data[sl], gts[sl], keys[sl], threads=1),
        }
        wall = dict.fromkeys(variants, 0.0)
        cpu = dict.fromkeys(variants, 0.0)
        results: dict[str, list[dict]] = {}
        chunk = 10
        for _ in range(args.rounds):
            results = {name: [] for name in variants}
            for c, i in enumerate(range(0, len(items), chunk)):
                sl = slice(i, i + chunk)
                names = list(variants)
                names = names[c % len(names) :] + names[: c % len(names)]
                for name in names:
                    start, cpu0 = time.perf_counter(), time.process_time()
                    results[name] += variants[name](sl)
                    wall[name] += time.perf_counter() - start
                    cpu[name] += time.process_time() - cpu0
        compare(results["reference"], results["ours"])
        compare(results["reference"], results["ours_1"])
        if results["ours"] != results["ours_1"]:
            raise SystemExit("MISMATCH: results depend on the thread count")
        n = len(items) * args.rounds
        print(
            f"\nPoint clouds, {n_points} points each side, metrics only ({args.rounds} rounds, "
            f"interleaved in chunks of {chunk} items; load average now {os.getloadavg()[0]:.1f}):"
        )
        print(f"  nearest-neighbour search: {nn_backend_description()}")
        labels = {
            "reference": "what3d-style reference (1 thread)",
            "ours": f"svr Scorer ({os.cpu_count()} threads)",
            "ours_1": "svr Scorer (1 thread)",
        }
        for name, label in labels.items():
            print(
                f"  {label:34s}: {n / wall[name]:7.1f} items/s, {cpu[name] / n * 1e3:5.1f} ms CPU "
                f"per item (all threads); ratio to the reference {wall['reference'] / wall[name]:.2f}x "
                f"wall clock, {cpu['reference'] / cpu[name]:.2f}x CPU time"
            )
        print(
            "  results identical: F, precision and recall exactly, Chamfer to 1e-12 relative; "
            "ours identical on 1 and on all threads"
        )

        print()
        report, unsure = cpu_check_of_model(rng, n_points)
        for line in gpu_estimate(WHAT3D_TEST_ITEMS, n_points, unsure):
            print(line)
        print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
