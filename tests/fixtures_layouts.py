"""Miniature source layouts (ShapeNetCore, 3D-R2N2, what3d) written into a temporary folder.

Every shape is a trimesh primitive; nothing here comes from ShapeNet. Each writer returns
a `Miniature` telling the tests what it wrote: the good shapes per class, the foreign
shapes and the corrupt ones with the reason they should be skipped for.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from svr.data.importers.common import ViewCamera, intrinsics_from_fov, look_at
from svr.geometry import voxelize_mesh
from svr.io import binvox_bytes

CHAIR, AIRPLANE, WATERCRAFT = "03001627", "02691156", "04530566"
FOREIGN = "02747177"  # ashcan: a ShapeNetCore synset outside the 13


@dataclass
class Miniature:
    root: Path
    good: dict[str, list[str]] = field(default_factory=dict)  # our class -> model ids
    split_of: dict[str, str] = field(default_factory=dict)  # model id -> split
    foreign: int = 0  # number of foreign-class shapes
    corrupt: dict[str, str] = field(default_factory=dict)  # model id -> expected reason text


def _primitive(index: int) -> trimesh.Trimesh:
    """An asymmetric watertight primitive, different for each index."""
    rng = np.random.default_rng(index)
    kind = index % 3
    if kind == 0:
        mesh = trimesh.creation.box(extents=rng.uniform(0.3, 1.0, 3))
    elif kind == 1:
        mesh = trimesh.creation.cylinder(
            radius=rng.uniform(0.2, 0.4), height=rng.uniform(0.5, 1.0), sections=24
        )
    else:
        mesh = trimesh.creation.capsule(radius=0.2, height=rng.uniform(0.3, 0.8), count=[12, 12])
    # an off-centre bump so no primitive is symmetric
    bump = trimesh.creation.box(extents=[0.15, 0.15, 0.15])
    bump.apply_translation(mesh.bounds[1] - 0.05)
    return trimesh.util.concatenate([mesh, bump])


def _split_for(i: int) -> str:
    return ("train", "val", "test")[i % 3]


def write_split_csv(path: Path, mini: Miniature, synset_of: dict[str, str]) -> None:
    """ShapeNet's official split CSV: id,synsetId,subSynsetId,modelId,split."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "synsetId", "subSynsetId", "modelId", "split"])
        for n, (model, split) in enumerate(sorted(mini.split_of.items())):
            synset = synset_of.get(model, CHAIR)
            writer.writerow([n, synset, synset, model, split])


# ----------------------------------------------------------------------------------- ShapeNet


def _write_obj(path: Path, mesh: trimesh.Trimesh) -> None:
    """OBJ with a material library that does not exist (textures must not be needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["mtllib model.mtl", "o part", "usemtl missing_material"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
    path.write_text("\n".join(lines) + "\n")


def make_shapenet(root: Path, version: int = 2, per_class: int = 3) -> Miniature:
    """ShapeNetCore v1/v2 miniature: chair and airplane shapes, a foreign synset, two bad models."""
    mini = Miniature(root)
    name = "models/model_normalized.obj" if version == 2 else "model.obj"
    index = 0
    for synset, cls in ((CHAIR, "chair"), (AIRPLANE, "airplane")):
        for i in range(per_class):
            model = f"{cls[:2]}{i:04d}aa"
            _write_obj(root / synset / model / name, _primitive(index))
            mini.good.setdefault(cls, []).append(model)
            mini.split_of[model] = _split_for(i)
            index += 1
    for i in range(2):
        _write_obj(root / FOREIGN / f"bin{i}" / name, _primitive(50 + i))
        mini.foreign += 1
    # corrupt: an OBJ with vertices but no faces; a model folder without any OBJ
    (root / CHAIR / "nofaces" / name).parent.mkdir(parents=True)
    (root / CHAIR / "nofaces" / name).write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    mini.corrupt["nofaces"] = "no faces"
    (root / CHAIR / "noobj").mkdir()
    mini.corrupt["noobj"] = "no models/model_normalized.obj or model.obj"
    mini.split_of.update({"nofaces": "test", "noobj": "test"})
    return mini


def fake_renderer(mesh: trimesh.Trimesh, n_views: int, image_size: int, seed: int):
    """A tiny stand-in renderer: silhouettes of the vertices from seeded look-at cameras."""
    rng = np.random.default_rng(seed)
    images, cameras = [], []
    for _ in range(n_views):
        az, el = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.6)
        eye = 2.0 * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
        R, t = look_at(eye, np.zeros(3))
        K = intrinsics_from_fov(40.0, image_size, image_size)
        cam = (R @ mesh.vertices.T).T + t
        uv = (K @ cam.T).T
        uv = uv[:, :2] / uv[:, 2:]
        image = np.zeros((image_size, image_size, 4), dtype=np.uint8)
        ij = np.clip(np.floor(uv).astype(int), 0, image_size - 1)
        image[ij[:, 1], ij[:, 0]] = (200, 200, 200, 255)
        images.append(image)
        cameras.append(ViewCamera(K=K, R=R, t=t, width=image_size, height=image_size))
    return images, cameras


# --------------------------------------------------------------------------------------- R2N2


def _blender_r2n2_projection(points: np.ndarray, params: np.ndarray, size: int) -> np.ndarray:
    """Reference projection of OBJ-frame points (N, 3) for one R2N2 metadata row, written
    independently of the importer with OpenGL's lookAt: Blender z-up camera position,
    OBJ (x, y, z) = Blender (x, z, -y), up +y, horizontal fov. Returns pixels (N, 2)."""
    az, el, _roll, ratio, fov = params
    d = ratio * 1.75
    a, e = np.radians(az), np.radians(el)
    bx, by, bz = d * np.cos(e) * np.cos(a), d * np.cos(e) * np.sin(a), d * np.sin(e)
    eye = np.array([bx, bz, -by])  # Blender -> OBJ frame
    f = -eye / np.linalg.norm(eye)
    s = np.cross(f, [0.0, 1.0, 0.0])
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    rel = points - eye
    x_gl, y_gl, z_gl = rel @ s, rel @ u, rel @ f  # z_gl: depth in front of the camera
    focal = (size / 2) / np.tan(np.radians(fov) / 2)
    return np.stack([size / 2 + focal * x_gl / z_gl, size / 2 - focal * y_gl / z_gl], axis=1)


def _r2n2_shape(root: Path, synset: str, model: str, box_lo, box_hi, rng, views: int = 6) -> None:
    """One R2N2 model: a box in the OBJ frame, its 32^3 binvox and silhouette renderings,
    and the box as a ShapeNetCore v1 mesh under `ShapeNetCore.v1/` (for the finer GT)."""
    lo, hi = np.asarray(box_lo, float), np.asarray(box_hi, float)
    box = trimesh.creation.box(bounds=np.stack([lo, hi]))
    _write_obj(root / "ShapeNetCore.v1" / synset / model / "model.obj", box)
    scale = float((hi - lo).max()) * 1.02
    translate = lo - 0.01 * scale
    c = translate[:, None] + scale * (np.arange(32) + 0.5)[None, :] / 32  # (3, 32) centres
    inside = [(c[a] > lo[a]) & (c[a] < hi[a]) for a in range(3)]
    grid = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
    vox = root / "ShapeNetVox32" / synset / model / "model.binvox"
    vox.parent.mkdir(parents=True)
    vox.write_bytes(binvox_bytes(grid, translate=tuple(translate), scale=scale))
    render = root / "ShapeNetRendering" / synset / model / "rendering"
    render.mkdir(parents=True)
    params = np.stack(
        [
            rng.uniform(0, 360, views),
            rng.uniform(5, 35, views),
            np.zeros(views),
            rng.uniform(0.65, 0.9, views),
            np.full(views, 25.0),
        ],
        axis=1,
    )
    (render / "rendering_metadata.txt").write_text(
        "\n".join(" ".join(f"{v:.6f}" for v in row) for row in params) + "\n"
    )
    g = np.stack(np.meshgrid(*[np.linspace(lo[a], hi[a], 60) for a in range(3)], indexing="ij"), -1)
    pts = g.reshape(-1, 3)
    for v in range(views):
        uv = _blender_r2n2_projection(pts, params[v], 137)
        ij = np.clip(np.floor(uv).astype(int), 0, 136)
        image = np.zeros((137, 137, 4), dtype=np.uint8)
        image[ij[:, 1], ij[:, 0]] = (90, 120, 200, 255)
        Image.fromarray(image).save(render / f"{v:02d}.png")


def make_r2n2(root: Path, per_class: int = 3) -> Miniature:
    """3D-R2N2 miniature: chair and airplane boxes (off-centre, asymmetric), a foreign synset,
    a truncated binvox, a missing rendering and a metadata file with 4 columns."""
    mini = Miniature(root)
    rng = np.random.default_rng(7)
    for synset, cls in ((CHAIR, "chair"), (AIRPLANE, "airplane")):
        for i in range(per_class):
            model = f"{cls[:2]}{i:04d}bb"
            lo = rng.uniform(-0.15, -0.05, 3)
            hi = lo + rng.uniform([0.2, 0.1, 0.12], [0.28, 0.2, 0.2])
            _r2n2_shape(root, synset, model, lo, hi, rng)
            mini.good.setdefault(cls, []).append(model)
            mini.split_of[model] = _split_for(i)
    _r2n2_shape(root, FOREIGN, "bin0", [-0.1] * 3, [0.1] * 3, rng)
    mini.foreign = 1
    for model in ("truncated", "norender", "badmeta"):
        _r2n2_shape(root, CHAIR, model, [-0.12, -0.08, -0.1], [0.13, 0.1, 0.06], rng)
        mini.split_of[model] = "test"
    vox = root / "ShapeNetVox32" / CHAIR / "truncated" / "model.binvox"
    vox.write_bytes(vox.read_bytes()[:-4])
    mini.corrupt["truncated"] = "truncated"
    (root / "ShapeNetRendering" / CHAIR / "norender" / "rendering" / "02.png").unlink()
    mini.corrupt["norender"] = "missing rendering"
    meta = root / "ShapeNetRendering" / CHAIR / "badmeta" / "rendering" / "rendering_metadata.txt"
    meta.write_text(
        "\n".join(" ".join(line.split()[:4]) for line in meta.read_text().splitlines()) + "\n"
    )
    mini.corrupt["badmeta"] = "4 columns, expected 5"
    return mini


# ------------------------------------------------------------------------------------- what3d


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _what3d_view(root: Path, cls: str, model: str, view: int, mesh: trimesh.Trimesh, rng) -> None:
    rotated = mesh.copy()
    transform = np.eye(4)
    transform[:3, :3] = _random_rotation(rng)
    rotated.apply_transform(transform)
    lo, hi = rotated.bounds
    rotated.apply_translation(-(lo + hi) / 2)
    rotated.apply_scale(1.0 / (hi - lo).max())
    points = trimesh.sample.sample_surface(rotated, 3000, seed=int(rng.integers(1 << 30)))[0]
    ply = root / "points" / cls / model / f"{view}.ply"
    ply.parent.mkdir(parents=True, exist_ok=True)
    ply.write_bytes(trimesh.PointCloud(points).export(file_type="ply"))
    grid = voxelize_mesh(rotated.vertices, rotated.faces, 32)
    vox = root / "voxels" / cls / model / f"{view}.binvox"
    vox.parent.mkdir(parents=True, exist_ok=True)
    vox.write_bytes(binvox_bytes(grid))
    png = root / "renderings" / cls / model / f"{view}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    image = np.zeros((64, 64, 4), dtype=np.uint8)
    image[16:48, 16:48] = (150, 100, 50, 255)
    Image.fromarray(image).save(png)


def make_what3d(root: Path, per_class: int = 3, views: int = 2) -> Miniature:
    """what3d miniature: chair and vessel (= watercraft) shapes, a foreign class "bag", a
    truncated binvox, a missing rendering and points that do not match their voxels."""
    mini = Miniature(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    classes = [
        ("chair", CHAIR, "chair"),
        ("vessel", WATERCRAFT, "watercraft"),
        ("bag", "02773838", None),
    ]
    (root / "classes.txt").write_text("".join(f"{name} {synset}\n" for name, synset, _ in classes))
    index = 0
    for name, _synset, ours in classes:
        models = [f"{name[:2]}{i:04d}cc" for i in range(per_class)]
        if name == "chair":
            models += ["truncated", "norender", "mismatch"]
        lists = {"train": [], "val": [], "test": []}
        for i, model in enumerate(models):
            split = "test" if i >= per_class else _split_for(i)
            lists[split].append(model)
            for v in range(views):
                _what3d_view(root, name, model, v, _primitive(index), rng)
            index += 1
            if ours is None:
                mini.foreign += 1
            elif i < per_class:
                mini.good.setdefault(ours, []).append(model)
                mini.split_of[model] = split
        for split, ids in lists.items():
            path = root / "lists" / name / f"{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{m}\n" for m in ids))
    vox = root / "voxels" / "chair" / "truncated" / "1.binvox"
    vox.write_bytes(vox.read_bytes()[:-6])
    mini.corrupt["truncated"] = "truncated"
    (root / "renderings" / "chair" / "norender" / "0.png").unlink()
    mini.corrupt["norender"] = "missing rendering"
    # points of a different shape (a thin rod) under the voxels of "mismatch"
    rod = trimesh.creation.box(extents=[1.0, 0.05, 0.05])
    (root / "points" / "chair" / "mismatch" / "0.ply").write_bytes(
        trimesh.PointCloud(trimesh.sample.sample_surface(rod, 3000, seed=1)[0]).export(
            file_type="ply"
        )
    )
    mini.corrupt["mismatch"] = "points and voxels disagree"
    return mini
