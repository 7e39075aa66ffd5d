"""Contact sheet of photo-style samples: raw photo and network input side by side.

Rows are classes (one procedural shape each); columns are pairs (photo, input) of the
"train" family, then of the "heldout" family. A cut-out photo is shown over a grey
checkerboard; a thin bar under each input says how it was masked (green: GrabCut,
blue: alpha, red: fallback to the clean alpha).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from svr.photo.pipeline import PhotoConfig, PhotoSample, render_photo
from svr.preprocess import checkerboard

__all__ = ["contact_sheet", "sample_tile"]

_SOURCE_COLOUR = {"grabcut": (60, 170, 60), "alpha": (60, 110, 220), "fallback": (220, 60, 60)}


def sample_tile(sample: PhotoSample, cell: int) -> np.ndarray:
    """(photo | input) of one sample, RGB uint8 (cell + 4, 2 * cell, 3)."""
    photo = sample.photo if sample.photo.shape[2] == 3 else checkerboard(sample.photo, 8)
    a = cv2.resize(photo, (cell, cell), interpolation=cv2.INTER_AREA)
    b = cv2.resize(sample.image, (cell, cell), interpolation=cv2.INTER_AREA)
    tile = np.full((cell + 4, 2 * cell, 3), 255, np.uint8)
    tile[:cell, :cell] = a
    tile[:cell, cell:] = b
    tile[cell + 1 :, cell:] = _SOURCE_COLOUR.get(sample.mask_source, (0, 0, 0))
    return tile


def contact_sheet(
    classes: Sequence[str],
    seeds: Sequence[int] = (0, 1),
    families: Sequence[str] = ("train", "heldout"),
    shape_seed: int = 0,
    cell: int = 96,
    config: PhotoConfig | None = None,
) -> np.ndarray:
    """RGB uint8 sheet: one row per class, len(families) * len(seeds) tiles per row.

    Each row renders `generate_shape(class, shape_seed + row)` with photo seeds `seeds`
    of each family; a gap of 8 pixels separates the families.
    """
    from svr.data.procedural import generate_shape

    config = config or PhotoConfig()
    if not classes:
        raise ValueError("contact_sheet needs at least one class")
    rows = []
    for r, name in enumerate(classes):
        shape = generate_shape(name, shape_seed + r)
        tiles = []
        for k, family in enumerate(families):
            if k:
                tiles.append(np.full((cell + 4, 8, 3), 255, np.uint8))
            for seed in seeds:
                sample = render_photo(shape.mesh, 1000 * r + seed, family, shape.face_parts, config)
                tiles.append(sample_tile(sample, cell))
                tiles.append(np.full((cell + 4, 3, 3), 255, np.uint8))
        rows.append(np.concatenate(tiles, axis=1))
        rows.append(np.full((3, rows[-1].shape[1], 3), 255, np.uint8))
    width = rows[0].shape[1]
    header = np.full((18, width, 3), 255, np.uint8)
    block = len(seeds) * (2 * cell + 3) + 8
    for k, family in enumerate(families):
        label = f"{family}: photo | network input"
        cv2.putText(
            header,
            label,
            (k * block + 4, 13),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.42,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return np.concatenate([header, *rows], axis=0)
