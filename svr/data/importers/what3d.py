"""Import the what3d release (viewer-centred ShapeNet, Tatarchenko et al. 2019).

Source layout. The released archives are `points.zip`, `voxels.zip`, `renderings.zip` and
`splits.zip`; the what3d evaluation code reads `points/`, `lists/` and `classes.txt`
exactly as below. The inner names of the voxel and rendering archives are NOT documented
by the release; the defaults below are our assumption and every folder name and file
pattern can be changed through `What3DPaths`:
```
classes.txt                               one class per line: "<name> [<synset> ...]"
lists/<class>/{train,val,test}.txt        model ids, one per line
points/<class>/<model id>/<view>.ply      ground-truth point cloud of that view (documented)
voxels/<class>/<model id>/<view>.binvox   voxel grid of that view (assumed; also tried: binvox/)
renderings/<class>/<model id>/<view>.png  input image of that view (assumed)
```
- Class names: the release uses names ("vessel" for our "watercraft"); a class is mapped
  by name, by alias or by the synset given in classes.txt; the other 42 classes are
  counted as ignored.
- The benchmark frame is "viewer": each view k gets its own ground truth in
  `frames/<k>/`. The release's viewer frame is assumed to match ours (x right, y up, z
  towards the viewer); nothing is rotated.
- A view needs its points, voxels and rendering; a shape missing any of them for one of
  the first `views` views (default 5) is skipped with the reason. Voxels are required
  because the layout needs a mesh, grids and occupancy, which a point cloud alone does not
  determine.
- Normalisation: the points (bounding box centred, longest side 1) and the voxels
  (occupied box centred, longest side spanning the grid, nearest resampling to 128^3)
  are normalised separately with the benchmark's rule, so they agree when the release's
  two modalities describe the same shape in the same frame. As a guard, a view is
  rejected if the 90th percentile distance from its points to the voxels' surface exceeds
  `max_disagreement` (default 0.05 of the unit cube), e.g. because of an axis mismatch.
- Ground truth per view: points.npy = the released points (deterministically subsampled
  to 100,000 if there are more), normals = normals of the nearest marching-cubes surface
  sample of the voxels, voxels_128 = the normalised grid, voxels_32 = its 4x majority
  pooling, mesh.ply = marching cubes of the 128^3 grid, occupancy labels from the grid.
- cameras.json: the release has no camera parameters; each entry has R of the viewer
  frame (an OpenCV camera looking down -z with +y up) and K = t = null.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from scipy.spatial import cKDTree

from svr.classes import NAME_TO_SYNSET, SYNSET_TO_NAME
from svr.data.importers.common import (
    ImportSummary,
    ShapeTask,
    SkipItem,
    ViewCamera,
    finish_benchmark,
    ground_truth_from_grid,
    normalize_grid,
    run_tasks,
    staged_output,
    write_views,
)
from svr.data.layout import N_SURFACE_POINTS, SPLITS, shape_seed, write_ground_truth
from svr.io import read_binvox

log = logging.getLogger(__name__)

__all__ = ["What3DPaths", "import_what3d", "read_classes", "map_class"]

DEFAULT_VIEWS = 5
CLASS_ALIASES = {"vessel": "watercraft"}
_VIEWER_R = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class What3DPaths:
    """Folder names and per-view file patterns of a what3d release (relative to its root).

    Patterns take `{cls}`, `{model}` and `{view}`.
    """

    classes: str = "classes.txt"
    lists: str = "lists"
    points: str = "points/{cls}/{model}/{view}.ply"
    voxels: tuple[str, ...] = (
        "voxels/{cls}/{model}/{view}.binvox",
        "binvox/{cls}/{model}/{view}.binvox",
    )
    renderings: str = "renderings/{cls}/{model}/{view}.png"


def read_classes(path: Path) -> dict[str, str | None]:
    """classes.txt -> {release class name: synset or None}. The first token is the name."""
    result: dict[str, str | None] = {}
    for line in Path(path).read_text().splitlines():
        tokens = line.split()
        if tokens:
            synset = next((t for t in tokens[1:] if t.isdigit() and len(t) == 8), None)
            result[tokens[0]] = synset
    return result


def map_class(name: str, synset: str | None = None) -> str | None:
    """Our class name for a release class (by name, alias or synset), or None if foreign."""
    if name in NAME_TO_SYNSET:
        return name
    if name in CLASS_ALIASES:
        return CLASS_ALIASES[name]
    if synset is not None:
        return SYNSET_TO_NAME.get(synset)
    return None


def _read_points(path: Path) -> np.ndarray:
    try:
        cloud = trimesh.load(path, process=False)
    except Exception as exc:  # a broken foreign file can fail anywhere inside a parser
        raise SkipItem(f"cannot read points {path}: {type(exc).__name__}: {exc}") from exc
    points = np.asarray(getattr(cloud, "vertices", np.zeros((0, 3))), dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise SkipItem(f"{path} holds no points")
    if not np.isfinite(points).all():
        raise SkipItem(f"{path} has non-finite coordinates")
    return points


def _normalize_points(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = float((hi - lo).max())
    if extent <= 0:
        raise SkipItem("the point cloud has no extent")
    return (points - (lo + hi) / 2) / extent


def _import_shape(task: ShapeTask, staging: Path) -> None:
    paths: What3DPaths = task.get("paths")
    root: Path = task.get("root")
    views: int = task.get("views")
    max_disagreement: float = task.get("max_disagreement")
    release_class: str = task.get("release_class")
    seed = shape_seed(task.get("seed"), task.key)
    fmt = {"cls": release_class, "model": task.shape_id}

    sources = []
    for v in range(views):
        pts = root / paths.points.format(view=v, **fmt)
        candidates = [root / p.format(view=v, **fmt) for p in paths.voxels]
        vox = next((c for c in candidates if c.is_file()), None)
        img = root / paths.renderings.format(view=v, **fmt)
        if not pts.is_file():
            raise SkipItem(f"missing points {pts}")
        if vox is None:
            raise SkipItem(f"missing voxels for view {v} ({candidates[0]})")
        if not img.is_file():
            raise SkipItem(f"missing rendering {img}")
        sources.append((pts, vox, img))

    shape_dir = staging / task.split / task.class_name / task.shape_id
    image_size = None
    for v, (pts, vox, _) in enumerate(sources):
        grid = read_binvox(vox)
        if len(set(grid.shape)) != 1:
            raise SkipItem(f"{vox}: grid {grid.shape} is not cubic")
        if not grid.any():
            raise SkipItem(f"{vox}: empty voxel grid")
        grid128, _, _ = normalize_grid(grid, 128)
        points = _normalize_points(_read_points(pts))
        if len(points) > N_SURFACE_POINTS:
            keep = np.random.default_rng(seed + v).choice(
                len(points), N_SURFACE_POINTS, replace=False
            )
            points = points[np.sort(keep)]
        gt = ground_truth_from_grid(grid128, seed + v, points=points)
        surface = trimesh.sample.sample_surface_even(gt.mesh, 20_000, seed=seed)[0]
        dist, _ = cKDTree(surface).query(points)
        p90 = float(np.percentile(dist, 90))
        if p90 > max_disagreement:
            raise SkipItem(
                f"{pts}: points and voxels disagree (90th percentile distance {p90:.3f} > "
                f"{max_disagreement}); frame or axis mismatch?"
            )
        write_ground_truth(shape_dir / "frames" / str(v), gt)
    images = [img for _, _, img in sources]
    cameras = []
    for img in images:
        try:
            with Image.open(img) as im:
                width, height = im.size
        except OSError as exc:
            raise SkipItem(f"unreadable image {img}: {exc}") from exc
        image_size = image_size or width
        cameras.append(
            ViewCamera(
                K=None,
                R=_VIEWER_R,
                t=None,
                width=width,
                height=height,
                extra={"note": "what3d ships no camera parameters"},
            )
        )
    write_views(shape_dir, images, cameras, image_size=image_size)


def import_what3d(
    src: Path,
    out: Path,
    *,
    splits: Path | None = None,
    views: int | None = None,
    frame: str = "viewer",
    seed: int = 0,
    workers: int = 1,
    limit_per_class: int | None = None,
    overwrite: bool = False,
    progress=None,
    paths: What3DPaths | None = None,
    max_disagreement: float = 0.05,
) -> ImportSummary:
    """Import a what3d release at `src` into a benchmark folder `out` (see module doc).

    The frame is always "viewer" (an "object" request, the CLI default, is turned into
    "viewer" and logged: the release has no object-frame ground truth). `splits` is
    not used: the release's lists define the splits.
    """
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    paths = paths or What3DPaths()
    views = DEFAULT_VIEWS if views is None else int(views)
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    if frame not in ("object", "viewer"):
        raise ValueError(f"frame must be 'object' or 'viewer', got {frame!r}")
    if frame != "viewer":
        log.info("what3d is viewer-centred: writing frame='viewer' instead of %r", frame)
        frame = "viewer"
    if splits is not None:
        log.warning("what3d defines its own splits in %s/; ignoring %s", paths.lists, splits)
    lists_root = src / paths.lists
    if not lists_root.is_dir():
        raise FileNotFoundError(f"{src} has no {paths.lists}/ folder: not a what3d release")
    classes_file = src / paths.classes
    synsets = read_classes(classes_file) if classes_file.is_file() else {}
    summary = ImportSummary(kind="what3d", out=out)
    tasks: list[ShapeTask] = []
    for class_dir in sorted(p for p in lists_root.iterdir() if p.is_dir()):
        ours = map_class(class_dir.name, synsets.get(class_dir.name))
        if ours is None:
            n = 0
            for split in SPLITS:
                f = class_dir / f"{split}.txt"
                n += len(f.read_text().split()) if f.is_file() else 0
            summary.ignored[class_dir.name] = n
            continue
        taken = 0
        for split in SPLITS:
            list_file = class_dir / f"{split}.txt"
            if not list_file.is_file():
                continue
            for model in list_file.read_text().split():
                if limit_per_class is not None and taken >= limit_per_class:
                    break
                taken += 1
                extra = (
                    ("paths", paths),
                    ("root", src),
                    ("views", views),
                    ("seed", seed),
                    ("release_class", class_dir.name),
                    ("max_disagreement", max_disagreement),
                )
                source = src / paths.points.format(cls=class_dir.name, model=model, view=0)
                tasks.append(ShapeTask(split, ours, model, source.parent, extra))
    with staged_output(out, overwrite) as staging:
        run_tasks(tasks, _import_shape, staging, summary, workers, progress)
        image_size = _first_image_size(staging)
        finish_benchmark(
            staging,
            summary,
            name="what3d-13",
            seed=seed,
            frame=frame,
            image_size=image_size,
            views_per_shape=views,
            extra={
                "ground_truth": "what3d per-view points; grids and mesh from the per-view voxels"
            },
        )
    summary.elapsed = time.perf_counter() - start
    return summary


def _first_image_size(root: Path) -> int:
    for png in sorted(root.glob("*/*/*/views/0.png")):
        with Image.open(png) as im:
            return int(im.size[0])
    return 0
