"""In-memory training data for the reconstruction methods, and image preprocessing for networks.

Network input convention (every method): the RGBA view is composited on a white background
(alpha kept implicit: the silhouette shows as the object against white), resized to
`image_size` x `image_size` (64 by default) with Pillow's antialiased bilinear filter, and
mapped to float32 in [-1, 1]. An RGB image without alpha is used as it is.

Targets. A *target* is one ground-truth folder (`Benchmark.gt_dir`): in the object frame one
per shape (all views share it), in the viewer frame one per (shape, view) item. Everything a
training run needs is read once into memory: images as uint8 tensors, 32^3 grids bit-packed,
subsampled occupancy and surface points as float16 tensors. Only the needed files are read
(never the 128^3 grids or full meshes), with a few threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from svr.classes import CLASS_NAMES
from svr.data.layout import Benchmark, Item, load_packed_voxels

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "TARGET_FIELDS",
    "Batch",
    "TrainingData",
    "composite_rgba",
    "load_view",
    "prepare_images",
    "pack_grids",
    "unpack_grids",
    "load_grids",
    "load_training_data",
]

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 64
TARGET_FIELDS = ("vox32", "occupancy", "points")
_READ_THREADS = 4


def composite_rgba(image: np.ndarray) -> np.ndarray:
    """Composite an image on white: uint8 (H, W, 4) RGBA, (H, W, 3) RGB or (H, W) grey
    -> uint8 (H, W, 3). Images without alpha are returned as RGB unchanged."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"an image must have shape (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got dtype {arr.dtype}")
    if arr.shape[2] == 3:
        return arr
    alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
    rgb = arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def load_view(path: str | Path, size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Read a PNG view, composite on white and resize: uint8 (size, size, 3)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        mode = "RGBA" if ("A" in img.getbands() or "transparency" in img.info) else "RGB"
        arr = np.asarray(img.convert(mode))
    return _resize_rgb(composite_rgba(arr), size)


def prepare_images(
    images: Sequence[np.ndarray] | np.ndarray | torch.Tensor, size: int = DEFAULT_IMAGE_SIZE
) -> torch.Tensor:
    """Network input from raw images: float32 (B, 3, size, size) in [-1, 1] on the CPU.

    Accepts a list (or stacked array) of uint8 images (H, W, 4) RGBA / (H, W, 3) RGB, or a
    float tensor (B, 4, H, W) or (B, 3, H, W) with values in [0, 1].
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().to("cpu", torch.float32)
        if x.ndim != 4 or x.shape[1] not in (3, 4):
            raise ValueError(
                f"an image tensor must have shape (B, 4, H, W) or (B, 3, H, W), got {tuple(x.shape)}"
            )
        if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
            raise ValueError(
                "image tensors must hold values in [0, 1]; for uint8 pass numpy arrays"
            )
        if x.shape[1] == 4:
            alpha = x[:, 3:4]
            x = x[:, :3] * alpha + (1.0 - alpha)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = torch.nn.functional.interpolate(
                x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
        return x.clamp(0, 1) * 2.0 - 1.0
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    if len(images) == 0:
        raise ValueError("no images given")
    rgb = np.stack([_resize_rgb(composite_rgba(im), size) for im in images])
    return uint8_to_input(torch.from_numpy(rgb).permute(0, 3, 1, 2))


def uint8_to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> float32 (B, 3, S, S) in [-1, 1]."""
    return images.to(torch.float32) / 127.5 - 1.0


def pack_grids(grids: np.ndarray) -> np.ndarray:
    """Bool (T, R, R, R) -> uint8 (T, R^3 / 8) with np.packbits (C order)."""
    grids = np.asarray(grids, dtype=bool)
    return np.packbits(grids.reshape(len(grids), -1), axis=1)


def unpack_grids(packed: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (T, R^3 / 8) -> bool (T, R, R, R); the inverse of `pack_grids`."""
    packed = np.asarray(packed, dtype=np.uint8)
    n = resolution**3
    flat = np.unpackbits(packed, axis=1, count=n)
    return flat.reshape(len(packed), resolution, resolution, resolution).astype(bool)


def load_grids(root: str | Path, keys: Sequence[str], resolution: int) -> np.ndarray:
    """Read the R^3 grids of the ground-truth folders `root/<key>` (bool `voxels_<R>.npy` or
    packed `voxels_<R>.bits.npy`, `svr.data.layout`): packed uint8 (T, R^3/8)."""
    root = Path(root)
    if resolution not in (32, 128):
        raise ValueError(f"the benchmark stores 32^3 and 128^3 grids, not {resolution}^3")

    def read(key: str) -> np.ndarray:
        return load_packed_voxels(root / key, resolution)

    with ThreadPoolExecutor(_READ_THREADS) as pool:
        rows = list(pool.map(read, keys))
    if not rows:
        return np.zeros((0, resolution**3 // 8), dtype=np.uint8)
    return np.stack(rows)


@dataclass
class Batch:
    """One training batch. images float32 (B, 3, S, S) in [-1, 1]; target_ids / class_ids int64
    (B,); azimuth / elevation float32 (B,) of each image's camera in degrees (NaN: unknown);
    vox32 float32 (B, 32, 32, 32) in {0, 1}; occ_points float32 (B, P, 3) with occ_labels
    float32 (B, P); surface_points float32 (B, Q, 3). Fields a method did not ask for are None."""

    images: torch.Tensor
    target_ids: torch.Tensor
    class_ids: torch.Tensor
    azimuth: torch.Tensor | None = None
    elevation: torch.Tensor | None = None
    vox32: torch.Tensor | None = None
    occ_points: torch.Tensor | None = None
    occ_labels: torch.Tensor | None = None
    surface_points: torch.Tensor | None = None


@dataclass
class TrainingData:
    """One split held in memory (see the module docstring for targets).

    images uint8 (N, 3, S, S); image_target int64 (N,) index into the targets; image_azimuth /
    image_elevation float32 (N,) camera of each image in degrees (NaN: unknown); target_keys
    the ground-truth folders relative to the benchmark root (posix); target_class int64 (T,)
    index into `class_names`; vox32 packed uint8 (T, 4096) or None; occ_points float16
    (T, P, 3) and occ_labels bool (T, P) or None; surface_points float16 (T, Q, 3) or None.
    """

    root: Path
    benchmark_id: str
    frame: str
    class_names: list[str]
    item_ids: list[str]
    images: torch.Tensor
    image_target: torch.Tensor
    target_keys: list[str]
    target_class: torch.Tensor
    vox32: np.ndarray | None = None
    occ_points: torch.Tensor | None = None
    occ_labels: torch.Tensor | None = None
    surface_points: torch.Tensor | None = None
    image_azimuth: torch.Tensor | None = None
    image_elevation: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.image_azimuth is None:
            self.image_azimuth = torch.full((n,), float("nan"))
        if self.image_elevation is None:
            self.image_elevation = torch.full((n,), float("nan"))

    def add_images(
        self,
        images: torch.Tensor,
        image_target: torch.Tensor,
        azimuth: torch.Tensor | None = None,
        elevation: torch.Tensor | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> None:
        """Append more images of the same targets (e.g. photo-style renderings of the training
        shapes): uint8 (M, 3, S, S), target indices int64 (M,), cameras float32 (M,) degrees."""
        if images.ndim != 4 or images.shape[1:] != self.images.shape[1:]:
            raise ValueError(
                f"images must be uint8 (M, {', '.join(map(str, self.images.shape[1:]))}), "
                f"got {tuple(images.shape)}"
            )
        m = len(images)
        target = torch.as_tensor(image_target, dtype=torch.int64)
        if len(target) != m or (m and (target.min() < 0 or target.max() >= self.num_targets)):
            raise ValueError("image_target must give one valid target index per added image")
        nan = torch.full((m,), float("nan"))
        self.images = torch.cat([self.images, images.to(torch.uint8)])
        self.image_target = torch.cat([self.image_target, target])
        az = nan if azimuth is None else torch.as_tensor(azimuth, dtype=torch.float32)
        el = nan if elevation is None else torch.as_tensor(elevation, dtype=torch.float32)
        self.image_azimuth = torch.cat([self.image_azimuth, az])
        self.image_elevation = torch.cat([self.image_elevation, el])
        self.item_ids = list(self.item_ids) + list(item_ids or [f"extra/{i}" for i in range(m)])

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def num_targets(self) -> int:
        return len(self.target_keys)

    def voxels32(self) -> np.ndarray:
        """All 32^3 target grids, bool (T, 32, 32, 32)."""
        if self.vox32 is None:
            raise ValueError("this TrainingData was loaded without the 32^3 grids ('vox32')")
        return unpack_grids(self.vox32, 32)

    def batch(
        self,
        image_index: torch.Tensor,
        device: torch.device | str = "cpu",
        occ_per_step: int = 1024,
        points_per_step: int = 2500,
        generator: torch.Generator | None = None,
    ) -> Batch:
        """Assemble the batch of the given image indices (int64 (B,)), with random subsets of the
        stored occupancy / surface points (`occ_per_step`, `points_per_step` per target)."""
        image_index = torch.as_tensor(image_index, dtype=torch.int64)
        tid = self.image_target[image_index]
        out = Batch(
            images=uint8_to_input(self.images[image_index]).to(device),
            target_ids=tid.to(device),
            class_ids=self.target_class[tid].to(device),
            azimuth=self.image_azimuth[image_index].to(device),
            elevation=self.image_elevation[image_index].to(device),
        )
        if self.vox32 is not None:
            grids = unpack_grids(self.vox32[tid.numpy()], 32)
            out.vox32 = torch.from_numpy(grids).to(device=device, dtype=torch.float32)
        b = len(tid)
        if self.occ_points is not None and self.occ_labels is not None:
            p = self.occ_points.shape[1]
            k = min(occ_per_step, p)
            sel = torch.rand(b, p, generator=generator).argsort(dim=1)[:, :k]
            pts = torch.gather(self.occ_points[tid], 1, sel[..., None].expand(-1, -1, 3))
            lab = torch.gather(self.occ_labels[tid], 1, sel)
            out.occ_points = pts.to(device=device, dtype=torch.float32)
            out.occ_labels = lab.to(device=device, dtype=torch.float32)
        if self.surface_points is not None:
            q = self.surface_points.shape[1]
            k = min(points_per_step, q)
            sel = torch.rand(b, q, generator=generator).argsort(dim=1)[:, :k]
            pts = torch.gather(self.surface_points[tid], 1, sel[..., None].expand(-1, -1, 3))
            out.surface_points = pts.to(device=device, dtype=torch.float32)
        return out


def _select_items(items: list[Item], max_items: int | None, seed: int) -> list[Item]:
    if max_items is None or len(items) <= max_items:
        return items
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(items), size=max_items, replace=False))
    return [items[i] for i in keep]


def _view_cameras(benchmark: Benchmark, items: list[Item]) -> tuple[torch.Tensor, torch.Tensor]:
    """Azimuth and elevation in degrees, float32 (N,), of each item's view (NaN when the
    benchmark's cameras.json does not give them, e.g. some imported datasets)."""
    az = np.full(len(items), np.nan, dtype=np.float32)
    el = np.full(len(items), np.nan, dtype=np.float32)
    cache: dict[str, list[dict]] = {}
    for i, item in enumerate(items):
        key = item.shape.key
        if key not in cache:
            try:
                cache[key] = benchmark.cameras(item.shape)
            except (OSError, ValueError):
                cache[key] = []
        views = cache[key]
        if item.view < len(views) and isinstance(views[item.view], dict):
            entry = views[item.view]
            try:
                az[i] = float(entry.get("azimuth", np.nan))
                el[i] = float(entry.get("elevation", np.nan))
            except (TypeError, ValueError):
                pass
    return torch.from_numpy(az), torch.from_numpy(el)


def load_training_data(
    benchmark: Benchmark,
    split: str = "train",
    fields: Sequence[str] = ("vox32",),
    image_size: int = DEFAULT_IMAGE_SIZE,
    max_items: int | None = None,
    occ_points: int = 4096,
    surface_points: int = 4096,
    seed: int = 0,
    progress: bool = False,
) -> TrainingData:
    """Read a split into memory.

    Args:
        benchmark: the benchmark folder.
        split: "train", "val" or "test".
        fields: which targets to read, a subset of TARGET_FIELDS ("vox32", "occupancy", "points").
        image_size: side of the stored network images (pixels).
        max_items: if set, a seeded random subset of at most this many (shape, view) items.
        occ_points / surface_points: how many occupancy / surface samples to keep per target
            (a seeded random subset of the stored 100,000).
        seed: seed of the subsets.
        progress: show tqdm progress bars.
    """
    unknown = set(fields) - set(TARGET_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown target fields {sorted(unknown)}: expected a subset of {TARGET_FIELDS}"
        )
    have = benchmark.meta.split_contents(split)
    needs_full = bool({"occupancy", "points"} & set(fields)) and split == "train"
    if (split == "train" and have == "reference") or (needs_full and have != "full"):
        raise ValueError(
            f"the {split!r} split of {benchmark.root} was built for serving only ({have!r}: "
            f"{'no views' if have == 'reference' else 'no occupancy samples'}); build it for "
            f"training with `python -m svr.data add-train --benchmark {benchmark.root}` or "
            "`python -m svr.train ... --build PRESET` into a new folder"
        )
    items = _select_items(benchmark.items(split), max_items, seed)
    if not items:
        hint = (
            f"; build it with `python -m svr.data add-train --benchmark {benchmark.root}`"
            if split == "train"
            else ""
        )
        raise ValueError(
            f"the {split!r} split of {benchmark.root} has no items (shapes with views){hint}"
        )
    root = benchmark.root
    key_index: dict[str, int] = {}
    image_target = []
    target_class = []
    class_lookup = {name: i for i, name in enumerate(CLASS_NAMES)}
    for item in items:
        if item.shape.class_name not in class_lookup:
            raise ValueError(f"unknown class {item.shape.class_name!r} in {benchmark.root}")
        key = benchmark.gt_dir(item).relative_to(root).as_posix()
        if key not in key_index:
            key_index[key] = len(key_index)
            target_class.append(class_lookup[item.shape.class_name])
        image_target.append(key_index[key])
    keys = list(key_index)

    from tqdm.auto import tqdm

    def bar(iterable, total: int, desc: str):
        return tqdm(iterable, total=total, desc=desc, disable=not progress, leave=False)

    paths = [benchmark.image_path(it) for it in items]
    with ThreadPoolExecutor(_READ_THREADS) as pool:
        imgs = list(
            bar(pool.map(lambda p: load_view(p, image_size), paths), len(paths), f"{split} images")
        )
    images = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    azimuth, elevation = _view_cameras(benchmark, items)

    data = TrainingData(
        root=root,
        benchmark_id=benchmark.meta.identifier,
        frame=benchmark.meta.frame,
        class_names=list(CLASS_NAMES),
        item_ids=[it.item_id for it in items],
        images=images,
        image_target=torch.tensor(image_target, dtype=torch.int64),
        target_keys=keys,
        target_class=torch.tensor(target_class, dtype=torch.int64),
        image_azimuth=azimuth,
        image_elevation=elevation,
    )
    if "vox32" in fields:
        data.vox32 = load_grids(root, keys, 32)

    def subset(n_total: int, n: int, t: int) -> np.ndarray:
        rng = np.random.default_rng(seed * 7919 + t)
        return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))

    if "occupancy" in fields:

        def read_occ(t: int) -> tuple[np.ndarray, np.ndarray]:
            with np.load(root / keys[t] / "occupancy.npz", allow_pickle=False) as f:
                pts, lab = f["points"], f["occupied"]
            sel = subset(len(pts), occ_points, t)
            if len(sel) < occ_points:  # tiny files: repeat samples to a fixed count
                sel = np.resize(sel, occ_points)
            return pts[sel].astype(np.float16), lab[sel].astype(bool)

        with ThreadPoolExecutor(_READ_THREADS) as pool:
            rows = list(bar(pool.map(read_occ, range(len(keys))), len(keys), f"{split} occupancy"))
        data.occ_points = torch.from_numpy(np.stack([r[0] for r in rows]))
        data.occ_labels = torch.from_numpy(np.stack([r[1] for r in rows]))
    if "points" in fields:

        def read_points(t: int) -> np.ndarray:
            pts = np.load(root / keys[t] / "points.npy", mmap_mode="r", allow_pickle=False)
            sel = subset(len(pts), surface_points, t)
            if len(sel) < surface_points:
                sel = np.resize(sel, surface_points)
            return np.asarray(pts[sel], dtype=np.float16)

        with ThreadPoolExecutor(_READ_THREADS) as pool:
            rows = list(bar(pool.map(read_points, range(len(keys))), len(keys), f"{split} points"))
        data.surface_points = torch.from_numpy(np.stack(rows))
    logger.info(
        "loaded %d %s images of %d targets (fields %s) from %s",
        len(items),
        split,
        len(keys),
        list(fields),
        root,
    )
    return data
