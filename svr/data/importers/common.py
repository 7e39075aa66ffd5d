"""Shared machinery of the importers: staging, splits, cameras, grid ground truth, summaries.

Every importer writes the public layout of `svr.data.layout` into a staging folder beside
`out` (`.<out name>.<random>.importing`) and renames it onto `out` only once everything is
written; any exception removes the staging folder and leaves `out` untouched.

Camera convention of `views/cameras.json` (one entry per view, in view order): OpenCV
pinhole, `x_cam = R @ x_world + t` with x right, y down, z forward (into the scene);
pixel `(u, v) = (K @ x_cam)[:2] / z` with `(0, 0)` the top-left corner of the image and
pixel centres at half-integers. World = the benchmark's normalised object frame.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from PIL import Image

from svr.classes import CLASS_NAMES
from svr.data.layout import (
    N_OCCUPANCY_POINTS,
    N_SURFACE_POINTS,
    SPLITS,
    BenchmarkMeta,
    GroundTruth,
    compute_ground_truth,
    test_checksum,
    write_ground_truth,
    write_meta,
)
from svr.geometry import grid_to_mesh, sample_surface
from svr.io import atomic_path
from svr.render import viewer_rotation

log = logging.getLogger(__name__)

__all__ = [
    "ImportSummary",
    "SkipItem",
    "ShapeTask",
    "ViewCamera",
    "look_at",
    "intrinsics_from_fov",
    "viewer_rotation",
    "hash_split",
    "read_split_file",
    "staged_output",
    "normalize_grid",
    "downsample_grid",
    "ground_truth_from_grid",
    "write_views",
    "write_frames",
    "viewer_transform",
    "with_viewer_transforms",
    "run_tasks",
    "finish_benchmark",
]

SPLIT_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, val, test
_SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


class SkipItem(Exception):
    """Raised while importing one shape: that shape is skipped with this message as reason."""


@dataclass
class ImportSummary:
    """What an import did.

    counts: split -> class -> number of shapes written; skipped: (source path, reason) per
    shape left out; ignored: foreign class or synset -> number of shapes not imported
    because the class is not one of the 13; elapsed: wall-clock seconds.
    """

    kind: str
    out: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def total(self) -> int:
        return sum(n for per_class in self.counts.values() for n in per_class.values())

    def __str__(self) -> str:
        lines = [f"{self.kind} import into {self.out}: {self.total} shapes in {self.elapsed:.1f} s"]
        for split in SPLITS:
            per_class = self.counts.get(split, {})
            if per_class:
                detail = ", ".join(f"{c} {n}" for c, n in sorted(per_class.items()))
                lines.append(f"  {split}: {sum(per_class.values())} ({detail})")
        if self.ignored:
            n = sum(self.ignored.values())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(self.ignored.items()))
            lines.append(f"  ignored (not one of the 13 classes): {n} ({detail})")
        if self.skipped:
            lines.append(f"  skipped: {len(self.skipped)}")
            lines += [f"    {path}: {reason}" for path, reason in self.skipped[:50]]
            if len(self.skipped) > 50:
                lines.append(f"    ... and {len(self.skipped) - 50} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class ShapeTask:
    """One shape to import: its place in the output and where its source files are."""

    split: str
    class_name: str
    shape_id: str
    source: Path
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.class_name}/{self.shape_id}"

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.extra).get(name, default)


# ---------------------------------------------------------------------------------------------
# Cameras


@dataclass(frozen=True)
class ViewCamera:
    """A pinhole camera: K (3, 3) in pixels, R (3, 3) world->camera, t (3,); see module doc."""

    K: np.ndarray | None
    R: np.ndarray
    t: np.ndarray | None
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def lst(a: np.ndarray | None) -> Any:
            return None if a is None else np.asarray(a, dtype=float).round(9).tolist()

        return {
            "K": lst(self.K),
            "R": lst(self.R),
            "t": lst(self.t),
            "width": int(self.width),
            "height": int(self.height),
            "image_size": int(self.width) if self.width == self.height else None,
            "convention": "opencv: x_cam = R @ x_world + t, x right, y down, z forward",
            **self.extra,
        }


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """K (3, 3) for a horizontal field of view in degrees, square pixels, centred principal point."""
    if not 0 < fov_deg < 180:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    f = (width / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(
    eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0, 1, 0), roll_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """World->camera (R (3, 3), t (3,)) of an OpenCV camera at `eye` looking at `target`.

    `roll_deg` turns the camera about its viewing axis: its x (right) axis turns towards its
    y (down) axis by that angle.
    """
    eye = np.asarray(eye, dtype=float)
    forward = np.asarray(target, dtype=float) - eye
    if np.linalg.norm(forward) == 0:
        raise ValueError("camera eye and target coincide")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=float))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("camera up vector is parallel to the viewing direction")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    a = np.deg2rad(roll_deg)
    right, down = np.cos(a) * right + np.sin(a) * down, -np.sin(a) * right + np.cos(a) * down
    R = np.stack([right, down, forward])
    return R, -R @ eye


# ---------------------------------------------------------------------------------------------
# Splits


def hash_split(model_id: str, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """Deterministic split of a model id: SHA-256 of the id, 70/10/20 train/val/test by default."""
    h = int.from_bytes(hashlib.sha256(model_id.encode()).digest()[:8], "big") / 2.0**64
    train, val, _ = fractions
    if h < train:
        return "train"
    return "val" if h < train + val else "test"


def _norm_split(value: str, source: str) -> str:
    split = _SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise ValueError(f"{source}: unknown split {value!r}; expected train, val or test")
    return split


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """Read a split file into model id -> split ("train", "val" or "test").

    Formats:
    - CSV with a header that has `modelId` (or `model_id`, `id`) and `split` columns, e.g. the
      official ShapeNet split CSV `id,synsetId,subSynsetId,modelId,split`;
    - CSV without header of two columns `model id,split`;
    - JSON `{"<model id>": "<split>", ...}` or `{"train": [ids], "val": [ids], "test": [ids]}`.
    `val`, `valid` and `validation` all mean val.
    """
    path = Path(path)
    text = path.read_text()
    mapping: dict[str, str] = {}
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a JSON split file must be an object")
        for key, value in data.items():
            if isinstance(value, list):
                split = _norm_split(key, str(path))
                mapping.update({str(m): split for m in value})
            elif isinstance(value, str):
                mapping[str(key)] = _norm_split(value, str(path))
            else:
                raise ValueError(f"{path}: entry {key!r} must be a split name or a list of ids")
        return mapping
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: the split file is empty")
    header = [c.strip() for c in rows[0]]
    lower = [c.lower() for c in header]
    if "split" in lower:
        split_col = lower.index("split")
        id_col = next((lower.index(n) for n in ("modelid", "model_id", "id") if n in lower), None)
        if id_col is None:
            raise ValueError(f"{path}: header {header} has no modelId / model_id / id column")
        body = rows[1:]
    else:
        id_col, split_col, body = 0, 1, rows
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        if len(row) <= max(id_col, split_col):
            raise ValueError(f"{path}: line {number} has {len(row)} columns: {row}")
        mapping[row[id_col].strip()] = _norm_split(row[split_col], f"{path}:{number}")
    return mapping


# ---------------------------------------------------------------------------------------------
# Staging


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside `out`; on success it replaces `out`.

    Raises FileExistsError before any work if `out` exists and `overwrite` is False. On any
    exception the staging folder is removed and `out` is left as it was.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".importing", dir=out.parent))
    try:
        yield staging
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "previous")
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Grids


def normalize_grid(grid: np.ndarray, resolution: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Apply the benchmark's normalisation rule to an occupancy grid, by nearest resampling.

    The occupied bounding box is centred in the output grid and its longest side spans all
    `resolution` voxels. In continuous index units (voxel i spans [i, i+1)), an input
    position u maps to `w = k * u + o` (k scalar, o (3,)).

    Returns (grid bool (R, R, R), k, o). Raises ValueError for an empty grid.
    """
    grid = np.asarray(grid, dtype=bool)
    if grid.ndim != 3:
        raise ValueError(f"occupancy grid must be 3D, got shape {grid.shape}")
    occupied = np.argwhere(grid)
    if len(occupied) == 0:
        raise ValueError("the occupancy grid is empty")
    lo, hi = occupied.min(axis=0), occupied.max(axis=0) + 1
    extent = hi - lo
    k = resolution / float(extent.max())
    pad = (resolution - k * extent) / 2.0
    if abs(k - round(k)) < 1e-9:  # integer zoom: keep voxel boundaries aligned
        pad = np.floor(pad)
    o = pad - k * lo
    centres = np.arange(resolution) + 0.5
    index = [np.floor((centres - o[a]) / k).astype(np.int64) for a in range(3)]
    valid = [(ix >= lo[a]) & (ix < hi[a]) for a, ix in enumerate(index)]
    out = np.zeros((resolution,) * 3, dtype=bool)
    sub = grid[np.ix_(index[0][valid[0]], index[1][valid[1]], index[2][valid[2]])]
    out[np.ix_(valid[0], valid[1], valid[2])] = sub
    return out, k, o


def _lookup(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Occupancy bool (N,) of points (N, 3) in a grid over the unit cube; outside is False."""
    r = grid.shape[0]
    idx = np.floor((points + 0.5) * r).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < r), axis=1)
    out = np.zeros(len(points), dtype=bool)
    i = idx[inside]
    out[inside] = grid[i[:, 0], i[:, 1], i[:, 2]]
    return out


def downsample_grid(grid: np.ndarray, factor: int) -> np.ndarray:
    """Majority pooling of a bool grid (R, R, R) by an integer factor: bool (R/f, R/f, R/f)."""
    r = grid.shape[0]
    if r % factor:
        raise ValueError(f"grid size {r} is not a multiple of {factor}")
    m = r // factor
    blocks = grid.reshape(m, factor, m, factor, m, factor).mean(axis=(1, 3, 5))
    return blocks >= 0.5


def ground_truth_from_grid(
    grid: np.ndarray, seed: int, points: np.ndarray | None = None
) -> GroundTruth:
    """Ground truth from a normalised occupancy grid (32^3 or 128^3), when no mesh exists.

    voxels_32 / voxels_128: the grid itself, nearest upsampling (x4) or majority pooling (/4);
    mesh: marching cubes of the grid; points / normals: `points` (N, 3) if given (normals of
    the nearest marching-cubes surface sample), else N_SURFACE_POINTS samples of that mesh;
    occupancy: uniform and near-surface points labelled by the finer grid.
    """
    grid = np.asarray(grid, dtype=bool)
    r = grid.shape[0]
    if r == 32:
        vox32, vox128 = grid, grid.repeat(4, 0).repeat(4, 1).repeat(4, 2)
    elif r == 128:
        vox32, vox128 = downsample_grid(grid, 4), grid
    else:
        raise ValueError(f"ground truth grids must be 32^3 or 128^3, got {grid.shape}")
    v, f = grid_to_mesh(grid)
    if len(f) == 0:
        raise ValueError("marching cubes found no surface in the grid")
    mesh = trimesh.Trimesh(v, f, process=False)
    surf, normals, _ = sample_surface(v, f, N_SURFACE_POINTS, seed)
    if points is not None:
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(surf).query(points)
        surf, normals = np.asarray(points, dtype=np.float64), normals[nearest]
    rng = np.random.default_rng(seed + 1)
    half = N_OCCUPANCY_POINTS // 2
    uniform = rng.uniform(-0.55, 0.55, size=(half, 3))
    near = surf[rng.integers(0, len(surf), size=N_OCCUPANCY_POINTS - half)]
    near = near + rng.normal(scale=0.02, size=near.shape)
    occ_points = np.concatenate([uniform, near])
    return GroundTruth(
        mesh=mesh,
        voxels_32=vox32,
        voxels_128=vox128,
        points=surf.astype(np.float32),
        normals=normals.astype(np.float32),
        occ_points=occ_points.astype(np.float32),
        occ_labels=_lookup(vox128 if r == 128 else vox32, occ_points),
    )


# ---------------------------------------------------------------------------------------------
# Writing one shape


def write_views(
    shape_dir: Path,
    images: Sequence[np.ndarray | Path],
    cameras: Sequence[ViewCamera],
    image_size: int | None = None,
) -> None:
    """Write `views/<k>.png` (RGBA) and `views/cameras.json` for one shape.

    images: uint8 (H, W, 3 or 4) arrays or paths of image files (re-encoded as RGBA PNG, so
    an unreadable file raises SkipItem). If `image_size` is given, every image must be that
    size (SkipItem otherwise).
    """
    if len(images) != len(cameras):
        raise ValueError(f"{len(images)} images but {len(cameras)} cameras")
    folder = shape_dir / "views"
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        if isinstance(image, np.ndarray):
            pil = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGBA")
        else:
            try:
                with Image.open(image) as src:
                    pil = src.convert("RGBA")
            except (OSError, SyntaxError) as exc:
                raise SkipItem(f"unreadable image {image}: {exc}") from exc
        if image_size is not None and pil.size != (image_size, image_size):
            raise SkipItem(f"view {k} is {pil.size[0]}x{pil.size[1]}, expected {image_size}^2")
        with atomic_path(folder / f"{k}.png") as tmp:
            pil.save(tmp, format="PNG")
    with atomic_path(folder / "cameras.json") as tmp:
        tmp.write_text(json.dumps([c.to_dict() for c in cameras], indent=1))


def viewer_transform(R: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """4 x 4 matrix taking object-frame points to the viewer frame of extrinsics R (3, 3).

    Rotation into the viewer frame (`svr.render.viewer_rotation`: x right, y up, z towards
    the viewer), then the benchmark's normalisation of the rotated vertices (V, 3):
    bounding box centred, longest side 1.
    """
    rotation = viewer_rotation(R)
    rotated = np.asarray(vertices, dtype=np.float64) @ rotation.T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("cannot normalise a mesh with an empty or degenerate bounding box")
    matrix = np.eye(4)
    matrix[:3, :3] = rotation / extent
    matrix[:3, 3] = -(lo + hi) / 2 / extent
    return matrix


def with_viewer_transforms(
    cameras: Sequence[ViewCamera], mesh: trimesh.Trimesh
) -> list[ViewCamera]:
    """Copies of `cameras` with `viewer_transform` (4 x 4, see `viewer_transform`) in extra."""
    out = []
    for camera in cameras:
        matrix = viewer_transform(camera.R, mesh.vertices)
        extra = {**camera.extra, "viewer_transform": matrix.round(12).tolist()}
        out.append(replace(camera, extra=extra))
    return out


def write_frames(
    shape_dir: Path, mesh: trimesh.Trimesh, cameras: Sequence[ViewCamera], seed: int
) -> None:
    """Viewer-frame ground truth: `frames/<k>/` per view, from the object-frame mesh.

    The mesh is rotated into each camera's viewer frame and normalised again (bounding box
    centred, longest side 1; `viewer_transform`), then voxelised and sampled.
    """
    for k, camera in enumerate(cameras):
        rotated = mesh.copy()
        rotated.apply_transform(viewer_transform(camera.R, mesh.vertices))
        gt = compute_ground_truth(rotated, seed + k)
        write_ground_truth(shape_dir / "frames" / str(k), gt)


# ---------------------------------------------------------------------------------------------
# Running tasks and finishing


ProgressFactory = Callable[..., Iterable[Any]]


def _run_one(fn: Callable[[ShapeTask, Path], None], staging: Path, task: ShapeTask) -> str | None:
    """Run one task; return None on success or the reason it was skipped."""
    shape_dir = staging / task.split / task.class_name / task.shape_id
    try:
        fn(task, staging)
        return None
    except (SkipItem, ValueError, OSError, EOFError) as exc:
        if shape_dir.exists():
            shutil.rmtree(shape_dir, ignore_errors=True)
        return str(exc) or type(exc).__name__


def run_tasks(
    tasks: Sequence[ShapeTask],
    fn: Callable[[ShapeTask, Path], None],
    staging: Path,
    summary: ImportSummary,
    workers: int = 1,
    progress: ProgressFactory | None = None,
) -> None:
    """Import every task with `fn(task, staging)`; record counts and skips in `summary`.

    Bad input (SkipItem, ValueError, OSError) skips the item and removes what it wrote; any
    other exception propagates (and `staged_output` then removes the staging folder).
    `progress` is a tqdm-like factory `progress(iterable, total=..., desc=...)`; `fn` must be
    a picklable top-level callable when workers > 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")

    def wrap(results: Iterable[str | None]) -> Iterable[str | None]:
        if progress is None:
            return results
        return progress(results, total=len(tasks), desc=f"importing {summary.kind}")

    if workers == 1:
        results: Iterable[str | None] = (_run_one(fn, staging, t) for t in tasks)
        outcomes = list(wrap(results))
    else:
        from functools import partial

        with ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = list(wrap(pool.map(partial(_run_one, fn, staging), tasks, chunksize=1)))
    for task, reason in zip(tasks, outcomes, strict=True):
        if reason is None:
            per_class = summary.counts.setdefault(task.split, {})
            per_class[task.class_name] = per_class.get(task.class_name, 0) + 1
        else:
            log.warning("skipped %s: %s", task.source, reason)
            summary.skipped.append((str(task.source), reason))


def finish_benchmark(
    staging: Path,
    summary: ImportSummary,
    *,
    name: str,
    seed: int,
    frame: str,
    image_size: int,
    views_per_shape: int,
    extra: dict[str, Any] | None = None,
) -> BenchmarkMeta:
    """Write benchmark.json into the staging folder; ValueError if nothing was imported."""
    if summary.total == 0:
        reasons = "; ".join(f"{p}: {r}" for p, r in summary.skipped[:5]) or "no shapes found"
        raise ValueError(f"nothing imported for {summary.kind} ({reasons})")
    counts = {
        split: {c: summary.counts.get(split, {}).get(c, 0) for c in CLASS_NAMES} for split in SPLITS
    }
    meta = BenchmarkMeta(
        name=name,
        version="1",
        seed=seed,
        frame=frame,
        source=summary.kind,
        image_size=image_size,
        views_per_shape=views_per_shape,
        counts=counts,
        test_checksum=test_checksum(staging),
        extra={
            "skipped": len(summary.skipped),
            "ignored": dict(summary.ignored),
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        },
    )
    write_meta(staging, meta)
    return meta
