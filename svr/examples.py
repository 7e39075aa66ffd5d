"""Example images for the Reconstruct tab, all made here (nothing is downloaded).

Two kinds:

- **Photo-like images** (`make_photo_examples`): procedural shapes of a few classes
  rendered with `svr.render` and composited over a textured gradient "room" (wall, floor,
  soft shadow, sensor noise) and saved as JPEG without alpha, so the app must remove the
  background itself. `python -m svr.examples --out assets/examples` writes the committed
  set (about 25 kB each).
- **Benchmark views** (`benchmark_examples`): views of validation shapes (whose ground
  truth is public, so the app can score against it) and of test shapes (image only),
  copied out of the benchmark into a folder the web server may read.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from svr.data.layout import Benchmark, Item

__all__ = [
    "Example",
    "PHOTO_CLASSES",
    "make_photo",
    "make_photo_with_mask",
    "make_photo_examples",
    "benchmark_examples",
]

logger = logging.getLogger(__name__)

PHOTO_CLASSES: tuple[str, ...] = ("chair", "table", "airplane", "car", "lamp", "sofa")


@dataclass(frozen=True)
class Example:
    """One gallery entry: an image file, a caption, and the benchmark item it shows
    (`item_id` is set only for public validation items, whose ground truth may be shown)."""

    path: Path
    label: str
    item_id: str | None = None
    split: str | None = None


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A wall-and-floor scene float64 (size, size, 3) in [0, 255] with smooth texture."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    horizon = rng.uniform(0.55, 0.7)
    wall_top, wall_bottom = rng.uniform(150, 230, 3), rng.uniform(120, 210, 3)
    floor_near, floor_far = rng.uniform(60, 160, 3), rng.uniform(100, 190, 3)
    t_wall = (yy / horizon)[..., None]
    t_floor = ((yy - horizon) / (1 - horizon))[..., None]
    img = np.where(
        (yy < horizon)[..., None],
        wall_top * (1 - t_wall) + wall_bottom * t_wall,
        floor_far * (1 - t_floor) + floor_near * t_floor,
    )
    # low-frequency blotches plus fine grain: a texture GrabCut cannot fit with one colour
    coarse = np.repeat(rng.normal(0, 1, (9, 9, 1)), 3, axis=2) + 0.25 * rng.normal(0, 1, (9, 9, 3))
    coarse_img = np.asarray(
        Image.fromarray(((coarse - coarse.min()) / np.ptp(coarse) * 255).astype(np.uint8)).resize(
            (size, size), Image.BICUBIC
        ),
        dtype=np.float64,
    )
    img = img + (coarse_img - 127.5) * 0.12
    img = img * (
        1 + 0.08 * np.sin(xx[..., None] * rng.uniform(20, 40)) * (yy >= horizon)[..., None]
    )
    return np.clip(img, 0, 255)


def make_photo(class_name: str, seed: int, size: int = 256) -> np.ndarray:
    """A photo-like RGB uint8 image (size, size, 3) of a procedural `class_name` shape."""
    return make_photo_with_mask(class_name, seed, size)[0]


def make_photo_with_mask(
    class_name: str, seed: int, size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(photo-like RGB uint8 (size, size, 3), the object's true mask bool (size, size))."""
    from svr.data.procedural import generate_shape
    from svr.render import Camera, part_colors, render

    rng = np.random.default_rng(seed)
    shape = generate_shape(class_name, seed)
    mesh = shape.mesh
    parts = np.asarray(shape.face_parts)
    colors = part_colors(rng, int(parts.max()) + 1)[parts]
    camera = Camera(
        azimuth=float(rng.uniform(20, 50)), elevation=float(rng.uniform(12, 25)), distance=2.2
    )
    rgba = render(mesh, colors, camera, image_size=size, supersample=2).astype(np.float64)
    alpha = rgba[..., 3:4] / 255.0
    scene = _background(rng, size)
    # soft contact shadow: the silhouette squashed towards its bottom edge and blurred
    rows = np.flatnonzero(alpha[..., 0].max(axis=1) > 0.5)
    if rows.size:
        sil = Image.fromarray((alpha[..., 0] * 255).astype(np.uint8))
        bottom = int(rows.max())
        squashed = sil.resize((size, max(1, size // 6)))
        shadow = Image.new("L", (size, size))
        shadow.paste(squashed, (int(size * 0.04), bottom - size // 12))
        shadow = shadow.filter(ImageFilter.GaussianBlur(size / 40))
        scene *= 1 - 0.35 * (np.asarray(shadow, dtype=np.float64) / 255.0)[..., None]
    photo = rgba[..., :3] * alpha + scene * (1 - alpha)
    photo += rng.normal(0, 2.5, photo.shape)
    out = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.4)
    )
    return np.asarray(out), alpha[..., 0] >= 0.5


def make_photo_examples(
    out_dir: str | Path, classes: tuple[str, ...] = PHOTO_CLASSES, size: int = 256
) -> list[Example]:
    """Write one photo-like JPEG per class into `out_dir` (existing files are kept)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = []
    for i, name in enumerate(classes):
        path = out / f"photo_{name}.jpg"
        if not path.is_file():
            tmp = path.with_suffix(".tmp.jpg")
            Image.fromarray(make_photo(name, seed=1000 + i, size=size)).save(tmp, quality=88)
            tmp.replace(path)
        examples.append(Example(path=path, label=f"photo-like {name} (no alpha)"))
    return examples


def benchmark_examples(
    benchmark_dir: str | Path, out_dir: str | Path, n_val: int = 4, n_test: int = 2
) -> list[Example]:
    """Copy views of `n_val` validation shapes and `n_test` test shapes (distinct classes
    first) into `out_dir`. Only validation examples carry an item id (public ground truth)."""
    bench = Benchmark(benchmark_dir)
    out = Path(out_dir) / bench.meta.identifier
    out.mkdir(parents=True, exist_ok=True)
    examples: list[Example] = []
    for split, count in (("val", n_val), ("test", n_test)):
        chosen: list[Item] = []
        seen: set[str] = set()
        for shape in bench.shapes(split):
            if len(chosen) >= count:
                break
            if shape.class_name in seen:
                continue
            views = bench.views(shape)
            if views:
                seen.add(shape.class_name)
                chosen.append(Item(shape, views[len(chosen) % len(views)]))
        for item in chosen:
            target = out / f"{split}__{item.item_id.replace('/', '__')}.png"
            if not target.is_file():
                shutil.copyfile(bench.image_path(item), target)
            public = split != "test"
            label = f"{split}: {item.shape.class_name}" + (
                "" if public else " (test: no ground truth shown)"
            )
            examples.append(Example(target, label, item.item_id if public else None, split))
    return examples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the photo-like example images.")
    parser.add_argument("--out", default="assets/examples", help="output folder")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    args = parser.parse_args(argv)
    for ex in make_photo_examples(args.out, size=args.size):
        print(f"{ex.path}  {ex.path.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
