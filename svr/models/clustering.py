"""Clustering baseline (recognition): k-means on the training shapes, a classifier picks a cluster.

Fitting: k-means (k-means++ initialisation, Lloyd iterations, fixed seed) on the training
targets' 32^3 grids flattened to {0, 1} vectors. Each cluster's mean shape is computed at
`output_resolution` (128^3 by default) from up to `members_per_cluster` of its members (a
seeded random subset: reading every member's 128^3 grid would dominate training time) and
thresholded at the value that maximises the mean IoU with those members (exact search over all
distinct mean values, `best_threshold`). An image classifier (ResNet-style encoder + linear)
learns the cluster of a training image's target by cross-entropy; at test time the predicted
cluster's mean shape is the answer.

Choice of K: the paper uses K = 500 for 55 classes (about 70 training shapes per cluster).
For the 13-class benchmark (2,600 training shapes, 13,000 targets in the viewer frame) the
default K = 100 gives about 8 clusters per class and 26 shapes (object frame) per cluster:
enough modes per class to separate, e.g., sofas from armchairs, few enough that every cluster
has members to average and the classifier sees each cluster often. K is clamped to the number
of training targets.

Size on disk: K thresholded 128^3 grids, bit-packed and zlib-compressed (about 6-20 KB each),
about 1-2 MB for K = 100.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import trimesh
from torch import nn

from svr.classes import CLASS_NAMES
from svr.data.dataset import Batch, TrainingData, pack_grids, unpack_grids
from svr.geometry import grid_to_mesh
from svr.models.base import ReconstructionModel
from svr.models.encoder import EncoderConfig, ImageEncoder
from svr.models.heads import camera_only, mirror_softmax
from svr.types import Prediction

__all__ = ["ClusteringConfig", "Clustering", "kmeans", "best_threshold", "member_mean_shape"]

logger = logging.getLogger(__name__)


def _squared_distances(
    x: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Squared Euclidean distances float32 (T, K) of rows x (T, D) (squared norms x_sq (T,))
    to centers (K, D)."""
    c = centers.to(torch.float32)
    c_sq = (c * c).sum(1)
    if x.dtype == torch.float32:
        return torch.addmm(x_sq[:, None] + c_sq[None], x, c.T, alpha=-2.0).clamp_min_(0.0)
    out = torch.empty(len(x), len(c))
    for s in range(0, len(x), chunk):
        xb = x[s : s + chunk].to(torch.float32)
        d = torch.addmm(x_sq[s : s + chunk, None] + c_sq[None], xb, c.T, alpha=-2.0)
        out[s : s + chunk] = d.clamp_min_(0.0)
    return out


def kmeans(
    x: np.ndarray | torch.Tensor,
    k: int,
    iterations: int = 30,
    seed: int = 0,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """K-means with k-means++ initialisation (squared Euclidean distance).

    Args:
        x: data (T, D), bool or float (kept in its dtype, converted per chunk).
        k: number of clusters, 1 <= k <= T.
        iterations: maximum Lloyd iterations (stops early when the assignment is stable).
        seed: seed of the initialisation; the result is deterministic for a given seed.
        chunk: rows per distance block (memory / speed trade-off).

    Returns:
        centers float32 (k, D) and labels int64 (T,). An empty cluster is re-seeded with the
        point farthest from its centre.
    """
    xt = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if xt.ndim != 2 or len(xt) == 0:
        raise ValueError(f"k-means needs a non-empty (T, D) array, got shape {tuple(xt.shape)}")
    if xt.dtype == torch.bool:
        xt = xt.to(torch.uint8)
    if xt.dtype != torch.float32 and xt.numel() <= 2**29:  # up to 2 GiB: convert once
        xt = xt.to(torch.float32)
    t = len(xt)
    if not 1 <= k <= t:
        raise ValueError(f"k must be between 1 and the number of points ({t}), got {k}")
    x_sq = torch.cat([(xb.to(torch.float32) ** 2).sum(1) for xb in xt.split(chunk)])
    gen = torch.Generator().manual_seed(int(seed))
    # k-means++: first centre uniform, then proportional to the squared distance to the nearest.
    idx = [int(torch.randint(t, (1,), generator=gen))]
    nearest = _squared_distances(xt, x_sq, xt[idx[0] : idx[0] + 1], chunk)[:, 0]
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 0:  # fewer distinct points than k: take any unused point
            unused = torch.ones(t, dtype=torch.bool)
            unused[idx] = False
            nxt = int(torch.nonzero(unused)[0])
        else:
            nxt = int(torch.multinomial(nearest / total, 1, generator=gen))
        idx.append(nxt)
        nearest = torch.minimum(
            nearest, _squared_distances(xt, x_sq, xt[nxt : nxt + 1], chunk)[:, 0]
        )
    centers = xt[idx].to(torch.float32)
    labels = torch.full((t,), -1, dtype=torch.int64)
    for it in range(iterations):
        d = _squared_distances(xt, x_sq, centers, chunk)
        new_labels = d.argmin(1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
        sums = torch.zeros_like(centers)
        for s in range(0, t, chunk):
            sums.index_add_(0, labels[s : s + chunk], xt[s : s + chunk].to(torch.float32))
        counts = torch.bincount(labels, minlength=k).to(torch.float32)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            far = d.gather(1, labels[:, None])[:, 0].argsort(descending=True)
            for j, e in enumerate(empty.tolist()):
                sums[e] = xt[far[j]].to(torch.float32)
                counts[e] = 1.0
        centers = sums / counts[:, None]
        logger.debug("k-means iteration %d", it)
    else:
        labels = _squared_distances(xt, x_sq, centers, chunk).argmin(1)
    return centers.numpy(), labels.numpy()


def best_threshold(mean: np.ndarray, members: np.ndarray) -> tuple[float, float]:
    """The threshold t maximising the mean IoU between (mean >= t) and each member grid.

    Exact: every distinct positive value of `mean` is a candidate (between two consecutive
    values the thresholded shape does not change). Args: mean float (D...) in [0, 1]; members
    bool (M, D...). Returns (threshold, mean IoU); ties go to the lowest threshold. Members
    whose union with the prediction is empty count as IoU 1.
    """
    mean = np.asarray(mean, dtype=np.float64).ravel()
    members = np.asarray(members, dtype=bool).reshape(len(members), -1)
    if members.shape[1] != mean.size or len(members) == 0:
        raise ValueError(f"members must be (M, {mean.size}) with M >= 1, got {members.shape}")
    positive = mean > 0
    levels = np.unique(mean[positive])  # ascending
    if levels.size == 0:
        return 0.5, float(np.mean([not m.any() for m in members]))
    lvl = np.full(mean.size, -1, dtype=np.int64)
    lvl[positive] = np.searchsorted(levels, mean[positive])
    n = levels.size
    # pred_size[j] = voxels with mean >= levels[j]
    pred_size = np.cumsum(np.bincount(lvl[positive], minlength=n)[::-1])[::-1].astype(np.float64)
    ious = np.zeros(n)
    for m in members:
        size = float(m.sum())
        hits = lvl[m & positive]
        inter = np.cumsum(np.bincount(hits, minlength=n)[::-1])[::-1].astype(np.float64)
        union = pred_size + size - inter
        ious += np.where(union > 0, inter / np.maximum(union, 1.0), 1.0)
    ious /= len(members)
    j = int(np.argmax(ious))
    return float(levels[j]), float(ious[j])


def member_mean_shape(grids: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Mean of member grids bool (M, R, R, R), thresholded by `best_threshold`.

    Returns (bool grid (R, R, R), threshold, mean IoU with the members)."""
    mean = grids.mean(axis=0, dtype=np.float64)
    thr, iou = best_threshold(mean, grids)
    return mean >= thr, thr, iou


def _read_grids(data: TrainingData, targets: np.ndarray, resolution: int) -> np.ndarray:
    if resolution == 32:
        return unpack_grids(data.vox32[targets], 32)
    from svr.data.layout import load_voxels

    return np.stack([load_voxels(data.root / data.target_keys[t], resolution) for t in targets])


def cluster_shapes(
    data: TrainingData,
    labels: np.ndarray,
    k: int,
    resolution: int,
    max_members: int,
    seed: int,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholded mean shape of each group of targets (labels int (T,) in 0..k-1).

    Returns packed grids uint8 (k, R^3/8), thresholds float32 (k,), mean IoU float32 (k,)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    packed, thresholds, ious = [], [], []
    for c in tqdm(range(k), desc="mean shapes", disable=not progress, leave=False):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            grid, thr, iou = np.zeros((resolution,) * 3, dtype=bool), 0.5, 0.0
        else:
            if len(members) > max_members:
                members = np.sort(rng.choice(members, size=max_members, replace=False))
            grid, thr, iou = member_mean_shape(_read_grids(data, members, resolution))
        packed.append(pack_grids(grid[None])[0])
        thresholds.append(thr)
        ious.append(iou)
    return np.stack(packed), np.asarray(thresholds, np.float32), np.asarray(ious, np.float32)


@dataclass(frozen=True)
class ClusteringConfig(EncoderConfig):
    """Clustering baseline. n_clusters K (clamped to the training targets); mean shapes at
    output_resolution (32 or 128) from up to members_per_cluster members each."""

    n_clusters: int = 100
    kmeans_iterations: int = 30
    output_resolution: int = 128
    members_per_cluster: int = 32
    weight_decay: float = 1e-4


class Clustering(ReconstructionModel):
    name = "clustering"
    kind = "recognition baseline"
    description = (
        "K-means on training shapes; a classifier picks the cluster, its mean shape is the answer."
    )
    config_class = ClusteringConfig
    target_fields = ("vox32",)
    representation = "voxels"
    mirror_answers = True

    def __init__(self, config: ClusteringConfig):
        super().__init__(config)
        if config.output_resolution not in (32, 128):
            raise ValueError("output_resolution must be 32 or 128 (the benchmark's grids)")
        self.encoder = ImageEncoder(config.channels, config.code_dim)
        self.head = nn.Linear(config.code_dim, config.n_clusters)
        self.make_view_heads()
        k, r = config.n_clusters, config.output_resolution
        self.shapes_packed = np.zeros((k, r**3 // 8), dtype=np.uint8)
        self.thresholds = np.full(k, 0.5, dtype=np.float32)
        self.member_iou = np.zeros(k, dtype=np.float32)
        self.class_counts = np.zeros((k, len(CLASS_NAMES)), dtype=np.int64)
        self._labels: torch.Tensor | None = None
        self._mesh_cache: dict[int, trimesh.Trimesh] = {}

    def prepare(self, data: TrainingData, progress: bool = False) -> None:
        cfg = self.config
        k = min(cfg.n_clusters, data.num_targets)
        if k != cfg.n_clusters:
            logger.warning("clamping K from %d to the %d training targets", cfg.n_clusters, k)
            self.config = dataclasses.replace(cfg, n_clusters=k)
            self.head = nn.Linear(cfg.code_dim, k).to(self.device)
        x = data.voxels32().reshape(data.num_targets, -1)
        _, labels = kmeans(x, k, cfg.kmeans_iterations, cfg.seed)
        self.shapes_packed, self.thresholds, self.member_iou = cluster_shapes(
            data, labels, k, cfg.output_resolution, cfg.members_per_cluster, cfg.seed, progress
        )
        counts = np.zeros((k, len(CLASS_NAMES)), dtype=np.int64)
        np.add.at(counts, (labels, data.target_class.numpy()), 1)
        self.class_counts = counts
        self._labels = torch.from_numpy(labels)
        self._mesh_cache.clear()
        logger.info(
            "clustering: K=%d, mean member IoU of the mean shapes %.3f",
            k,
            float(self.member_iou.mean()),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster logits float32 (B, K) of network inputs (B, 3, S, S)."""
        return self.head(self.encoder(x))

    def training_loss(self, batch: Batch) -> torch.Tensor:
        if self._labels is None:
            raise ValueError("call prepare(train_data) before training the classifier")
        target = self._labels.to(batch.target_ids.device)[batch.target_ids]
        code = self.encoder(batch.images)
        return nn.functional.cross_entropy(self.head(code), target) + self.view_loss(code, batch)

    def cluster_grid(self, c: int) -> np.ndarray:
        """Mean shape of cluster c: bool (R, R, R)."""
        return unpack_grids(self.shapes_packed[c : c + 1], self.config.output_resolution)[0]

    def cluster_mesh(self, c: int) -> trimesh.Trimesh:
        if c not in self._mesh_cache:
            v, f = grid_to_mesh(self.cluster_grid(c).astype(np.float32), 0.5)
            self._mesh_cache[c] = trimesh.Trimesh(v, f, process=False)
        return self._mesh_cache[c].copy()

    def predict_batch(self, x: torch.Tensor) -> list[Prediction]:
        code, mirrored = self.encoder(x), self.mirrored_code(x)
        probs = mirror_softmax(self.head, code, mirrored).cpu().numpy()
        shares = self.class_counts / np.maximum(self.class_counts.sum(1, keepdims=True), 1)
        out = []
        for p, view in zip(probs, self.view_info(code, mirrored), strict=True):
            c = int(p.argmax())
            class_probs = p @ shares
            info: dict[str, Any] = {
                **camera_only(view),
                "cluster": c,
                "cluster_probability": float(p[c]),
                "cluster_size": int(self.class_counts[c].sum()),
                "cluster_classes": {
                    CLASS_NAMES[j]: round(float(shares[c, j]), 4) for j in np.flatnonzero(shares[c])
                },
                "predicted_class": CLASS_NAMES[int(class_probs.argmax())],
                "class_probability": round(float(class_probs.max()), 4),
            }
            out.append(
                Prediction(
                    method=self.name,
                    mesh=self.cluster_mesh(c),
                    occupancy=self.cluster_grid(c),
                    threshold=0.5,
                    info=info,
                )
            )
        return out

    def export_arrays(self) -> dict[str, np.ndarray]:
        return {
            "shapes_packed": self.shapes_packed,
            "thresholds": self.thresholds,
            "member_iou": self.member_iou,
            "class_counts": self.class_counts,
        }

    def import_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        k, r = self.config.n_clusters, self.config.output_resolution
        if arrays["shapes_packed"].shape != (k, r**3 // 8):
            raise ValueError(
                f"arrays.npz holds {arrays['shapes_packed'].shape} shapes, config says K={k}, R={r}"
            )
        self.shapes_packed = arrays["shapes_packed"]
        self.thresholds = arrays["thresholds"]
        self.member_iou = arrays["member_iou"]
        self.class_counts = arrays["class_counts"]
        self._mesh_cache.clear()

    def card_notes(self) -> str:
        k = self.config.n_clusters
        return (
            f"K = {k} clusters of the training targets' 32^3 grids (k-means++, seed {self.config.seed}). "
            f"Mean shapes at {self.config.output_resolution}^3 from up to "
            f"{self.config.members_per_cluster} members per cluster, each thresholded at the value "
            "maximising the mean IoU with those members "
            f"(mean member IoU {float(np.mean(self.member_iou)):.3f}). "
            "The answer is a shape of the training set's clusters: this baseline recognises, "
            "it cannot reconstruct."
        )
