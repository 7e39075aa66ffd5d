"""Retrieval baseline (recognition): embed the training shapes, regress images to the embedding,
answer with the nearest training shape.

Fitting: the similarity of two training targets is their IoU at 32^3 (the paper used the Light
Field Descriptor; IoU is what this benchmark measures and is cheap: bool matrix products);
distances 1 - IoU are embedded in `embedding_dim` dimensions by classical MDS (initialisation)
followed by Sammon mapping (gradient descent with Adam on the Sammon stress). A CNN (encoder +
linear) regresses an image to its target's embedding (MSE, embedding scaled to unit variance).
At test time the nearest database entry to the predicted embedding is the answer.

Database. At most `max_database` targets (a seeded random subset when the training split has
more, as in the viewer frame where every (shape, view) is a target) form the database; only the
images of those targets train the regressor, and (`extend_to_all`, default) so do all other
training images, each regressed to the embedding of the database entry most similar (IoU) to
its target. The saved model keeps each database entry's 32^3
grid bit-packed and compressed (well under 1 KB each), so it answers without the benchmark at
32^3 (marching cubes). When the benchmark folder it was trained on is present
(`database_root`, recorded at training and checked at load), the answer is the training
shape's own mesh and 128^3 grid instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import nn

from svr.data.dataset import Batch, TrainingData, unpack_grids
from svr.geometry import grid_to_mesh
from svr.models.base import ReconstructionModel
from svr.models.encoder import EncoderConfig, ImageEncoder
from svr.models.heads import camera_only
from svr.types import Prediction

__all__ = [
    "RetrievalConfig",
    "Retrieval",
    "pairwise_iou",
    "classical_mds",
    "sammon",
    "sammon_stress",
]

logger = logging.getLogger(__name__)


def pairwise_iou(a: np.ndarray, b: np.ndarray | None = None, chunk: int = 1024) -> np.ndarray:
    """IoU of every pair of flattened bool grids: a (T, D), b (U, D) (default a) -> float32 (T, U).

    Intersections by float32 matrix products (exact for D < 2^24); two empty grids have IoU 1.
    """
    a_t = torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=bool).reshape(len(a), -1)))
    b_t = (
        a_t
        if b is None
        else torch.from_numpy(np.ascontiguousarray(np.asarray(b, dtype=bool).reshape(len(b), -1)))
    )
    if a_t.shape[1] != b_t.shape[1]:
        raise ValueError(f"grids differ in size: {a_t.shape[1]} vs {b_t.shape[1]} voxels")
    size_a = a_t.sum(1).to(torch.float32)
    size_b = b_t.sum(1).to(torch.float32)
    out = torch.empty(len(a_t), len(b_t))
    for s in range(0, len(b_t), chunk):
        bf = b_t[s : s + chunk].to(torch.float32)
        for r in range(0, len(a_t), chunk):
            inter = a_t[r : r + chunk].to(torch.float32) @ bf.T
            union = size_a[r : r + chunk, None] + size_b[None, s : s + chunk] - inter
            out[r : r + chunk, s : s + chunk] = torch.where(
                union > 0, inter / union.clamp_min(1), 1.0
            )
    return out.numpy()


def classical_mds(d: np.ndarray, dim: int, seed: int = 0, iterations: int = 12) -> np.ndarray:
    """Classical (Torgerson) MDS of a symmetric distance matrix d (T, T) -> float32 (T, dim).

    Double-centres B = -J d^2 J / 2 and keeps its top `dim` eigenvectors scaled by
    sqrt(eigenvalue) (zero for non-positive eigenvalues). The eigenvectors come from a dense
    solver for T <= 1000 and from randomised subspace iteration (`iterations` power steps with
    a seeded start) above, which costs O(T^2 dim) per step instead of O(T^3)."""
    dt = torch.as_tensor(np.asarray(d), dtype=torch.float64)
    t = len(dt)
    if dt.ndim != 2 or dt.shape[1] != t:
        raise ValueError(f"a distance matrix must be square, got {tuple(dt.shape)}")
    b = -0.5 * dt * dt
    b = b - b.mean(0, keepdim=True) - b.mean(1, keepdim=True) + b.mean()
    k = min(dim, t)
    if t <= 1000:
        vals, vecs = torch.linalg.eigh(b)
        order = torch.argsort(vals, descending=True)[:k]
        vals, vecs = vals[order], vecs[:, order]
    else:
        gen = torch.Generator().manual_seed(int(seed))
        q = torch.linalg.qr(torch.randn(t, k + 8, generator=gen, dtype=torch.float64))[0]
        for _ in range(iterations):
            q = torch.linalg.qr(b @ q)[0]
        small = q.T @ b @ q
        vals, vecs = torch.linalg.eigh(0.5 * (small + small.T))
        order = torch.argsort(vals, descending=True)[:k]
        vals, vecs = vals[order], q @ vecs[:, order]
    out = vecs * vals.clamp_min(0).sqrt()[None]
    if out.shape[1] < dim:
        out = torch.cat([out, torch.zeros(t, dim - out.shape[1], dtype=out.dtype)], 1)
    return out.to(torch.float32).numpy()


def _sammon_weights(d: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, float]:
    """Weights 1 / d_ij on pairs i != j with d_ij > 0 (else 0), and sum_{i != j} d_ij."""
    mask = d > 0
    mask.fill_diagonal_(False)
    w = torch.zeros_like(d)
    w[mask] = 1.0 / d[mask]
    return w, max(float(d[mask].sum()), eps)


def _stress(
    d: torch.Tensor, w: torch.Tensor, total: float, y: torch.Tensor, eps: float
) -> torch.Tensor:
    sq = (y * y).sum(1)
    e = torch.sqrt((sq[:, None] + sq[None, :] - 2.0 * (y @ y.T)).clamp_min(0.0) + eps)
    return ((d - e).square_() * w).sum() / total


def _stress_and_grad(
    d: torch.Tensor, w: torch.Tensor, total: float, y: torch.Tensor, eps: float
) -> tuple[float, torch.Tensor]:
    """Stress and its analytic gradient (T, k), with few passes over the (T, T) matrices:
    dE/dy_i = 4 / total * sum_j w_ij (e_ij - d_ij) / e_ij (y_i - y_j)."""
    sq = (y * y).sum(1)
    e = torch.addmm(sq[:, None] + sq[None, :], y, y.T, alpha=-2.0)
    e.clamp_min_(0.0).add_(eps).sqrt_()
    c = e.sub(d)  # e - d
    stress = float(torch.sum(c.square() * w)) / total
    c.mul_(w).div_(e)
    grad = (4.0 / total) * (c.sum(1, keepdim=True) * y - c @ y)
    return stress, grad


def sammon_stress(d: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Sammon stress of an embedding y (T, k) for target distances d (T, T):
    sum_{i<j} (d_ij - |y_i - y_j|)^2 / d_ij / sum_{i<j} d_ij (pairs with d_ij = 0 are skipped).

    Computed on the full (T, T) matrices (both triangles: the factor 2 cancels)."""
    w, total = _sammon_weights(d, eps)
    return _stress(d, w, total, y, eps)


def sammon(
    d: np.ndarray,
    dim: int,
    init: np.ndarray | None = None,
    iterations: int = 300,
    lr: float = 0.01,
    seed: int = 0,
) -> tuple[np.ndarray, list[float]]:
    """Sammon mapping: minimise the Sammon stress by gradient descent (Adam) in torch.

    Args:
        d: symmetric distances float (T, T).
        dim: embedding dimension.
        init: starting embedding (T, dim); default classical MDS.
        iterations: Adam steps; lr its learning rate relative to the mean distance.
        seed: seed of the jitter that separates coincident starting points.

    Returns:
        embedding float32 (T, dim) and the stress before each step plus the final stress.
    """
    dt = torch.as_tensor(np.asarray(d), dtype=torch.float32)
    if init is None:
        init = classical_mds(d, dim, seed)
    eps = 1e-12
    w, total = _sammon_weights(dt, eps)
    gen = torch.Generator().manual_seed(int(seed))
    y0 = torch.as_tensor(np.asarray(init), dtype=torch.float32).clone()
    scale = max(float(dt.mean()) if dt.numel() else 1.0, 1e-6)
    y0 += 1e-4 * scale * torch.randn(y0.shape, generator=gen)
    y = y0
    opt = torch.optim.Adam([y], lr=lr * scale)
    history: list[float] = []
    for _ in range(iterations):
        stress, grad = _stress_and_grad(dt, w, total, y, eps)
        history.append(stress)
        y.grad = grad
        opt.step()
    history.append(_stress_and_grad(dt, w, total, y, eps)[0])
    return y.detach().numpy(), history


@dataclass(frozen=True)
class RetrievalConfig(EncoderConfig):
    """Retrieval baseline: embedding_dim of the Sammon embedding, database size cap;
    extend_to_all: also train on images of targets outside the database (see the module)."""

    embedding_dim: int = 16
    max_database: int = 3000
    extend_to_all: bool = True
    sammon_iterations: int = 100
    sammon_lr: float = 0.01
    weight_decay: float = 1e-4


class Retrieval(ReconstructionModel):
    name = "retrieval"
    kind = "recognition baseline"
    description = (
        "Regresses the image to an embedding of training shapes; answers with the nearest one."
    )
    config_class = RetrievalConfig
    target_fields = ("vox32",)
    representation = "voxels"
    mirror_answers = True

    def __init__(self, config: RetrievalConfig):
        super().__init__(config)
        self.encoder = ImageEncoder(config.channels, config.code_dim)
        self.head = nn.Linear(config.code_dim, config.embedding_dim)
        self.make_view_heads()
        self.embedding = np.zeros((0, config.embedding_dim), dtype=np.float32)  # scaled, (N, k)
        self.database_packed = np.zeros((0, 32**3 // 8), dtype=np.uint8)
        self.database_keys: list[str] = []
        self.database_root: Path | None = None
        self._target_row: torch.Tensor | None = None  # training target -> database row or -1
        self._mesh_cache: dict[int, tuple[trimesh.Trimesh, np.ndarray]] = {}

    def prepare(self, data: TrainingData, progress: bool = False) -> None:
        cfg = self.config
        t = data.num_targets
        rows = np.arange(t)
        if t > cfg.max_database:
            rng = np.random.default_rng(cfg.seed)
            rows = np.sort(rng.choice(t, size=cfg.max_database, replace=False))
            logger.warning(
                "retrieval database: %d of %d training targets (max_database)", len(rows), t
            )
        grids = unpack_grids(data.vox32[rows], 32).reshape(len(rows), -1)
        dist = 1.0 - pairwise_iou(grids)
        np.fill_diagonal(dist, 0.0)
        dist = 0.5 * (dist + dist.T)
        dim = min(cfg.embedding_dim, max(len(rows) - 1, 1))
        emb, history = sammon(dist, dim, None, cfg.sammon_iterations, cfg.sammon_lr, cfg.seed)
        if dim < cfg.embedding_dim:
            emb = np.concatenate(
                [emb, np.zeros((len(emb), cfg.embedding_dim - dim), np.float32)], 1
            )
        std = float(emb.std()) or 1.0
        self.embedding = (emb / std).astype(np.float32)
        self.database_packed = data.vox32[rows].copy()
        self.database_keys = [data.target_keys[i] for i in rows]
        self.database_root = data.root
        target_row = torch.full((t,), -1, dtype=torch.int64)
        target_row[torch.from_numpy(rows)] = torch.arange(len(rows))
        rest = np.setdiff1d(np.arange(t), rows)
        if cfg.extend_to_all and len(rest):
            # targets outside the database regress to their most similar database entry
            for s in range(0, len(rest), 2048):
                part = rest[s : s + 2048]
                others = unpack_grids(data.vox32[part], 32).reshape(len(part), -1)
                best = pairwise_iou(others, grids).argmax(1)
                target_row[torch.from_numpy(part)] = torch.from_numpy(best).to(torch.int64)
        self._target_row = target_row
        self._mesh_cache.clear()
        self.training_info.update(
            {
                "database_size": len(rows),
                "sammon_stress_initial": round(history[0], 5),
                "sammon_stress_final": round(history[-1], 5),
                "data_root": str(data.root),
            }
        )
        logger.info("retrieval: Sammon stress %.4f -> %.4f", history[0], history[-1])

    def training_image_mask(self, data: TrainingData) -> torch.Tensor | None:
        """Which training images train the regressor: bool (N,) (those of database targets,
        plus with `extend_to_all` every other image, regressed to the embedding of its
        target's most similar database entry)."""
        if self._target_row is None:
            raise ValueError("call prepare(train_data) first")
        return self._target_row[data.image_target] >= 0

    def training_loss(self, batch: Batch) -> torch.Tensor:
        if self._target_row is None:
            raise ValueError("call prepare(train_data) before training the regressor")
        rows = self._target_row.to(batch.target_ids.device)[batch.target_ids]
        keep = rows >= 0
        target = torch.from_numpy(self.embedding).to(batch.images.device)[rows[keep]]
        code = self.encoder(batch.images)
        loss = nn.functional.mse_loss(self.head(code[keep]), target)
        return loss + self.view_loss(code, batch)

    def _full_resolution(self, row: int) -> tuple[trimesh.Trimesh, np.ndarray] | None:
        root = self.database_root
        if root is None:
            return None
        from svr.data.layout import has_voxels, load_voxels

        folder = Path(root) / self.database_keys[row]
        if not (folder / "mesh.ply").is_file() or not has_voxels(folder, 128):
            return None
        mesh = trimesh.load(folder / "mesh.ply", force="mesh", process=False)
        return mesh, load_voxels(folder, 128)

    def answer(self, row: int) -> tuple[trimesh.Trimesh, np.ndarray]:
        """Mesh and bool grid of database entry `row` (128^3 + own mesh if the benchmark is
        present, else 32^3 + marching cubes)."""
        if row not in self._mesh_cache:
            full = self._full_resolution(row)
            if full is None:
                grid = unpack_grids(self.database_packed[row : row + 1], 32)[0]
                v, f = grid_to_mesh(grid.astype(np.float32), 0.5)
                full = (trimesh.Trimesh(v, f, process=False), grid)
            if len(self._mesh_cache) > 256:
                self._mesh_cache.clear()
            self._mesh_cache[row] = full
        mesh, grid = self._mesh_cache[row]
        return mesh.copy(), grid

    def nearest(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The k database rows nearest to images x (B, 3, S, S) in the embedding: (rows int64
        (B, k), embedding distances float32 (B, k)), nearest first, on the CPU."""
        if len(self.embedding) == 0:
            raise ValueError("this retrieval model has an empty database: train it first")
        return self._nearest_codes(self.encoder(x), k, self.mirrored_code(x))

    def _nearest_codes(
        self, code: torch.Tensor, k: int, mirrored: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest database rows of the predicted embedding (averaged with the mirrored
        images' when given)."""
        pred = self.head(code)
        if mirrored is not None:
            pred = (pred + self.head(mirrored)) / 2
        pred = pred.cpu()
        d = torch.cdist(pred, torch.from_numpy(self.embedding))
        dist, rows = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False)
        return rows, dist

    def _row_class(self, row: int) -> str:
        key = self.database_keys[row]
        return key.split("/")[1] if key.count("/") >= 2 else key

    def predict_batch(self, x: torch.Tensor) -> list[Prediction]:
        code, mirrored = self.encoder(x), self.mirrored_code(x)
        k = min(10, len(self.embedding))
        rows, dist = self._nearest_codes(code, k, mirrored)
        out = []
        for i, view in enumerate(self.view_info(code, mirrored)):
            row = int(rows[i, 0])
            mesh, grid = self.answer(row)
            # class probability: share of the k nearest database entries of the answer's class
            cls = self._row_class(row)
            share = sum(self._row_class(int(r)) == cls for r in rows[i]) / k
            info: dict[str, Any] = {
                **camera_only(view),
                "retrieved": self.database_keys[row],
                "predicted_class": cls,
                "class_probability": round(float(share), 4),
                "embedding_distance": round(float(dist[i, 0]), 4),
                "answer_resolution": grid.shape[0],
            }
            out.append(Prediction(self.name, mesh=mesh, occupancy=grid, threshold=0.5, info=info))
        return out

    def export_arrays(self) -> dict[str, np.ndarray]:
        return {
            "embedding": self.embedding,
            "database_packed": self.database_packed,
            "database_keys": np.array(self.database_keys, dtype=np.str_),
        }

    def import_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.embedding = arrays["embedding"].astype(np.float32)
        self.database_packed = arrays["database_packed"]
        self.database_keys = [str(k) for k in arrays["database_keys"]]
        if len(self.database_keys) != len(self.embedding) or len(self.database_packed) != len(
            self.embedding
        ):
            raise ValueError("arrays.npz: database keys, grids and embedding differ in length")
        self._mesh_cache.clear()

    def set_database_root(self, root: str | Path | None) -> None:
        """Use the benchmark folder `root` for full-resolution answers (None: 32^3 only)."""
        self.database_root = Path(root) if root is not None else None
        self._mesh_cache.clear()

    @classmethod
    def from_pretrained(cls, path_or_repo_id, local_files_only=True, device=None):  # type: ignore[override]
        model = super().from_pretrained(path_or_repo_id, local_files_only, device)
        root = model.training_info.get("data_root")
        trained_on = model.training_info.get("data")
        if root and (Path(root) / "benchmark.json").is_file():
            try:
                meta = json.loads((Path(root) / "benchmark.json").read_text())
                ident = f"{meta.get('name')}-{meta.get('version')}-{str(meta.get('test_checksum', ''))[:12]}"
            except (OSError, ValueError):
                ident = None
            if trained_on is None or ident == trained_on:
                model.set_database_root(root)
        return model

    def card_notes(self) -> str:
        n = len(self.database_keys)
        return (
            f"Database of {n} training targets; similarity = IoU at 32^3, embedded in "
            f"{self.config.embedding_dim} dimensions by classical MDS + Sammon mapping. "
            "Without the training benchmark on disk the answer is the retrieved shape's 32^3 grid "
            "(marching cubes); with it, the shape's own mesh and 128^3 grid."
        )
