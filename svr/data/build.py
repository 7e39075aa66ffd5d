"""Build a procedural benchmark in the public layout of `svr.data.layout`.

Every shape is made by the procedural generator from its own seed,
`shape_seed(seed, "<split>/<class>/<index>")`, so a shape depends only on the benchmark
seed and its place (a larger preset contains the shapes of a smaller one with the same
seed), splits are disjoint by construction, and the output does not depend on the number
of worker processes. Shape ids are the 8 hex digits of the shape seed (unique per class
across all splits, so `<class>/<shape id>` names one shape).

Per shape: the object-frame ground truth (`compute_ground_truth`) in the shape folder,
`views/<k>.png` RGBA renderings (`svr.render`, 2 x 2 supersampling), one random camera
and light per view (the camera moved back where the shape would touch the image border,
`svr.render.fit_camera`), one random colour per part per shape (the same in all views), and
`views/cameras.json` (a list, one entry per view: azimuth, elevation, distance, fov, K,
R, t, width, height, image_size, light_dir, ambient, convention and `viewer_transform`).
With `frame="viewer"`, view k also gets `frames/<k>/`: the mesh turned into that camera's
viewer frame (`svr.render.viewer_rotation`: x right, y up, z towards the viewer), normalised
again (bounding box centred, longest side 1), then voxelised and sampled.
`viewer_transform` is the 4 x 4 matrix taking object-frame points to frame-k coordinates
(rotation, then that normalisation); it is written for both frames.

The build writes into `.<out name>.<random>.building` beside `out` and renames it onto
`out` only at the end; any failure removes it and leaves `out` as it was.

Contents (`svr.data.layout.GT_CONTENTS`). `content="full"` builds every split with every
file (what training reads). `content="serving"` builds what the app serves, first and
compactly: the test split, then the validation split, as "serving" folders (grids
bit-packed, the protocol's 10,000 surface samples, no occupancy samples, views rendered as
in a full build), and no training split. `add_training_split` adds the training split to a
built benchmark later: as "reference" folders (mesh and 32^3 grid, no views: what Oracle NN
reads at inference) or in full (when training asks for it). Shapes and images are the same
in every content: only which files are kept differs.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svr.classes import CLASS_NAMES, NAME_TO_SYNSET
from svr.data.layout import (
    N_OCCUPANCY_POINTS,
    N_SURFACE_POINTS,
    SERVING_POINTS,
    SPLITS,
    Benchmark,
    BenchmarkMeta,
    compute_ground_truth,
    normalize_mesh,
    shape_seed,
    test_checksum,
    write_ground_truth,
    write_meta,
)
from svr.data.secret import TestSecret

__all__ = [
    "Preset",
    "PRESETS",
    "ShapeTask",
    "plan_shapes",
    "estimate_size",
    "build_benchmark",
    "add_training_split",
    "training_split_ready",
    "BENCHMARK_NAME",
    "CONTENTS",
]

log = logging.getLogger(__name__)

BENCHMARK_NAME = "svr-procedural-13"
BENCHMARK_VERSION = "1.0"
FRAMES = ("object", "viewer")
CONTENTS = ("full", "serving")  # of build_benchmark; add_training_split: "reference" or "full"


@dataclass(frozen=True)
class Preset:
    """Size of a procedural benchmark: shapes per class and split, views, image size."""

    name: str
    train: int
    val: int
    test: int
    views: int
    image_size: int = 137
    supersample: int = 2
    classes: tuple[str, ...] = CLASS_NAMES

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.test) < 0 or self.train + self.val + self.test == 0:
            raise ValueError(f"preset {self.name!r}: shape counts must be >= 0 and not all 0")
        if self.views < 1:
            raise ValueError(f"preset {self.name!r}: views must be at least 1")
        if not 8 <= self.image_size <= 1024:
            raise ValueError(f"preset {self.name!r}: image_size must be in [8, 1024]")
        unknown = [c for c in self.classes if c not in NAME_TO_SYNSET]
        if unknown or not self.classes:
            raise ValueError(f"preset {self.name!r}: unknown or no classes {unknown}")

    def count(self, split: str) -> int:
        """Shapes per class in `split`."""
        return {"train": self.train, "val": self.val, "test": self.test}[split]


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", train=2, val=1, test=2, views=2, image_size=64),
    "small": Preset("small", train=4, val=2, test=3, views=3, image_size=137),
    "default": Preset("default", train=200, val=25, test=50, views=5, image_size=137),
}


@dataclass(frozen=True)
class ShapeTask:
    """One shape to build: its place in the benchmark and its seed."""

    split: str
    class_name: str
    index: int
    shape_id: str
    seed: int

    def directory(self, root: Path) -> Path:
        return root / self.split / self.class_name / self.shape_id


@dataclass(frozen=True)
class _ShapeResult:
    task: ShapeTask
    seconds: float
    variant: str


def _get_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def plan_shapes(
    preset: str | Preset, seed: int, test_secret: TestSecret | None = None
) -> list[ShapeTask]:
    """All shapes of a benchmark, in split, class, index order.

    Shape seed: `shape_seed(seed, "<split>/<class>/<index>")`; shape id: its 8 hex digits.
    In the (unlikely) event of an id collision within a class, the later shape re-derives
    its seed from the key with a `#<n>` suffix, deterministically. With `test_secret`, test
    shapes take their seed and id from the secret instead (see the module docstring).
    """
    p = _get_preset(preset)
    tasks: list[ShapeTask] = []
    used: dict[str, set[str]] = {c: set() for c in p.classes}
    for split in SPLITS:
        for class_name in p.classes:
            for index in range(p.count(split)):
                if split == "test" and test_secret is not None:
                    s, attempt = test_secret.shape_seed(class_name, index), 0
                    sid = test_secret.shape_id(class_name, index)
                    while sid in used[class_name]:
                        attempt += 1
                        sid = test_secret.shape_id(class_name, index, attempt)
                    used[class_name].add(sid)
                    tasks.append(ShapeTask(split, class_name, index, sid, s))
                    continue
                key = f"{split}/{class_name}/{index}"
                s, attempt = shape_seed(seed, key), 0
                while f"{s:08x}" in used[class_name]:
                    attempt += 1
                    s = shape_seed(seed, f"{key}#{attempt}")
                used[class_name].add(f"{s:08x}")
                tasks.append(ShapeTask(split, class_name, index, f"{s:08x}", s))
    return tasks


def _default_generator(class_name: str, seed: int) -> Any:
    from svr.data.procedural import generate_shape

    return generate_shape(class_name, seed)


def _mesh_transform(rotation: np.ndarray, mesh_vertices: np.ndarray) -> np.ndarray:
    """4 x 4 transform: rotate, then centre the bounding box and scale its longest side to 1."""
    rotated = mesh_vertices @ rotation.T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    scale = 1.0 / float((hi - lo).max())
    transform = np.eye(4)
    transform[:3, :3] = scale * rotation
    transform[:3, 3] = -scale * (lo + hi) / 2
    return transform


def _build_shape(
    task: ShapeTask,
    staging: str,
    preset: Preset,
    frame: str,
    generator: Callable[[str, int], Any] | None,
    contents: str = "full",
) -> _ShapeResult:
    """Generate, label, render and write one shape (runs in a worker process); `contents`
    (GT_CONTENTS) says what its ground-truth folders keep; "reference" renders no views."""
    import trimesh
    from PIL import Image

    from svr.io import atomic_path
    from svr.render import (
        DEFAULT_RANGES,
        fit_camera,
        part_colors,
        random_camera,
        random_light,
        render,
    )
    from svr.render import viewer_rotation as to_viewer

    start = time.perf_counter()
    shape = (generator or _default_generator)(task.class_name, task.seed)
    source = shape.mesh
    mesh = normalize_mesh(trimesh.Trimesh(source.vertices, source.faces, process=False))
    face_parts = np.asarray(shape.face_parts, dtype=np.int64).reshape(-1)
    if len(face_parts) != len(mesh.faces):
        raise ValueError(
            f"generator gave {len(face_parts)} part labels for {len(mesh.faces)} faces "
            f"({task.class_name}, seed {task.seed})"
        )
    if len(face_parts) and face_parts.min() < 0:
        raise ValueError(
            f"negative part index from the generator ({task.class_name}, seed {task.seed})"
        )
    if not mesh.is_watertight:
        log.warning(
            "%s seed %d: the generated mesh is not watertight; inside tests may be unreliable",
            task.class_name, task.seed,
        )  # fmt: skip
    directory = task.directory(Path(staging))
    gt = compute_ground_truth(mesh, task.seed, contents)
    write_ground_truth(directory, gt, contents)
    rendering = contents != "reference"

    rng = np.random.default_rng([task.seed, 1])  # rendering stream, independent of the GT's
    n_parts = max(len(getattr(shape, "part_names", []) or []), int(face_parts.max(initial=-1)) + 1)
    face_colors = part_colors(rng, max(n_parts, 1))[face_parts]
    views_dir = directory / "views"
    cameras: list[dict[str, Any]] = []
    for k in range(preset.views):
        camera = fit_camera(random_camera(rng), mesh.vertices)
        light = random_light(rng, camera)  # drawn even unrendered: the same stream
        if rendering:
            image = render(
                mesh,
                face_colors,
                camera,
                image_size=preset.image_size,
                light_dir=light,
                ambient=DEFAULT_RANGES.ambient,
                supersample=preset.supersample,
            )
            views_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(views_dir / f"{k}.png") as tmp:
                Image.fromarray(image).save(tmp, format="PNG")  # (H, W, 4) uint8: RGBA
        R, _ = camera.extrinsics()
        transform = _mesh_transform(to_viewer(R), mesh.vertices)
        entry = camera.to_dict(preset.image_size)
        entry.update(
            view=k,
            light_dir=light.round(12).tolist(),
            ambient=DEFAULT_RANGES.ambient,
            viewer_transform=transform.round(12).tolist(),
        )
        cameras.append(entry)
        if frame == "viewer":
            viewed = mesh.copy()
            viewed.apply_transform(transform)
            viewed = normalize_mesh(viewed)  # exact re-normalisation of the transformed copy
            gt = compute_ground_truth(viewed, shape_seed(task.seed, f"frame/{k}"), contents)
            write_ground_truth(directory / "frames" / str(k), gt, contents)
    if rendering:
        with atomic_path(views_dir / "cameras.json") as tmp:
            tmp.write_text(json.dumps(cameras, indent=1))
    return _ShapeResult(task, time.perf_counter() - start, str(getattr(shape, "variant", "")))


def _run_tasks(
    tasks: Sequence[ShapeTask],
    staging: Path,
    preset: Preset,
    frame: str,
    workers: int,
    generator: Callable[[str, int], Any] | None,
    report: Callable[[], None],
    contents: Callable[[ShapeTask], str] = lambda task: "full",
) -> list[_ShapeResult]:
    if workers == 1:
        results = []
        for task in tasks:
            results.append(
                _build_shape(task, str(staging), preset, frame, generator, contents(task))
            )
            report()
        return results
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        futures = [
            pool.submit(_build_shape, task, str(staging), preset, frame, generator, contents(task))
            for task in tasks
        ]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # re-raises a worker's exception here
                report()
        return [f.result() for f in futures]
    finally:
        # On failure: drop queued shapes and wait for running ones, so nothing writes into
        # the staging folder after it is removed.
        pool.shutdown(wait=True, cancel_futures=True)


def estimate_size(preset: str | Preset, frame: str = "object", content: str = "full") -> int:
    """Upper estimate of a build's size on disk in bytes (ground truth dominates).

    Per full ground-truth folder: both grids as bool .npy, surface points and normals as
    float32, occupancy points and labels (counted uncompressed) and a mesh allowance; per
    view a PNG allowance. A serving build (test and validation only) keeps packed grids
    and 10,000 points and normals per folder. The viewer frame stores one more ground-truth
    folder per view.
    """
    p = _get_preset(preset)
    mesh = 256 * 1024
    if content == "serving":
        per_gt = (128**3 + 32**3) // 8 + 24 * SERVING_POINTS + mesh
        splits: tuple[str, ...] = ("val", "test")
    else:
        per_gt = 128**3 + 32**3 + 24 * N_SURFACE_POINTS + 13 * N_OCCUPANCY_POINTS + mesh
        splits = SPLITS
    per_view = 3 * p.image_size**2  # generous for a mostly transparent RGBA PNG
    folders = 1 + (p.views if frame == "viewer" else 0)
    shapes = len(p.classes) * sum(p.count(s) for s in splits)
    return shapes * (folders * per_gt + p.views * per_view)


def _check_disk(out: Path, needed: int) -> None:
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise OSError(
            f"not enough disk space for the build: about {needed / 1e9:.1f} GB needed in "
            f"{out.parent}, {free / 1e9:.1f} GB free; free space, choose another --out, or use a "
            "smaller preset or the object frame"
        )


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not overwrite:
            raise FileExistsError(
                f"{out} already exists and is not empty; pass overwrite=True (--overwrite) to replace it"
            )


_PID_FILE = ".builder-pid"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Delete staging folders of earlier builds of `out` whose builder process is gone
    (killed before it could clean up), so an interrupted first start cannot fill the disk.
    A folder whose builder still runs on this machine is kept. Returns the folders removed."""
    removed = []
    for folder in out.parent.glob(f".{out.name}.*.building"):
        try:
            owner = (folder / _PID_FILE).read_text().split()
            host, pid = owner[0], int(owner[1])
        except (OSError, ValueError, IndexError):
            host, pid = "", -1
        if host == socket.gethostname() and pid > 0 and _pid_alive(pid):
            continue
        log.warning("removing %s, left by an interrupted build", folder)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _replace(staging: Path, out: Path) -> None:
    """Move the finished staging folder onto `out` (replacing an existing folder)."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / "previous")
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


def build_benchmark(
    out: str | os.PathLike,
    preset: str | Preset = "small",
    seed: int = 0,
    frame: str = "object",
    workers: int = 2,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    generator: Callable[[str, int], Any] | None = None,
    test_secret: TestSecret | None = None,
    content: str = "full",
) -> BenchmarkMeta:
    """Build a procedural benchmark into `out` and return its metadata.

    Args:
        out: destination folder; must not exist or be empty unless `overwrite`.
        preset: a name in PRESETS ("tiny", "small", "default") or a `Preset`.
        seed: benchmark seed (>= 0); same preset and seed give byte-identical ground truth
            and images on any machine and with any number of workers.
        frame: "object" (ground truth in the canonical object frame) or "viewer" (also
            `frames/<k>/` per view, see the module docstring).
        workers: processes (spawned); 1 builds in this process.
        overwrite: replace an existing non-empty `out` (only once the new build is done).
        progress: called as `progress(done, total)` after each shape; None shows a tqdm bar
            on stderr (when it is a terminal).
        generator: `generator(class_name, seed) -> ProceduralShape`, a picklable top-level
            function; default `svr.data.procedural.generate_shape`.
        test_secret: the maintainer's secret; the test split is then generated from it and
            cannot be rebuilt without it (None: a public, practice test split).
        content: "full" (every split, every file) or "serving" (test, then validation, in
            compact folders; no training split: see the module docstring).
    """
    p = _get_preset(preset)
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {CONTENTS}, got {content!r}")
    if frame not in FRAMES:
        raise ValueError(f"frame must be 'object' or 'viewer', got {frame!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out = Path(out).expanduser().absolute()
    _check_out(out, overwrite)
    tasks = plan_shapes(p, seed, test_secret)
    if content == "serving":  # what scoring needs first, then the demo's validation shapes
        tasks = [t for t in tasks if t.split == "test"] + [t for t in tasks if t.split == "val"]
    total = len(tasks)
    if total == 0:
        raise ValueError(f"preset {p.name!r} has no shapes to build with content {content!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    needed = estimate_size(p, frame, content)
    _check_disk(out, needed)
    log.info(
        "building %s (%s: %d shapes, %d views each, frame %s, seed %d, %s test split) into %s "
        "with %d worker(s)",
        p.name, content, total, p.views, frame, seed,
        "public" if test_secret is None else "secret", out, workers,
    )  # fmt: skip
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the benchmark is meant to be read
    (staging / _PID_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    bar = None
    if progress is None:
        from tqdm import tqdm

        bar = tqdm(
            total=total, desc=f"building {p.name}", unit="shape", disable=None, file=sys.stderr
        )
    done = 0

    def report() -> None:
        nonlocal done
        done += 1
        if bar is not None:
            bar.update(1)
        else:
            progress(done, total)  # type: ignore[misc]

    start = time.perf_counter()
    try:
        contents = "serving" if content == "serving" else "full"
        results = _run_tasks(
            tasks, staging, p, frame, min(workers, total), generator, report, lambda t: contents
        )
        built = {t.split for t in tasks}
        counts = {
            s: {c: p.count(s) if c in p.classes and s in built else 0 for c in CLASS_NAMES}
            for s in SPLITS
        }
        seconds = np.array([r.seconds for r in results])
        variants: dict[str, dict[str, int]] = {}
        for r in results:
            per_class = variants.setdefault(r.task.class_name, {})
            per_class[r.variant] = per_class.get(r.variant, 0) + 1
        meta = BenchmarkMeta(
            name=BENCHMARK_NAME,
            version=BENCHMARK_VERSION,
            seed=seed,
            frame=frame,
            source="procedural",
            preset=p.name,
            image_size=p.image_size,
            views_per_shape=p.views,
            classes=[{"name": c, "synset": NAME_TO_SYNSET[c]} for c in p.classes],
            counts=counts,
            test_checksum=test_checksum(staging),
            test_split="public" if test_secret is None else "secret",
            test_fingerprint="" if test_secret is None else test_secret.fingerprint,
            contents={s: contents for s in sorted(built)},
            stored_points=(
                {"n": SERVING_POINTS, "seed": 0, "of": N_SURFACE_POINTS}
                if content == "serving"
                else {}
            ),
            extra={
                "build_seconds": round(time.perf_counter() - start, 2),
                "shape_seconds_mean": round(float(seconds.mean()), 3),
                "shape_seconds_max": round(float(seconds.max()), 3),
                "workers": workers,
                "disk_bytes_estimate": needed,
                "content": content,
                "supersample": p.supersample,
                "variants": variants,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        write_meta(staging, meta)
        _check_out(out, overwrite)  # someone may have written there meanwhile
        (staging / _PID_FILE).unlink()
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    log.info(
        "built %s in %.1f s (%.2f s per shape per worker)",
        out, time.perf_counter() - start, float(seconds.mean()),
    )  # fmt: skip
    return meta


def training_split_ready(root: str | os.PathLike, contents: str = "reference") -> bool:
    """True when the benchmark at `root` has its training split with at least `contents`
    ("reference": Oracle NN's database is there; "full": training can read it)."""
    meta_path = Path(root) / "benchmark.json"
    if not meta_path.is_file():
        return False
    meta = BenchmarkMeta.from_json(meta_path.read_text())
    have = meta.split_contents("train")
    expected = sum(meta.counts.get("train", {}).values())
    if expected == 0 or not (have == "full" or have == contents):
        return False
    # the folders themselves (a restored backup, for one, leaves the training split out)
    train = Path(root) / "train"
    found = (
        sum(1 for c in train.iterdir() if c.is_dir() for _ in c.iterdir()) if train.is_dir() else 0
    )
    return found >= expected


def add_training_split(
    root: str | os.PathLike,
    contents: str = "reference",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    generator: Callable[[str, int], Any] | None = None,
) -> BenchmarkMeta:
    """Build the training split of the procedural benchmark at `root` (a serving build, or one
    whose training split holds references only) in place, and return the updated metadata.

    contents: "reference" (mesh and packed 32^3 grid per shape, no views: what Oracle NN reads)
    or "full" (every file, what training reads). The shapes are those `build_benchmark` gives
    (same preset, seed and frame), built into a staging folder under `root` and moved onto
    `root/train` at the end; `benchmark.json` is rewritten last (its identifier, which covers
    the test split only, is unchanged). Nothing is built when the split is already there.
    """
    if contents not in ("reference", "full"):
        raise ValueError(f"contents must be 'reference' or 'full', got {contents!r}")
    root = Path(root).expanduser().absolute()
    bench = Benchmark(root)
    meta = bench.meta
    if training_split_ready(root, contents):
        return meta
    if meta.source != "procedural" or meta.preset not in PRESETS:
        raise ValueError(
            f"{root} is not a procedural build of a known preset ({meta.source}, preset "
            f"{meta.preset!r}); its training split cannot be added: rebuild it in full"
        )
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    p = PRESETS[meta.preset]
    if p.image_size != meta.image_size or p.views != meta.views_per_shape:
        raise ValueError(
            f"{root} was built with {meta.views_per_shape} views of {meta.image_size} px, not "
            f"the {p.name!r} preset's {p.views} of {p.image_size}: rebuild it"
        )
    tasks = [t for t in plan_shapes(p, meta.seed) if t.split == "train"]
    if not tasks:
        raise ValueError(f"preset {p.name!r} has no training shapes")
    sub = Preset(p.name, train=p.train, val=0, test=0, views=p.views, image_size=p.image_size,
                 supersample=p.supersample, classes=p.classes)  # fmt: skip
    factor = 1 if contents == "full" else 0.1  # references: grids packed, no points or views
    _check_disk(root / "train", int(estimate_size(sub, meta.frame) * factor))
    remove_stale_staging(root / "train")  # left by an interrupted earlier addition
    staging = Path(tempfile.mkdtemp(prefix=".train.", suffix=".building", dir=root))
    os.chmod(staging, 0o755)
    (staging / _PID_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    total, done = len(tasks), 0

    def report() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    log.info(
        "adding the training split (%s, %d shapes) to %s with %d worker(s)",
        contents, total, root, workers,
    )  # fmt: skip
    start = time.perf_counter()
    try:
        _run_tasks(
            tasks, staging, p, meta.frame, min(workers, total), generator, report,
            lambda t: contents,
        )  # fmt: skip
        old = root / "train"
        if old.exists():
            trash = Path(tempfile.mkdtemp(prefix=".train.", suffix=".old", dir=root))
            os.replace(old, trash / "train")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(staging / "train", old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    meta.counts["train"] = {c: p.count("train") if c in p.classes else 0 for c in CLASS_NAMES}
    meta.contents = {**meta.contents, "train": contents}
    meta.extra = {**meta.extra, "train_build_seconds": round(time.perf_counter() - start, 2)}
    write_meta(root, meta)
    log.info("added the training split to %s in %.1f s", root, time.perf_counter() - start)
    return meta
