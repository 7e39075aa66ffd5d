"""Image -> Prediction -> files: the service the Reconstruct tab and the API call.

`Reconstructor.run(image, method, foreground_ratio, session)` preprocesses an image
(`svr.preprocess`), runs one method from the registry (`svr.models`), turns the
prediction into a mesh and writes the downloads into a per-session folder:

- GLB (for the 3D viewer), OBJ, PLY and STL: all exported from the same trimesh with the
  same (identity) transform, so the viewer and every download agree. Orientation: the
  benchmark's object frame, right-handed, **+y up**, the object's front towards **+z**,
  units of the unit cube [-0.5, 0.5]^3. This is glTF's own convention (+y up, +z front),
  so viewers show the object upright; for OBJ/PLY/STL choose "Y up" when importing.
- the occupancy grid as .npy (bool (R, R, R), axes (x, y, z)) and .binvox (unit cube).

Methods load lazily from `<models dir>/<name>/`; a missing folder is reported as
"no weights for <name> yet" (`ModelUnavailable`) instead of failing the app.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from svr.io import atomic_path, write_binvox
from svr.preprocess import DEFAULT_FOREGROUND_RATIO, ImageInputError, PreprocessResult, preprocess
from svr.types import Prediction

__all__ = [
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
]

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ModelUnavailable(RuntimeError):
    """A method cannot run: unknown name or no weights on disk yet."""


class ReconstructionError(RuntimeError):
    """A method ran but produced nothing usable (for example an empty shape)."""


@dataclass(frozen=True)
class MethodInfo:
    """One selectable method: registry name, kind ("recognition" or "encoder-decoder"),
    a one-line description, and whether its weights folder exists."""

    name: str
    kind: str
    description: str
    weights_dir: Path
    has_weights: bool

    @property
    def label(self) -> str:
        """The line shown in the model selector."""
        missing = "" if self.has_weights else " [no weights yet]"
        return f"{self.name} ({self.kind}){missing}"

    @property
    def line(self) -> str:
        """One line: name, kind, description, weights status."""
        missing = (
            ""
            if self.has_weights
            else f" **No weights for {self.name} yet** (expected in `{self.weights_dir}`)."
        )
        return f"**{self.name}** ({self.kind}): {self.description}{missing}"


def _registry() -> dict[str, Any]:
    from svr import models

    return dict(models.REGISTRY)


class ModelStore:
    """Loads methods from `models_dir/<name>/` on first use and keeps them (thread-safe)."""

    def __init__(self, models_dir: str | os.PathLike):
        self.models_dir = Path(models_dir)
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}

    def methods(self) -> list[MethodInfo]:
        """Every registry method that needs no ground truth, in registry order."""
        try:
            from svr import models

            names = list(models.available_models(demo_only=True))
            registry = _registry()
        except (ImportError, AttributeError) as exc:  # the registry is not installed
            logger.error("no reconstruction methods available: %s", exc)
            return []
        out = []
        for name in names:
            entry = registry[name]
            if getattr(entry, "needs_ground_truth", False):
                continue
            folder = self.models_dir / name
            out.append(
                MethodInfo(
                    name=name,
                    kind=str(getattr(entry, "kind", "encoder-decoder")),
                    description=str(getattr(entry, "description", "")).strip().splitlines()[0]
                    if getattr(entry, "description", "")
                    else "",
                    weights_dir=folder,
                    has_weights=folder.is_dir() and any(folder.iterdir()),
                )
            )
        return out

    def get(self, name: str) -> Any:
        """The loaded model `name`; ModelUnavailable if unknown or its weights are missing."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:
            if name in self._models:
                return self._models[name]
            from svr import models

            known = {m.name: m for m in self.methods()}
            if name not in known:
                raise ModelUnavailable(
                    f"unknown method {name!r}: choose one of {', '.join(sorted(known)) or 'none'}"
                )
            folder = self.models_dir / name
            if not known[name].has_weights:
                raise ModelUnavailable(
                    f"no weights for {name} yet: expected a folder {folder} "
                    f"(train it with `python -m svr.train` or copy the shipped weights there)"
                )
            start = time.perf_counter()
            model = models.load_model(name, folder)
            logger.info("loaded %s from %s in %.2f s", name, folder, time.perf_counter() - start)
            with self._lock:
                self._models[name] = model
            return model


@dataclass
class ExportedFiles:
    """Paths of the downloads of one reconstruction (None where a format does not apply)."""

    glb: Path
    obj: Path | None
    ply: Path
    stl: Path | None
    npy: Path | None
    binvox: Path | None

    def downloads(self) -> list[Path]:
        return [
            p
            for p in (self.glb, self.obj, self.ply, self.stl, self.npy, self.binvox)
            if p is not None
        ]


@dataclass
class Reconstruction:
    """Result of one method on one image.

    timings: seconds per stage in order (preprocess, network, mesh extraction, export);
    mesh: the exported surface (None for a point cloud); grid: bool (R, R, R) or None.
    """

    method: str
    prediction: Prediction
    mesh: trimesh.Trimesh | None
    grid: np.ndarray | None
    files: ExportedFiles
    timings: dict[str, float]
    input: PreprocessResult
    item_id: str | None = None  # set when the input is a known public benchmark view

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


def _export_bytes(geometry: trimesh.Trimesh | trimesh.PointCloud, file_type: str) -> bytes:
    data = geometry.export(file_type=file_type)
    return data.encode() if isinstance(data, str) else bytes(data)


def export_prediction(
    prediction: Prediction, out_dir: str | os.PathLike, stem: str, grid_resolution: int = 32
) -> tuple[ExportedFiles, trimesh.Trimesh | None, np.ndarray | None]:
    """Write GLB, OBJ, PLY, STL, .npy and .binvox of a prediction into `out_dir`.

    All mesh formats come from one trimesh with one (identity) transform: +y up, front
    towards +z, unit cube. A point-only prediction gives GLB and PLY point clouds and no
    OBJ/STL/grid. Returns (files, mesh or None, bool grid (R, R, R) or None).
    Raises ReconstructionError for an empty shape.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _SAFE.sub("_", stem)
    mesh = prediction.to_mesh()
    if mesh is not None and len(mesh.faces) == 0:
        raise ReconstructionError(
            f"{prediction.method} produced an empty shape (nothing above its occupancy threshold)"
        )
    geometry: trimesh.Trimesh | trimesh.PointCloud
    if mesh is None:
        points = np.asarray(prediction.points, dtype=np.float64)
        if points.size == 0:
            raise ReconstructionError(f"{prediction.method} produced an empty point set")
        geometry = trimesh.PointCloud(points)
    else:
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        mesh.visual.face_colors = np.array([176, 184, 196, 255], np.uint8)
        geometry = mesh

    def write(ext: str, data: bytes) -> Path:
        path = out / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path

    glb = write("glb", _export_bytes(trimesh.Scene(geometry), "glb"))
    ply = write("ply", _export_bytes(geometry, "ply"))
    obj = stl = npy = binvox = None
    grid = None
    if mesh is not None:
        obj = write("obj", _export_bytes(mesh, "obj"))
        stl = write("stl", _export_bytes(mesh, "stl"))
        occ = prediction.occupancy
        resolution = int(occ.shape[0]) if occ is not None else grid_resolution
        grid = prediction.to_grid(resolution)
    if grid is not None:
        grid = np.asarray(grid, dtype=bool)
        npy = out / f"{stem}_occupancy.npy"
        with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
            np.save(fh, grid, allow_pickle=False)
        binvox = out / f"{stem}_occupancy.binvox"
        write_binvox(binvox, grid)
    return ExportedFiles(glb=glb, obj=obj, ply=ply, stl=stl, npy=npy, binvox=binvox), mesh, grid


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


@dataclass
class Reconstructor:
    """Preprocess -> method -> mesh -> files, with per-stage timings."""

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
    ) -> Reconstruction:
        """Reconstruct one image with one method and write its downloads.

        `image` is a path, an array or an already preprocessed input (then `item_id` names
        the benchmark view it shows, if any); for a path the known examples are looked up.

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
            prediction = Prediction(
                method=prediction.method,
                mesh=mesh,
                occupancy=prediction.occupancy,
                points=prediction.points,
                threshold=prediction.threshold,
                info=prediction.info,
            )
        timings["mesh extraction"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        files, mesh, grid = export_prediction(prediction, self.sessions.folder(session), method)
        timings["export"] = time.perf_counter() - t3
        return Reconstruction(method, prediction, mesh, grid, files, timings, prepared, item_id)


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
        tmp.write_bytes(_export_bytes(trimesh.Scene(gt_mesh), "glb"))
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


__all__ += [
    "ImageInputError",
    "GroundTruthComparison",
    "compare_with_ground_truth",
    "ground_truth_scores",
    "precision_recall_figure",
]


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


__all__ += ["RecognisedShape", "recognise", "nearest_training_shapes", "render_thumbnail"]
