"""Backgrounds of the photo renderer: 2D backdrops, and 3D props (floor, wall, clutter).

A backdrop is an sRGB image float32 (S, S, 3) in [0, 1] seen wherever no ray hits
geometry. `BACKDROPS` is the registry of 2D kinds (solid, gradient, radial, noise,
pattern, shapes, bokeh, tiles, cells, plaid). Scene kinds add geometry that is ray cast
with the object and lit by the same lights: "clutter" (other procedural shapes behind
the object), "floor" (a textured ground plane under the object, with its shadows and a
contact shadow, and clutter standing on it), "corner" (floor and a back wall). Which
kinds each randomisation family uses is set in `svr.photo.families`.

Clutter shapes are procedural shapes `generate_shape(class, seed)` from a fixed pool of
seeds per family, cached per process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import cKDTree

from svr.classes import CLASS_NAMES
from svr.photo.color import hsv, jitter_hsv
from svr.photo.materials import MaterialStyle
from svr.photo.scene import PreparedMesh, SceneMesh, prepare_mesh
from svr.photo.textures import PatternParams, evaluate_pattern
from svr.render import Camera

__all__ = [
    "BackdropStyle",
    "ClutterStyle",
    "BackgroundStyle",
    "BACKDROPS",
    "SCENE_KINDS",
    "render_backdrop",
    "build_props",
    "drop_shadow",
    "contact_occlusion",
    "clutter_shape",
]

Rgb = tuple[float, float, float]
SCENE_KINDS = ("clutter", "floor", "corner")


@dataclass(frozen=True)
class BackdropStyle:
    """A 2D backdrop: kind, sRGB colours, an angle (radians), a scale (features across the
    image), a seed for its random layout, and for "pattern" a solid pattern and its
    parameters."""

    kind: str
    colors: tuple[Rgb, ...]
    angle: float
    scale: float
    seed: int
    pattern: str = "plain"
    params: PatternParams = PatternParams()


@dataclass(frozen=True)
class ClutterStyle:
    """A procedural shape behind the object: class and seed of `generate_shape`; where it
    appears (ndc x, y in [-1, 1] of the frame, y down), how far behind the object's centre
    (world units), its size as a share of the frame's height at that depth, its turn about
    the vertical (degrees) and its two materials."""

    class_name: str
    shape_seed: int
    ndc: tuple[float, float]
    depth: float
    size: float
    yaw: float
    materials: tuple[MaterialStyle, MaterialStyle]


@dataclass(frozen=True)
class BackgroundStyle:
    """Everything behind the object: kind (a 2D kind or a scene kind), the 2D backdrop,
    the floor and wall materials (None when absent), the wall's distance behind the
    object (world units), clutter, drop shadow strength (0-1, 2D kinds only, cast on the
    backdrop), its blur (pixels), and the contact shadow strength under the object on a
    floor (0-1)."""

    kind: str
    backdrop: BackdropStyle
    floor: MaterialStyle | None = None
    wall: MaterialStyle | None = None
    wall_depth: float = 2.0
    clutter: tuple[ClutterStyle, ...] = ()
    drop_shadow: float = 0.0
    shadow_blur: float = 4.0
    contact_shadow: float = 0.0


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return np.meshgrid(c, c, indexing="xy")  # x right, y down, in [-0.5, 0.5]


def _mix(colors: tuple[Rgb, ...], t: np.ndarray) -> np.ndarray:
    a, b = np.asarray(colors[0], np.float32), np.asarray(colors[1 % len(colors)], np.float32)
    return a + (b - a) * t[..., None]


def _smooth_noise(
    rng: np.random.Generator, size: int, cells: float, octaves: int = 3
) -> np.ndarray:
    """fBm-like noise float32 (size, size) in [0, 1] from upsampled random grids."""
    out = np.zeros((size, size), np.float32)
    norm = 0.0
    for k in range(octaves):
        n = max(2, int(round(cells * 2**k)) + 1)
        grid = rng.random((n, n), dtype=np.float32)
        out += 0.5**k * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        norm += 0.5**k
    return np.clip(out / norm, 0.0, 1.0)


def _solid(s: BackdropStyle, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(s.colors[0], np.float32), (size, size, 3)).copy()


def _gradient(s: BackdropStyle, size: int) -> np.ndarray:
    x, y = _grid(size)
    t = np.clip(0.5 + (x * np.cos(s.angle) + y * np.sin(s.angle)) * s.scale, 0, 1)
    return _mix(s.colors, t)


def _radial(s: BackdropStyle, size: int) -> np.ndarray:
    x, y = _grid(size)
    cx, cy = 0.3 * np.cos(s.angle), 0.3 * np.sin(s.angle)
    t = np.clip(np.hypot(x - cx, y - cy) * s.scale, 0, 1)
    return _mix(s.colors, t)


def _noise(s: BackdropStyle, size: int) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    t = _smooth_noise(rng, size, s.scale)
    return _mix(s.colors, np.clip((t - 0.5) * 2.5 + 0.5, 0, 1))


def _pattern(s: BackdropStyle, size: int) -> np.ndarray:
    half = max(16, size // 2)  # evaluated at half resolution, then upsampled
    x, y = _grid(half)
    pts = np.stack([x.ravel(), -y.ravel(), np.zeros(x.size, np.float32)], 1) * 1.5
    t = evaluate_pattern(s.pattern, pts, s.params).reshape(half, half)
    t = cv2.resize(t, (size, size), interpolation=cv2.INTER_LINEAR)
    return _mix(s.colors, t)


def _shapes(s: BackdropStyle, size: int) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    img = _solid(s, size)
    for _ in range(int(4 + 10 * s.scale)):
        color = tuple(float(c) for c in s.colors[rng.integers(len(s.colors))])
        kind = rng.integers(3)
        p = rng.integers(-size // 4, size + size // 4, size=4)
        r = int(rng.integers(size // 20, size // 3))
        if kind == 0:
            cv2.rectangle(
                img, (int(p[0]), int(p[1])), (int(p[0]) + r, int(p[1]) + r // 2), color, -1
            )
        elif kind == 1:
            cv2.circle(img, (int(p[0]), int(p[1])), r // 2, color, -1)
        else:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, max(1, r // 8))
    return cv2.GaussianBlur(img, (0, 0), 0.7)


def _bokeh(s: BackdropStyle, size: int) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    img = _gradient(s, size) * 0.6
    layer = np.zeros_like(img)
    for _ in range(int(15 + 25 * s.scale)):
        color = np.asarray(s.colors[rng.integers(len(s.colors))], np.float32)
        c = rng.integers(0, size, size=2)
        r = int(rng.integers(max(2, size // 30), max(3, size // 8)))
        cv2.circle(layer, (int(c[0]), int(c[1])), r, tuple(float(v) for v in color * 0.5), -1)
    img = img + cv2.GaussianBlur(layer, (0, 0), max(1.5, size / 60))
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 1)


def _tiles(s: BackdropStyle, size: int) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    x, y = _grid(size)
    u = (x * np.cos(s.angle * 0.2) - y * np.sin(s.angle * 0.2)) * s.scale * 4 + 7.3
    v = (x * np.sin(s.angle * 0.2) + y * np.cos(s.angle * 0.2)) * s.scale * 4 + 3.1
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    jitter = rng.uniform(0.85, 1.1, size=64)[(iu * 7 + iv * 13) % 64].astype(np.float32)
    grout = (np.minimum(u - iu, v - iv) < 0.06) | (np.maximum(u - iu, v - iv) > 0.94)
    tile = np.asarray(s.colors[0], np.float32) * jitter[..., None]
    out = np.where(grout[..., None], np.asarray(s.colors[1 % len(s.colors)], np.float32), tile)
    return np.clip(cv2.GaussianBlur(out, (0, 0), 0.6), 0, 1)


def _cells(s: BackdropStyle, size: int) -> np.ndarray:
    """Flagstones / patchwork: Voronoi cells of muted colours with soft dark seams."""
    rng = np.random.default_rng(s.seed)
    small = max(24, size // 2)
    n = int(5 + 20 * s.scale)
    seeds = rng.random((n, 2)) * small
    yy, xx = np.mgrid[0:small, 0:small]
    dist, owner = cKDTree(seeds).query(np.stack([xx.ravel(), yy.ravel()], 1), k=2)
    base = np.asarray(s.colors, np.float32)
    palette = base[rng.integers(len(base), size=n)] * rng.uniform(0.85, 1.08, size=(n, 1))
    grey = palette.mean(1, keepdims=True)
    palette = grey + (palette - grey) * 0.6  # muted
    seam = np.clip((dist[:, 1] - dist[:, 0]) / 1.5, 0, 1).reshape(small, small, 1)
    img = palette[owner[:, 0]].reshape(small, small, 3) * (0.55 + 0.45 * seam)
    img = cv2.resize(img.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0, 1)


def _plaid(s: BackdropStyle, size: int) -> np.ndarray:
    x, y = _grid(size)
    u = x * np.cos(s.angle) - y * np.sin(s.angle)
    v = x * np.sin(s.angle) + y * np.cos(s.angle)
    f = 3 + 8 * s.scale
    a = (np.sin(u * f * 2 * np.pi) > 0.3).astype(np.float32)
    b = (np.sin(v * f * 2 * np.pi) > 0.3).astype(np.float32)
    c1 = np.asarray(s.colors[0], np.float32)
    c2 = np.asarray(s.colors[1 % len(s.colors)], np.float32)
    c3 = np.asarray(s.colors[2 % len(s.colors)], np.float32)
    img = c1 + (c2 - c1) * (0.5 * a)[..., None] + (c3 - c1) * (0.5 * b)[..., None]
    return np.clip(cv2.GaussianBlur(img, (0, 0), 0.6), 0, 1)


BACKDROPS: dict[str, Callable[[BackdropStyle, int], np.ndarray]] = {
    "solid": _solid,
    "gradient": _gradient,
    "radial": _radial,
    "noise": _noise,
    "pattern": _pattern,
    "shapes": _shapes,
    "bokeh": _bokeh,
    "tiles": _tiles,
    "cells": _cells,
    "plaid": _plaid,
}


def render_backdrop(style: BackdropStyle, size: int) -> np.ndarray:
    """The backdrop as an sRGB image float32 (size, size, 3) in [0, 1]."""
    try:
        fn = BACKDROPS[style.kind]
    except KeyError:
        raise ValueError(
            f"unknown backdrop {style.kind!r}: expected one of {sorted(BACKDROPS)}"
        ) from None
    return np.clip(fn(style, size), 0.0, 1.0).astype(np.float32)


def draw_backdrop_colors(rng: np.random.Generator, count: int) -> tuple[Rgb, ...]:
    """sRGB colours of a backdrop: a random base and nearby or contrasting companions."""
    base = hsv(rng.random(), rng.uniform(0, 0.7) ** 1.5, rng.uniform(0.2, 1.0))
    colors = [base]
    for _ in range(count - 1):
        if rng.random() < 0.6:
            colors.append(jitter_hsv(base, rng, 0.08, 0.4, 0.45))
        else:
            colors.append(hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.1, 1.0)))
    return tuple(tuple(float(c) for c in col) for col in colors)  # type: ignore[return-value]


@lru_cache(maxsize=256)
def clutter_shape(class_name: str, seed: int) -> tuple[PreparedMesh, np.ndarray]:
    """A procedural shape for clutter, prepared, with its part ids int64 (F,); cached."""
    from svr.data.procedural import generate_shape

    shape = generate_shape(class_name, seed)
    return prepare_mesh(shape.mesh), np.asarray(shape.face_parts, dtype=np.int64)


def _quad(corners: np.ndarray, normal: np.ndarray, material: int) -> SceneMesh:
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    tri = corners[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if (cross @ normal < 0).any():
        faces = faces[:, ::-1].copy()
    return SceneMesh(
        vertices=corners.astype(np.float32),
        faces=faces,
        normals=np.broadcast_to(normal.astype(np.float32), (2, 3, 3)).copy(),
        face_material=np.full(2, material, np.int32),
    )


def _yaw(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def build_props(
    background: BackgroundStyle,
    camera: Camera,
    obj: PreparedMesh,
    first_material: int,
) -> tuple[list[SceneMesh], list[MaterialStyle], float | None]:
    """Scene geometry of the background: (meshes, their materials, floor height or None).

    Material indices of the meshes start at `first_material` (the object's come first).
    The floor is the plane y = the object's lowest point; clutter keeps clear of the object
    (never between it and the camera).
    """
    meshes: list[SceneMesh] = []
    materials: list[MaterialStyle] = []
    floor_y: float | None = None
    big = 40.0
    if background.floor is not None:
        floor_y = float(obj.vertices[:, 1].min())
        corners = np.array(
            [[-big, floor_y, -big], [big, floor_y, -big], [big, floor_y, big], [-big, floor_y, big]]
        )
        meshes.append(_quad(corners, np.array([0.0, 1.0, 0.0]), first_material + len(materials)))
        materials.append(background.floor)
    az = np.deg2rad(camera.azimuth)
    towards_camera = np.array([np.sin(az), 0.0, np.cos(az)])
    if background.wall is not None:
        side = np.array([np.cos(az), 0.0, -np.sin(az)])
        base = -towards_camera * background.wall_depth
        y0 = floor_y if floor_y is not None else -big
        corners = np.stack(
            [
                base - side * big + [0, y0, 0],
                base + side * big + [0, y0, 0],
                base + side * big + [0, big, 0],
                base - side * big + [0, big, 0],
            ]
        )
        meshes.append(_quad(corners, towards_camera, first_material + len(materials)))
        materials.append(background.wall)
    R, _ = camera.extrinsics()
    tan_half = np.tan(np.deg2rad(camera.fov) / 2)
    for item in background.clutter:
        shape, parts = clutter_shape(item.class_name, item.shape_seed)
        # keep its near side behind the object: depth >= radius + 0.1 + 0.87 * scale, where
        # scale = size * 2 * z * tan_half grows with z = distance + depth
        k = 1.74 * item.size * tan_half
        depth_min = (obj.radius + 0.1 + k * camera.distance) / max(1.0 - k, 0.2)
        depth = max(item.depth, depth_min)
        z = camera.distance + depth
        scale = item.size * 2 * z * tan_half
        in_cam = np.array([item.ndc[0] * z * tan_half, item.ndc[1] * z * tan_half, z])
        centre = camera.position + R.T @ in_cam
        rot = _yaw(item.yaw) * scale
        verts = shape.vertices @ rot.T + centre
        if floor_y is not None:
            verts[:, 1] += floor_y - verts[:, 1].min()
        normals = (shape.normals.reshape(-1, 3) @ _yaw(item.yaw).T).reshape(-1, 3, 3)
        mat = first_material + len(materials) + (parts % 2)
        meshes.append(
            SceneMesh(verts.astype(np.float32), shape.faces, normals, mat.astype(np.int32))
        )
        materials.extend(item.materials)
    return meshes, materials, floor_y


def drop_shadow(
    coverage: np.ndarray, light_dir_image: tuple[float, float], strength: float, blur: float
) -> np.ndarray:
    """Darkening factor float32 (S, S) in [0, 1] of a backdrop under a soft drop shadow.

    coverage: float (S, S) object coverage in [0, 1]. The shadow is the silhouette laid
    onto the ground behind the object: squashed vertically towards the object's lowest row
    and leaning away from the key light (light_dir_image: its direction in the image, x
    right, y down), then blurred by `blur` pixels.
    """
    size = coverage.shape[0]
    ys = np.nonzero((coverage > 0.5).any(axis=1))[0]
    if strength <= 0 or len(ys) == 0:
        return np.ones_like(coverage, dtype=np.float32)
    bottom = float(ys.max())
    lean = -0.8 * float(light_dir_image[0])
    squash = 0.35
    # dst = M @ (x, y, 1): x' = x + lean (bottom - y), y' = bottom + squash (y - bottom)
    m = np.float32([[1, -lean, lean * bottom], [0, squash, (1 - squash) * bottom + 1.0]])
    shadow = cv2.warpAffine(coverage.astype(np.float32), m, (size, size))
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(0.5, blur))
    return (1.0 - strength * np.clip(shadow, 0, 1)).astype(np.float32)


def contact_occlusion(points: np.ndarray, obj: PreparedMesh, strength: float) -> np.ndarray:
    """Ambient-occlusion factor float32 (N,) in [0, 1] of floor points (N, 3) near the
    object's foot: darkest right under the lowest vertices, fading over ~0.08 world units."""
    if strength <= 0 or len(points) == 0 or len(obj.bottom) == 0:
        return np.ones(len(points), dtype=np.float32)
    tree = cKDTree(obj.bottom[:, [0, 2]])
    d, _ = tree.query(np.asarray(points)[:, [0, 2]], k=1, distance_upper_bound=0.4)
    d = np.where(np.isfinite(d), d, 1.0)
    return (1.0 - strength * np.exp(-((d / 0.08) ** 2))).astype(np.float32)


def random_clutter_class(rng: np.random.Generator) -> str:
    """One of the 13 class names, uniformly."""
    return CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
