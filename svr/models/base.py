"""The interface every reconstruction method implements, and its save / load pair.

A method is a `ReconstructionModel` subclass with a frozen config dataclass. Its life cycle:

1. `Method.from_config(config)` builds it (untrained).
2. Training (`svr.train`): `prepare(train_data)` runs the non-gradient part (k-means, Sammon
   mapping, class means, ...); then, if the method has trainable parameters, the loop calls
   `training_loss(batch)` and steps an optimiser.
3. `save_pretrained(dir)` writes `config.json`, `model.pt` (torch state dict of the networks),
   `arrays.npz` (numpy arrays: cluster shapes, embeddings, ...; loaded with allow_pickle=False)
   and `MODEL_CARD.md`. `from_pretrained(path)` reads them back; it never downloads unless given
   a Hub repo id together with `local_files_only=False`.
4. `reconstruct(images)` -> list of `Prediction`, under `torch.no_grad()`, on the model's device.

Shapes live in the unit cube [-0.5, 0.5]^3 (see `svr.geometry`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import trimesh
from torch import nn

from svr.data.dataset import DEFAULT_IMAGE_SIZE, Batch, TrainingData, load_view, prepare_images
from svr.geometry import grid_to_mesh
from svr.io import atomic_path
from svr.types import Prediction

__all__ = [
    "FORMAT_VERSION",
    "ReconstructionModel",
    "resolve_pretrained_path",
    "grid_prediction",
    "nonempty_threshold",
    "default_device",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
ARRAYS_FILE = "arrays.npz"
CARD_FILE = "MODEL_CARD.md"


def default_device() -> torch.device:
    """cuda if available, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_pretrained_path(
    path_or_repo_id: str | os.PathLike, local_files_only: bool = True
) -> Path:
    """A local model folder for `path_or_repo_id`.

    A path to an existing folder is returned as is. Otherwise, only when `local_files_only` is
    False and the argument looks like a Hub repo id ("owner/name"), the repository is
    downloaded with `huggingface_hub.snapshot_download`. Raises FileNotFoundError otherwise.
    """
    path = Path(path_or_repo_id)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a saved model: it has no {CONFIG_FILE}")
        return path
    text = str(path_or_repo_id)
    looks_like_repo = text.count("/") == 1 and not text.startswith((".", "/")) and " " not in text
    if local_files_only or not looks_like_repo:
        hint = (
            " To download it from the Hugging Face Hub pass local_files_only=False."
            if looks_like_repo
            else " Train one with `python -m svr.train METHOD --data DIR --out DIR`."
        )
        raise FileNotFoundError(f"no saved model folder at {text!r}.{hint}")
    from huggingface_hub import snapshot_download

    logger.info("downloading %s from the Hugging Face Hub", text)
    return Path(snapshot_download(repo_id=text))


# An answer is never empty: when no cell reaches the threshold, it is lowered to keep at least
# this share of the grid's cells (the most probable ones) and the prediction says so.
MIN_OCCUPIED_SHARE = 0.002


def nonempty_threshold(values: np.ndarray, threshold: float) -> float:
    """`threshold`, or, when no value of the grid reaches it, the largest threshold that keeps
    at least MIN_OCCUPIED_SHARE of the cells (ties included; at least one cell)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    if flat.size == 0 or (flat >= threshold).any():
        return float(threshold)
    k = max(1, int(np.ceil(MIN_OCCUPIED_SHARE * flat.size)))
    return float(np.partition(flat, flat.size - k)[flat.size - k])


def grid_prediction(
    method: str, grid: np.ndarray, threshold: float = 0.5, info: dict[str, Any] | None = None
) -> Prediction:
    """A Prediction from an occupancy grid (R, R, R) (bool or probabilities), with its marching-
    cubes mesh at `threshold`, lowered by `nonempty_threshold` when nothing reaches it
    (recorded as info["threshold_lowered_to"])."""
    values = np.asarray(grid)
    info = dict(info or {})
    used = threshold if values.dtype == bool else nonempty_threshold(values, threshold)
    if used != threshold:
        info["threshold_lowered_to"] = round(used, 6)
    v, f = grid_to_mesh(values.astype(np.float32), used)
    mesh = trimesh.Trimesh(v, f, process=False)
    return Prediction(method=method, mesh=mesh, occupancy=values, threshold=used, info=info)


def _config_from_dict(config_class: type, data: dict[str, Any]) -> Any:
    from svr.models.encoder import LEGACY_FIELDS

    fields = {f.name: f for f in dataclasses.fields(config_class)}
    data = {**{k: v for k, v in LEGACY_FIELDS.items() if k in fields}, **data}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(
            f"config.json has fields {sorted(unknown)} unknown to {config_class.__name__}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return config_class(**values)


class ReconstructionModel(nn.Module):
    """Base class of the methods; see the module docstring for the life cycle."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = (
        ""  # "recognition baseline" | "encoder-decoder" | "reference (uses ground truth)"
    )
    description: ClassVar[str] = ""
    needs_ground_truth: ClassVar[bool] = False
    in_demo: ClassVar[bool] = True  # offered in the demo's method list
    config_class: ClassVar[type]
    target_fields: ClassVar[tuple[str, ...]] = ("vox32",)
    representation: ClassVar[str] = "voxels"  # what `svr.predict` writes: voxels | mesh | points
    mirror_answers: ClassVar[bool] = False  # its answer (not only its class) reads the mirror

    def __init__(self, config: Any):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ValueError(
                f"{self.name} needs a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.training_info: dict[str, Any] = {}

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> ReconstructionModel:
        """Build from a config (default config if None), with fields replaced by `overrides`."""
        config = config if config is not None else cls.config_class()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        return cls(config)

    @property
    def image_size(self) -> int:
        return int(getattr(self.config, "image_size", DEFAULT_IMAGE_SIZE))

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def trainable(self) -> bool:
        """True if the method has network parameters to fit by gradient descent."""
        return any(p.requires_grad for p in self.parameters())

    # -- training ---------------------------------------------------------------------------
    def prepare(self, data: TrainingData, progress: bool = False) -> None:
        """Non-gradient fitting on the training data (default: nothing); `progress` shows tqdm
        bars."""

    def training_image_mask(self, data: TrainingData) -> torch.Tensor | None:
        """Which training images the gradient loop uses: bool (N,), or None for all."""
        return None

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """Scalar loss of one batch (methods with trainable parameters override this)."""
        raise NotImplementedError(f"{self.name} has no gradient training step")

    # -- what it recognised and from where (`svr.models.heads`) ------------------------------
    def make_view_heads(self) -> None:
        """Add `self.view` (class + camera heads on the code) when the config asks for them."""
        from svr.models.heads import ViewHeads

        cfg = self.config
        self.view = ViewHeads(cfg.code_dim) if getattr(cfg, "view_heads", False) else None

    def view_loss(self, code: torch.Tensor, batch: Batch) -> torch.Tensor | float:
        """`view_weight` x the heads' loss for this batch's codes (0.0 without heads)."""
        heads = getattr(self, "view", None)
        if heads is None:
            return 0.0
        loss = heads.loss(code, batch.class_ids, batch.azimuth, batch.elevation)
        return self.config.view_weight * loss

    def view_info(
        self, code: torch.Tensor, mirrored: torch.Tensor | None = None
    ) -> list[dict[str, Any]]:
        """Per image: predicted class, its probability and the camera estimate ({} each
        without heads); with `mirrored` codes the class is averaged over both."""
        heads = getattr(self, "view", None)
        if heads is None:
            return [{} for _ in range(len(code))]
        return heads.describe(code, mirrored)

    def mirrored_code(self, x: torch.Tensor) -> torch.Tensor | None:
        """Codes (B, code_dim) of inputs x (B, 3, S, S) mirrored left to right, when the
        config's `mirror_average` is on and the model is in eval mode; else None.

        The 13 classes are mirror-symmetric, so a mirror image is one more look at the same
        object: class probabilities (and a recognition baseline's scores over its answers)
        are averaged over the image and its mirror. On the held-out photo test set this
        raised class accuracy by 1.8-3.5 points per method (README)."""
        if self.training or not getattr(self.config, "mirror_average", False):
            return None
        if not self.mirror_answers and getattr(self, "view", None) is None:
            return None  # nothing would read it: no class head, the answer is the image's own
        return self.encoder(torch.flip(x, dims=[3]))

    # -- inference --------------------------------------------------------------------------
    def predict_batch(self, x: torch.Tensor) -> list[Prediction]:
        """Predictions for network inputs float32 (B, 3, S, S) on `self.device`."""
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(
        self, images: Sequence[np.ndarray] | np.ndarray | torch.Tensor, batch_size: int = 32
    ) -> list[Prediction]:
        """Reconstruct images: uint8 RGBA (H, W, 4) / RGB arrays, or a float tensor (B, 4, H, W)
        in [0, 1]. Returns one Prediction per image, shapes in the unit cube."""
        if self.needs_ground_truth:
            raise ValueError(
                f"{self.name} is a reference that reads the ground truth; use reconstruct_items()"
            )
        x = prepare_images(images, self.image_size)
        was_training = self.training
        self.eval()
        try:
            out: list[Prediction] = []
            for start in range(0, len(x), batch_size):
                out += self.predict_batch(x[start : start + batch_size].to(self.device))
        finally:
            self.train(was_training)
        return out

    def reconstruct_items(self, benchmark: Any, items: Sequence[Any]) -> list[Prediction]:
        """Reconstruct benchmark items (`svr.data.layout.Item`) from their views.

        References that read the ground truth override this."""
        images = np.stack([load_view(benchmark.image_path(it), self.image_size) for it in items])
        return self.reconstruct(images)

    # -- persistence ------------------------------------------------------------------------
    def export_arrays(self) -> dict[str, np.ndarray]:
        """Numpy arrays that belong to the model but not to its networks (saved in arrays.npz)."""
        return {}

    def import_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what `export_arrays` returned."""

    def model_card(self) -> str:
        """MODEL_CARD.md text: what the method is, its config and how it was trained."""
        lines = [
            f"# {self.name}",
            "",
            f"- kind: {self.kind}",
            f"- description: {self.description}",
            f"- uses ground truth at inference: {'yes' if self.needs_ground_truth else 'no'}",
            f"- output written by `svr.predict`: {self.representation}",
            f"- parameters: {sum(p.numel() for p in self.parameters()):,}",
            "",
            "## Configuration",
            "",
            "| field | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v} |" for k, v in dataclasses.asdict(self.config).items()]
        lines += ["", "## Training", ""]
        if self.training_info:
            lines += ["| item | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in self.training_info.items()]
        else:
            lines.append("Not trained.")
        notes = self.card_notes()
        if notes:
            lines += ["", "## Notes", "", notes]
        return "\n".join(lines) + "\n"

    def card_notes(self) -> str:
        """Method-specific notes for the model card (design choices, limitations)."""
        return ""

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json, model.pt, arrays.npz and MODEL_CARD.md into `directory` (each file
        atomically). Returns the folder."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        payload = {
            "method": self.name,
            "format_version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.config),
            "training": self.training_info,
        }
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        with atomic_path(d / WEIGHTS_FILE) as tmp:
            torch.save(state, tmp)
        with atomic_path(d / ARRAYS_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **self.export_arrays())
        with atomic_path(d / CARD_FILE) as tmp:
            tmp.write_text(self.model_card())
        with atomic_path(d / CONFIG_FILE) as tmp:  # last: its presence marks a complete folder
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        return d

    @classmethod
    def read_saved_config(cls, folder: Path) -> tuple[Any, dict[str, Any]]:
        """(config, config.json payload) of a folder written by `save_pretrained`.

        Raises ValueError for another method's folder or an unsupported format."""
        payload = json.loads((folder / CONFIG_FILE).read_text())
        if payload.get("method") != cls.name:
            raise ValueError(f"{folder} holds a {payload.get('method')!r} model, not {cls.name!r}")
        if payload.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: unsupported model format {payload.get('format_version')}")
        return _config_from_dict(cls.config_class, payload["config"]), payload

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        local_files_only: bool = True,
        device: torch.device | str | None = None,
    ) -> ReconstructionModel:
        """Load a model saved by `save_pretrained` (a local folder; a Hub repo id only with
        local_files_only=False). The model is put in eval mode on `device` (default: cuda if
        available, else cpu)."""
        folder = resolve_pretrained_path(path_or_repo_id, local_files_only)
        config, payload = cls.read_saved_config(folder)
        model = cls(config)
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            model.import_arrays({k: arrays[k] for k in arrays.files})
        model.training_info = dict(payload.get("training") or {})
        model.model_dir = folder
        model.to(device if device is not None else default_device())
        model.eval()
        return model
