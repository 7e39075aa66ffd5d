"""Reference points for the evaluation, never offered in the demo.

- `oracle_nn` (uses the ground truth): for each test item, the training target with the highest
  IoU at 32^3 against the item's ground truth. Not a method: an upper bound for any pure
  retrieval approach. It keeps only the list of training targets; at prediction time it reads
  their 32^3 grids (once) and the test ground truth from the benchmark, and answers with the
  chosen training shape's own mesh and 128^3 grid (voxelised from that mesh, once per shape
  and call, where the folder keeps no 128^3 grid, as a "reference" training split does).
  Nothing is learnt, so on a benchmark whose training split is not the one it was made on
  (another preset, e.g. `small` with the shipped `default` oracle) its database is that
  benchmark's own training split.
- `mean_shape` (a class prior): a small image classifier predicts the class; the answer is the
  class's mean training shape at 128^3 (from up to `members_per_class` members, thresholded at
  the mean-IoU-optimal value like the clustering baseline). It reads no ground truth at test
  time, but it is a reference for the leaderboard (what knowing only the class gives), so it
  is kept out of the demo.
"""

from __future__ import annotations

import logging
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
from svr.data.layout import has_voxels, load_voxels
from svr.geometry import grid_to_mesh, voxelize_mesh
from svr.models.base import ReconstructionModel
from svr.models.clustering import cluster_shapes
from svr.models.encoder import EncoderConfig, ImageEncoder
from svr.models.heads import camera_only, mirror_softmax
from svr.models.retrieval import pairwise_iou
from svr.types import Prediction

__all__ = ["OracleConfig", "OracleNN", "MeanShapeConfig", "MeanShape"]

logger = logging.getLogger(__name__)


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
        self._active_keys: list[str] = []  # the targets of `_database` (rows)

    def prepare(self, data: TrainingData, progress: bool = False) -> None:
        self.database_keys = list(data.target_keys)
        self._database = None
        self.training_info["database_size"] = len(self.database_keys)

    def _database_grids(self, root: Path) -> np.ndarray:
        if self._database is None or self._database[0] != str(root):
            keys = self._keys_for(root)
            packed = load_grids(root, keys, 32)
            self._database = (str(root), unpack_grids(packed, 32).reshape(len(packed), -1))
            self._active_keys = keys
        return self._database[1]

    def _keys_for(self, root: Path) -> list[str]:
        """The stored training targets when `root` holds all of them, else `root`'s own."""
        from svr.data.layout import has_voxels

        if self.database_keys and all(has_voxels(root / k, 32) for k in self.database_keys):
            return list(self.database_keys)
        own = _training_targets(root)
        if not own:
            raise ValueError(
                f"{root} holds no training shapes for Oracle NN to search: add them with "
                f"`python -m svr.data add-train --benchmark {root} --reference`"
            )
        logger.info(
            "oracle_nn: %s lacks the %d training targets it was made on; using its own %d",
            root, len(self.database_keys), len(own),
        )  # fmt: skip
        return own

    def reconstruct_items(self, benchmark: Any, items: Sequence[Any]) -> list[Prediction]:
        """For each item (`svr.data.layout.Item`) read its 32^3 ground truth and answer with
        the training target of highest IoU (its own mesh and 128^3 grid)."""
        root = Path(benchmark.root)
        db = self._database_grids(root)
        answers: dict[int, tuple[trimesh.Trimesh, np.ndarray]] = {}  # row -> (mesh, grid)
        out: list[Prediction] = []
        for s in range(0, len(items), self.config.chunk):
            chunk = items[s : s + self.config.chunk]
            gts = np.stack([load_voxels(benchmark.gt_dir(it), 32) for it in chunk]).reshape(
                len(chunk), -1
            )
            iou = pairwise_iou(gts, db)
            best = iou.argmax(1)
            for i, row in enumerate(best):
                if row not in answers:
                    answers[row] = _answer(root / self._active_keys[row])
                mesh, grid = answers[row]
                info = {
                    "retrieved": self._active_keys[row],
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


def _answer(folder: Path) -> tuple[trimesh.Trimesh, np.ndarray]:
    """A training target's mesh and bool (128, 128, 128) grid: the stored grid, else the mesh
    voxelised as the builder does (`svr.data.layout.compute_ground_truth`). The stored mesh
    has float32 vertices, so a voxel whose centre lies within about 1e-8 of a face can differ
    from a full build's grid (measured: 1 voxel in 1 of 520 shapes)."""
    mesh = trimesh.load(folder / "mesh.ply", force="mesh", process=False)
    if has_voxels(folder, 128):
        return mesh, load_voxels(folder, 128)
    return mesh, voxelize_mesh(mesh.vertices, mesh.faces, 128)


def _training_targets(root: Path) -> list[str]:
    """Ground-truth folders (relative, posix) of the training split at `root` that hold a
    32^3 grid: one per shape in the object frame, one per view (`frames/<k>`) in the viewer
    frame; sorted."""
    from svr.data.layout import Benchmark, has_voxels

    bench = Benchmark(root)
    keys = []
    for ref in bench.shapes("train"):
        folder = ref.path(root)
        if bench.meta.frame == "viewer":
            frames = folder / "frames"
            views = (
                sorted(int(p.name) for p in frames.iterdir() if p.name.isdigit())
                if frames.is_dir()
                else []
            )
            candidates = [frames / str(v) for v in views]
        else:
            candidates = [folder]
        keys += [c.relative_to(root).as_posix() for c in candidates if has_voxels(c, 32)]
    return keys


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
    mirror_answers = True

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
        code, mirrored = self.encoder(x), self.mirrored_code(x)
        probs = mirror_softmax(self.head, code, mirrored).cpu().numpy()
        trained = self.class_sizes > 0
        out = []
        for p, view in zip(probs, self.view_info(code, mirrored), strict=True):
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
