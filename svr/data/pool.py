"""A pool of photo-style training views of a benchmark's training shapes.

    python -m svr.data pool --benchmark DIR --out POOL [--views 8] [--family train]
                            [--image-size 128] [--seed 0] [--workers N] [--split train]

For every shape of the split, `views` samples of `svr.photo.render_photo` (domain
randomisation: materials, lights, lenses, backgrounds, the app's own masking with its
errors, degradations): the network input exactly as the app would feed it after
preprocessing a user's photo of that shape. Procedural shapes are regenerated from their
seed for their part ids (checked against the benchmark's mesh: vertex count and bounds);
other shapes (imported, or a generator that changed since the build) use the benchmark's
mesh with drawn material regions.

Layout (resumable: a killed build keeps its finished shapes and continues):

```
POOL/pool.json                      benchmark identifier, split, family, views, image size,
                                    seed, counts (written when complete)
POOL/shapes/<class>/<shape id>.npz  images uint8 (V, 3, S, S), azimuth / elevation /
                                    fov / roll float32 (V,) in degrees, mask_source (V,)
```

Sample k of shape `<class>/<id>` uses seed `shape_seed(pool seed, "<split>/<class>/<id>/<k>")`,
so a pool depends only on the benchmark, its arguments and the code, never on the workers.
`load_pool(POOL, data)` appends the pool's images to a `TrainingData` of the same benchmark.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from svr.data.layout import Benchmark, ShapeRef, shape_seed
from svr.io import atomic_path

__all__ = ["PoolSpec", "build_pool", "load_pool", "POOL_FILE"]

logger = logging.getLogger(__name__)

POOL_FILE = "pool.json"
POOL_FORMAT = 1


@dataclass(frozen=True)
class PoolSpec:
    """What a pool holds: `views` samples of `family` per shape of `split`, images of
    `image_size` pixels, seeds from `seed`."""

    split: str = "train"
    views: int = 8
    family: str = "train"
    image_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {self.split!r}")
        if self.views < 1 or not 16 <= self.image_size <= 512:
            raise ValueError("views must be >= 1 and image_size in [16, 512]")
        if self.family not in ("train", "heldout"):
            raise ValueError(f"family must be 'train' or 'heldout', got {self.family!r}")


def _shape_file(out: Path, ref: ShapeRef) -> Path:
    return out / "shapes" / ref.class_name / f"{ref.shape_id}.npz"


def _mesh_and_parts(bench_root: str, ref: ShapeRef, procedural: bool):
    """The shape's mesh and, when it can be regenerated exactly, its part ids."""
    import trimesh

    folder = ref.path(bench_root)
    mesh = trimesh.load(folder / "mesh.ply", force="mesh", process=False)
    if procedural:
        try:
            seed = int(ref.shape_id, 16)
        except ValueError:
            seed = -1
        if 0 <= seed < 2**32:
            from svr.data.layout import normalize_mesh
            from svr.data.procedural import generate_shape

            shape = generate_shape(ref.class_name, seed)
            regenerated = normalize_mesh(shape.mesh)
            same = len(regenerated.vertices) == len(mesh.vertices) and np.allclose(
                regenerated.bounds, mesh.bounds, atol=1e-5
            )
            if same:
                return regenerated, np.asarray(shape.face_parts, dtype=np.int64)
    return mesh, None


def _render_shape(
    bench_root: str, ref: ShapeRef, spec: PoolSpec, procedural: bool, out: str
) -> tuple[str, float, dict[str, int]]:
    """Render one shape's samples into its .npz (in a worker process)."""
    from svr.photo import PhotoConfig, render_photo
    from svr.photo.scene import prepare_mesh

    start = time.perf_counter()
    mesh, parts = _mesh_and_parts(bench_root, ref, procedural)
    prepared = prepare_mesh(mesh)
    config = PhotoConfig(image_size=spec.image_size)
    images, cams, sources = [], [], {}
    for k in range(spec.views):
        seed = shape_seed(spec.seed, f"{spec.split}/{ref.key}/{k}")
        sample = render_photo(prepared, seed, spec.family, parts, config)
        images.append(sample.image.transpose(2, 0, 1))
        c = sample.camera
        cams.append((c.azimuth % 360.0, c.elevation, c.fov, float(getattr(c, "roll", 0.0))))
        sources[sample.mask_source] = sources.get(sample.mask_source, 0) + 1
    cam = np.asarray(cams, dtype=np.float32)
    path = _shape_file(Path(out), ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(
        buf, images=np.stack(images).astype(np.uint8), azimuth=cam[:, 0], elevation=cam[:, 1],
        fov=cam[:, 2], roll=cam[:, 3],
    )  # fmt: skip
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return ref.key, time.perf_counter() - start, sources


def build_pool(
    benchmark: str | os.PathLike,
    out: str | os.PathLike,
    spec: PoolSpec = PoolSpec(),
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Render (or finish rendering) the pool of `benchmark` into `out`; returns pool.json's
    contents. Shapes already rendered with the same spec are kept."""
    bench = Benchmark(benchmark)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec_file = out / "spec.json"
    wanted = {**spec.__dict__, "benchmark": bench.meta.identifier, "format": POOL_FORMAT}
    if spec_file.is_file() and json.loads(spec_file.read_text()) != wanted:
        raise ValueError(
            f"{out} holds a pool of another benchmark or spec ({spec_file.read_text()}); "
            "choose another --out"
        )
    spec_file.write_text(json.dumps(wanted, indent=1, sort_keys=True))
    refs = bench.shapes(spec.split)
    if not refs:
        raise ValueError(f"the {spec.split!r} split of {bench.root} has no shapes")
    todo = [r for r in refs if not _shape_file(out, r).is_file()]
    procedural = bench.meta.source == "procedural"
    logger.info(
        "pool of %s: %d shapes x %d views (%d to render) with %d worker(s)",
        bench.meta.identifier, len(refs), spec.views, len(todo), workers,
    )  # fmt: skip
    from tqdm.auto import tqdm

    bar = tqdm(total=len(refs), initial=len(refs) - len(todo), desc="photo pool", unit="shape",
               disable=progress is not None)  # fmt: skip
    done = len(refs) - len(todo)
    seconds: list[float] = []
    sources: dict[str, int] = {}

    def report(result: tuple[str, float, dict[str, int]]) -> None:
        nonlocal done
        done += 1
        seconds.append(result[1])
        for k, v in result[2].items():
            sources[k] = sources.get(k, 0) + v
        bar.update(1)
        if progress is not None:
            progress(done, len(refs))

    start = time.perf_counter()
    root = str(bench.root)
    if workers <= 1:
        for ref in todo:
            report(_render_shape(root, ref, spec, procedural, str(out)))
    elif todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(_render_shape, root, ref, spec, procedural, str(out)) for ref in todo
            ]
            for future in as_completed(futures):
                report(future.result())
    bar.close()
    info: dict[str, object] = {
        **wanted,
        "shapes": len(refs),
        "images": len(refs) * spec.views,
        "rendered_now": len(todo),
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_per_shape": round(float(np.mean(seconds)), 3) if seconds else None,
        "mask_sources": sources,
    }
    with atomic_path(out / POOL_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    return info


def load_pool(pool: str | os.PathLike, data, max_views: int | None = None) -> int:
    """Append the images of the pool at `pool` to `data` (a `TrainingData` of the same
    benchmark and split, object frame: one target per shape). Returns the images added.

    Images are resized to the data's image size if the pool's differs."""
    from svr.data.dataset import _resize_rgb

    pool = Path(pool)
    if not (pool / POOL_FILE).is_file():
        raise FileNotFoundError(
            f"{pool} is not a finished photo pool (no {POOL_FILE}); build it with "
            "`python -m svr.data pool --benchmark DIR --out POOL`"
        )
    info = json.loads((pool / POOL_FILE).read_text())
    if info.get("benchmark") != data.benchmark_id:
        raise ValueError(
            f"the pool was rendered from {info.get('benchmark')}, the training data is "
            f"{data.benchmark_id}; render a pool of this benchmark"
        )
    if data.frame != "object":
        raise ValueError("photo pools pair images with object-frame targets only")
    size = int(data.images.shape[-1])
    key_index = {k: i for i, k in enumerate(data.target_keys)}
    images, targets, az, el = [], [], [], []
    split = info.get("split", "train")
    for path in sorted((pool / "shapes").glob("*/*.npz")):
        key = f"{split}/{path.parent.name}/{path.stem}"
        if key not in key_index:
            continue  # e.g. training on a subset of the shapes
        with np.load(path, allow_pickle=False) as f:
            imgs = f["images"][:max_views]
            if imgs.shape[-1] != size:
                imgs = np.stack(
                    [_resize_rgb(im.transpose(1, 2, 0), size).transpose(2, 0, 1) for im in imgs]
                )
            images.append(imgs)
            targets += [key_index[key]] * len(imgs)
            az.append(f["azimuth"][: len(imgs)])
            el.append(f["elevation"][: len(imgs)])
    if not images:
        raise ValueError(f"the pool at {pool} has no images of these training targets")
    data.add_images(
        torch.from_numpy(np.concatenate(images)),
        torch.tensor(targets, dtype=torch.int64),
        torch.from_numpy(np.concatenate(az)),
        torch.from_numpy(np.concatenate(el)),
        item_ids=[f"pool/{data.target_keys[t]}" for t in targets],
    )
    logger.info("added %d photo-style images from %s", len(targets), pool)
    return len(targets)
