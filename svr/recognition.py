"""What the recognition baselines see in a reconstruction's input.

`recognise(store, rec)`: retrieval's k nearest training shapes in its embedding and
clustering's predicted cluster (its mean shape and class mix), each rendered as a thumbnail
with the F@1% between it and the reconstruction. Methods without weights are skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import trimesh

from svr.store import ModelStore, ModelUnavailable

if TYPE_CHECKING:
    from svr.inference import Reconstruction

__all__ = ["RecognisedShape", "nearest_training_shapes", "recognise", "render_thumbnail"]

logger = logging.getLogger(__name__)


@dataclass
class RecognisedShape:
    """A shape the recognition baselines associate with the input.

    source: "retrieval" or "clustering"; key: training shape key or cluster id; note: one
    line (embedding distance, cluster composition); render: RGB uint8 (S, S, 3) on white;
    fscore: F@1% between the reconstruction and this shape (the reconstruction as output).
    """

    source: str
    key: str
    note: str
    render: np.ndarray
    fscore: float


def render_thumbnail(
    mesh: trimesh.Trimesh, size: int = 160, rgb: tuple[float, float, float] = (0.55, 0.62, 0.75)
) -> np.ndarray:
    """A shaded view of a unit-cube mesh from the front right, RGB uint8 (size, size, 3) on white."""
    from svr.render import Camera, render

    if len(mesh.faces) == 0:
        return np.full((size, size, 3), 255, np.uint8)
    colors = np.tile(np.asarray(rgb, dtype=np.float64), (len(mesh.faces), 1))
    rgba = render(mesh, colors, Camera(azimuth=35.0, elevation=20.0, distance=2.4), image_size=size)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)


def nearest_training_shapes(
    model: Any, image: np.ndarray, k: int = 3
) -> list[tuple[str, float, trimesh.Trimesh]]:
    """The k training shapes nearest to an image's predicted embedding (a retrieval model).

    image: RGBA uint8 (H, W, 4). Returns (shape key, embedding distance, mesh), nearest first.
    """
    import torch

    from svr.data.dataset import prepare_images

    with torch.no_grad():
        rows, dist = model.nearest(prepare_images([image], model.image_size).to(model.device), k)
    return [
        (model.database_keys[r], float(d), model.answer(r)[0])
        for r, d in zip(rows[0].tolist(), dist[0].tolist(), strict=True)
    ]


def _fscore_to_mesh(points: np.ndarray, mesh: trimesh.Trimesh, n: int = 3000) -> float:
    from svr.geometry import sample_surface
    from svr.metrics import fscore

    if len(mesh.faces) == 0 or len(points) == 0:
        return 0.0
    other = sample_surface(mesh.vertices, mesh.faces, n, 0)[0]
    return float(fscore(points, other, 0.01)["fscore"])


def _optional_model(store: ModelStore, name: str) -> Any | None:
    try:
        return store.get(name)
    except ModelUnavailable as exc:
        logger.info("recognition: %s", exc)
        return None


def recognise(store: ModelStore, rec: Reconstruction, k: int = 3) -> list[RecognisedShape]:
    """What the recognition baselines see in the reconstruction's input.

    Retrieval: the k nearest training shapes in its embedding; clustering: the predicted
    cluster's mean shape and its class mix. Methods without weights are skipped. Each
    shape comes with a render and the F@1% between it and the reconstruction.
    """
    image = rec.input.image
    points = rec.prediction.to_points(3000, seed=0)
    out: list[RecognisedShape] = []
    retrieval = _optional_model(store, "retrieval")
    if retrieval is not None:
        for rank, (key, dist, mesh) in enumerate(
            nearest_training_shapes(retrieval, image, k), start=1
        ):
            note = f"retrieval: nearest training shape #{rank}, embedding distance {dist:.3f}"
            out.append(
                RecognisedShape(
                    "retrieval", key, note, render_thumbnail(mesh), _fscore_to_mesh(points, mesh)
                )
            )
    clustering = _optional_model(store, "clustering")
    if clustering is not None:
        pred = clustering.reconstruct([image])[0]
        info = pred.info
        mesh = pred.to_mesh()
        mix = info.get("cluster_classes", {})
        top = ", ".join(
            f"{c} {100 * v:.0f}%" for c, v in sorted(mix.items(), key=lambda kv: -kv[1])[:3]
        )
        note = (
            f"clustering: cluster {info.get('cluster')} (p = {float(info.get('cluster_probability', 0)):.2f}), "
            f"{info.get('cluster_size', '?')} training shapes: {top}"
        )
        key = f"cluster {info.get('cluster')}"
        out.append(
            RecognisedShape(
                "clustering", key, note, render_thumbnail(mesh), _fscore_to_mesh(points, mesh)
            )
        )
    return out
