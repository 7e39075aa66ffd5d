"""Reference points for the evaluation, never offered in the demo.

- `oracle_nn` (uses the ground truth): for each test item, the training target with the highest
  IoU at 32^3 against the item's ground truth. Not a method: an upper bound for any pure
  retrieval approach. It keeps only the list of training targets; at prediction time it reads
  their 32^3 grids (once) and the test ground truth from the benchmark, and answers with the
  chosen training shape's own mesh and 128^3 grid.
- `mean_shape` (a class prior): a small image classifier predicts the class; the answer is the
  class's mean training shape at 128^3 (from up to `members_per_class` members, thresholded at
  the mean-IoU-optimal value like the clustering baseline). It reads no ground truth at test
  time, but it is a reference for the leaderboard (what knowing only the class gives), so it
  is kept out of the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import nn

from svr.classes import CLASS_NAMES
from svr.data.dataset import Batch, TrainingData, load_grids, unpack_grids
from svr.geometry import grid_to_mesh
from svr.models.base import ReconstructionModel
from svr.models.clustering import cluster_shapes
from svr.models.encoder import EncoderConfig, ImageEncoder
from svr.models.heads import camera_only
from svr.models.retrieval import pairwise_iou
from svr.types import Prediction

__all__ = ["OracleConfig", "OracleNN", "MeanShapeConfig", "MeanShape"]


@dataclass(frozen=True)
class OracleConfig:
    """Oracle NN has nothing to learn; `chunk` items are compared with the database at once."""

    chunk: int = 64
    seed: int = 0
    epochs: int = 0
    batch_size: int = 64
    lr: float = 0.0
    weight_decay: float = 0.0


class OracleNN(ReconstructionModel):
    name = "oracle_nn"
    kind = "reference (uses ground truth)"
    description = "The training shape with the highest IoU to the ground truth (an upper bound for retrieval)."
    needs_ground_truth = True
    in_demo = False
    config_class = OracleConfig
    target_fields = ()
    representation = "voxels"

    def __init__(self, config: OracleConfig):
        super().__init__(config)
        self.database_keys: list[str] = []
        self._database: tuple[str, np.ndarray] | None = None  # (root, bool (T, 32768))

    def prepare(self, data: TrainingData, progress: bool = False) -> None:
        self.database_keys = list(data.target_keys)
        self._database = None
        self.training_info["database_size"] = len(self.database_keys)

    def _database_grids(self, root: Path) -> np.ndarray:
        if self._database is None or self._database[0] != str(root):
            missing = [
                k for k in self.database_keys[:1] if not (root / k / "voxels_32.npy").is_file()
            ]
            if missing or not self.database_keys:
                raise ValueError(
                    f"{root} does not hold the training shapes this oracle was built on "
                    f"(e.g. {missing[:1]}); rebuild it with `python -m svr.train oracle_nn --data {root}`"
                )
            packed = load_grids(root, self.database_keys, 32)
            self._database = (str(root), unpack_grids(packed, 32).reshape(len(packed), -1))
        return self._database[1]

    def reconstruct_items(self, benchmark: Any, items: Sequence[Any]) -> list[Prediction]:
        """For each item (`svr.data.layout.Item`) read its 32^3 ground truth and answer with
        the training target of highest IoU (its own mesh and 128^3 grid)."""
        root = Path(benchmark.root)
        db = self._database_grids(root)
        out: list[Prediction] = []
        for s in range(0, len(items), self.config.chunk):
            chunk = items[s : s + self.config.chunk]
            gts = np.stack(
                [
                    np.load(benchmark.gt_dir(it) / "voxels_32.npy", allow_pickle=False)
                    for it in chunk
                ]
            ).reshape(len(chunk), -1)
            iou = pairwise_iou(gts, db)
            best = iou.argmax(1)
            for i, row in enumerate(best):
                folder = root / self.database_keys[row]
                mesh = trimesh.load(folder / "mesh.ply", force="mesh", process=False)
                grid = np.load(folder / "voxels_128.npy", allow_pickle=False).astype(bool)
                info = {
                    "retrieved": self.database_keys[row],
                    "iou_32": round(float(iou[i, row]), 4),
                }
                out.append(
                    Prediction(self.name, mesh=mesh, occupancy=grid, threshold=0.5, info=info)
                )
        return out

    def export_arrays(self) -> dict[str, np.ndarray]:
        return {"database_keys": np.array(self.database_keys, dtype=np.str_)}

    def import_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.database_keys = [str(k) for k in arrays["database_keys"]]
        self._database = None


@dataclass(frozen=True)
class MeanShapeConfig(EncoderConfig):
    """Class prior: classifier + per-class mean shapes at output_resolution (32 or 128)."""

    output_resolution: int = 128
    members_per_class: int = 64
    code_dim: int = 128
    epochs: int = 6
    weight_decay: float = 1e-4


class MeanShape(ReconstructionModel):
    name = "mean_shape"
    kind = "recognition baseline"
    description = "A classifier predicts the class; the answer is that class's mean training shape."
    in_demo = False
    config_class = MeanShapeConfig
    target_fields = ("vox32",)
    representation = "voxels"

    def __init__(self, config: MeanShapeConfig):
        super().__init__(config)
        if config.output_resolution not in (32, 128):
            raise ValueError("output_resolution must be 32 or 128 (the benchmark's grids)")
        n, r = len(CLASS_NAMES), config.output_resolution
        self.encoder = ImageEncoder(config.channels, config.code_dim)
        self.head = nn.Linear(config.code_dim, n)
        self.make_view_heads()
        self.shapes_packed = np.zeros((n, r**3 // 8), dtype=np.uint8)
        self.thresholds = np.full(n, 0.5, dtype=np.float32)
        self.member_iou = np.zeros(n, dtype=np.float32)
        self.class_sizes = np.zeros(n, dtype=np.int64)
        self._mesh_cache: dict[int, trimesh.Trimesh] = {}

    def prepare(self, data: TrainingData, progress: bool = False) -> None:
        labels = data.target_class.numpy()
        self.shapes_packed, self.thresholds, self.member_iou = cluster_shapes(
            data,
            labels,
            len(CLASS_NAMES),
            self.config.output_resolution,
            self.config.members_per_class,
            self.config.seed,
            progress,
        )
        self.class_sizes = np.bincount(labels, minlength=len(CLASS_NAMES)).astype(np.int64)
        self._mesh_cache.clear()

    def training_loss(self, batch: Batch) -> torch.Tensor:
        code = self.encoder(batch.images)
        loss = nn.functional.cross_entropy(self.head(code), batch.class_ids)
        return loss + self.view_loss(code, batch)

    def class_mesh(self, c: int) -> tuple[trimesh.Trimesh, np.ndarray]:
        grid = unpack_grids(self.shapes_packed[c : c + 1], self.config.output_resolution)[0]
        if c not in self._mesh_cache:
            v, f = grid_to_mesh(grid.astype(np.float32), 0.5)
            self._mesh_cache[c] = trimesh.Trimesh(v, f, process=False)
        return self._mesh_cache[c].copy(), grid

    def predict_batch(self, x: torch.Tensor) -> list[Prediction]:
        code = self.encoder(x)
        probs = torch.softmax(self.head(code), 1).cpu().numpy()
        trained = self.class_sizes > 0
        out = []
        for p, view in zip(probs, self.view_info(code), strict=True):
            p = np.where(trained, p, 0.0)  # never answer with a class that had no training shape
            c = int(p.argmax())
            mesh, grid = self.class_mesh(c)
            info = {
                **camera_only(view),
                "predicted_class": CLASS_NAMES[c],
                "class_probability": float(p[c]),
            }
            out.append(Prediction(self.name, mesh=mesh, occupancy=grid, threshold=0.5, info=info))
        return out

    def export_arrays(self) -> dict[str, np.ndarray]:
        return {
            "shapes_packed": self.shapes_packed,
            "thresholds": self.thresholds,
            "member_iou": self.member_iou,
            "class_sizes": self.class_sizes,
        }

    def import_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.shapes_packed = arrays["shapes_packed"]
        self.thresholds = arrays["thresholds"]
        self.member_iou = arrays["member_iou"]
        self.class_sizes = arrays["class_sizes"]
        self._mesh_cache.clear()
