"""Lights and shading of the photo renderer: light rigs, hemisphere ambient, Blinn-Phong.

A `LightingStyle` holds directional lights (world direction towards the light, linear RGB
colour with its largest channel 1, intensity, softness = half-angle in degrees of the
cone its shadow rays are jittered in: 0 gives hard shadows), an ambient term lit by a
sky / ground hemisphere (linear RGB), and the strength of environment reflections.

Rigs (`LIGHT_RIGS`) are named recipes: each light's azimuth is drawn relative to the
camera's azimuth (0 = from the camera's side, 180 = from behind the object), elevation
above the world horizon in degrees, a colour temperature in kelvin or a saturated tint.
Each randomisation family (`svr.photo.families`) lists the rigs it may draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from svr.photo.color import hsv, kelvin_rgb, srgb_to_linear

__all__ = [
    "LightStyle",
    "LightingStyle",
    "LightSpec",
    "LightRig",
    "LIGHT_RIGS",
    "draw_lighting",
    "shade",
]

Rgb = tuple[float, float, float]


@dataclass(frozen=True)
class LightStyle:
    """A directional light: direction (3,) unit, world frame, from the surface towards the
    light; color linear RGB (max channel 1); intensity; softness in degrees."""

    direction: tuple[float, float, float]
    color: Rgb
    intensity: float
    softness: float


@dataclass(frozen=True)
class LightingStyle:
    """All lights of a photo: the rig's name, its lights, ambient strength, sky and ground
    colours of the hemisphere ambient (linear RGB), environment reflection strength, and
    whether shadow rays are cast."""

    rig: str
    lights: tuple[LightStyle, ...]
    ambient: float
    sky: Rgb
    ground: Rgb
    environment: float
    shadows: bool


@dataclass(frozen=True)
class LightSpec:
    """How to draw one light of a rig (uniform ranges).

    azimuth: degrees from the camera's azimuth; side: "key" (a random side), "opposite"
    (the other side from the rig's key) or "any"; elevation: degrees above the horizon;
    kelvin: colour temperature range; tint: saturation range of a tinted light, (0, 0)
    for white light; complementary: a tinted light takes the hue opposite the previous
    tinted light's.
    """

    azimuth: tuple[float, float]
    elevation: tuple[float, float]
    intensity: tuple[float, float]
    softness: tuple[float, float] = (0.0, 0.0)
    side: str = "key"
    kelvin: tuple[float, float] = (4000.0, 6500.0)
    tint: tuple[float, float] = (0.0, 0.0)
    complementary: bool = False


@dataclass(frozen=True)
class LightRig:
    """A named lighting recipe: its lights, ambient range, sky colour temperature range,
    probability of casting shadows."""

    lights: tuple[LightSpec, ...]
    ambient: tuple[float, float] = (0.15, 0.3)
    sky_kelvin: tuple[float, float] = (6500.0, 10000.0)
    shadows: float = 0.9


LIGHT_RIGS: dict[str, LightRig] = {
    # training family
    "key_fill": LightRig(
        (
            LightSpec((20, 70), (25, 65), (0.9, 1.3), (0, 6)),
            LightSpec((30, 80), (0, 35), (0.2, 0.5), (4, 10), side="opposite"),
        )
    ),
    "three_point": LightRig(
        (
            LightSpec((20, 60), (25, 60), (0.8, 1.2), (0, 5)),
            LightSpec((30, 80), (0, 30), (0.2, 0.45), (4, 10), side="opposite"),
            LightSpec((140, 220), (20, 50), (0.5, 1.0), (0, 4), side="any"),
        ),
        ambient=(0.1, 0.25),
    ),
    "overhead": LightRig(
        (LightSpec((0, 180), (65, 88), (1.0, 1.4), (4, 10), side="any"),), ambient=(0.25, 0.4)
    ),
    "sun_sky": LightRig(
        (LightSpec((0, 120), (20, 70), (1.1, 1.6), (0, 1.5), kelvin=(4800, 5800)),),
        ambient=(0.3, 0.45),
        sky_kelvin=(9000, 10000),
    ),
    # held-out family
    "window": LightRig(
        (LightSpec((70, 110), (5, 35), (1.1, 1.6), (10, 15), kelvin=(6000, 8000)),),
        ambient=(0.1, 0.2),
    ),
    "rim_back": LightRig(
        (
            LightSpec((140, 220), (10, 45), (1.2, 1.8), (0, 5), side="any"),
            LightSpec((0, 30), (0, 30), (0.1, 0.25), (5, 10)),
        ),
        ambient=(0.15, 0.25),
    ),
    "coloured_pair": LightRig(
        (
            LightSpec((40, 90), (10, 50), (0.6, 0.9), (0, 6), tint=(0.4, 0.7)),
            LightSpec(
                (40, 90),
                (10, 50),
                (0.6, 0.9),
                (0, 6),
                side="opposite",
                tint=(0.4, 0.7),
                complementary=True,
            ),
        ),
        ambient=(0.12, 0.2),
    ),
    "low_lamp": LightRig(
        (LightSpec((20, 100), (-5, 12), (1.2, 1.6), (0, 1), kelvin=(2200, 3000)),),
        ambient=(0.1, 0.2),
    ),
}


def _direction(azimuth_deg: float, elevation_deg: float) -> tuple[float, float, float]:
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    d = (np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az))
    return (float(d[0]), float(d[1]), float(d[2]))


def draw_lighting(rng: np.random.Generator, rig_name: str, camera_azimuth: float) -> LightingStyle:
    """Draw the lights of rig `rig_name` for a camera at `camera_azimuth` degrees."""
    try:
        rig = LIGHT_RIGS[rig_name]
    except KeyError:
        raise ValueError(
            f"unknown light rig {rig_name!r}: expected one of {sorted(LIGHT_RIGS)}"
        ) from None
    key_side = 1.0 if rng.random() < 0.5 else -1.0
    lights = []
    last_hue = None
    for spec in rig.lights:
        side = {"key": key_side, "opposite": -key_side}.get(spec.side, rng.choice([-1.0, 1.0]))
        az = camera_azimuth + side * rng.uniform(*spec.azimuth)
        el = rng.uniform(*spec.elevation)
        if spec.tint[1] > 0:
            hue = (
                (last_hue + 0.5) % 1.0
                if spec.complementary and last_hue is not None
                else rng.random()
            )
            last_hue = hue
            srgb = np.asarray(hsv(hue, rng.uniform(*spec.tint), 1.0))
            lin = srgb_to_linear(srgb).astype(np.float64)
            color = tuple(float(c) for c in lin / lin.max())
        else:
            color = kelvin_rgb(rng.uniform(*spec.kelvin))
        lights.append(
            LightStyle(
                direction=_direction(az, el),
                color=color,  # type: ignore[arg-type]
                intensity=float(rng.uniform(*spec.intensity)),
                softness=float(rng.uniform(*spec.softness)),
            )
        )
    sky = kelvin_rgb(rng.uniform(*rig.sky_kelvin))
    ground_srgb = hsv(rng.uniform(0.05, 0.12), rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.6))
    ground = tuple(float(c) for c in srgb_to_linear(np.asarray(ground_srgb)))
    return LightingStyle(
        rig=rig_name,
        lights=tuple(lights),
        ambient=float(rng.uniform(*rig.ambient)),
        sky=sky,
        ground=ground,  # type: ignore[arg-type]
        environment=float(rng.uniform(0.4, 1.0)),
        shadows=bool(rng.random() < rig.shadows),
    )


def _jitter_cone(
    direction: np.ndarray, half_angle_deg: float, rng: np.random.Generator, n: int
) -> np.ndarray:
    """n unit vectors float32 (n, 3) spread uniformly over a disc of directions."""
    d = np.asarray(direction, dtype=np.float64)
    if half_angle_deg <= 0:
        return np.broadcast_to(d.astype(np.float32), (n, 3))
    helper = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    r = np.float32(np.tan(np.deg2rad(half_angle_deg))) * np.sqrt(rng.random(n, dtype=np.float32))
    phi = rng.random(n, dtype=np.float32) * np.float32(2 * np.pi)
    out = d.astype(np.float32) + (r * np.cos(phi))[:, None] * e1.astype(np.float32)
    out += (r * np.sin(phi))[:, None] * e2.astype(np.float32)
    return out / np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]


def _smooth_visibility(
    vis: np.ndarray, valid: np.ndarray, grid: np.ndarray, size: int
) -> np.ndarray:
    """3x3 normalised box filter of per-pixel visibility in image space (soft penumbrae
    without the 1-ray noise). vis, valid: (H,) over the hit rays; grid: their pixel index."""
    img = np.zeros(size * size, np.float32)
    wgt = np.zeros(size * size, np.float32)
    img[grid] = vis * valid
    wgt[grid] = valid
    img = cv2.blur(img.reshape(size, size), (3, 3)).ravel()
    wgt = cv2.blur(wgt.reshape(size, size), (3, 3)).ravel()
    return np.where(wgt[grid] > 1e-6, img[grid] / np.maximum(wgt[grid], 1e-6), vis)


def shade(
    points: np.ndarray,
    normals: np.ndarray,
    shadow_origins: np.ndarray,
    view_dirs: np.ndarray,
    albedo: np.ndarray,
    specular: np.ndarray,
    shininess: np.ndarray,
    metallic: np.ndarray,
    lighting: LightingStyle,
    occluded: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rng: np.random.Generator,
    pixel_index: np.ndarray | None = None,
    image_size: int = 0,
) -> np.ndarray:
    """Linear radiance float32 (H, 3) of H surface points.

    points, normals (unit, facing the viewer), shadow_origins: float32 (H, 3);
    view_dirs: unit ray directions (H, 3) (camera -> point); albedo: linear RGB (H, 3);
    specular, shininess, metallic: (H,). `occluded(origins, dirs) -> bool (M,)` answers
    all shadow rays of all lights in one call. With `pixel_index` (H,) (row-major pixel of
    each point in a square image of `image_size`), soft-shadow visibility is smoothed over
    3 x 3 pixels.
    """
    n = normals
    v = -view_dirs
    h = len(points)
    diffuse_w = (1.0 - 0.85 * metallic)[:, None]
    spec_color = (1.0 - metallic)[:, None] * 1.0 + metallic[:, None] * albedo
    lights = lighting.lights
    dirs = [np.asarray(lt.direction, np.float32) for lt in lights]
    ndl = [n @ d for d in dirs]
    vis = [np.ones(h, np.float32) for _ in lights]
    if lighting.shadows and lights:
        # one shadow ray per lit point and light, jittered over the light's cone
        lit = [x > 0 for x in ndl]
        origins = np.concatenate([shadow_origins[m] for m in lit])
        sdirs = np.concatenate(
            [
                _jitter_cone(d, lt.softness, rng, int(m.sum()))
                for d, lt, m in zip(dirs, lights, lit, strict=True)
            ]
        )
        blocked = occluded(origins, sdirs)
        start = 0
        for k, m in enumerate(lit):
            count = int(m.sum())
            vis[k][m] = ~blocked[start : start + count]
            start += count
            if pixel_index is not None and lights[k].softness > 0:
                vis[k] = _smooth_visibility(vis[k], m.astype(np.float32), pixel_index, image_size)
    sky = np.asarray(lighting.sky, np.float32)
    ground = np.asarray(lighting.ground, np.float32)
    up = np.clip(0.5 + 0.5 * n[:, 1:2], 0.0, 1.0)
    radiance = albedo * diffuse_w * (lighting.ambient * (ground + (sky - ground) * up))
    for lt, d, cos, visibility in zip(lights, dirs, ndl, vis, strict=True):
        cos = np.clip(cos, 0.0, None) * visibility
        color = np.asarray(lt.color, np.float32) * np.float32(lt.intensity)
        radiance += albedo * diffuse_w * (cos[:, None] * color)
        half = d + v
        half_len = np.sqrt(np.einsum("ij,ij->i", half, half))
        ndh = np.clip(np.einsum("ij,ij->i", n, half) / np.maximum(half_len, 1e-9), 0.0, 1.0)
        norm = (shininess + 8.0) / 8.0  # keeps highlights' energy roughly constant
        spec = specular * norm * ndh**shininess * (cos > 0) * visibility
        radiance += spec_color * (spec[:, None] * color)
    # environment reflection: sky / ground gradient seen in the mirror direction
    cos_v = np.clip(np.einsum("ij,ij->i", n, v), 0.0, 1.0)
    refl = view_dirs + 2.0 * cos_v[:, None] * n
    horizon = np.clip(0.5 + 0.5 * refl[:, 1:2] * 3.0, 0.0, 1.0)
    env = ground * 0.6 + (sky - ground * 0.6) * horizon
    fresnel = 0.04 + 0.96 * (1.0 - cos_v) ** 5
    strength = lighting.environment * np.maximum(metallic, specular * fresnel)
    radiance += spec_color * env * strength[:, None]
    return radiance.astype(np.float32)
