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

Compact ground truth (format 2, what the app builds to serve: `GT_CONTENTS`). A folder may
instead hold `voxels_<R>.bits.npy`, the grid bit-packed: uint8 (R, R, R / 8) =
`np.packbits(grid, axis=2)` (8 times smaller, the same bits in C order), and then keeps
only what its use reads: "serving" (test and validation) keeps the mesh, both grids and the
`SERVING_POINTS` surface samples the scoring protocol reads (the protocol's own subsample of
the 100,000, in order, so scores are unchanged) and no occupancy samples; "reference"
(training shapes for Oracle NN) keeps the mesh and the 32^3 grid only (the 128^3 grid, most
of a shape's build time, is voxelised from the mesh for the shapes Oracle NN answers with).
Readers accept both forms in any folder, so benchmarks written before format 2 load as they did.
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
    "load_voxels",
    "load_packed_voxels",
    "has_voxels",
    "GT_CONTENTS",
    "SERVING_POINTS",
    "serving_subsample",
    "shape_seed",
    "normalize_mesh",
    "test_checksum",
    "write_meta",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMAT_VERSION = 2  # 2: compact folders (packed grids, fewer files) may appear; 1 still reads
N_SURFACE_POINTS = 100_000
N_OCCUPANCY_POINTS = 100_000
GRID_RESOLUTIONS = (32, 128)
# What a ground-truth folder holds: "full" (training: everything), "serving" (test / val:
# what scoring and the demo read) or "reference" (mesh and 32^3 grid: Oracle NN's database).
GT_CONTENTS = ("full", "serving", "reference")
SERVING_POINTS = 10_000  # the scoring protocol's sample count (svr.evaluation.Protocol)


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
    # split -> "full", "serving" or "reference" (GT_CONTENTS); a split not named is "full"
    contents: dict[str, str] = field(default_factory=dict)
    # serving folders' surface samples: {"n": kept, "seed": protocol seed, "of": sampled}
    stored_points: dict[str, int] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    def split_contents(self, split: str) -> str:
        """What the ground-truth folders of `split` hold (see GT_CONTENTS)."""
        return self.contents.get(split, "full")

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
    occ_labels bool (M,) for implicit models. Read from a compact folder, what it does not
    keep is None (occupancy in "serving"; the 128^3 grid, points, normals and occupancy in
    "reference").
    """

    mesh: trimesh.Trimesh
    voxels_32: np.ndarray
    voxels_128: np.ndarray | None
    points: np.ndarray | None
    normals: np.ndarray | None
    occ_points: np.ndarray | None
    occ_labels: np.ndarray | None


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


def compute_ground_truth(mesh: trimesh.Trimesh, seed: int, contents: str = "full") -> GroundTruth:
    """Voxelise, sample and label a normalised mesh. Deterministic for a given seed.

    contents (GT_CONTENTS): "full" computes everything; "serving" skips the occupancy labels
    and keeps the scoring protocol's subsample of the surface points (`serving_subsample`),
    the same points a full folder gives the protocol; "reference" computes the 32^3 grid only.
    """
    if contents not in GT_CONTENTS:
        raise ValueError(f"contents must be one of {GT_CONTENTS}, got {contents!r}")
    v, f = mesh.vertices, mesh.faces
    vox32 = voxelize_mesh(v, f, 32)
    if contents == "reference":
        return GroundTruth(mesh, vox32, None, None, None, None, None)
    vox128 = voxelize_mesh(v, f, 128)
    points64, normals64, _ = sample_surface(v, f, N_SURFACE_POINTS, seed)
    points, normals = points64.astype(np.float32), normals64.astype(np.float32)
    if contents == "serving":
        kept, kept_normals = serving_subsample(points, normals)
        return GroundTruth(mesh, vox32, vox128, kept, kept_normals, None, None)
    rng = np.random.default_rng(seed + 1)
    half = N_OCCUPANCY_POINTS // 2
    uniform = rng.uniform(-0.55, 0.55, size=(half, 3))
    near_idx = rng.integers(0, len(points), size=N_OCCUPANCY_POINTS - half)
    near = points64[near_idx] + rng.normal(scale=0.02, size=(len(near_idx), 3))
    occ_points = np.concatenate([uniform, near])
    occ_labels = points_inside(v, f, occ_points)
    return GroundTruth(
        mesh=mesh,
        voxels_32=vox32,
        voxels_128=vox128,
        points=points,
        normals=normals,
        occ_points=occ_points.astype(np.float32),
        occ_labels=occ_labels,
    )


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def _packed_name(resolution: int) -> str:
    return f"voxels_{resolution}.bits.npy"


def serving_subsample(
    points: np.ndarray, normals: np.ndarray, n: int = SERVING_POINTS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The scoring protocol's subsample (`svr.evaluation.subsample_points`, n points, seed)
    of surface points and normals (N, 3): what a "serving" folder stores."""
    from svr.evaluation import subsample_points

    kept, kept_normals = subsample_points(points, n, seed, normals)
    return kept, kept_normals  # type: ignore[return-value]


def write_ground_truth(
    directory: str | os.PathLike, gt: GroundTruth, contents: str = "full", packed: bool = False
) -> None:
    """Write a GroundTruth into `directory` with the layout's file names (atomic per file).

    contents: "full" writes every field; "serving" skips the occupancy samples and stores the
    points and normals as given (the builder passes the protocol's subsample); "reference"
    writes the mesh and the 32^3 grid (and a 128^3 grid if one is given). packed: grids as
    `voxels_<R>.bits.npy` (see the module docstring) instead of bool `voxels_<R>.npy`;
    compact contents always pack.
    """
    if contents not in GT_CONTENTS:
        raise ValueError(f"contents must be one of {GT_CONTENTS}, got {contents!r}")
    packed = packed or contents != "full"
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / "mesh.ply") as tmp:
        tmp.write_bytes(trimesh.exchange.ply.export_ply(gt.mesh, encoding="binary"))
    for resolution, grid in ((32, gt.voxels_32), (128, gt.voxels_128)):
        if grid is None and resolution == 128 and contents == "reference":
            continue
        grid = np.asarray(grid, dtype=bool)
        if grid.shape != (resolution,) * 3:
            raise ValueError(
                f"voxels_{resolution} must be bool {(resolution,) * 3}, got {grid.shape}"
            )
        if packed:
            _save_npy(d / _packed_name(resolution), np.packbits(grid, axis=2))
        else:
            _save_npy(d / f"voxels_{resolution}.npy", grid)
    if contents == "reference":
        return
    if gt.points is None or gt.normals is None:
        raise ValueError(f"{contents!r} ground truth needs surface points and normals")
    _save_npy(d / "points.npy", np.asarray(gt.points, dtype=np.float32))
    _save_npy(d / "normals.npy", np.asarray(gt.normals, dtype=np.float32))
    if contents == "serving":
        return
    if gt.occ_points is None or gt.occ_labels is None:
        raise ValueError("full ground truth needs occupancy points and labels")
    with atomic_path(d / "occupancy.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, points=gt.occ_points.astype(np.float32), occupied=gt.occ_labels)


def has_voxels(directory: str | os.PathLike, resolution: int) -> bool:
    """True when `directory` holds the R^3 grid in either form."""
    d = Path(directory)
    return (d / _packed_name(resolution)).is_file() or (d / f"voxels_{resolution}.npy").is_file()


def load_packed_voxels(directory: str | os.PathLike, resolution: int) -> np.ndarray:
    """The R^3 grid of a ground-truth folder bit-packed: uint8 (R^3 / 8,), C order
    (`np.packbits(grid.ravel())`), read from either form without unpacking a packed file."""
    d = Path(directory)
    path = d / _packed_name(resolution)
    if path.is_file():
        bits = np.load(path, allow_pickle=False)
        if bits.dtype != np.uint8 or bits.shape != (resolution, resolution, resolution // 8):
            raise ValueError(
                f"{path}: expected uint8 {(resolution, resolution, resolution // 8)}, got "
                f"{bits.dtype} {bits.shape}; the benchmark folder is damaged: rebuild it"
            )
        return bits.reshape(-1)
    grid = np.load(d / f"voxels_{resolution}.npy", allow_pickle=False)
    return np.packbits(np.asarray(grid, dtype=bool).ravel())


def load_voxels(directory: str | os.PathLike, resolution: int) -> np.ndarray:
    """The R^3 grid of a ground-truth folder: bool (R, R, R), axes (x, y, z), either form."""
    d = Path(directory)
    if (d / _packed_name(resolution)).is_file():
        flat = np.unpackbits(load_packed_voxels(d, resolution), count=resolution**3)
        return flat.reshape(resolution, resolution, resolution).astype(bool)
    path = d / f"voxels_{resolution}.npy"
    if not path.is_file():
        raise FileNotFoundError(
            f"{d} holds no {resolution}^3 grid (neither {_packed_name(resolution)} nor "
            f"voxels_{resolution}.npy); rebuild the benchmark"
        )
    return np.asarray(np.load(path, allow_pickle=False), dtype=bool)


def _optional(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False) if path.is_file() else None


def load_ground_truth(directory: str | os.PathLike, with_mesh: bool = True) -> GroundTruth:
    """Read a GroundTruth written by `write_ground_truth` (any contents, packed or not)."""
    d = Path(directory)
    mesh = trimesh.load(d / "mesh.ply", force="mesh", process=False) if with_mesh else None
    occ_points = occ_labels = None
    if (d / "occupancy.npz").is_file():
        with np.load(d / "occupancy.npz", allow_pickle=False) as occ:
            occ_points, occ_labels = occ["points"], occ["occupied"]
    return GroundTruth(
        mesh=mesh,  # type: ignore[arg-type]
        voxels_32=load_voxels(d, 32),
        voxels_128=load_voxels(d, 128) if has_voxels(d, 128) else None,
        points=_optional(d / "points.npy"),
        normals=_optional(d / "normals.npy"),
        occ_points=occ_points,
        occ_labels=occ_labels,
    )


def test_checksum(root: str | os.PathLike) -> str:
    """SHA-256 over the test split's ground-truth arrays (voxels, either form, and points), in
    sorted order of their paths."""
    root = Path(root)
    digest = hashlib.sha256()
    names = ("voxels_32.npy", "voxels_128.npy", "points.npy", _packed_name(32), _packed_name(128))
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
                refs += [
                    ShapeRef(split, name, p.name) for p in sorted(folder.iterdir()) if p.is_dir()
                ]
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

    def check_protocol(self, n_samples: int, seed: int) -> None:
        """Raise ValueError when the stored test samples cannot give a protocol drawing
        `n_samples` surface points with `seed` the scores a full build gives (a compact build
        keeps exactly the default protocol's subsample)."""
        kept = self.meta.stored_points
        if self.meta.split_contents("test") != "serving" or not kept:
            return
        if (int(kept.get("n", -1)), int(kept.get("seed", -1))) != (int(n_samples), int(seed)):
            raise ValueError(
                f"{self.root} is a compact build that keeps {kept.get('n')} surface points per "
                f"test shape (the subsample of seed {kept.get('seed')}); a protocol with "
                f"n_samples={n_samples}, seed={seed} needs the full ground truth: build it with "
                "`python -m svr.data build --preset P --out DIR` (all files)"
            )

    def image_path(self, item: Item) -> Path:
        return item.shape.path(self.root) / "views" / f"{item.view}.png"

    def cameras(self, shape: ShapeRef) -> list[dict]:
        return json.loads((shape.path(self.root) / "views" / "cameras.json").read_text())


def synset_of(class_name: str) -> str:
    return NAME_TO_SYNSET[class_name]
