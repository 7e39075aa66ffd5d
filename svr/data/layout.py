"""The public on-disk benchmark layout: the one contract between builder, importers and readers.

```
<root>/benchmark.json
<root>/<split>/<class>/<shape id>/mesh.ply
                                 voxels_32.npy, voxels_128.npy   bool (R, R, R), axes (x, y, z)
                                 points.npy, normals.npy         float32 (N, 3), N = 100,000
                                 occupancy.npz                   points float32 (M, 3), occupied bool (M,)
                                 views/<k>.png                   RGBA renderings
                                 views/cameras.json              intrinsics and extrinsics per view
                                 frames/<k>/...                  viewer frame only: the files above
                                                                 (mesh to occupancy) per view k
```
Voxel (i, j, k) of an R^3 grid covers [-0.5 + i/R, -0.5 + (i+1)/R) along x, likewise y, z.
Test items are (shape, view) pairs with ids `<class>/<shape id>/<view>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from svr.classes import CLASSES, NAME_TO_SYNSET
from svr.geometry import points_inside, sample_surface, voxelize_mesh
from svr.io import atomic_path

__all__ = [
    "SPLITS",
    "FORMAT_VERSION",
    "BenchmarkMeta",
    "ShapeRef",
    "Item",
    "GroundTruth",
    "Benchmark",
    "compute_ground_truth",
    "write_ground_truth",
    "load_ground_truth",
    "shape_seed",
    "normalize_mesh",
    "test_checksum",
    "write_meta",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMAT_VERSION = 1
N_SURFACE_POINTS = 100_000
N_OCCUPANCY_POINTS = 100_000
GRID_RESOLUTIONS = (32, 128)


@dataclass(frozen=True)
class ShapeRef:
    """One shape of one split: where its ground truth lives."""

    split: str
    class_name: str
    shape_id: str

    @property
    def key(self) -> str:
        """`<class>/<shape id>`."""
        return f"{self.class_name}/{self.shape_id}"

    def path(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.split / self.class_name / self.shape_id


@dataclass(frozen=True)
class Item:
    """One (shape, view) pair; `item_id` is `<class>/<shape id>/<view>` as in what3d."""

    shape: ShapeRef
    view: int

    @property
    def item_id(self) -> str:
        return f"{self.shape.key}/{self.view}"

    @staticmethod
    def parse_id(item_id: str) -> tuple[str, str, int]:
        """Split an item id into (class, shape id, view); ValueError if malformed."""
        parts = item_id.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"item id {item_id!r} is not of the form '<class>/<shape id>/<view>'")
        return parts[0], parts[1], int(parts[2])


@dataclass
class BenchmarkMeta:
    """Contents of `benchmark.json`."""

    name: str
    version: str
    seed: int
    frame: str  # "object" or "viewer"
    source: str  # "procedural", "shapenet", "r2n2" or "what3d"
    preset: str | None = None
    image_size: int = 137
    views_per_shape: int = 5
    classes: list[dict[str, str]] = field(
        default_factory=lambda: [{"name": c.name, "synset": c.synset} for c in CLASSES]
    )
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> shapes
    test_checksum: str = ""
    # "public": anyone can rebuild the test split (practice); "secret": generated from a
    # maintainer's secret (`svr.data.secret`), whose fingerprint is recorded
    test_split: str = "public"
    test_fingerprint: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def identifier(self) -> str:
        """A short id naming exactly this benchmark: name, version and test checksum prefix."""
        return f"{self.name}-{self.version}-{self.test_checksum[:12]}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkMeta:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class GroundTruth:
    """Ground truth of one shape (or one view, in the viewer frame).

    mesh: watertight, normalised; voxels_32 / voxels_128: bool (R, R, R) axes (x, y, z);
    points / normals: float32 (N, 3) surface samples; occ_points float32 (M, 3) with
    occ_labels bool (M,) for implicit models.
    """

    mesh: trimesh.Trimesh
    voxels_32: np.ndarray
    voxels_128: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    occ_points: np.ndarray
    occ_labels: np.ndarray


def shape_seed(base_seed: int, key: str) -> int:
    """A per-shape seed that depends only on the benchmark seed and the shape key."""
    return (base_seed * 1_000_003 + zlib.crc32(key.encode())) % (2**32)


def normalize_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre the axis-aligned bounding box at the origin; scale its longest side to 1.

    This is the benchmark's normalisation rule: the shape then fits [-0.5, 0.5]^3 and
    touches the cube on its longest axis.
    """
    out = mesh.copy()
    lo, hi = out.bounds
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("cannot normalise a mesh with an empty or degenerate bounding box")
    out.apply_translation(-(lo + hi) / 2)
    out.apply_scale(1.0 / extent)
    return out


def compute_ground_truth(mesh: trimesh.Trimesh, seed: int) -> GroundTruth:
    """Voxelise, sample and label a normalised mesh. Deterministic for a given seed."""
    v, f = mesh.vertices, mesh.faces
    vox32 = voxelize_mesh(v, f, 32)
    vox128 = voxelize_mesh(v, f, 128)
    points, normals, _ = sample_surface(v, f, N_SURFACE_POINTS, seed)
    rng = np.random.default_rng(seed + 1)
    half = N_OCCUPANCY_POINTS // 2
    uniform = rng.uniform(-0.55, 0.55, size=(half, 3))
    near_idx = rng.integers(0, len(points), size=N_OCCUPANCY_POINTS - half)
    near = points[near_idx] + rng.normal(scale=0.02, size=(len(near_idx), 3))
    occ_points = np.concatenate([uniform, near])
    occ_labels = points_inside(v, f, occ_points)
    return GroundTruth(
        mesh=mesh,
        voxels_32=vox32,
        voxels_128=vox128,
        points=points.astype(np.float32),
        normals=normals.astype(np.float32),
        occ_points=occ_points.astype(np.float32),
        occ_labels=occ_labels,
    )


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def write_ground_truth(directory: str | os.PathLike, gt: GroundTruth) -> None:
    """Write a GroundTruth into `directory` with the layout's file names (atomic per file)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / "mesh.ply") as tmp:
        tmp.write_bytes(trimesh.exchange.ply.export_ply(gt.mesh, encoding="binary"))
    _save_npy(d / "voxels_32.npy", gt.voxels_32.astype(bool))
    _save_npy(d / "voxels_128.npy", gt.voxels_128.astype(bool))
    _save_npy(d / "points.npy", gt.points.astype(np.float32))
    _save_npy(d / "normals.npy", gt.normals.astype(np.float32))
    with atomic_path(d / "occupancy.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, points=gt.occ_points.astype(np.float32), occupied=gt.occ_labels)


def load_ground_truth(directory: str | os.PathLike, with_mesh: bool = True) -> GroundTruth:
    """Read a GroundTruth written by `write_ground_truth`."""
    d = Path(directory)
    mesh = trimesh.load(d / "mesh.ply", force="mesh", process=False) if with_mesh else None
    with np.load(d / "occupancy.npz", allow_pickle=False) as occ:
        occ_points, occ_labels = occ["points"], occ["occupied"]
    return GroundTruth(
        mesh=mesh,  # type: ignore[arg-type]
        voxels_32=np.load(d / "voxels_32.npy", allow_pickle=False),
        voxels_128=np.load(d / "voxels_128.npy", allow_pickle=False),
        points=np.load(d / "points.npy", allow_pickle=False),
        normals=np.load(d / "normals.npy", allow_pickle=False),
        occ_points=occ_points,
        occ_labels=occ_labels,
    )


def test_checksum(root: str | os.PathLike) -> str:
    """SHA-256 over the test split's ground-truth arrays (voxels and points), in sorted order."""
    root = Path(root)
    digest = hashlib.sha256()
    names = ("voxels_32.npy", "voxels_128.npy", "points.npy")
    files = sorted(p for p in (root / "test").rglob("*.npy") if p.name in names)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_meta(root: str | os.PathLike, meta: BenchmarkMeta) -> None:
    with atomic_path(Path(root) / "benchmark.json") as tmp:
        tmp.write_text(meta.to_json())


class Benchmark:
    """Read access to a benchmark folder in the public layout."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        meta_path = self.root / "benchmark.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{self.root} is not a benchmark folder (no benchmark.json); build one with "
                "`python -m svr.data build --preset small --out DIR`"
            )
        self.meta = BenchmarkMeta.from_json(meta_path.read_text())

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.meta.classes]

    def shapes(self, split: str, classes: Iterable[str] | None = None) -> list[ShapeRef]:
        """Shapes of a split, sorted by class then id."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
        wanted = list(classes) if classes is not None else self.class_names
        refs = []
        for name in wanted:
            folder = self.root / split / name
            if folder.is_dir():
                refs += [ShapeRef(split, name, p.name) for p in sorted(folder.iterdir()) if p.is_dir()]
        return refs

    def views(self, shape: ShapeRef) -> list[int]:
        """View indices of a shape, sorted."""
        folder = shape.path(self.root) / "views"
        return sorted(int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit())

    def items(self, split: str = "test") -> list[Item]:
        return [Item(s, v) for s in self.shapes(split) for v in self.views(s)]

    def iter_items(self, split: str = "test") -> Iterator[Item]:
        for s in self.shapes(split):
            for v in self.views(s):
                yield Item(s, v)

    def item(self, item_id: str, split: str = "test") -> Item:
        class_name, shape_id, view = Item.parse_id(item_id)
        return Item(ShapeRef(split, class_name, shape_id), view)

    def gt_dir(self, item: Item) -> Path:
        """Folder of the ground truth that an item is scored against (depends on the frame)."""
        base = item.shape.path(self.root)
        return base / "frames" / str(item.view) if self.meta.frame == "viewer" else base

    def ground_truth(self, item: Item, with_mesh: bool = False) -> GroundTruth:
        return load_ground_truth(self.gt_dir(item), with_mesh=with_mesh)

    def image_path(self, item: Item) -> Path:
        return item.shape.path(self.root) / "views" / f"{item.view}.png"

    def cameras(self, shape: ShapeRef) -> list[dict]:
        return json.loads((shape.path(self.root) / "views" / "cameras.json").read_text())


def synset_of(class_name: str) -> str:
    return NAME_TO_SYNSET[class_name]
