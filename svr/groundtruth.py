"""A reconstruction against the ground truth of a public benchmark item (train/val only).

`compare_with_ground_truth` scores it with the benchmark's scoring (`svr.evaluation.
score_item`), writes the ground-truth mesh as a GLB for the viewer (same orientation as the
output: +y up, front towards +z) and draws the paper-style precision/recall view. The test
split's ground truth is never shown: asking for it raises ValueError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import trimesh

from svr.export import export_bytes
from svr.io import atomic_path
from svr.types import Prediction

if TYPE_CHECKING:
    from svr.inference import Reconstruction

__all__ = [
    "GroundTruthComparison",
    "compare_with_ground_truth",
    "ground_truth_scores",
    "precision_recall_figure",
]


@dataclass
class GroundTruthComparison:
    """A reconstruction scored against a public (train/val) item's ground truth.

    fscore / precision / recall at distance 0.01 (1% of the unit cube's side), iou at 32^3
    (None for point clouds); gt_glb: the ground-truth mesh for the viewer; figure: PNG of
    the precision/recall view.
    """

    item_id: str
    split: str
    fscore: float
    precision: float
    recall: float
    iou: float | None
    gt_glb: Path
    figure: Path


def precision_recall_figure(
    pred_points: np.ndarray,
    gt_points: np.ndarray,
    threshold: float,
    path: str | os.PathLike,
    title: str = "",
    scores: tuple[float, float] | None = None,
) -> Path:
    """Save the paper-style precision/recall view as a PNG.

    Left: predicted points (N, 3) coloured by their distance to the ground truth
    (precision: blue = within `threshold`, yellow/red = far). Right: ground-truth points
    (M, 3) coloured by their distance to the prediction (recall). Colours saturate at
    3 x threshold. Axes are the object frame, +y drawn up.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from svr.metrics import nearest_distances

    d_pred = nearest_distances(pred_points, gt_points)[0]
    d_gt = nearest_distances(gt_points, pred_points)[0]
    precision, recall = (
        scores if scores is not None else (np.mean(d_pred < threshold), np.mean(d_gt < threshold))
    )
    fig = Figure(figsize=(8, 3.6), dpi=90)
    fig.subplots_adjust(left=0.0, right=0.86, bottom=0.02, top=0.88, wspace=0.0)
    panels = (
        (
            pred_points,
            d_pred,
            f"precision {precision:.3f}: output points\ncoloured by distance to the GT",
        ),
        (gt_points, d_gt, f"recall {recall:.3f}: GT points\ncoloured by distance to the output"),
    )
    for i, (pts, dist, label) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 2, i, projection="3d")
        # plot (x, z, y) so that the object's +y is the plot's vertical axis
        sc = ax.scatter(
            pts[:, 0],
            pts[:, 2],
            pts[:, 1],
            c=np.minimum(dist, 3 * threshold),
            cmap="plasma",
            vmin=0,
            vmax=3 * threshold,
            s=1.5,
            linewidths=0,
        )
        ax.set_xlim(-0.5, 0.5), ax.set_ylim(-0.5, 0.5), ax.set_zlim(-0.5, 0.5)
        ax.view_init(elev=20, azim=-60)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    cax = fig.add_axes((0.88, 0.15, 0.02, 0.65))
    fig.colorbar(sc, cax=cax, label=f"distance (unit cube; {threshold:g} = threshold)")
    if title:
        fig.suptitle(title, fontsize=10)
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out


def _public_ground_truth(benchmark_dir: str | os.PathLike, item_id: str, split: str) -> Any:
    from svr.data.layout import Benchmark

    if split not in ("train", "val"):
        raise ValueError(
            f"ground truth of the {split!r} split is not shown (only train and val are public)"
        )
    bench = Benchmark(benchmark_dir)
    return bench.ground_truth(bench.item(item_id, split=split), with_mesh=True)


def ground_truth_scores(
    benchmark_dir: str | os.PathLike, item_id: str, prediction: Prediction, split: str = "val"
) -> tuple[float, float | None]:
    """(F@1%, IoU at 32^3 or None) of a prediction against a public item's ground truth,
    with the benchmark's scoring (`svr.evaluation.score_item`). ValueError for the test split."""
    from svr.evaluation import score_item

    score = score_item(prediction, _public_ground_truth(benchmark_dir, item_id, split))
    return float(score.fscore.get(0.01, np.nan)), score.iou


def compare_with_ground_truth(
    benchmark_dir: str | os.PathLike,
    item_id: str,
    rec: Reconstruction,
    out_dir: str | os.PathLike,
    split: str = "val",
    n_points: int = 4000,
) -> GroundTruthComparison:
    """Score `rec` against the ground truth of a public benchmark item and draw it.

    Uses the benchmark's scoring (`svr.evaluation.score_item`). Raises ValueError for the
    test split: its ground truth is hidden and never shown.
    """
    from svr.evaluation import score_item

    gt = _public_ground_truth(benchmark_dir, item_id, split)
    score = score_item(rec.prediction, gt)
    t = 0.01
    out = Path(out_dir)
    gt_mesh = trimesh.Trimesh(gt.mesh.vertices, gt.mesh.faces, process=False)
    gt_mesh.visual.face_colors = np.array([120, 190, 120, 255], np.uint8)
    gt_glb = out / "ground_truth.glb"
    with atomic_path(gt_glb) as tmp:
        tmp.write_bytes(export_bytes(trimesh.Scene(gt_mesh), "glb"))
    rng = np.random.default_rng(0)
    gt_pts = np.asarray(gt.points, dtype=np.float64)
    gt_pts = gt_pts[rng.choice(len(gt_pts), size=min(n_points, len(gt_pts)), replace=False)]
    pred_pts = rec.prediction.to_points(n_points, seed=0)
    precision, recall = float(score.precision.get(t, np.nan)), float(score.recall.get(t, np.nan))
    figure = precision_recall_figure(
        pred_pts, gt_pts, t, out / "precision_recall.png", scores=(precision, recall)
    )
    return GroundTruthComparison(
        item_id=item_id,
        split=split,
        fscore=float(score.fscore.get(t, np.nan)),
        precision=precision,
        recall=recall,
        iou=score.iou,
        gt_glb=gt_glb,
        figure=figure,
    )
