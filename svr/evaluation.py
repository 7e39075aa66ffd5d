"""The scoring protocol and the evaluation of one predicted item against its ground truth.

A :class:`Protocol` fixes everything that changes a score (sample counts, seed, thresholds, IoU
resolutions, worst-case values); its ``identifier`` names it in stored results.

Conversions of each representation to the metrics of :mod:`svr.metrics`:

- **Voxel grid** (cubic, resolution 16..256; bool, integer or float values, occupied where
  ``value >= threshold``, threshold 0.5 unless declared):
  - IoU at 32^3 and 128^3 against the ground truth's grids. A grid of the target resolution is
    used as it is; a grid whose resolution is a multiple of the target is mean-pooled (share of
    occupied sub-voxels per target voxel, occupied when >= 0.5); any other resolution is
    resampled by nearest voxel centre: target voxel i takes the value of the source voxel that
    contains its centre, index floor((i + 0.5) * R / R_target) (exact integer arithmetic), which
    also upsamples coarser grids by replication.
  - Surface: marching cubes (:func:`svr.geometry.grid_to_mesh`) at the declared threshold for
    float grids, at 0.5 of the 0/1 occupancy for bool and integer grids; then
    ``sample_surface(n_samples, seed)``, which also gives the normals.
- **Mesh** (vertices (V, 3), faces (F, 3)): surface samples and face normals by
  ``sample_surface(n_samples, seed)`` for F-score, Chamfer and normal consistency; occupancy for
  IoU by :func:`svr.geometry.voxelize_mesh` (ray parity along x, y and z with a majority vote;
  exact for watertight meshes, an approximation for open ones).
- **Point cloud** (N, 3): F-score and Chamfer only; IoU and normal consistency are not
  applicable (None, never 0). More than n_samples points are subsampled without replacement
  with the protocol seed; fewer are used as they are.
- **Ground truth**: ``gt.points`` / ``gt.normals`` (100k surface samples) are subsampled to
  n_samples without replacement with the protocol seed, so both clouds have the same size as in
  what3d-style evaluation; ``gt.voxels_32`` / ``gt.voxels_128`` for IoU.

An empty prediction (no faces or no area, no points, an empty grid) scores precision = recall =
F = 0 at every threshold, Chamfer = the protocol's worst values, normal consistency 0 (for
meshes and grids), IoU as computed (0 against a non-empty ground truth), and is flagged
``empty``. Missing items get :func:`missing_item_score`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from svr.metrics import DEFAULT_THRESHOLDS, GroundTruthIndex, PointIndex, point_metrics, voxel_iou
from svr.predictions import (
    PredictionCache,
    PredictionData,
    prediction_digest,
    prediction_occupancy,
    prediction_surface,
    resample_occupancy,
    subsample_points,
)

if TYPE_CHECKING:
    from svr.data.layout import GroundTruth
    from svr.types import Prediction

__all__ = [
    "Protocol",
    "DEFAULT_PROTOCOL",
    "PredictionData",
    "ItemScore",
    "Scorer",
    "score_item",
    "missing_item_score",
    "metric_keys",
    "resample_occupancy",
    "subsample_points",
]

logger = logging.getLogger(__name__)

_GT_RESOLUTIONS = (32, 128)


def _threshold_key(t: float) -> str:
    return f"{t:g}"


@dataclass(frozen=True)
class Protocol:
    """Everything that determines a score.

    version: protocol name; n_samples: surface samples per prediction and ground truth;
    seed: seed of surface sampling and subsampling; thresholds: F-score distances (unit-cube
    units); headline: the threshold of the headline F-score; iou_resolutions: IoU grids (a
    subset of (32, 128), the ground truth's grids); chamfer_l1_worst / chamfer_l2_worst: the
    values given to empty or missing predictions, the largest values two point sets inside
    the unit cube can reach (0.5 * (sqrt 3 + sqrt 3) = sqrt 3 for L1; 3 + 3 = 6 for L2).

    Sampling limits the F-score at small thresholds: with N samples on each of two identical
    surfaces of area A, a point has no sample of the other set within t with probability about
    exp(-N pi t^2 / A), so even a perfect prediction scores F@t ~ 1 - exp(-N pi t^2 / A):
    with N = 10,000 and t = 0.01 that is 0.72 for a 1 x 0.6 x 0.4 box (A = 2.48) and 0.41 for
    the unit cube (A = 6). Raise n_samples (the ground truth holds 100,000 points) to lift it.
    """

    version: str = "svr-eval-1"
    n_samples: int = 10_000
    seed: int = 0
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    headline: float = 0.01
    iou_resolutions: tuple[int, ...] = (32, 128)
    chamfer_l1_worst: float = math.sqrt(3.0)
    chamfer_l2_worst: float = 6.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        object.__setattr__(self, "iou_resolutions", tuple(int(r) for r in self.iou_resolutions))
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {self.n_samples}")
        if not self.thresholds or any(not (t > 0 and math.isfinite(t)) for t in self.thresholds):
            raise ValueError(f"thresholds must be positive and finite, got {self.thresholds}")
        if self.headline not in self.thresholds:
            raise ValueError(
                f"headline {self.headline} must be one of thresholds {self.thresholds}"
            )
        bad = [r for r in self.iou_resolutions if r not in _GT_RESOLUTIONS]
        if bad:
            raise ValueError(f"iou_resolutions must be a subset of {_GT_RESOLUTIONS}, got {bad}")

    @property
    def chamfer_worst(self) -> dict[str, float]:
        """{"chamfer_l1": worst, "chamfer_l2": worst}."""
        return {"chamfer_l1": self.chamfer_l1_worst, "chamfer_l2": self.chamfer_l2_worst}

    @property
    def headline_key(self) -> str:
        """The metric key of the headline F-score, e.g. "fscore@0.01"."""
        return f"fscore@{_threshold_key(self.headline)}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["thresholds"] = list(self.thresholds)
        d["iou_resolutions"] = list(self.iou_resolutions)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown protocol fields {sorted(unknown)}")
        kwargs = dict(data)
        for name in ("thresholds", "iou_resolutions"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    @property
    def identifier(self) -> str:
        """``<version>-<8 hex>``: the hash covers every field, so any change gives a new id."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.version}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


DEFAULT_PROTOCOL = Protocol()


def metric_keys(protocol: Protocol = DEFAULT_PROTOCOL) -> list[str]:
    """The keys of :meth:`ItemScore.to_dict` under `protocol`, in order."""
    keys = ["iou", "iou_128"]
    for name in ("fscore", "precision", "recall"):
        keys += [f"{name}@{_threshold_key(t)}" for t in protocol.thresholds]
    return keys + ["chamfer_l1", "chamfer_l2", "normal_consistency"]


# ------------------------------------------------------------------------------------------------
# Scores
# ------------------------------------------------------------------------------------------------


@dataclass
class ItemScore:
    """Scores of one item. iou / iou_128: IoU at 32^3 / 128^3, None when not applicable
    (point clouds) or not in the protocol; fscore, precision, recall: {threshold: value};
    chamfer_l1 / chamfer_l2 in unit-cube units (squared for L2); normal_consistency in [0, 1]
    or None for point clouds; empty: the prediction had no surface; kind: "mesh", "voxels",
    "points" or "missing"."""

    iou: float | None
    iou_128: float | None
    fscore: dict[float, float]
    precision: dict[float, float]
    recall: dict[float, float]
    chamfer_l1: float
    chamfer_l2: float
    normal_consistency: float | None
    empty: bool = False
    kind: str = ""

    def to_dict(self) -> dict[str, float | None]:
        """Metric key -> value: iou, iou_128, fscore@<t>, precision@<t>, recall@<t> for every
        threshold t (formatted with ``f"{t:g}"``, e.g. fscore@0.01), chamfer_l1, chamfer_l2,
        normal_consistency. Not-applicable metrics are None."""
        out: dict[str, float | None] = {"iou": self.iou, "iou_128": self.iou_128}
        for name, values in (
            ("fscore", self.fscore),
            ("precision", self.precision),
            ("recall", self.recall),
        ):
            for t, v in values.items():
                out[f"{name}@{_threshold_key(t)}"] = v
        out["chamfer_l1"] = self.chamfer_l1
        out["chamfer_l2"] = self.chamfer_l2
        out["normal_consistency"] = self.normal_consistency
        return out


def _opt_float(x: float | None) -> float | None:
    return None if x is None else float(x)


def missing_item_score(protocol: Protocol = DEFAULT_PROTOCOL, kind: str | None = None) -> ItemScore:
    """The score of an item absent from a submission: F = precision = recall = 0, IoU 0,
    Chamfer at the protocol's worst values, normal consistency 0. For a point-cloud
    submission (kind="points") IoU and normal consistency stay not applicable (None)."""
    points = kind == "points"
    zero = {t: 0.0 for t in protocol.thresholds}
    return ItemScore(
        iou=None if points or 32 not in protocol.iou_resolutions else 0.0,
        iou_128=None if points or 128 not in protocol.iou_resolutions else 0.0,
        fscore=dict(zero),
        precision=dict(zero),
        recall=dict(zero),
        chamfer_l1=protocol.chamfer_l1_worst,
        chamfer_l2=protocol.chamfer_l2_worst,
        normal_consistency=None if points else 0.0,
        empty=True,
        kind="missing",
    )


def _resolve_device(device: Any) -> Any:
    """None -> "cuda" when torch sees a GPU, else None (the exact CPU k-d tree)."""
    if device is not None:
        return device
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else None


class Scorer:
    """Scores items under one protocol, reusing each ground truth's subsampled points and k-d
    tree across the items that share it (the 5 views of a shape in the object frame).

    Pass a `key` naming the ground truth (e.g. its folder, ``str(benchmark.gt_dir(item))``)
    to enable the reuse; without a key nothing is cached. device: None picks CUDA when
    available, else the CPU k-d tree; results are identical either way.
    prediction_cache: how many distinct predictions' surface samples and grids to keep
    (:class:`svr.predictions.PredictionCache`; 0: none), for methods that answer many items
    with the same shape; scores are the same either way.
    """

    def __init__(
        self,
        protocol: Protocol = DEFAULT_PROTOCOL,
        device: Any = None,
        cache_size: int | None = 64,
        prediction_cache: int = 0,
    ):
        self.protocol = protocol
        self.device = _resolve_device(device)
        self.index = GroundTruthIndex(max_entries=cache_size)
        self.predictions = PredictionCache(prediction_cache) if prediction_cache > 0 else None

    def ground_truth_points(self, gt: GroundTruth, key: Hashable | None = None) -> PointIndex:
        """The protocol's subsample of gt.points / gt.normals as a PointIndex (cached by key)."""

        def build() -> PointIndex:
            if gt.points is None or len(gt.points) == 0:
                raise ValueError("the ground truth has no surface points")
            pts, normals = subsample_points(
                np.asarray(gt.points), self.protocol.n_samples, self.protocol.seed,
                None if gt.normals is None else np.asarray(gt.normals),
            )  # fmt: skip
            return PointIndex(pts, normals)

        if key is None:
            return build()
        # Concurrent items of one new ground truth (score_many's threads) build it once.
        return self.index.get_or_build(key, build)

    def score(
        self,
        pred: Prediction | PredictionData,
        gt: GroundTruth,
        key: Hashable | None = None,
        workers: int = -1,
    ) -> ItemScore:
        """Score one prediction against its ground truth (see the module docstring)."""
        data = pred if isinstance(pred, PredictionData) else PredictionData.from_prediction(pred)
        protocol = self.protocol
        gt_index = self.ground_truth_points(gt, key)
        kind = data.kind
        cache = self.predictions
        digest = None if cache is None else prediction_digest(data)
        ious: dict[int, float | None] = {32: None, 128: None}
        for res in protocol.iou_resolutions:
            occ = (
                prediction_occupancy(data, res)
                if cache is None
                else cache.occupancy(data, digest, res)
            )
            if occ is not None:
                target = gt.voxels_32 if res == 32 else gt.voxels_128
                if target is None:
                    raise ValueError(f"the ground truth has no {res}^3 grid")
                ious[res] = float(voxel_iou(occ, np.asarray(target, dtype=bool)))
        pts, normals = (
            prediction_surface(data, protocol.n_samples, protocol.seed)
            if cache is None
            else cache.surface(data, digest, protocol.n_samples, protocol.seed)
        )
        use_normals = normals is not None and gt_index.normals is not None
        if len(pts) == 0:
            score = missing_item_score(protocol, kind)
            score.iou, score.iou_128 = ious[32], ious[128]
            score.kind = kind
            return score
        m = point_metrics(
            pts, gt_index, protocol.thresholds,
            pred_normals=normals if use_normals else None,
            device=self.device, workers=workers,
        )  # fmt: skip
        ts = protocol.thresholds
        return ItemScore(
            iou=ious[32],
            iou_128=ious[128],
            fscore={t: float(v) for t, v in zip(ts, m.fscore, strict=True)},
            precision={t: float(v) for t, v in zip(ts, m.precision, strict=True)},
            recall={t: float(v) for t, v in zip(ts, m.recall, strict=True)},
            chamfer_l1=float(m.chamfer_l1),
            chamfer_l2=float(m.chamfer_l2),
            normal_consistency=_opt_float(m.normal_consistency) if kind != "points" else None,
            empty=False,
            kind=kind,
        )

    def score_many(
        self,
        items: Iterable[tuple[Prediction | PredictionData | None, GroundTruth, Hashable | None]],
        threads: int | None = None,
    ) -> list[ItemScore]:
        """Score (prediction, ground truth, key) triples; a None prediction is a missing item.

        On the CPU, `threads` items run concurrently (default: all cores), each k-d tree query
        single-threaded; the order of the results is the order of `items`.
        """
        triples = list(items)
        n_threads = 1 if self.device is not None else (threads or max(1, os.cpu_count() or 1))

        def one(t: tuple[Any, GroundTruth, Hashable | None]) -> ItemScore:
            pred, gt, key = t
            if pred is None:
                return missing_item_score(self.protocol)
            return self.score(pred, gt, key, workers=1 if n_threads > 1 else -1)

        if n_threads <= 1 or len(triples) <= 1:
            return [one(t) for t in triples]
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            return list(pool.map(one, triples))


def score_item(
    pred: Prediction | PredictionData,
    gt: GroundTruth,
    protocol: Protocol = DEFAULT_PROTOCOL,
    device: Any = None,
) -> ItemScore:
    """Score one prediction (a Prediction or PredictionData) against a GroundTruth.

    For many items use a :class:`Scorer` with keys, which reuses each ground truth's k-d tree.
    """
    return Scorer(protocol, device, cache_size=1).score(pred, gt)
