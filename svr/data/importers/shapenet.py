"""Import ShapeNetCore (v1 or v2) meshes into the benchmark layout, rendering the views.

Source layout (`src` is the ShapeNetCore root):
```
v1: <src>/<synset>/<model id>/model.obj
v2: <src>/<synset>/<model id>/models/model_normalized.obj
```
Only the 13 synsets of `svr.classes` are imported; other synsets are counted as ignored.

- Meshes are loaded with trimesh without materials or textures (a missing .mtl or texture
  does not matter), merged into one mesh, turned 180 degrees about +y and normalised with
  `normalize_mesh`. Orientation assumption: ShapeNetCore v2 documents +y up and front -z;
  v1 is taken to be the same frame (v1 has known left-right mirroring of some models,
  which cannot be detected here and is not corrected).
- ShapeNet meshes are not watertight. We first merge duplicate vertices and fill small
  holes (`trimesh.repair.fill_holes`, optional), then compute the ground truth with
  `compute_ground_truth`, whose inside test is a majority vote of ray parity along x, y
  and z. For meshes that stay open (most of them), voxels and occupancy labels are an
  approximation: a point is inside if at least two of the three axis rays cross the surface
  an odd number of times. Surface points and normals are exact samples of the mesh.
- ShapeNetCore has no renderings: views are rendered with `svr.render` (untextured, one
  grey colour) from seeded random cameras; pass `renderer=` to use another renderer.
- frame="viewer" also writes `frames/<k>/` per view (the mesh turned into that camera's
  viewer frame and normalised again), like the procedural builder; `cameras.json` has
  each view's `viewer_transform` (4 x 4, object frame -> frame k).
- Splits: a split file (`read_split_file`: ShapeNet's official CSV
  `id,synsetId,subSynsetId,modelId,split`, a 2-column CSV or JSON) or a deterministic
  70/10/20 hash of the model id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh

from svr.classes import SYNSET_TO_NAME
from svr.data.importers.common import (
    ImportSummary,
    ShapeTask,
    SkipItem,
    ViewCamera,
    finish_benchmark,
    hash_split,
    read_split_file,
    run_tasks,
    staged_output,
    with_viewer_transforms,
    write_frames,
    write_views,
)
from svr.data.layout import compute_ground_truth, shape_seed, write_ground_truth

log = logging.getLogger(__name__)

__all__ = [
    "import_shapenet",
    "load_shapenet_mesh",
    "load_shapenet_mesh_with_transform",
    "find_model_file",
    "render_views",
    "Renderer",
]

MODEL_FILES = ("models/model_normalized.obj", "model.obj")  # v2, v1
IMAGE_SIZE = 137
DEFAULT_VIEWS = 5
GREY = 0.7  # RGB in [0, 1]: untextured light grey
# ShapeNetCore frame (+y up, front -z) -> ours (+y up, front +z): 180 degrees about +y.
SHAPENET_TO_CANONICAL = np.diag([-1.0, 1.0, -1.0, 1.0])

Renderer = Callable[[trimesh.Trimesh, int, int, int], tuple[list[np.ndarray], list[ViewCamera]]]
"""(normalised mesh, number of views, image size in pixels, seed) -> (RGBA uint8 (H, W, 4)
images, cameras in the object frame)."""


def find_model_file(model_dir: Path) -> Path | None:
    """The OBJ of a ShapeNetCore model folder (v2 name first, then v1), or None."""
    for name in MODEL_FILES:
        path = model_dir / name
        if path.is_file():
            return path
    return None


def load_shapenet_mesh(path: Path, repair: bool = True) -> trimesh.Trimesh:
    """Load a ShapeNet OBJ as one mesh in our canonical frame, normalised to the unit cube.

    Materials and textures are not loaded. Raises SkipItem if the file cannot be parsed or
    holds no triangle with area.
    """
    mesh, _ = load_shapenet_mesh_with_transform(path, repair)
    return mesh


def load_shapenet_mesh_with_transform(
    path: Path, repair: bool = True
) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Like `load_shapenet_mesh`; also returns the 4 x 4 matrix (similarity) that took the
    file's coordinates to the returned mesh's (turn to front +z, then normalisation)."""
    try:
        mesh = trimesh.load(path, force="mesh", skip_materials=True, process=False)
    except Exception as exc:  # a broken foreign file can fail anywhere inside a parser
        raise SkipItem(f"cannot read mesh {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise SkipItem(f"{path} has no faces")
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    if not np.isfinite(mesh.vertices).all():
        raise SkipItem(f"{path} has non-finite vertex coordinates")
    if mesh.area <= 0:
        raise SkipItem(f"{path} has no surface area")
    if repair:
        mesh.merge_vertices()
        mesh.update_faces(mesh.nondegenerate_faces())
        trimesh.repair.fill_holes(mesh)
    mesh.apply_transform(SHAPENET_TO_CANONICAL)
    lo, hi = mesh.bounds
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise SkipItem(f"{path}: the mesh has a degenerate bounding box")
    normalise = np.eye(4)
    normalise[:3, :3] /= extent
    normalise[:3, 3] = -(lo + hi) / 2 / extent
    mesh.apply_transform(normalise)
    return mesh, normalise @ SHAPENET_TO_CANONICAL


def render_views(
    mesh: trimesh.Trimesh, n_views: int, image_size: int, seed: int
) -> tuple[list[np.ndarray], list[ViewCamera]]:
    """Default renderer: `svr.render` with seeded random cameras and lights, one grey colour."""
    from svr import render as svr_render  # imported lazily: rendering is heavy

    rng = np.random.default_rng(seed)
    colors = np.full((len(mesh.faces), 3), GREY)
    images, cameras = [], []
    for _ in range(n_views):
        camera = svr_render.random_camera(rng)
        light = svr_render.random_light(rng, camera)
        images.append(svr_render.render(mesh, colors, camera, image_size, light_dir=light))
        R, t = camera.extrinsics()
        info = camera.to_dict(image_size)
        extra = {k: info[k] for k in ("azimuth", "elevation", "distance", "fov")}
        cameras.append(
            ViewCamera(camera.intrinsics(image_size), R, t, image_size, image_size, extra)
        )
    return images, cameras


def _import_shape(task: ShapeTask, staging: Path) -> None:
    seed = shape_seed(task.get("seed"), task.key)
    views: int = task.get("views")
    renderer: Renderer = task.get("renderer")
    mesh = load_shapenet_mesh(task.source, repair=task.get("repair"))
    shape_dir = staging / task.split / task.class_name / task.shape_id
    cameras: list[ViewCamera] = []
    if views > 0:
        images, cameras = renderer(mesh, views, IMAGE_SIZE, seed)
        cameras = with_viewer_transforms(cameras, mesh)
        write_views(shape_dir, images, cameras, image_size=IMAGE_SIZE)
    write_ground_truth(shape_dir, compute_ground_truth(mesh, seed))
    if task.get("frame") == "viewer":
        write_frames(shape_dir, mesh, cameras, seed)


def import_shapenet(
    src: Path,
    out: Path,
    *,
    splits: Path | None = None,
    views: int | None = None,
    frame: str = "object",
    seed: int = 0,
    workers: int = 1,
    limit_per_class: int | None = None,
    overwrite: bool = False,
    progress=None,
    renderer: Renderer | None = None,
    repair: bool = True,
) -> ImportSummary:
    """Import ShapeNetCore at `src` into a benchmark folder `out` (see module doc).

    views: renderings per shape (default 5; 0 writes ground truth only, which gives a
    benchmark without test items). renderer: defaults to `render_views` (`svr.render`);
    it must be a picklable top-level function when workers > 1.
    """
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    views = DEFAULT_VIEWS if views is None else int(views)
    if views < 0:
        raise ValueError(f"views must be >= 0, got {views}")
    if frame not in ("object", "viewer"):
        raise ValueError(f"frame must be 'object' or 'viewer', got {frame!r}")
    if frame == "viewer" and views == 0:
        raise ValueError("the viewer frame needs views (cameras): pass views >= 1")
    if not src.is_dir():
        raise FileNotFoundError(f"ShapeNetCore folder {src} does not exist")
    renderer = render_views if renderer is None else renderer
    split_map = read_split_file(splits) if splits is not None else None
    summary = ImportSummary(kind="shapenet", out=out)
    tasks: list[ShapeTask] = []
    for synset_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        models = sorted(p for p in synset_dir.iterdir() if p.is_dir())
        name = SYNSET_TO_NAME.get(synset_dir.name)
        if name is None:
            summary.ignored[synset_dir.name] = len(models)
            continue
        if limit_per_class is not None:
            models = models[:limit_per_class]
        for model in models:
            obj = find_model_file(model)
            if obj is None:
                summary.skipped.append((str(model), f"no {' or '.join(MODEL_FILES)}"))
                continue
            if split_map is not None and model.name not in split_map:
                summary.skipped.append((str(model), "model id not in the split file"))
                continue
            split = split_map[model.name] if split_map is not None else hash_split(model.name)
            extra = (
                ("views", views),
                ("frame", frame),
                ("seed", seed),
                ("renderer", renderer),
                ("repair", repair),
            )
            tasks.append(ShapeTask(split, name, model.name, obj, extra))
    with staged_output(out, overwrite) as staging:
        run_tasks(tasks, _import_shape, staging, summary, workers, progress)
        finish_benchmark(
            staging,
            summary,
            name="shapenet-13",
            seed=seed,
            frame=frame,
            image_size=IMAGE_SIZE,
            views_per_shape=views,
            extra={"ground_truth": "ShapeNetCore meshes; inside test by 3-axis ray-parity vote"},
        )
    summary.elapsed = time.perf_counter() - start
    return summary
