"""One photo-style training sample: render, background, degradations, the app's masking.

Chain of `render_style` (stages as timed in `PhotoSample.timings`):

1. background: backdrop image and scene props (floor, wall, clutter).
2. render: frame the camera, ray cast object + props in one Embree scene (one ray per
   pixel, 4 extra rays per pixel on edges), shade (materials, lights, shadow rays in one
   batch), expose on the object, composite the backdrop (with a drop shadow).
3. degradations: develop (white balance, exposure, vignette, tone curve) and degrade
   (colour, blur, noise, JPEG): the raw photo, RGB uint8 (P, P, 3).
4. masking: the app's own `svr.preprocess.preprocess` on that photo: GrabCut from the
   border when the photo has no alpha, the alpha channel for cut-outs (RGBA photo with the
   true coverage as alpha), then `crop_and_center` at the app's size (137) with the
   style's foreground ratio; the result is shifted by the style's jitter, composited on
   white and resized to the network size as `svr.data.dataset.prepare_images` does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import trimesh
from PIL import Image

from svr.data.dataset import composite_rgba
from svr.photo.augment import degrade, develop
from svr.photo.backgrounds import build_props, contact_occlusion, drop_shadow, render_backdrop
from svr.photo.color import srgb_to_linear
from svr.photo.families import Family, PhotoStyle, draw_style
from svr.photo.lighting import shade
from svr.photo.materials import MaterialStyle, evaluate_albedo, material_table, split_parts
from svr.photo.scene import (
    PreparedMesh,
    RayScene,
    SceneMesh,
    camera_rays,
    frame_camera,
    prepare_mesh,
)
from svr.preprocess import ImageInputError, preprocess
from svr.render import Camera

__all__ = ["PhotoConfig", "PhotoSample", "render_photo", "render_style", "STAGES"]

logger = logging.getLogger(__name__)

STAGES = ("background", "render", "degradations", "masking")
# rotated-grid sub-pixel offsets of the edge rays (pixels from the pixel centre)
_RGSS = np.array([[-0.125, -0.375], [0.375, -0.125], [0.125, 0.375], [-0.375, 0.125]])
_clock = time.thread_time  # stage timings: CPU seconds of the calling thread
_EXPOSURE_TARGET = 0.75  # linear value the object's bright pixels (90th percentile) meet


@dataclass(frozen=True)
class PhotoConfig:
    """image_size: side of the network input S (pixels); app_size: side the app's
    preprocessing produces (`Reconstructor.input_size`); antialias: extra rays on edges;
    min_mask_iou: when the app's mask overlaps the true silhouette less than this (IoU),
    or GrabCut finds nothing, the sample falls back to the clean alpha (counted in
    `PhotoSample.mask_source` as "fallback")."""

    image_size: int = 128
    app_size: int = 137
    antialias: bool = True
    min_mask_iou: float = 0.5


@dataclass
class PhotoSample:
    """One sample.

    image: the network input, RGB uint8 (S, S, 3), composited on white;
    photo: the raw photo as a user would upload it, RGB uint8 (P, P, 3), or RGBA (P, P, 4)
    for a cut-out; mask: bool (P, P), the mask the app's preprocessing used; true_mask:
    bool (P, P), the object's coverage >= 0.5; coverage: float32 (P, P) in [0, 1];
    camera: the realised camera (azimuth, elevation, distance, fov, roll);
    principal_point: (cx, cy) of the photo in pixels; style: every random choice;
    mask_source: "alpha", "grabcut" or "fallback"; mask_iou: IoU of mask and true_mask;
    part_split: how the object's material regions came about ("given" or a split kind);
    timings: CPU seconds of the calling thread per stage (see STAGES).
    """

    image: np.ndarray
    photo: np.ndarray
    mask: np.ndarray
    true_mask: np.ndarray
    coverage: np.ndarray
    camera: Camera
    principal_point: tuple[float, float]
    style: PhotoStyle
    mask_source: str
    mask_iou: float
    part_split: str
    timings: dict[str, float] = field(default_factory=dict)


def _object_parts(
    obj: PreparedMesh, face_parts: np.ndarray | None, style: PhotoStyle
) -> tuple[np.ndarray, str]:
    if face_parts is not None:
        parts = np.asarray(face_parts, dtype=np.int64).reshape(-1)
        if parts.shape != (len(obj.faces),):
            raise ValueError(
                f"face_parts must have one entry per face ({len(obj.faces)}), got {parts.shape}"
            )
        if parts.size and parts.min() < 0:
            raise ValueError("face_parts must be non-negative part indices")
        return parts, "given"
    if style.parts is None:
        return np.zeros(len(obj.faces), dtype=np.int64), "single"
    return split_parts(obj.mesh, style.parts)


def _trace(
    scene: RayScene,
    origins: np.ndarray,
    dirs: np.ndarray,
    materials: list[MaterialStyle],
    style: PhotoStyle,
    obj: PreparedMesh,
    floor_geom: int | None,
    rng: np.random.Generator,
    pixel_index: np.ndarray | None,
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radiance float32 (N, 3) (0 on misses), geometry int32 (N,), material int32 (N,))."""
    hits = scene.intersect(origins, dirs)
    radiance = np.zeros((len(dirs), 3), np.float32)
    material = np.full(len(dirs), -1, np.int32)
    sel = hits.hit
    if not sel.any():
        return radiance, hits.geom, material
    points, normals, shadow_origins = scene.surface(hits, origins, dirs)
    mat = scene.face_material[hits.face[sel]]
    material[sel] = mat
    _, _, spec, shin, metal = material_table(materials)
    albedo = evaluate_albedo(materials, mat, points)
    if floor_geom is not None and style.background.contact_shadow > 0:
        on_floor = hits.geom[sel] == floor_geom
        albedo[on_floor] *= contact_occlusion(
            points[on_floor], obj, style.background.contact_shadow
        )[:, None]
    radiance[sel] = shade(
        points,
        normals,
        shadow_origins,
        dirs[sel],
        albedo,
        spec[mat],
        shin[mat],
        metal[mat],
        style.lighting,
        scene.occluded,
        rng,
        pixel_index=None if pixel_index is None else pixel_index[sel],
        image_size=size,
    )
    return radiance, hits.geom, material


def _edges(key: np.ndarray) -> np.ndarray:
    """bool (S, S): pixels whose id differs from a 4-neighbour's."""
    edge = np.zeros(key.shape, bool)
    dv = key[1:] != key[:-1]
    dh = key[:, 1:] != key[:, :-1]
    edge[1:] |= dv
    edge[:-1] |= dv
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    return edge


def _key_light_in_image(style: PhotoStyle, camera: Camera) -> tuple[float, float]:
    R, _ = camera.extrinsics()
    if not style.lighting.lights:
        return (0.0, -1.0)
    d = R @ np.asarray(style.lighting.lights[0].direction)
    n = float(np.hypot(d[0], d[1]))
    return (float(d[0] / n), float(d[1] / n)) if n > 1e-6 else (0.0, -1.0)


def _mask_photo(
    photo: np.ndarray,
    coverage: np.ndarray,
    true_mask: np.ndarray,
    style: PhotoStyle,
    config: PhotoConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, float]:
    """(uploaded photo, app mask, network input RGB (S, S, 3), mask source, mask IoU)."""
    m = style.masking
    alpha = np.clip(np.rint(coverage * 255), 0, 255).astype(np.uint8)
    cutout = np.concatenate([photo, alpha[..., None]], axis=2)
    upload = cutout if m.cutout else photo
    # GrabCut's colour models start from OpenCV's global RNG: seed it so that the same
    # photo always gets the same mask (this resets OpenCV's RNG of the calling thread)
    cv2.setRNGSeed(int(style.seed) % (2**31))
    try:
        result = preprocess(upload, m.foreground_ratio, config.app_size)
        source = result.mask_source
    except ImageInputError as exc:
        logger.debug("app preprocessing refused the photo (%s); using the clean alpha", exc)
        result, source = None, "fallback"
    if result is not None:
        inter = np.logical_and(result.mask, true_mask).sum()
        union = np.logical_or(result.mask, true_mask).sum()
        iou = float(inter / union) if union else 0.0
        if source == "grabcut" and iou < config.min_mask_iou:
            result, source = None, "fallback"
    if result is None:
        result = preprocess(cutout, m.foreground_ratio, config.app_size)
        iou = 1.0
    rgba = result.image
    dx = int(round(m.shift[0] * config.app_size))
    dy = int(round(m.shift[1] * config.app_size))
    if dx or dy:
        shifted = np.zeros_like(rgba)
        h, w = rgba.shape[:2]
        src = rgba[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        shifted[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = (
            src
        )
        rgba = shifted
    rgb = composite_rgba(rgba)
    s = config.image_size
    if rgb.shape[:2] != (s, s):  # as svr.data.dataset.prepare_images resizes
        rgb = np.asarray(Image.fromarray(rgb).resize((s, s), Image.Resampling.BILINEAR))
    return upload, result.mask, rgb, source, iou


class _Laps:
    """Adds the CPU time since the previous lap to a stage (one clock read per lap)."""

    def __init__(self) -> None:
        self.timings = dict.fromkeys(STAGES, 0.0)
        self._last = _clock()

    def lap(self, stage: str) -> None:
        now = _clock()
        self.timings[stage] += now - self._last
        self._last = now


def _render_scene(
    scene: RayScene,
    camera: Camera,
    principal: tuple[float, float],
    size: int,
    materials: list[MaterialStyle],
    style: PhotoStyle,
    obj: PreparedMesh,
    floor_geom: int | None,
    antialias: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray cast a photo: (mean radiance of the rays that hit, linear float32 (S, S, 3);
    share of rays that hit geometry (S, S); object coverage (S, S)), both in [0, 1]."""
    rng = np.random.default_rng([style.seed, 7])
    origins, dirs = camera_rays(camera, size, principal)
    pixel_index = np.arange(size * size)
    radiance, geom, material = _trace(
        scene, origins, dirs, materials, style, obj, floor_geom, rng, pixel_index, size
    )
    total = radiance.reshape(size, size, 3).copy()
    n_obj = (geom == 0).astype(np.float32).reshape(size, size)
    n_miss = (geom < 0).astype(np.float32).reshape(size, size)
    n_samples = np.ones((size, size), np.float32)
    if antialias:
        key = np.where(geom < 0, -1, geom * 1000 + material).reshape(size, size)
        rows, cols = np.nonzero(_edges(key))
        if len(rows):
            k = len(_RGSS)
            pix = np.repeat(np.stack([cols, rows], 1), k, axis=0)
            off = np.tile(_RGSS, (len(rows), 1))
            o2, d2 = camera_rays(camera, size, principal, pix, off)
            rad2, geom2, _ = _trace(
                scene, o2, d2, materials, style, obj, floor_geom, rng, None, size
            )
            # edge pixels: the 4 sub-pixel rays replace the centre ray
            total[rows, cols] = rad2.reshape(-1, k, 3).sum(1)
            n_obj[rows, cols] = (geom2 == 0).reshape(-1, k).sum(1)
            n_miss[rows, cols] = (geom2 < 0).reshape(-1, k).sum(1)
            n_samples[rows, cols] = k
    mean_hit = total / np.maximum(n_samples - n_miss, 1e-6)[..., None]
    return mean_hit, 1.0 - n_miss / n_samples, n_obj / n_samples


def _exposure(mean_hit: np.ndarray, hit_share: np.ndarray, true_mask: np.ndarray) -> float:
    """Gain that brings the object's bright pixels (90th percentile) to the target."""
    lum = mean_hit @ np.array([0.299, 0.587, 0.114], np.float32)
    bright = float(np.percentile(lum[true_mask], 90)) if true_mask.any() else 1.0
    lit = hit_share > 0.5
    if lit.any():  # keep bright props (a white floor) from blowing out
        bright = max(bright, 0.6 * float(np.percentile(lum[lit], 95)))
    return float(np.clip(_EXPOSURE_TARGET / max(bright, 1e-4), 0.25, 6.0))


def render_style(
    mesh: trimesh.Trimesh | PreparedMesh,
    style: PhotoStyle,
    face_parts: np.ndarray | None = None,
    config: PhotoConfig = PhotoConfig(),
) -> PhotoSample:
    """Render the photo of a drawn `style` and preprocess it as the app does.

    mesh: the object (normalised: fits [-0.5, 0.5]^3, +y up), or a `prepare_mesh` result
    to reuse across samples. face_parts: int (F,) part id per face, or None (then the
    style's part split applies). Deterministic for (mesh, style, face_parts, config).
    """
    laps = _Laps()
    obj = mesh if isinstance(mesh, PreparedMesh) else prepare_mesh(mesh)
    parts, part_split = _object_parts(obj, face_parts, style)
    cs = style.camera
    size = cs.photo_size
    camera, principal = frame_camera(
        obj, cs.azimuth, cs.elevation, cs.fov, cs.roll, cs.fill, cs.offset, size
    )
    n_mat = len(style.materials)
    obj_material = np.zeros_like(parts) if style.single_material else parts % n_mat
    laps.lap("render")

    backdrop = srgb_to_linear(render_backdrop(style.background.backdrop, size))
    props, prop_materials, floor_y = build_props(style.background, camera, obj, n_mat)
    laps.lap("background")

    object_mesh = SceneMesh(
        obj.vertices.astype(np.float32), obj.faces, obj.normals, obj_material.astype(np.int32)
    )
    scene = RayScene([object_mesh, *props])
    mean_hit, hit_share, coverage = _render_scene(
        scene, camera, principal, size, list(style.materials) + prop_materials, style, obj,
        1 if floor_y is not None else None, config.antialias,
    )  # fmt: skip
    true_mask = coverage >= 0.5
    exposure = _exposure(mean_hit, hit_share, true_mask)
    laps.lap("render")

    if style.background.drop_shadow > 0:
        shadow = drop_shadow(
            coverage,
            _key_light_in_image(style, camera),
            style.background.drop_shadow,
            style.background.shadow_blur,
        )
        backdrop = backdrop * shadow[..., None]
    laps.lap("background")

    # lit geometry is exposed on the object; the backdrop is an emitter of fixed brightness
    linear = mean_hit * exposure * hit_share[..., None] + backdrop * (1 - hit_share)[..., None]
    photo = degrade(develop(linear, style.degradation), style.degradation)
    laps.lap("degradations")

    upload, mask, image, source, iou = _mask_photo(photo, coverage, true_mask, style, config)
    laps.lap("masking")
    return PhotoSample(
        image=image,
        photo=upload,
        mask=mask,
        true_mask=true_mask,
        coverage=coverage.astype(np.float32),
        camera=camera,
        principal_point=principal,
        style=style,
        mask_source=source,
        mask_iou=iou,
        part_split=part_split,
        timings=laps.timings,
    )


def render_photo(
    mesh: trimesh.Trimesh | PreparedMesh,
    seed: int,
    family: str | Family = "train",
    face_parts: np.ndarray | None = None,
    config: PhotoConfig = PhotoConfig(),
) -> PhotoSample:
    """Draw a style of `family` ("train" or "heldout") with `seed` and render it.

    Deterministic for (mesh, seed, family, face_parts, config). face_parts: int (F,) part
    ids (procedural shapes' `face_parts`), or None for a mesh without parts (marching-cubes
    meshes): it then gets a drawn split into 2-4 material regions.
    """
    if face_parts is not None:
        parts = np.asarray(face_parts).reshape(-1)
        n_parts = int(parts.max()) + 1 if parts.size else 1
    else:
        n_parts = 4
    style = draw_style(family, seed, n_parts, has_part_ids=face_parts is not None)
    return render_style(mesh, style, face_parts, config)
