"""A contact sheet of a benchmark: one row per class, the first view of N shapes each.

Shapes are taken from the train split first, then val, then test, in id order. The
renderings are composited over a light checkerboard (or white), the class name is
written on the left. Pillow only.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from svr.data.layout import SPLITS, Benchmark
from svr.io import atomic_path

__all__ = ["make_sheet", "write_sheet"]

_LABEL_WIDTH = 110
_PAD = 4


def _background(size: int, checker: bool) -> Image.Image:
    bg = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    if checker:
        draw = ImageDraw.Draw(bg)
        step = max(size // 8, 4)
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=(228, 228, 228, 255))
    return bg


def make_sheet(
    root: str | os.PathLike, per_class: int = 8, cell: int | None = None, checker: bool = True
) -> Image.Image:
    """Build the sheet image (RGB). `cell`: pixels per rendering (default: the image size)."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    bench = Benchmark(root)
    size = int(cell or bench.meta.image_size)
    if size < 8:
        raise ValueError(f"cell must be at least 8 pixels, got {size}")
    names = bench.class_names
    width = _LABEL_WIDTH + per_class * (size + _PAD) + _PAD
    height = len(names) * (size + _PAD) + _PAD
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    background = _background(size, checker)
    for row, name in enumerate(names):
        top = _PAD + row * (size + _PAD)
        draw.text((6, top + size // 2 - 6), name, fill=(0, 0, 0), font=font)
        shapes = [s for split in SPLITS for s in bench.shapes(split, [name])][:per_class]
        for col, shape in enumerate(shapes):
            views = bench.views(shape)
            if not views:
                continue
            with Image.open(shape.path(bench.root) / "views" / f"{views[0]}.png") as src:
                image = src.convert("RGBA")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.LANCZOS)
            tile = background.copy()
            tile.alpha_composite(image)
            sheet.paste(tile.convert("RGB"), (_LABEL_WIDTH + _PAD + col * (size + _PAD), top))
    return sheet


def write_sheet(
    root: str | os.PathLike,
    out: str | os.PathLike,
    per_class: int = 8,
    cell: int | None = None,
    checker: bool = True,
) -> Path:
    """Write the sheet as PNG to `out` (atomically); returns `out`."""
    out = Path(out)
    image = make_sheet(root, per_class=per_class, cell=cell, checker=checker)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    return out
