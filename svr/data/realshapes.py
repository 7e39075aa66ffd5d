"""Real ShapeNet-derived shapes: the paper's 500 cluster mean shapes, read in place.

The what3d release (lmb-freiburg/what3d, folder clustering/) holds, in one folder:

```
cluster_mean_shapes.zip           binvox_mean/<k>.binvox, k = 0..499: bool 128^3 grids, the
                                  thresholded mean shape of K-means cluster k (55 classes)
val_images_true_cluster.txt.gz    "<class>/<model id>/<view>.png <k>" per validation image:
                                  the cluster of its ground-truth shape
```

Classes. A cluster is given the majority class of the validation images assigned to it (ties
broken by name); clusters whose majority class is one of our 13 are kept (release names are
mapped by `svr.data.importers.what3d.map_class`: "vessel" is our watercraft; "cellular"
(ShapeNet's cellular telephone, 02992529) is not our telephone, 04401088). Purity is that
class's share of the cluster's images.

Frame. Read with `svr.io.read_binvox_bytes` (axes (x, y, z), as binvox-rw's
fix_coords=True), the mean shapes are NOT viewer-centred: every one is axis-aligned with +y
up and its front towards -z, ShapeNet's canonical object frame (rendered and checked by eye:
airplane noses, car bonnets, chair and sofa seats all point to -z; and all 5 validation views
of every model carry the same cluster, which a clustering of viewer-centred shapes could not
give). Ours has the front towards +z, so `to_object_frame` turns a grid by 180 degrees about
y, exactly (voxel i of R maps to R - 1 - i on x and z). Then, as every benchmark shape, the
marching-cubes surface is normalised: bounding box centred, longest side 1.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from svr.classes import CLASS_NAMES
from svr.data.importers.what3d import map_class
from svr.data.layout import normalize_mesh
from svr.geometry import grid_to_mesh
from svr.io import read_binvox_bytes

__all__ = [
    "CLUSTER_ZIP",
    "LABELS_FILE",
    "RELEASE_TO_OBJECT",
    "ClusterLabel",
    "ClusterMeans",
    "cluster_labels",
    "read_cluster_labels",
    "to_object_frame",
    "grid_mesh",
]

CLUSTER_ZIP = "cluster_mean_shapes.zip"
LABELS_FILE = "val_images_true_cluster.txt.gz"
GRID_RESOLUTION = 128
# rotation (3, 3) from the release's frame (front -z) to ours (front +z): 180 degrees about y
RELEASE_TO_OBJECT = np.diag([-1.0, 1.0, -1.0])


@dataclass(frozen=True)
class ClusterLabel:
    """One cluster: its index, majority release class, our class name (None when it is not
    one of our 13), purity (that class's share of its images, in (0, 1]) and image count."""

    cluster: int
    release_class: str
    class_name: str | None
    purity: float
    images: int


def cluster_labels(lines: Iterable[str]) -> dict[int, ClusterLabel]:
    """Cluster -> label from lines "<class>/<model id>/<view>.png <k>" (blank lines skipped).

    ValueError names the first malformed line."""
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2 or "/" not in parts[0] or not parts[1].isdigit():
            raise ValueError(
                f"line {number}: expected '<class>/<model id>/<view>.png <cluster>', got {text!r}"
            )
        counts[int(parts[1])][parts[0].split("/")[0]] += 1
    out = {}
    for k, c in sorted(counts.items()):
        name, n = min(c.items(), key=lambda kv: (-kv[1], kv[0]))
        total = sum(c.values())
        out[k] = ClusterLabel(k, name, map_class(name), n / total, total)
    return out


def read_cluster_labels(path: str | os.PathLike) -> dict[int, ClusterLabel]:
    """`cluster_labels` of a label file (gzip when its name ends in .gz)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        return cluster_labels(f)


def to_object_frame(grid: np.ndarray) -> np.ndarray:
    """A release grid bool (R, R, R), axes (x, y, z), front -z, in our object frame (front
    +z): 180 degrees about y, i.e. x and z reversed (a copy)."""
    g = np.asarray(grid)
    if g.ndim != 3:
        raise ValueError(f"expected a 3D grid, got shape {g.shape}")
    return np.ascontiguousarray(g[::-1, :, ::-1])


def grid_mesh(grid: np.ndarray) -> trimesh.Trimesh:
    """Marching-cubes surface (level 0.5) of a bool grid (R, R, R) over the unit cube,
    normalised as the benchmark's shapes (bounding box centred, longest side 1)."""
    v, f = grid_to_mesh(np.asarray(grid, dtype=np.float32), 0.5)
    if len(f) == 0:
        raise ValueError("the grid has no surface")
    return normalize_mesh(trimesh.Trimesh(v, f, process=False))


class ClusterMeans:
    """The cluster mean shapes of a folder holding `CLUSTER_ZIP` and `LABELS_FILE`, read in
    place (nothing is copied or extracted)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        missing = [n for n in (CLUSTER_ZIP, LABELS_FILE) if not (self.folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.folder} lacks {', '.join(missing)}: point to the what3d release's "
                "clustering/ data (e.g. /work/shared/data/what3d-cluster-means)"
            )
        self.labels = read_cluster_labels(self.folder / LABELS_FILE)

    def kept(self, classes: Iterable[str] = CLASS_NAMES) -> list[ClusterLabel]:
        """Labels of the clusters whose majority class is in `classes`, by cluster index."""
        wanted = set(classes)
        return [lab for lab in self.labels.values() if lab.class_name in wanted]

    def grid(self, cluster: int) -> np.ndarray:
        """The mean shape of `cluster` in the release's frame: bool (128, 128, 128)."""
        name = f"binvox_mean/{cluster}.binvox"
        with zipfile.ZipFile(self.folder / CLUSTER_ZIP) as z:
            try:
                data = z.read(name)
            except KeyError:
                raise ValueError(f"{CLUSTER_ZIP} has no {name}") from None
        grid = read_binvox_bytes(data, name)
        if grid.shape != (GRID_RESOLUTION,) * 3:
            raise ValueError(f"{name}: expected a 128^3 grid, got {grid.shape}")
        return grid

    def mesh(self, cluster: int) -> trimesh.Trimesh:
        """The mean shape of `cluster` as a normalised mesh in our object frame."""
        return grid_mesh(to_object_frame(self.grid(cluster)))
