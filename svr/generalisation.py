"""Generalisation of the methods beyond the benchmark's clean renders, per method.

Two measurements (run by benchmarks/bench_photo_generalisation.py and
benchmarks/bench_real_shapes.py; this module computes, the scripts print):

- **Photo-style test set.** The benchmark's test shapes rendered in the held-out photo family
  (`python -m svr.data pool --split test --family heldout`): class accuracy of
  `Prediction.info["predicted_class"]` (None, printed n/a, for a method that reports no
  class) and F@1% under the leaderboard's protocol (`svr.evaluation.Scorer`; IoU skipped,
  the F-score is unchanged by that), on the photo and on a clean test view of the same shape,
  and their ratio (mean photo F / mean clean F, with a paired bootstrap interval).
- **Real shapes.** The paper's cluster mean shapes (`svr.data.realshapes`), rendered in the
  held-out family: class accuracy against the cluster's majority class, and F@1% of the
  prediction against the shape, both normalised (bounding box centred, longest side 1),
  10,000 surface samples each (predictions with seed 0, shapes with seed 1: two independent
  draws), F-score of `svr.metrics` at 0.01. "aligned" scores the prediction as it is (the shapes
  are in our object frame, see `svr.data.realshapes`); "best" takes the best rotation of a
  fixed grid (`rotation_grid`), as ZeroShape scores canonical-pose predictions against
  shapes in other frames. The maximum over a grid is optimistic: it also rewards a wrong
  shape that happens to fit better turned, which the sphere and class-mean reference rows
  show.

Best rotation (`best_rotation_fscore`). The prediction is turned by each grid rotation R and
normalised again (x -> s (R x - c), from the bounding box of the turned surface). The F-score
of every rotation is first estimated from 250 random samples per direction, queried against
all of the other set's samples (an unbiased estimate, standard error about 0.03), with one
k-d tree per set reused for all rotations; the 12 best are estimated again from 2,000 samples
(standard error about 0.01); the 3 best of those and the identity are scored exactly on all
samples (`fscore_within`: the definition of `svr.metrics.fscore`, from k-d tree queries
bounded by the threshold, tested equal to it), and the largest is reported.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.spatial import ConvexHull, QhullError, cKDTree

from svr.classes import CLASS_NAMES
from svr.data.layout import Benchmark, Item, ShapeRef
from svr.evaluation import DEFAULT_PROTOCOL, Protocol, Scorer
from svr.geometry import sample_surface
from svr.types import Prediction

__all__ = [
    "F_PROTOCOL",
    "PhotoTestSet",
    "PhotoRow",
    "RealView",
    "RealRow",
    "Surface",
    "AlignTarget",
    "RotationScore",
    "class_accuracy",
    "load_photo_test",
    "evaluate_photo_test",
    "rotation_grid",
    "identity_index",
    "best_rotation_fscore",
    "fscore_within",
    "format_per_class",
    "format_confusions",
    "evaluate_real_views",
    "format_photo_table",
    "format_real_table",
]

logger = logging.getLogger(__name__)

# the leaderboard's protocol without IoU: the same samples, seed and thresholds, so the same
# F-scores, without voxelising every predicted mesh twice
F_PROTOCOL: Protocol = replace(DEFAULT_PROTOCOL, iou_resolutions=())
THRESHOLD = 0.01
N_SAMPLES = 10_000
PRED_SEED, SHAPE_SEED = 0, 1

Progress = Callable[[str], None]


def class_accuracy(predictions: Sequence[Prediction], classes: Sequence[str]) -> float | None:
    """Share of predictions whose info["predicted_class"] equals the true class (same order);
    None when no prediction reports a class."""
    if len(predictions) != len(classes):
        raise ValueError(f"{len(predictions)} predictions for {len(classes)} classes")
    reported = [p.info.get("predicted_class") for p in predictions]
    if not reported or all(r is None for r in reported):
        return None
    return float(np.mean([r == c for r, c in zip(reported, classes, strict=True)]))


# ------------------------------------------------------------------------------------------------
# Photo-style test set
# ------------------------------------------------------------------------------------------------


@dataclass
class PhotoTestSet:
    """Photo-style test inputs paired with the clean benchmark item of the same shape.

    photos: uint8 (N, S, S, 3), the network inputs of the pool; items: N benchmark items
    (photo k of a shape is paired with its clean view k mod the number of views);
    family: the pool's randomisation family; pool: the pool folder."""

    benchmark: Benchmark
    items: list[Item]
    photos: np.ndarray
    family: str
    pool: Path

    @property
    def classes(self) -> list[str]:
        return [it.shape.class_name for it in self.items]


def load_photo_test(
    benchmark: Benchmark | str | os.PathLike,
    photo_test: str | os.PathLike,
    per_class: int | None = None,
    seed: int = 0,
) -> PhotoTestSet:
    """Read a finished test-split pool of `benchmark` (`python -m svr.data pool --split test`).

    per_class: at most this many shapes per class, drawn with numpy's default_rng(seed)
    (all of them when None). ValueError when the pool is of another benchmark or split, or
    the benchmark's ground truth is per view (viewer frame: the photos' cameras differ)."""
    bench = benchmark if isinstance(benchmark, Benchmark) else Benchmark(benchmark)
    pool = Path(photo_test)
    info_file = pool / "pool.json"
    if not info_file.is_file():
        raise FileNotFoundError(
            f"{pool} is not a finished photo pool (no pool.json); build it with `python -m "
            f"svr.data pool --benchmark {bench.root} --split test --family heldout --views 1 "
            f"--out {pool}`"
        )
    info = json.loads(info_file.read_text())
    if info.get("benchmark") != bench.meta.identifier:
        raise ValueError(
            f"the pool was rendered from {info.get('benchmark')}, the benchmark is "
            f"{bench.meta.identifier}"
        )
    if info.get("split") != "test":
        raise ValueError(f"the pool holds the {info.get('split')!r} split, not the test split")
    if bench.meta.frame != "object":
        raise ValueError("photo-style test views need object-frame ground truth")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be positive, got {per_class}")
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    photos: list[np.ndarray] = []
    for name in bench.class_names:
        refs = [r for r in bench.shapes("test", [name]) if _pool_file(pool, r).is_file()]
        if per_class is not None and len(refs) > per_class:
            refs = [refs[i] for i in sorted(rng.choice(len(refs), per_class, replace=False))]
        for ref in refs:
            views = bench.views(ref)
            if not views:
                raise ValueError(f"test shape {ref.key} has no clean views")
            with np.load(_pool_file(pool, ref), allow_pickle=False) as f:
                images = f["images"]
            for k, image in enumerate(images):
                items.append(Item(ref, views[k % len(views)]))
                photos.append(image.transpose(1, 2, 0))
    if not items:
        raise ValueError(f"the pool at {pool} has no images of the benchmark's test shapes")
    return PhotoTestSet(bench, items, np.stack(photos), str(info.get("family")), pool)


def _pool_file(pool: Path, ref: ShapeRef) -> Path:
    return pool / "shapes" / ref.class_name / f"{ref.shape_id}.npz"


@dataclass
class PhotoRow:
    """One method on a photo test set: class accuracy on photos / clean views (None: the
    method reports no class), F@1% per item (N,) on photos and clean views, seconds spent
    (prediction and scoring)."""

    method: str
    accuracy_photo: float | None
    accuracy_clean: float | None
    fscore_photo: np.ndarray
    fscore_clean: np.ndarray
    seconds: float = 0.0

    @property
    def items(self) -> int:
        return len(self.fscore_photo)

    @property
    def ratio(self) -> float:
        """Mean photo F@1% / mean clean F@1% (NaN when the clean mean is 0)."""
        clean = float(self.fscore_clean.mean())
        return float(self.fscore_photo.mean()) / clean if clean > 0 else math.nan

    def ratio_interval(self, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
        """95 % paired bootstrap interval of `ratio` (items resampled with replacement)."""
        n = self.items
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        clean = self.fscore_clean[idx].mean(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(clean > 0, self.fscore_photo[idx].mean(1) / clean, np.nan)
        ratios = ratios[np.isfinite(ratios)]
        if len(ratios) == 0:
            return (math.nan, math.nan)
        lo, hi = np.percentile(ratios, [2.5, 97.5])
        return float(lo), float(hi)


def evaluate_photo_test(
    models: Mapping[str, Any],
    test: PhotoTestSet,
    protocol: Protocol = F_PROTOCOL,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[PhotoRow]:
    """Per method (name -> ReconstructionModel): predict every photo and its clean view, score
    both against the shape's ground truth with a `Scorer` of `protocol`, in chunks of
    `batch_size` items (ground truth read once per chunk)."""
    bench = test.benchmark
    scorer = Scorer(protocol, device=None, cache_size=2 * batch_size)
    key = protocol.headline
    photo_f = {m: [] for m in models}
    clean_f = {m: [] for m in models}
    preds_photo: dict[str, list[Prediction]] = {m: [] for m in models}
    preds_clean: dict[str, list[Prediction]] = {m: [] for m in models}
    seconds = dict.fromkeys(models, 0.0)
    n = len(test.items)
    for start in range(0, n, batch_size):
        chunk = test.items[start : start + batch_size]
        photos = test.photos[start : start + batch_size]
        gts = [bench.ground_truth(it) for it in chunk]
        keys = [str(bench.gt_dir(it)) for it in chunk]
        for name, model in models.items():
            t0 = time.perf_counter()
            p_photo = model.reconstruct(list(photos))
            p_clean = model.reconstruct_items(bench, chunk)
            for pp, pc, gt, k in zip(p_photo, p_clean, gts, keys, strict=True):
                photo_f[name].append(scorer.score(pp, gt, k).fscore[key])
                clean_f[name].append(scorer.score(pc, gt, k).fscore[key])
            # keep what accuracy needs, not the shapes
            preds_photo[name] += [_info_only(p) for p in p_photo]
            preds_clean[name] += [_info_only(p) for p in p_clean]
            seconds[name] += time.perf_counter() - t0
        if progress is not None:
            progress(f"{min(start + batch_size, n)}/{n} items")
    classes = test.classes
    return [
        PhotoRow(
            name,
            class_accuracy(preds_photo[name], classes),
            class_accuracy(preds_clean[name], classes),
            np.asarray(photo_f[name], dtype=np.float64),
            np.asarray(clean_f[name], dtype=np.float64),
            seconds[name],
        )
        for name in models
    ]


def _info_only(pred: Prediction) -> Prediction:
    return Prediction(pred.method, points=np.zeros((0, 3)), info=dict(pred.info))


# ------------------------------------------------------------------------------------------------
# Rotation grid and best-rotation F-score
# ------------------------------------------------------------------------------------------------


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_grid(
    azimuths: int = 24, tilts: Sequence[float] = (-30.0, -15.0, 0.0, 15.0, 30.0)
) -> np.ndarray:
    """Rotations float64 (len(tilts) * azimuths, 3, 3): Rx(tilt) @ Ry(360 k / azimuths), tilts
    outer, in degrees. A prediction x (object frame, +y up) is compared as R x: turned about
    its up axis, then tilted about x (a camera's horizontal axis, as a viewer frame would be
    for a camera at that elevation). Contains the identity when 0 is among the tilts."""
    if azimuths < 1:
        raise ValueError(f"azimuths must be positive, got {azimuths}")
    if not tilts or any(not -90.0 < float(t) < 90.0 for t in tilts):
        raise ValueError(f"tilts must lie in (-90, 90) degrees, got {tilts}")
    return np.stack(
        [_rot_x(float(t)) @ _rot_y(360.0 * k / azimuths) for t in tilts for k in range(azimuths)]
    )


def identity_index(rotations: np.ndarray) -> int:
    """Index of the identity in a grid (K, 3, 3); ValueError when it has none."""
    err = np.abs(np.asarray(rotations) - np.eye(3)).max(axis=(1, 2))
    k = int(err.argmin())
    if err[k] > 1e-9:
        raise ValueError("the rotation grid does not contain the identity")
    return k


@dataclass(frozen=True)
class Surface:
    """Surface samples of a shape: points float64 (N, 3) (N = 0 for an empty shape) and the
    points whose bounding box normalises it, extent float64 (M, 3) (its convex hull's
    vertices: the bounding box of any rotation of the shape is theirs)."""

    points: np.ndarray
    extent: np.ndarray

    @classmethod
    def from_mesh(cls, mesh: trimesh.Trimesh, n: int = N_SAMPLES, seed: int = PRED_SEED) -> Surface:
        """`n` area-uniform samples of a mesh (`svr.geometry.sample_surface`, `seed`)."""
        v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces)
        if len(f) == 0 or len(v) == 0:
            return cls(np.zeros((0, 3)), np.zeros((0, 3)))
        points = sample_surface(v, f, n, seed)[0]
        if len(points) == 0:
            return cls(np.zeros((0, 3)), np.zeros((0, 3)))
        return cls(points, _hull_vertices(v[np.unique(f)]))

    @classmethod
    def from_prediction(
        cls, pred: Prediction, n: int = N_SAMPLES, seed: int = PRED_SEED
    ) -> Surface:
        """Samples of a prediction's surface: its mesh, else the marching-cubes surface of its
        grid (as the leaderboard's protocol), else at most `n` of its points."""
        mesh = pred.to_mesh()
        if mesh is not None:
            return cls.from_mesh(mesh, n, seed)
        pts = np.asarray(pred.points, np.float64).reshape(-1, 3)
        if len(pts) > n:
            pts = pts[np.sort(np.random.default_rng(seed).choice(len(pts), n, replace=False))]
        return cls(pts, _hull_vertices(pts) if len(pts) else pts)

    def normalised(self, rotation: np.ndarray | None = None) -> np.ndarray:
        """The points turned by `rotation` (3, 3) (identity when None) and normalised:
        bounding box of the turned extent centred, longest side 1. float64 (N, 3)."""
        R = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        s, c = _normaliser(self.extent, R)
        return s * (self.points @ R.T - c)


def _hull_vertices(points: np.ndarray) -> np.ndarray:
    if len(points) < 5:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # flat or degenerate: every point bounds it
        return points


def _normaliser(extent: np.ndarray, R: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale s, centre c (3,)) of x -> s (R x - c) for the turned extent's bounding box."""
    turned = extent @ R.T
    lo, hi = turned.min(0), turned.max(0)
    side = float((hi - lo).max())
    if not side > 0:
        raise ValueError("cannot normalise a surface without extent")
    return 1.0 / side, (lo + hi) / 2


class AlignTarget:
    """A target shape's normalised surface samples (N, 3) with its k-d tree, reused across
    predictions and rotations."""

    def __init__(self, points: np.ndarray):
        self.points = np.ascontiguousarray(points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] != 3 or len(self.points) == 0:
            raise ValueError(f"target points must be a non-empty (N, 3) array, got {points.shape}")
        self.tree = cKDTree(self.points)

    @classmethod
    def from_mesh(cls, mesh: trimesh.Trimesh, n: int = N_SAMPLES, seed: int = SHAPE_SEED):
        """Samples of a mesh normalised by its bounding box (as `normalize_mesh`)."""
        return cls(Surface.from_mesh(mesh, n, seed).normalised())


@dataclass(frozen=True)
class RotationScore:
    """F@threshold of a prediction as it is (aligned) and at the best grid rotation (best >=
    aligned), with that rotation's grid index."""

    aligned: float
    best: float
    rotation: int


def fscore_within(points: np.ndarray, target: AlignTarget, threshold: float = THRESHOLD) -> float:
    """F-score at one threshold of points (N, 3) against the target's points, by the
    definition of `svr.metrics.fscore` (a point counts when its nearest neighbour in the other
    set is strictly closer than `threshold`; 0 for an empty set), from k-d tree queries bounded
    by the threshold: much faster than the full nearest distances when only F@t is needed.
    Equal to ``svr.metrics.fscore(points, target.points, threshold)["fscore"]`` (tested)."""
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    if len(pts) == 0:
        return 0.0
    d_p, _ = target.tree.query(pts, distance_upper_bound=threshold, workers=1)
    d_r, _ = cKDTree(pts).query(target.points, distance_upper_bound=threshold, workers=1)
    precision = float(np.count_nonzero(d_p < threshold)) / len(pts)
    recall = float(np.count_nonzero(d_r < threshold)) / len(target.points)
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0


# (probe samples per direction, rotations kept) of the successive estimates; then exact
PROBE_STAGES: tuple[tuple[int, int], ...] = ((250, 12), (2000, 3))


def best_rotation_fscore(
    pred: Surface,
    target: AlignTarget,
    rotations: np.ndarray,
    threshold: float = THRESHOLD,
    stages: Sequence[tuple[int, int]] = PROBE_STAGES,
    seed: int = 0,
) -> RotationScore:
    """F-score of `pred` against `target` at `threshold`, aligned and after the best rotation
    of `rotations` (K, 3, 3) (see the module docstring; the grid must contain the identity).
    An empty prediction scores 0."""
    rotations = np.asarray(rotations, np.float64)
    ident = identity_index(rotations)
    if len(pred.points) == 0:
        return RotationScore(0.0, 0.0, ident)
    rng = np.random.default_rng(seed)
    pred_tree = cKDTree(pred.points)
    keep = np.arange(len(rotations))
    for probe, n_keep in stages:
        proxy = _probe_fscores(pred, pred_tree, target, rotations[keep], threshold, probe, rng)
        keep = keep[np.argsort(-proxy, kind="stable")[:n_keep]]
    candidates = [ident] + [int(k) for k in keep if k != ident]
    exact = {k: fscore_within(pred.normalised(rotations[k]), target, threshold) for k in candidates}
    best = max(candidates, key=lambda k: (exact[k], -k))
    return RotationScore(exact[ident], exact[best], best)


def _probe_fscores(
    pred: Surface,
    pred_tree: cKDTree,
    target: AlignTarget,
    rotations: np.ndarray,
    threshold: float,
    probe: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Estimated F@threshold (K,) of the prediction turned by each rotation (K, 3, 3), from
    `probe` random samples per direction queried against all of the other set's samples."""
    p_probe = _subset(pred.points, probe, rng)
    g_probe = _subset(target.points, probe, rng)
    k_rot = len(rotations)
    rot_t = rotations.transpose(0, 2, 1)
    # x -> s_k (R_k x - c_k) for every rotation at once: bounding boxes of the turned extent
    turned = pred.extent @ rot_t  # (K, M, 3)
    lo, hi = turned.min(axis=1), turned.max(axis=1)
    scale = 1.0 / (hi - lo).max(axis=1)  # (K,)
    centre = (lo + hi) / 2  # (K, 3)
    q = scale[:, None, None] * (p_probe @ rot_t - centre[:, None])
    d_p, _ = target.tree.query(q.reshape(-1, 3), distance_upper_bound=threshold, workers=1)
    precision = (d_p.reshape(k_rot, -1) < threshold).mean(axis=1)
    # the target's points taken into the prediction's frame, x = R^T (y / s + c), where the
    # threshold becomes t / s
    y = (g_probe[None] / scale[:, None, None] + centre[:, None]) @ rotations
    bound = threshold / scale
    d_r, _ = pred_tree.query(y.reshape(-1, 3), distance_upper_bound=float(bound.max()), workers=1)
    recall = (d_r.reshape(k_rot, -1) < bound[:, None]).mean(axis=1)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def _subset(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[rng.choice(len(points), n, replace=False)]


# ------------------------------------------------------------------------------------------------
# Real shapes
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealView:
    """One photo-style view of a real shape: cluster index, its class, view index, the
    network input uint8 (S, S, 3), camera azimuth / elevation in degrees."""

    cluster: int
    class_name: str
    view: int
    image: np.ndarray
    azimuth: float = math.nan
    elevation: float = math.nan


@dataclass
class RealRow:
    """One method (or reference) on the real shapes' views: class accuracy (None: no class
    reported), F@1% per view (N,) aligned and at the best grid rotation, the best rotation's
    grid index per view, seconds spent."""

    method: str
    accuracy: float | None
    aligned: np.ndarray
    best: np.ndarray
    rotation: np.ndarray
    seconds: float = 0.0
    note: str = ""
    classes: list[str] = field(default_factory=list)
    predicted: list[str | None] = field(default_factory=list)

    @property
    def items(self) -> int:
        return len(self.aligned)


def evaluate_real_views(
    name: str,
    views: Sequence[RealView],
    targets: Mapping[int, AlignTarget],
    rotations: np.ndarray,
    predict: Callable[[Sequence[RealView]], list[Prediction]],
    batch_size: int = 16,
    note: str = "",
) -> RealRow:
    """Score `predict(views) -> predictions` (one per view, in order) against each view's
    shape (`targets[cluster]`): class accuracy, aligned and best-rotation F@1%."""
    t0 = time.perf_counter()
    preds_info: list[Prediction] = []
    scores: list[RotationScore] = []
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        preds = predict(chunk)
        if len(preds) != len(chunk):
            raise ValueError(f"{name}: {len(preds)} predictions for {len(chunk)} views")
        for view, pred in zip(chunk, preds, strict=True):
            surface = Surface.from_prediction(pred)
            scores.append(best_rotation_fscore(surface, targets[view.cluster], rotations))
            preds_info.append(_info_only(pred))
    classes = [v.class_name for v in views]
    return RealRow(
        name,
        class_accuracy(preds_info, classes),
        np.array([s.aligned for s in scores]),
        np.array([s.best for s in scores]),
        np.array([s.rotation for s in scores], dtype=np.int64),
        time.perf_counter() - t0,
        note,
        classes,
        [p.info.get("predicted_class") for p in preds_info],
    )


# ------------------------------------------------------------------------------------------------
# Tables (Markdown, ready for the README)
# ------------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def format_photo_table(rows: Sequence[PhotoRow]) -> str:
    """Markdown table of photo-test rows: class accuracy and F@1% on photos and clean views,
    the ratio with its 95 % bootstrap interval, seconds."""
    lines = [
        "| method | items | class acc. photo | class acc. clean | F@1% photo | F@1% clean "
        "| photo / clean (95 % CI) | s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r.ratio_interval()
        lines.append(
            f"| {r.method} | {r.items} | {_pct(r.accuracy_photo)} | {_pct(r.accuracy_clean)} "
            f"| {r.fscore_photo.mean():.3f} | {r.fscore_clean.mean():.3f} "
            f"| {r.ratio:.2f} ({lo:.2f}-{hi:.2f}) | {r.seconds:.0f} |"
        )
    return "\n".join(lines)


def format_real_table(rows: Sequence[RealRow]) -> str:
    """Markdown table of real-shape rows: class accuracy, aligned and best-rotation F@1%,
    share of views whose best rotation is the identity, seconds."""
    lines = [
        "| method | views | class acc. | F@1% aligned | F@1% best of grid | gain "
        "| best = identity | s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"{r.method} ({r.note})" if r.note else r.method
        lines.append(
            f"| {name} | {r.items} | {_pct(r.accuracy)} | {r.aligned.mean():.3f} "
            f"| {r.best.mean():.3f} | {r.best.mean() - r.aligned.mean():+.3f} "
            f"| {np.mean(r.best <= r.aligned):.0%} | {r.seconds:.0f} |"
        )
    return "\n".join(lines)


def format_per_class(rows: Sequence[RealRow], value: str = "aligned") -> str:
    """Markdown table of the mean `value` ("aligned" or "best" F@1%) per class (rows) and
    method (columns), with the number of views per class."""
    if not rows:
        return ""
    classes = rows[0].classes
    present = [c for c in CLASS_NAMES if c in classes]
    head = "| class | views | " + " | ".join(r.method for r in rows) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(rows)]
    for c in present:
        mask = np.array([k == c for k in classes])
        cells = " | ".join(f"{getattr(r, value)[mask].mean():.3f}" for r in rows)
        lines.append(f"| {c} | {int(mask.sum())} | {cells} |")
    return "\n".join(lines)


def format_confusions(rows: Sequence[RealRow]) -> str:
    """Markdown table, per true class (rows) and method (columns) that reports a class: the
    views named right of those of the class, then the commonest wrong answer with its count,
    e.g. "3/8, rifle x4" (ties: the first in CLASS_NAMES order)."""
    rows = [r for r in rows if any(p is not None for p in r.predicted)]
    if not rows:
        return ""
    classes = rows[0].classes
    present = [c for c in CLASS_NAMES if c in classes]
    lines = [
        "| class | " + " | ".join(r.method for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for c in present:
        cells = []
        for r in rows:
            said = [p for k, p in zip(r.classes, r.predicted, strict=True) if k == c]
            right = sum(p == c for p in said)
            wrong = Counter(p if p is not None else "none" for p in said if p != c)
            cell = f"{right}/{len(said)}"
            if wrong:
                order = {n: i for i, n in enumerate((*CLASS_NAMES, "none"))}
                top, count = min(wrong.items(), key=lambda kv: (-kv[1], order[kv[0]]))
                cell += f", {top} x{count}"
            cells.append(cell)
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
