"""Prediction -> the downloads of one reconstruction.

GLB (for the 3D viewer), OBJ, PLY and STL are all exported from the same trimesh with the
same (identity) transform, so the viewer and every download agree. Orientation: the
benchmark's object frame, right-handed, **+y up**, the object's front towards **+z**, units
of the unit cube [-0.5, 0.5]^3. This is glTF's own convention (+y up, +z front), so viewers
show the object upright; for OBJ/PLY/STL choose "Y up" when importing. The occupancy grid is
written as .npy (bool (R, R, R), axes (x, y, z)) and .binvox (unit cube).

Colours: with `vertex_colors` (uint8 (V, 4), e.g. from `svr.colorize`) the GLB (COLOR_0),
PLY (red, green, blue, alpha per vertex) and OBJ (`v x y z r g b`) carry them; STL has no
colours. Without, every face is `MESH_GREY`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from svr.io import atomic_path, write_binvox
from svr.types import Prediction

__all__ = ["MESH_GREY", "ExportedFiles", "ReconstructionError", "export_bytes", "export_prediction"]

MESH_GREY = (176, 184, 196, 255)  # RGBA of an uncoloured reconstruction
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ReconstructionError(RuntimeError):
    """A method ran but produced nothing usable (for example an empty shape)."""


@dataclass
class ExportedFiles:
    """Paths of the downloads of one reconstruction (None where a format does not apply)."""

    glb: Path
    obj: Path | None
    ply: Path
    stl: Path | None
    npy: Path | None
    binvox: Path | None

    def downloads(self) -> list[Path]:
        return [
            p
            for p in (self.glb, self.obj, self.ply, self.stl, self.npy, self.binvox)
            if p is not None
        ]

    def by_format(self) -> dict[str, Path]:
        """{"glb": path, "obj": ..., "npy": ...} for the formats written."""
        names = ("glb", "obj", "ply", "stl", "npy", "binvox")
        return {n: p for n in names if (p := getattr(self, n)) is not None}


def export_bytes(
    geometry: trimesh.Trimesh | trimesh.PointCloud | trimesh.Scene, file_type: str
) -> bytes:
    """The file of `geometry` in `file_type` ("glb", "ply", ...) as bytes."""
    data = geometry.export(file_type=file_type)
    return data.encode() if isinstance(data, str) else bytes(data)


def _validate_colors(colors: np.ndarray | None, n_vertices: int) -> np.ndarray | None:
    if colors is None:
        return None
    colors = np.asarray(colors)
    if colors.shape != (n_vertices, 4) or colors.dtype != np.uint8:
        raise ValueError(
            f"vertex_colors must be uint8 (V, 4) = ({n_vertices}, 4), got "
            f"{colors.dtype} {colors.shape}"
        )
    return colors


def export_prediction(
    prediction: Prediction,
    out_dir: str | os.PathLike,
    stem: str,
    grid_resolution: int = 32,
    vertex_colors: np.ndarray | None = None,
) -> tuple[ExportedFiles, trimesh.Trimesh | None, np.ndarray | None]:
    """Write GLB, OBJ, PLY, STL, .npy and .binvox of a prediction into `out_dir`.

    All mesh formats come from one trimesh with one (identity) transform: +y up, front
    towards +z, unit cube. `vertex_colors`: uint8 (V, 4) for the vertices of
    `prediction.to_mesh()`, or None for grey. A point-only prediction gives GLB and PLY point
    clouds and no OBJ/STL/grid. Returns (files, mesh or None, bool grid (R, R, R) or None).
    Raises ReconstructionError for an empty shape.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _SAFE.sub("_", stem)
    mesh = prediction.to_mesh()
    if mesh is not None and len(mesh.faces) == 0:
        raise ReconstructionError(
            f"{prediction.method} produced an empty shape (nothing above its occupancy threshold)"
        )
    geometry: trimesh.Trimesh | trimesh.PointCloud
    if mesh is None:
        points = np.asarray(prediction.points, dtype=np.float64)
        if points.size == 0:
            raise ReconstructionError(f"{prediction.method} produced an empty point set")
        geometry = trimesh.PointCloud(points)
    else:
        colors = _validate_colors(vertex_colors, len(mesh.vertices))
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        if colors is None:
            mesh.visual.face_colors = np.array(MESH_GREY, np.uint8)
        else:
            mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colors)
        geometry = mesh

    def write(ext: str, data: bytes) -> Path:
        path = out / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path

    glb = write("glb", export_bytes(trimesh.Scene(geometry), "glb"))
    ply = write("ply", export_bytes(geometry, "ply"))
    obj = stl = npy = binvox = None
    grid = None
    if mesh is not None:
        obj = write("obj", export_bytes(mesh, "obj"))
        stl = write("stl", export_bytes(mesh, "stl"))
        occ = prediction.occupancy
        resolution = int(occ.shape[0]) if occ is not None else grid_resolution
        grid = prediction.to_grid(resolution)
    if grid is not None:
        grid = np.asarray(grid, dtype=bool)
        npy = out / f"{stem}_occupancy.npy"
        with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
            np.save(fh, grid, allow_pickle=False)
        binvox = out / f"{stem}_occupancy.binvox"
        write_binvox(binvox, grid)
    return ExportedFiles(glb=glb, obj=obj, ply=ply, stl=stl, npy=npy, binvox=binvox), mesh, grid
