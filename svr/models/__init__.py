"""Reconstruction methods, selected by name from a plain dict.

Adding a method: one new module with a `ReconstructionModel` subclass, plus one line here.
Importing this package imports torch and the method classes but loads no weights.
"""

from __future__ import annotations

import os

from svr.models.atlas import AtlasNet
from svr.models.base import ReconstructionModel
from svr.models.clustering import Clustering
from svr.models.occupancy import OccupancyNet
from svr.models.references import MeanShape, OracleNN
from svr.models.retrieval import Retrieval
from svr.models.voxel import VoxelNet

__all__ = ["REGISTRY", "ReconstructionModel", "load_model", "available_models", "model_class"]

REGISTRY: dict[str, type[ReconstructionModel]] = {
    "clustering": Clustering,
    "retrieval": Retrieval,
    "voxel": VoxelNet,
    "occupancy": OccupancyNet,
    "atlas": AtlasNet,
    "oracle_nn": OracleNN,
    "mean_shape": MeanShape,
}


def model_class(name: str) -> type[ReconstructionModel]:
    """The class registered under `name`; ValueError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown method {name!r}: expected one of {', '.join(REGISTRY)}"
        ) from None


def load_model(
    name: str, path: str | os.PathLike, local_files_only: bool = True, device: str | None = None
) -> ReconstructionModel:
    """Load the saved model of method `name` from a folder (or, with local_files_only=False,
    a Hub repo id)."""
    return model_class(name).from_pretrained(path, local_files_only=local_files_only, device=device)


def available_models(demo_only: bool = True) -> list[str]:
    """Registered method names; with demo_only, those that reconstruct a single image without
    ground truth and are meant for the demo (not the references)."""
    return [
        name
        for name, cls in REGISTRY.items()
        if not demo_only or (not cls.needs_ground_truth and getattr(cls, "in_demo", True))
    ]
