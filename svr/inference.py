"""Image -> Prediction -> files: the service the Reconstruct tab, the API and the CLI call.

`Reconstructor.run(image, method, foreground_ratio, session, color=True)` preprocesses an
image (`svr.preprocess`), runs one method (`svr.store.ModelStore`, lazily loaded from the
registry `svr.models`), turns the prediction into a mesh, reads what the method recognised
and from where (`svr.viewpoint.ViewEstimate`: class, probability, azimuth, elevation),
colours the mesh from the photo on the side the estimated camera saw (`svr.colorize`; grey
without a camera estimate or with `color=False`) and writes the downloads into a
per-session folder (`svr.export`: GLB, OBJ, PLY, STL in the benchmark's object frame, +y up,
front towards +z, unit cube; occupancy .npy and .binvox).

The parts live in their own modules and are importable from here as before:
`svr.store` (methods, weights, `DEFAULT_METHOD`), `svr.export` (files),
`svr.groundtruth` (scores and views against public ground truth), `svr.recognition`
(what the recognition baselines see).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from svr.colorize import VertexColors, colorize
from svr.export import ExportedFiles, ReconstructionError, export_prediction
from svr.groundtruth import (
    GroundTruthComparison,
    compare_with_ground_truth,
    ground_truth_scores,
    precision_recall_figure,
)
from svr.preprocess import DEFAULT_FOREGROUND_RATIO, ImageInputError, PreprocessResult, preprocess
from svr.recognition import RecognisedShape, nearest_training_shapes, recognise, render_thumbnail
from svr.store import DEFAULT_METHOD, MethodInfo, ModelStore, ModelUnavailable
from svr.types import Prediction
from svr.viewpoint import ViewEstimate

__all__ = [
    "DEFAULT_METHOD",
    "MethodInfo",
    "ModelUnavailable",
    "ReconstructionError",
    "ModelStore",
    "ExportedFiles",
    "Reconstruction",
    "SessionFiles",
    "Reconstructor",
    "export_prediction",
    "file_sha256",
    "ImageInputError",
    "GroundTruthComparison",
    "compare_with_ground_truth",
    "ground_truth_scores",
    "precision_recall_figure",
    "RecognisedShape",
    "recognise",
    "nearest_training_shapes",
    "render_thumbnail",
]

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Reconstruction:
    """Result of one method on one image.

    timings: seconds per stage in order (preprocess, network, mesh extraction, colouring,
    export); mesh: the exported surface (None for a point cloud); grid: bool (R, R, R) or
    None; estimate: the class and camera the method reported; colors: vertex colours from
    the photo (None when not computed: colouring off, no camera estimate, no surface);
    colored: whether the files carry them; color_note: one line saying which and why.
    """

    method: str
    prediction: Prediction
    mesh: trimesh.Trimesh | None
    grid: np.ndarray | None
    files: ExportedFiles
    timings: dict[str, float]
    input: PreprocessResult
    item_id: str | None = None  # set when the input is a known public benchmark view
    estimate: ViewEstimate = field(default_factory=ViewEstimate)
    colors: VertexColors | None = None
    colored: bool = False
    color_note: str = ""

    @property
    def n_faces(self) -> int:
        return 0 if self.mesh is None else len(self.mesh.faces)

    @property
    def n_vertices(self) -> int:
        if self.mesh is None:
            pts = self.prediction.points
            return 0 if pts is None else len(pts)
        return len(self.mesh.vertices)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.timings.values()))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class SessionFiles:
    """Per-session output folders under one temporary root, removed when a session ends.

    `folder(session)` makes `<root>/<session>/<counter>/` for one request; `cleanup(session)`
    removes a session's folder; `sweep(max_age_s)` removes folders idle longer than that.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._counter = 0
        self._lock = threading.Lock()
        self._last_sweep = time.time()

    def _session_dir(self, session: str | None) -> Path:
        name = _SAFE.sub("_", session or "anonymous")[:64] or "anonymous"
        return self.root / name

    def folder(self, session: str | None, sweep_every_s: float = 600.0) -> Path:
        """A new folder for one request of `session`; every `sweep_every_s` seconds this
        also removes sessions idle for an hour (tabs closed without an unload event)."""
        with self._lock:
            self._counter += 1
            n = self._counter
            due = time.time() - self._last_sweep > sweep_every_s
            if due:
                self._last_sweep = time.time()
        if due:
            self.sweep(max_age_s=3600.0)
        path = self._session_dir(session) / f"{n:06d}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cleanup(self, session: str | None) -> None:
        shutil.rmtree(self._session_dir(session), ignore_errors=True)

    def sweep(self, max_age_s: float = 3600.0) -> int:
        """Remove session folders not modified for `max_age_s` seconds; returns how many."""
        if not self.root.is_dir():
            return 0
        now, removed = time.time(), 0
        for child in self.root.iterdir():
            try:
                newest = max([child.stat().st_mtime] + [p.stat().st_mtime for p in child.iterdir()])
            except OSError:
                continue
            if now - newest > max_age_s:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed


def _colors_for(
    prediction: Prediction, estimate: ViewEstimate, image: np.ndarray
) -> tuple[VertexColors | None, str]:
    """Vertex colours of the prediction's mesh from the input image seen from the estimated
    camera, with a note; (None, why not) when that cannot be done."""
    mesh = prediction.to_mesh()
    if mesh is None:
        return None, "not coloured: a point cloud has no surface to colour"
    camera = estimate.camera()
    if camera is None:
        return None, (
            "not coloured: the method reports no camera estimate (weights trained without "
            "the camera heads), so the photo cannot be projected onto the shape"
        )
    try:
        colors = colorize(mesh, image, camera)
    except (ValueError, RuntimeError) as exc:
        logger.warning("colouring %s failed: %s", prediction.method, exc)
        return None, f"not coloured: {exc}"
    return colors, _colored_note(colors)


def _colored_note(colors: VertexColors) -> str:
    return (
        f"coloured from the photo: {100.0 * colors.sampled_share:.0f}% of the vertices, those "
        "the estimated camera sees; grey elsewhere (GLB, OBJ and PLY carry the colours, STL "
        "has none)"
    )


@dataclass
class Reconstructor:
    """Preprocess -> method -> mesh -> colours -> files, with per-stage timings."""

    store: ModelStore
    sessions: SessionFiles
    input_size: int = 137
    known_items: dict[str, str] = field(default_factory=dict)  # image sha256 -> item id

    def prepare_input(
        self,
        image: str | os.PathLike | np.ndarray,
        foreground_ratio: float = DEFAULT_FOREGROUND_RATIO,
    ) -> tuple[PreprocessResult, str | None]:
        """Preprocess an image; returns (result, item id if it is a known benchmark example).

        Known benchmark views are fed as rendered (no re-centring) so that their scores
        match the benchmark's.
        """
        item_id = None
        if isinstance(image, str | os.PathLike) and self.known_items and Path(image).is_file():
            item_id = self.known_items.get(file_sha256(image))
        result = preprocess(image, foreground_ratio, self.input_size, recenter=item_id is None)
        return result, item_id

    def run(
        self,
        image: str | os.PathLike | np.ndarray | PreprocessResult,
        method: str,
        foreground_ratio: float = DEFAULT_FOREGROUND_RATIO,
        session: str | None = None,
        item_id: str | None = None,
        color: bool = True,
    ) -> Reconstruction:
        """Reconstruct one image with one method and write its downloads.

        `image` is a path, an array or an already preprocessed input (then `item_id` names
        the benchmark view it shows, if any); for a path the known examples are looked up.
        `color`: colour the mesh from the photo where the estimated camera sees it.

        Raises ImageInputError (bad image), ModelUnavailable (no weights) or
        ReconstructionError (empty output).
        """
        timings: dict[str, float] = {}
        if isinstance(image, PreprocessResult):
            prepared = image
        else:
            prepared, item_id = self.prepare_input(image, foreground_ratio)
        timings["preprocess"] = prepared.seconds
        model = self.store.get(method)
        t1 = time.perf_counter()
        predictions = model.reconstruct([prepared.image])
        timings["network"] = time.perf_counter() - t1
        if len(predictions) != 1:
            raise ReconstructionError(
                f"{method} returned {len(predictions)} predictions for one image"
            )
        prediction = predictions[0]
        t2 = time.perf_counter()
        mesh = prediction.to_mesh()  # marching cubes for grid methods; kept on the prediction
        if mesh is not None and prediction.mesh is None:
            prediction = dataclasses.replace(prediction, mesh=mesh)
        if mesh is not None and len(mesh.faces) == 0:
            raise ReconstructionError(
                f"{method} produced an empty shape (nothing above its occupancy threshold)"
            )
        timings["mesh extraction"] = time.perf_counter() - t2
        estimate = ViewEstimate.from_info(prediction.info)
        return self._export(
            method, prediction, prepared, item_id, estimate, timings, None, color, session
        )

    def recolor(
        self, rec: Reconstruction, color: bool, session: str | None = None
    ) -> Reconstruction:
        """The same reconstruction exported again with (`color=True`) or without colours
        from the photo, into a new folder (colours are computed once and kept)."""
        timings = {k: v for k, v in rec.timings.items() if k not in ("colouring", "export")}
        return self._export(
            rec.method, rec.prediction, rec.input, rec.item_id, rec.estimate, timings,
            rec.colors, color, session,
        )  # fmt: skip

    def _export(
        self,
        method: str,
        prediction: Prediction,
        prepared: PreprocessResult,
        item_id: str | None,
        estimate: ViewEstimate,
        timings: dict[str, float],
        colors: VertexColors | None,
        color: bool,
        session: str | None,
    ) -> Reconstruction:
        """Colour (when asked and not done yet) and write the files; the Reconstruction."""
        t3 = time.perf_counter()
        if not color:
            note = "not coloured: colouring from the photo is off"
        elif colors is not None:
            note = _colored_note(colors)
        else:
            colors, note = _colors_for(prediction, estimate, prepared.image)
        timings["colouring"] = time.perf_counter() - t3
        use = colors if color else None
        t4 = time.perf_counter()
        files, mesh, grid = export_prediction(
            prediction,
            self.sessions.folder(session),
            method,
            vertex_colors=None if use is None else use.colors,
        )
        timings["export"] = time.perf_counter() - t4
        return Reconstruction(
            method, prediction, mesh, grid, files, timings, prepared, item_id, estimate,
            colors=colors, colored=use is not None, color_note=note,
        )  # fmt: skip
