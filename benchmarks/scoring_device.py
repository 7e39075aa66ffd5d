"""GPU scoring measured: the device path against the CPU path on the same items, and its
throughput on a what3d-size set of mesh items. Run through ``benchmarks/bench_scoring.py``:

    python benchmarks/bench_scoring.py --device cuda --items 52160 --json $OUT/gpu.json
    python benchmarks/bench_scoring.py --device cpu --items 100 --points 1000   # small, on a CPU

Items are mesh predictions of procedural shapes, 5 views per shape as in what3d's test set
(52,160 items = 10,432 shapes x 5 views), scored under the project's protocol (svr-eval-1: the
prediction's surface sampled at 10,000 points, the ground truth's 100,000 samples subsampled to
10,000, F-score / precision / recall at 6 thresholds, Chamfer L1 and L2, normal consistency,
IoU at 32^3 and 128^3). Distances in unit-cube units.

1. Exactness and end to end. ``--check-items`` items are scored by ``svr.evaluation.Scorer``
   on the CPU path (k-d tree, items in a thread pool) and on the device path
   (``Scorer(device=...)``: conversions on the CPU, nearest neighbours on the device), from
   the same meshes and ground truths. Per item, the absolute difference of every metric; the
   maxima are printed. Both runs are timed (items/s, projected time for 52,160 items); the
   per-item cost of each conversion is printed beside them.
2. Metric stage. ``--items`` items through the device path's metric stage as the Scorer runs
   it (the ground truth's PointIndex once per shape: subsample, validation, CPU k-d tree; then
   ``point_metrics`` on the device per item) from a pool of ``--pool-shapes`` distinct shapes
   (5 predictions each, surfaces pre-sampled: sampling is a conversion) cycled over the shape
   slots. The CPU path scores every pool pair once (timed: the reference throughput) and every
   device result is compared with it, so exactness is checked on all items. It stops after
   ``--budget-s`` seconds and projects from the items done.

Tolerance (``--tolerance``, default 0): the two paths give identical nearest distances and
indices by design (svr.metrics.nn_torch), hence identical metrics bit for bit; any difference
is a bug. The exit status is 1 when a difference exceeds the tolerance, else 0; the 60 s goal
is reported, not enforced. ``--json`` writes every figure (after each stage, so a run cut
short keeps what it measured).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from benchmarks.gpu_model import model_for
from benchmarks.scoring_items import ground_truth, perturbed, procedural_shape
from svr.data.layout import N_SURFACE_POINTS, GroundTruth
from svr.evaluation import DEFAULT_PROTOCOL, PredictionData, Protocol, Scorer
from svr.geometry import sample_surface, voxelize_mesh
from svr.metrics import PointMetrics, point_metrics, point_metrics_batch

VIEWS = 5
WHAT3D_TEST_ITEMS = 52_160
GOAL_S = 60.0
# The metric groups compared (a key "fscore@0.01" belongs to "fscore").
GROUPS = (
    "fscore", "precision", "recall", "chamfer_l1", "chamfer_l2", "normal_consistency", "iou",
    "iou_128",
)  # fmt: skip


@dataclass
class PoolShape:
    """One procedural shape: its ground truth (voxels filled on first use), VIEWS prediction
    meshes and their surface samples ((n, 3) float64 points and unit normals, as the Scorer
    samples a mesh: ``sample_surface(v, f, n_samples, seed)``)."""

    mesh: trimesh.Trimesh
    gt: GroundTruth
    preds: list[trimesh.Trimesh]
    samples: list[tuple[np.ndarray, np.ndarray]]

    def with_voxels(self) -> GroundTruth:
        if self.gt.voxels_32 is None:
            v, f = self.mesh.vertices, self.mesh.faces
            self.gt.voxels_32 = voxelize_mesh(v, f, 32)
            self.gt.voxels_128 = voxelize_mesh(v, f, 128)
        return self.gt


def resolve_device(name: str) -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; an unusable device is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError as exc:
        raise SystemExit(
            f"--device {name!r} is not a torch device ({exc}); use cuda, cpu or auto"
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {name}: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA "
            "device; use --device cpu or --device auto"
        )
    return name


def device_name(device: str) -> str:
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU via torch {torch.__version__} ({torch.get_num_threads()} threads)"


def build_pool(n_shapes: int, protocol: Protocol, gt_points: int, seed: int) -> list[PoolShape]:
    rng = np.random.default_rng(seed)
    pool = []
    for s in range(n_shapes):
        mesh = procedural_shape(rng)
        gt = ground_truth(mesh, seed + s, gt_points, voxels=False)
        preds = [perturbed(mesh, rng) for _ in range(VIEWS)]
        samples = []
        for pred in preds:
            pts, normals, _ = sample_surface(
                pred.vertices, pred.faces, protocol.n_samples, protocol.seed
            )
            samples.append((pts, normals))
        pool.append(PoolShape(mesh, gt, preds, samples))
    return pool


def slot_of(item: int, pool: Sequence[PoolShape]) -> tuple[int, PoolShape, int]:
    """Item i -> (shape slot i // VIEWS, its pool shape, view i % VIEWS)."""
    slot = item // VIEWS
    return slot, pool[slot % len(pool)], item % VIEWS


def differences(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float]:
    """Group -> max |a[k] - b[k]| over the group's keys; None vs None and NaN vs NaN count as
    equal, None or NaN against a number as an infinite difference."""
    out: dict[str, float] = {}
    for key, x in a.items():
        y = b[key]
        missing_x = x is None or math.isnan(x)
        missing_y = y is None or math.isnan(y)
        if missing_x or missing_y:
            d = 0.0 if (x is None) == (y is None) and missing_x and missing_y else math.inf
        else:
            d = abs(float(x) - float(y))
        group = key.split("@", 1)[0]
        out[group] = max(out.get(group, 0.0), d)
    return out


def metrics_dict(m: PointMetrics) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in ("fscore", "precision", "recall"):
        for t, v in zip(m.thresholds, getattr(m, name), strict=True):
            out[f"{name}@{t:g}"] = float(v)
    out["chamfer_l1"], out["chamfer_l2"] = m.chamfer_l1, m.chamfer_l2
    out["normal_consistency"] = m.normal_consistency
    return out


def summarise(per_item: list[dict[str, float]], tolerance: float) -> dict[str, Any]:
    """Max difference per group over the items, and the items beyond the tolerance."""
    groups = [g for g in GROUPS if any(g in d for d in per_item)]
    worst = {g: max((d.get(g, 0.0) for d in per_item), default=0.0) for g in groups}
    bad = [i for i, d in enumerate(per_item) if max(d.values(), default=0.0) > tolerance]
    return {"max_abs_diff": worst, "items": len(per_item), "items_beyond": len(bad), "bad": bad}


def _finite(x: Any) -> Any:
    """JSON-safe: infinite or NaN floats become strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def exactness_and_end_to_end(
    pool: list[PoolShape], n_items: int, protocol: Protocol, device: str, tolerance: float
) -> dict[str, Any]:
    """Stage 1: the Scorer on the CPU path and on the device path, same mesh items."""
    items = [slot_of(i, pool) for i in range(n_items)]
    triples = [
        (PredictionData(vertices=shape.preds[v].vertices, faces=shape.preds[v].faces),
         shape.with_voxels(), ("slot", slot))
        for slot, shape, v in items
    ]  # fmt: skip
    cpu = Scorer(protocol, device=None)
    cpu.device = None  # the exact CPU k-d tree even where a GPU exists
    dev = Scorer(protocol, device=device)
    cpu_scores, cpu_s = _timed(lambda: cpu.score_many(triples))
    dev_scores, dev_s = _timed(lambda: dev.score_many(triples))
    per_item = [
        differences(a.to_dict(), b.to_dict()) for a, b in zip(cpu_scores, dev_scores, strict=True)
    ]
    summary = summarise(per_item, tolerance)
    k = min(n_items, 20)
    stages = {}
    for name, fn in (
        ("voxelize_32", lambda p: voxelize_mesh(p.vertices, p.faces, 32)),
        ("voxelize_128", lambda p: voxelize_mesh(p.vertices, p.faces, 128)),
        ("sample_surface", lambda p: sample_surface(p.vertices, p.faces, protocol.n_samples, 0)),
    ):
        _, seconds = _timed(lambda fn=fn: [fn(shape.preds[v]) for _, shape, v in items[:k]])
        stages[name] = seconds / k
    return {
        **summary,
        "per_item_max_abs_diff": per_item,
        "cpu_items_per_s": n_items / cpu_s,
        "cpu_threads": os.cpu_count(),
        "device_items_per_s": n_items / dev_s,
        "device_projected_s": WHAT3D_TEST_ITEMS * dev_s / n_items,
        "cpu_projected_s": WHAT3D_TEST_ITEMS * cpu_s / n_items,
        "conversion_s_per_item": stages,
    }


def metric_stage(
    pool: list[PoolShape], n_items: int, protocol: Protocol, device: str, budget_s: float
) -> tuple[dict[str, Any], list[tuple[int, int, PointMetrics]]]:
    """Stage 2, device side: per shape slot the Scorer's PointIndex, per item point_metrics."""
    scorer = Scorer(protocol, device=device, cache_size=8)
    results: list[tuple[int, int, PointMetrics]] = []
    gt_s = metrics_s = 0.0
    slot, gt_index = -1, None
    start = time.perf_counter()
    for i in range(n_items):
        s, shape, view = slot_of(i, pool)
        if s != slot:
            t0 = time.perf_counter()
            gt_index = scorer.ground_truth_points(shape.gt, ("slot", s))
            gt_s += time.perf_counter() - t0
            slot = s
        pts, normals = shape.samples[view]
        t0 = time.perf_counter()
        m = point_metrics(
            pts, gt_index, protocol.thresholds, pred_normals=normals, device=scorer.device
        )
        metrics_s += time.perf_counter() - t0
        results.append((s % len(pool), view, m))
        if budget_s and time.perf_counter() - start > budget_s:
            break
    elapsed = time.perf_counter() - start
    done = len(results)
    return {
        "items_requested": n_items,
        "items_done": done,
        "seconds": elapsed,
        "items_per_s": done / elapsed,
        "projected_s": WHAT3D_TEST_ITEMS * elapsed / done,
        "ground_truth_s": gt_s,
        "point_metrics_s": metrics_s,
        "stopped_by_budget": done < n_items,
    }, results


def cpu_reference(pool: list[PoolShape], protocol: Protocol) -> tuple[dict[str, Any], list]:
    """Stage 2, CPU side: every pool pair once on the CPU path, timed like the device side."""
    scorer = Scorer(protocol, device=None, cache_size=None)
    scorer.device = None

    def run() -> list[list[PointMetrics]]:
        gts = [scorer.ground_truth_points(shape.gt, ("pool", p)) for p, shape in enumerate(pool)]
        flat = point_metrics_batch(
            [pts for shape in pool for pts, _ in shape.samples],
            [g for g in gts for _ in range(VIEWS)],
            protocol.thresholds,
            pred_normals=[n for shape in pool for _, n in shape.samples],
        )
        return [flat[p * VIEWS : (p + 1) * VIEWS] for p in range(len(pool))]

    refs, seconds = _timed(run)
    n = len(pool) * VIEWS
    return {"items": n, "seconds": seconds, "items_per_s": n / seconds}, refs


def unsure_share(pool: list[PoolShape], protocol: Protocol, device: str, pairs: int = 10) -> float:
    """Share of rows per direction that float32 cannot certify (refined from the top-k), on
    `pairs` pool pairs on the device: the model's input."""
    import torch

    import svr.metrics.nn_torch as nn

    counts: list[int] = []
    original = nn._gemm_refine

    def counting(q, t, idx, second, approx_rows, scale2, bound):
        best = nn._exact_sq_candidates(q, t.index_select(0, idx))
        counts.append(int((~nn._certified(second, best, scale2, bound)).sum()))
        return original(q, t, idx, second, approx_rows, scale2, bound)

    nn._gemm_refine = counting
    rows = 0
    try:
        for i in range(min(pairs, len(pool) * VIEWS)):
            _, shape, view = slot_of(i, pool)
            gt = Scorer(protocol, device=None).ground_truth_points(shape.gt)  # the subsample
            g = torch.as_tensor(gt.points, device=device)
            a = torch.as_tensor(shape.samples[view][0], device=device)
            nn._gemm_nearest(a, g, both=True)
            rows += len(a) + len(g)
    finally:
        nn._gemm_refine = original
    return sum(counts) / max(1, rows)


def _write(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(report), indent=1))


def _groups_line(worst: dict[str, float]) -> str:
    return ", ".join(f"{g} {d:.3g}" for g, d in worst.items())


def run(
    device: str,
    items: int = WHAT3D_TEST_ITEMS,
    check_items: int = 200,
    pool_shapes: int = 256,
    points: int | None = None,
    budget_s: float = 300.0,
    tolerance: float = 0.0,
    seed: int = 0,
    json_path: Path | None = None,
) -> int:
    """The device benchmark (see the module docstring); returns the exit status."""
    for name, value in (
        ("items", items),
        ("check-items", check_items),
        ("pool-shapes", pool_shapes),
    ):
        if value < 1:
            raise SystemExit(f"--{name} must be at least 1, got {value}")
    if points is not None and points < 2:
        raise SystemExit(f"--points must be at least 2, got {points}")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise SystemExit(f"--tolerance must be a finite number >= 0, got {tolerance}")
    device = resolve_device(device)
    protocol = DEFAULT_PROTOCOL if points is None else replace(DEFAULT_PROTOCOL, n_samples=points)
    ratio = N_SURFACE_POINTS // DEFAULT_PROTOCOL.n_samples
    gt_points = N_SURFACE_POINTS if points is None else ratio * points
    pool_shapes = min(pool_shapes, math.ceil(max(items, check_items) / VIEWS))
    report: dict[str, Any] = {
        "device": device,
        "device_name": device_name(device),
        "protocol": protocol.identifier,
        "n_samples": protocol.n_samples,
        "gt_points": gt_points,
        "tolerance": tolerance,
        "goal_s": GOAL_S,
        "what3d_items": WHAT3D_TEST_ITEMS,
    }
    print(
        f"device {device} ({report['device_name']}); protocol {protocol.identifier}: "
        f"{protocol.n_samples} samples per prediction, ground truth {gt_points} -> "
        f"{protocol.n_samples}, IoU at {protocol.iou_resolutions}; {os.cpu_count()} CPUs"
    )
    pool, seconds = _timed(lambda: build_pool(pool_shapes, protocol, gt_points, seed))
    print(f"pool: {pool_shapes} shapes x {VIEWS} mesh predictions in {seconds:.1f} s")
    # Warm-up: CUDA context, cuBLAS handle and kernels load on the first call.
    point_metrics(pool[0].samples[0][0][:1000], pool[0].gt.points[:1000], device=device)

    print(f"\n1. {check_items} mesh items end to end, CPU path vs device path (svr Scorer):")
    check = exactness_and_end_to_end(pool, check_items, protocol, device, tolerance)
    report["exactness_end_to_end"] = check
    _write(json_path, report)
    print(f"  max |CPU - device| per metric over the items: {_groups_line(check['max_abs_diff'])}")
    families = {
        "F-score": ("fscore", "precision", "recall"),
        "Chamfer": ("chamfer_l1", "chamfer_l2"),
        "IoU": ("iou", "iou_128"),
    }
    per_family = []
    for family, groups in families.items():
        worst = [max(d.get(g, 0.0) for g in groups) for d in check["per_item_max_abs_diff"]]
        zero = sum(1 for w in worst if w == 0.0)
        per_family.append(
            f"{family} {zero} of {check_items} items equal (largest {max(worst):.3g})"
        )
    print(f"  per item: {'; '.join(per_family)}")
    print(f"  items beyond the tolerance {tolerance:g}: {check['items_beyond']} of {check_items}")
    for i in check["bad"][:10]:
        print(f"    item {i}: {_groups_line(check['per_item_max_abs_diff'][i])}")
    conv = check["conversion_s_per_item"]
    print(
        f"  CPU path ({check['cpu_threads']} threads): {check['cpu_items_per_s']:.1f} items/s, "
        f"{check['cpu_projected_s']:.0f} s projected for {WHAT3D_TEST_ITEMS} items; device "
        f"path: {check['device_items_per_s']:.1f} items/s, {check['device_projected_s']:.0f} s "
        f"projected (items one after another; per item on the CPU: voxelise 32^3 "
        f"{conv['voxelize_32'] * 1e3:.1f} ms, 128^3 {conv['voxelize_128'] * 1e3:.1f} ms, "
        f"sample {conv['sample_surface'] * 1e3:.1f} ms)"
    )

    print(f"\n2. metric stage, {items} items ({pool_shapes} distinct shapes cycled):")
    ref, refs = cpu_reference(pool, protocol)
    stage, results = metric_stage(pool, items, protocol, device, budget_s)
    ref_dicts = [[metrics_dict(m) for m in row] for row in refs]
    per_item = [differences(ref_dicts[p][v], metrics_dict(m)) for p, v, m in results]
    stage_check = summarise(per_item, tolerance)
    stage.update(
        {"max_abs_diff": stage_check["max_abs_diff"], "items_beyond": stage_check["items_beyond"]}
    )
    stage["ratio_to_cpu"] = stage["items_per_s"] / ref["items_per_s"]
    share = unsure_share(pool, protocol, device)
    on_gpu = device.startswith("cuda")
    model = model_for(report["device_name"], protocol.n_samples, share) if on_gpu else None
    stage["unsure_share"] = share
    if model is not None:
        stage["model"] = {
            "gpu": model[0],
            "projected_s": [model[1] * WHAT3D_TEST_ITEMS, model[2] * WHAT3D_TEST_ITEMS],
        }
    report["cpu_reference"] = ref
    report["metric_stage"] = stage
    met = stage["projected_s"] < GOAL_S
    report["goal_met"] = met
    _write(json_path, report)
    print(
        f"  device: {stage['items_done']} items in {stage['seconds']:.1f} s = "
        f"{stage['items_per_s']:.1f} items/s (ground truth indices {stage['ground_truth_s']:.1f} s,"
        f" point_metrics {stage['point_metrics_s']:.1f} s)"
        + (f"; stopped by --budget-s {budget_s:g}" if stage["stopped_by_budget"] else "")
    )
    print(
        f"  CPU path (k-d tree, {os.cpu_count()} threads), every pool pair once: "
        f"{ref['items_per_s']:.1f} items/s; device / CPU throughput {stage['ratio_to_cpu']:.2f}x"
    )
    print(
        f"  max |CPU - device| per metric: {_groups_line(stage_check['max_abs_diff'])}; items "
        f"beyond the tolerance: {stage_check['items_beyond']} of {len(results)}"
    )
    line = (
        f"  projected for {WHAT3D_TEST_ITEMS} items: {stage['projected_s']:.1f} s "
        f"(goal {GOAL_S:.0f} s: {'met' if met else 'NOT met'}); unsure rows {share:.2%}"
    )
    if model is not None:
        lo, hi = stage["model"]["projected_s"]
        line += f"; the model for {model[0]} predicts {lo:.0f}-{hi:.0f} s"
    print(line)
    print(
        f"\nsummary, {WHAT3D_TEST_ITEMS} mesh items on {report['device_name']}: metric stage "
        f"{stage['projected_s']:.1f} s (goal {GOAL_S:.0f} s); end to end through the Scorer "
        f"{check['device_projected_s']:.0f} s on the device path, {check['cpu_projected_s']:.0f} s "
        f"on the CPU path ({check['cpu_threads']} threads): the mesh conversions run on the CPU "
        f"(voxelisation at 128^3 {conv['voxelize_128'] * 1e3:.0f} ms per item)"
    )
    exact = check["items_beyond"] == 0 and stage_check["items_beyond"] == 0
    report["exact"] = exact
    _write(json_path, report)
    if not exact:
        print(f"FAILED: the device path differs from the CPU path beyond {tolerance:g}")
        return 1
    print(f"exact: every compared metric within {tolerance:g} of the CPU path")
    return 0
