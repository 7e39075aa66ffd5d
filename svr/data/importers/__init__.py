"""Importers of real ShapeNet data into the benchmark layout (`svr.data.layout`).

`run_import(kind, src, out, ...)` dispatches to one importer of `IMPORTERS`:
"shapenet" (ShapeNetCore meshes, views rendered), "r2n2" (3D-R2N2 renderings and 32^3
voxels) and "what3d" (viewer-centred what3d release). Each builds in a staging folder
beside `out` and renames it at the end, so a failed import leaves `out` untouched.
Assumptions about each source are documented in its module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from svr.data.importers.common import ImportSummary
from svr.data.importers.r2n2 import import_r2n2
from svr.data.importers.shapenet import import_shapenet
from svr.data.importers.what3d import import_what3d

__all__ = ["IMPORTERS", "ImportSummary", "run_import"]

IMPORTERS: dict[str, Callable[..., ImportSummary]] = {
    "shapenet": import_shapenet,
    "r2n2": import_r2n2,
    "what3d": import_what3d,
}


def run_import(
    kind: str,
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
    **options,
) -> ImportSummary:
    """Import the source dataset `kind` found at `src` into a benchmark folder `out`.

    views: views per shape (None: the importer's default, 5); frame: "object" or "viewer"
    (what3d is always "viewer"); limit_per_class: at most that many models per class, in
    sorted order; progress: a tqdm-like factory `progress(iterable, total=, desc=)`.
    Extra keyword `options` go to the importer (e.g. `renderer=` for shapenet, `paths=` for
    what3d). Raises ValueError for an unknown kind or if nothing could be imported,
    FileExistsError if `out` exists and `overwrite` is False.
    """
    if kind not in IMPORTERS:
        raise ValueError(f"unknown import kind {kind!r}: expected one of {', '.join(IMPORTERS)}")
    return IMPORTERS[kind](
        Path(src),
        Path(out),
        splits=None if splits is None else Path(splits),
        views=views,
        frame=frame,
        seed=seed,
        workers=workers,
        limit_per_class=limit_per_class,
        overwrite=overwrite,
        progress=progress,
        **options,
    )
