"""Import the 3D-R2N2 release (ShapeNetRendering + ShapeNetVox32) into the benchmark layout.

Source layout (`src` is the folder holding both parts):
```
ShapeNetRendering/<synset>/<model id>/rendering/00.png .. 23.png   137x137 RGBA
ShapeNetRendering/<synset>/<model id>/rendering/rendering_metadata.txt
ShapeNetVox32/<synset>/<model id>/model.binvox                     32^3 solid voxels
```
Assumptions (documented, not verifiable without the data):

- Ground truth is the 32^3 binvox, read with `svr.io.read_binvox` (axes (x, y, z) of the
  ShapeNetCore v1 OBJ frame: +y up, front -z). We turn it 180 degrees about y (flip the x
  and z indices) so the front faces +z as in our canonical frame, and re-centre the occupied
  bounding box (integer shift; binvox puts the box in the grid's low corner). R2N2 ships no
  finer ground truth: voxels_128 is the 32^3 grid upsampled by nearest neighbour (x4), the
  mesh is the marching-cubes surface of the 32^3 grid, points/normals are sampled on it and
  occupancy labels come from the grid. Treat it as a 32^3-accurate ground truth.
- `rendering_metadata.txt` has one line per rendering: azimuth (deg), elevation (deg),
  in-plane rotation (deg), distance ratio, field of view (deg). As in R2N2's Blender
  script, the camera sits at distance `ratio * 1.75` from the model origin, at
  `(d cos(el) cos(az), d sin(el), -d cos(el) sin(az))` in the OBJ frame (Blender's z-up
  position (d cos el cos az, d cos el sin az, d sin el) after Blender's y-up OBJ import),
  looks at the origin with +y up and is rolled by the in-plane angle; the field of view is
  horizontal (square image). The camera is then mapped into our normalised frame with the
  binvox header (translate, scale), the flip and the re-centring above. The raw numbers
  are kept in `cameras.json` ("r2n2": [...]) so the conversion can be redone.
- frame="viewer" also writes `frames/<k>/` per view: the marching-cubes mesh turned into
  that camera's viewer frame, normalised again, voxelised and sampled (the object-frame
  ground truth is written as well; `cameras.json` has each view's `viewer_transform`).
- Finer ground truth (optional): with `shapenet=<ShapeNetCore v1 root>`, a model whose
  `<synset>/<id>/model.obj` exists gets its ground truth from that mesh instead
  (`load_shapenet_mesh` + `compute_ground_truth`: 128^3 voxels and surface samples of the
  real surface, inside test approximate for open meshes, see `shapenet.py`), and the
  cameras are mapped with the mesh's own normalisation. It must be ShapeNetCore v1, the
  meshes R2N2 rendered (v2 is normalised differently, so its cameras would be off).
  Models without a mesh fall back to the binvox.
- Views: the first `views` renderings (00, 01, ...; default 5 of the 24) are copied as
  `views/0.png ...`. R2N2 drew the 24 viewpoints at random, so the first k are a random
  subset.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from svr.classes import SYNSET_TO_NAME
from svr.data.importers.common import (
    ImportSummary,
    ShapeTask,
    SkipItem,
    ViewCamera,
    finish_benchmark,
    ground_truth_from_grid,
    hash_split,
    intrinsics_from_fov,
    look_at,
    normalize_grid,
    read_split_file,
    run_tasks,
    staged_output,
    with_viewer_transforms,
    write_frames,
    write_views,
)
from svr.data.importers.shapenet import find_model_file, load_shapenet_mesh_with_transform
from svr.data.layout import compute_ground_truth, shape_seed, write_ground_truth
from svr.io import read_binvox_with_header

log = logging.getLogger(__name__)

__all__ = ["import_r2n2", "read_rendering_metadata", "r2n2_camera"]

RENDERING_DIR = "ShapeNetRendering"
VOXEL_DIR = "ShapeNetVox32"
MAX_CAMERA_DISTANCE = 1.75  # R2N2's Blender script: distance = ratio * 1.75
IMAGE_SIZE = 137
DEFAULT_VIEWS = 5
N_RENDERINGS = 24
# ShapeNetCore (v1) OBJ frame -> ours: 180 degrees about +y (front -z -> +z).
_FLIP = np.diag([-1.0, 1.0, -1.0])


def read_rendering_metadata(path: Path) -> np.ndarray:
    """Parse rendering_metadata.txt: float64 (V, 5) azimuth, elevation, roll, distance ratio, fov.

    Raises ValueError naming the line if a line does not hold exactly 5 numbers.
    """
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.strip().strip("[]").replace(",", " ")
        if not text:
            continue
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"{path}:{number}: {len(fields)} columns, expected 5 (az el roll dist fov)"
            )
        try:
            rows.append([float(v) for v in fields])
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not a number ({exc})") from exc
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def r2n2_camera(
    params: np.ndarray, A: np.ndarray, b: np.ndarray, image_size: int = IMAGE_SIZE
) -> ViewCamera:
    """Camera of one metadata row, in our frame `q = A @ p + b` (A = s * rotation, s > 0)."""
    az, el, roll, ratio, fov = (float(v) for v in params)
    d = ratio * MAX_CAMERA_DISTANCE
    a, e = np.deg2rad(az), np.deg2rad(el)
    eye = np.array([d * np.cos(e) * np.cos(a), d * np.sin(e), -d * np.cos(e) * np.sin(a)])
    R_obj, _ = look_at(eye, np.zeros(3), (0.0, 1.0, 0.0), roll)
    scale = float(np.cbrt(np.linalg.det(A)))
    rotation = A / scale
    R = R_obj @ rotation.T
    centre = A @ eye + b
    return ViewCamera(
        K=intrinsics_from_fov(fov, image_size, image_size),
        R=R,
        t=-R @ centre,
        width=image_size,
        height=image_size,
        extra={"r2n2": [az, el, roll, ratio, fov]},
    )


def _import_shape(task: ShapeTask, staging: Path) -> None:
    views: int = task.get("views")
    frame: str = task.get("frame")
    seed = shape_seed(task.get("seed"), task.key)
    binvox_path: Path = task.source
    render_dir: Path = task.get("render_dir")

    grid, header = read_binvox_with_header(binvox_path)
    if len(set(grid.shape)) != 1:
        raise SkipItem(f"{binvox_path}: grid {grid.shape} is not cubic")
    if not grid.any():
        raise SkipItem(f"{binvox_path}: empty voxel grid")
    dim = grid.shape[0]
    flipped = grid[::-1, :, ::-1]
    grid32, k, o = normalize_grid(flipped, 32)

    # Model point p -> source index coordinate u = (p - translate) / scale * dim, flipped on
    # x and z (u -> dim - u), then w = k u + o in the 32 grid, then q = w / 32 - 0.5.
    translate = np.asarray(header.translate, dtype=np.float64)
    s = dim / float(header.scale) * k / 32.0
    A = s * _FLIP
    flip_offset = np.array([dim, 0.0, dim]) * k / 32.0
    b = -A @ translate + flip_offset + o / 32.0 - 0.5

    if render_dir is None or not render_dir.is_dir():
        raise SkipItem(f"missing rendering folder {render_dir}")
    meta_path = render_dir / "rendering_metadata.txt"
    if not meta_path.is_file():
        raise SkipItem(f"missing {meta_path}")
    params = read_rendering_metadata(meta_path)
    if len(params) < views:
        raise SkipItem(f"{meta_path} has {len(params)} lines, {views} views requested")
    images = [render_dir / f"{v:02d}.png" for v in range(views)]
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise SkipItem(f"missing rendering {missing[0]}")
    mesh_path: Path | None = task.get("mesh_path")
    if mesh_path is not None:  # finer ground truth from the ShapeNetCore v1 mesh
        mesh, transform = load_shapenet_mesh_with_transform(mesh_path)
        A, b = transform[:3, :3], transform[:3, 3]
        gt = compute_ground_truth(mesh, seed)
    else:
        gt = ground_truth_from_grid(grid32, seed)
    cameras = [r2n2_camera(params[v], A, b) for v in range(views)]
    shape_dir = staging / task.split / task.class_name / task.shape_id
    cameras = with_viewer_transforms(cameras, gt.mesh)
    write_views(shape_dir, images, cameras, image_size=IMAGE_SIZE)
    write_ground_truth(shape_dir, gt)
    if frame == "viewer":
        write_frames(shape_dir, gt.mesh, cameras, seed)


def import_r2n2(
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
    shapenet: Path | None = None,
) -> ImportSummary:
    """Import a 3D-R2N2 release at `src` into a benchmark folder `out` (see module doc).

    views: renderings per shape (1..24, default 5). Splits from `splits` (see
    `read_split_file`; models not listed are skipped) or a 70/10/20 hash of the model id.
    shapenet: optional ShapeNetCore v1 root for ground truth from the meshes.
    """
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    views = DEFAULT_VIEWS if views is None else int(views)
    if not 1 <= views <= N_RENDERINGS:
        raise ValueError(f"views must be in 1..{N_RENDERINGS} for R2N2, got {views}")
    if frame not in ("object", "viewer"):
        raise ValueError(f"frame must be 'object' or 'viewer', got {frame!r}")
    vox_root, render_root = src / VOXEL_DIR, src / RENDERING_DIR
    if not vox_root.is_dir():
        raise FileNotFoundError(f"{src} has no {VOXEL_DIR}/ folder: not a 3D-R2N2 release")
    split_map = read_split_file(splits) if splits is not None else None
    summary = ImportSummary(kind="r2n2", out=out)
    tasks: list[ShapeTask] = []
    for synset_dir in sorted(p for p in vox_root.iterdir() if p.is_dir()):
        models = sorted(p for p in synset_dir.iterdir() if p.is_dir())
        name = SYNSET_TO_NAME.get(synset_dir.name)
        if name is None:
            summary.ignored[synset_dir.name] = len(models)
            continue
        if limit_per_class is not None:
            models = models[:limit_per_class]
        for model in models:
            if split_map is not None and model.name not in split_map:
                summary.skipped.append((str(model), "model id not in the split file"))
                continue
            split = split_map[model.name] if split_map is not None else hash_split(model.name)
            render_dir = render_root / synset_dir.name / model.name / "rendering"
            mesh_path = None
            if shapenet is not None:
                mesh_path = find_model_file(Path(shapenet) / synset_dir.name / model.name)
            extra = (
                ("views", views),
                ("frame", frame),
                ("seed", seed),
                ("render_dir", render_dir),
                ("mesh_path", mesh_path),
            )
            tasks.append(ShapeTask(split, name, model.name, model / "model.binvox", extra))
    n_meshes = sum(t.get("mesh_path") is not None for t in tasks)
    with staged_output(out, overwrite) as staging:
        run_tasks(tasks, _import_shape, staging, summary, workers, progress)
        finish_benchmark(
            staging,
            summary,
            name="shapenet-r2n2-13",
            seed=seed,
            frame=frame,
            image_size=IMAGE_SIZE,
            views_per_shape=views,
            extra={
                "ground_truth": "R2N2 32^3 binvox; 128^3 by nearest upsampling"
                if shapenet is None
                else "ShapeNetCore v1 meshes where present, else R2N2 32^3 binvox",
                "shapes_from_meshes": n_meshes,
            },
        )
    summary.elapsed = time.perf_counter() - start
    return summary
