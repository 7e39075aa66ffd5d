"""Camera development and image degradations of the photo renderer.

`develop` turns linear radiance into an sRGB image the way a camera would: white balance
gains, exposure (stops), vignetting, a soft highlight shoulder, gamma. `degrade` then
applies what happens between a camera and an upload: contrast and saturation changes,
grayscale, lens blur, sensor noise (luminance and chroma), 8-bit quantisation and JPEG
compression. Both are deterministic for a given `DegradationStyle` (its `seed` drives
the noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from svr.photo.color import linear_to_srgb

__all__ = ["DegradationStyle", "DegradationRanges", "draw_degradation", "develop", "degrade"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class DegradationStyle:
    """exposure: stops (0 = as metered); white_balance: RGB gains (3,); vignette: corner
    darkening 0-1; contrast, saturation: factors (1 = unchanged); grayscale: drop colour;
    blur: Gaussian sigma in pixels (0 = sharp); noise: sigma of sensor noise in 8-bit
    levels; chroma_noise: share of the noise that differs per channel (0-1);
    jpeg_quality: 1-100, 0 = no JPEG; seed: of the noise."""

    exposure: float = 0.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    vignette: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0
    grayscale: bool = False
    blur: float = 0.0
    noise: float = 0.0
    chroma_noise: float = 0.0
    jpeg_quality: int = 0
    seed: int = 0


@dataclass(frozen=True)
class DegradationRanges:
    """Probabilities and uniform ranges of `draw_degradation` (units as DegradationStyle)."""

    exposure: tuple[float, float] = (-0.8, 0.6)
    white_balance: float = 0.12  # each gain in 1 +- this
    p_vignette: float = 0.3
    vignette: tuple[float, float] = (0.1, 0.45)
    contrast: tuple[float, float] = (0.8, 1.2)
    saturation: tuple[float, float] = (0.6, 1.3)
    p_grayscale: float = 0.05
    p_blur: float = 0.4
    blur: tuple[float, float] = (0.3, 1.4)
    p_noise: float = 0.6
    noise: tuple[float, float] = (1.0, 8.0)
    p_jpeg: float = 0.6
    jpeg_quality: tuple[int, int] = (30, 95)


def draw_degradation(rng: np.random.Generator, ranges: DegradationRanges) -> DegradationStyle:
    """Draw degradations from `ranges`."""
    wb = 1.0 + rng.uniform(-ranges.white_balance, ranges.white_balance, size=3)
    wb = wb / wb[1]  # keep green: white balance shifts colour, exposure sets brightness
    return DegradationStyle(
        exposure=float(rng.uniform(*ranges.exposure)),
        white_balance=(float(wb[0]), float(wb[1]), float(wb[2])),
        vignette=float(rng.uniform(*ranges.vignette)) if rng.random() < ranges.p_vignette else 0.0,
        contrast=float(rng.uniform(*ranges.contrast)),
        saturation=float(rng.uniform(*ranges.saturation)),
        grayscale=bool(rng.random() < ranges.p_grayscale),
        blur=float(rng.uniform(*ranges.blur)) if rng.random() < ranges.p_blur else 0.0,
        noise=float(rng.uniform(*ranges.noise)) if rng.random() < ranges.p_noise else 0.0,
        chroma_noise=float(rng.uniform(0.0, 0.6)),
        jpeg_quality=(
            int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
            if rng.random() < ranges.p_jpeg
            else 0
        ),
        seed=int(rng.integers(2**31)),
    )


def develop(radiance: np.ndarray, style: DegradationStyle) -> np.ndarray:
    """Linear radiance float (H, W, 3) -> sRGB float32 (H, W, 3) in [0, 1]."""
    x = np.asarray(radiance, dtype=np.float32) * np.asarray(style.white_balance, np.float32)
    x = x * np.float32(2.0**style.exposure)
    if style.vignette > 0:
        h, w = x.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        x = x * (1.0 - style.vignette * np.clip(r2 / 2, 0, 1))[..., None]
    # soft shoulder above 0.8: highlights roll off instead of clipping hard
    knee = np.float32(0.8)
    x = np.where(x > knee, knee + (1 - knee) * (1 - np.exp(-(x - knee) / (1 - knee))), x)
    return linear_to_srgb(x)


def degrade(srgb: np.ndarray, style: DegradationStyle) -> np.ndarray:
    """sRGB float (H, W, 3) in [0, 1] -> degraded RGB uint8 (H, W, 3)."""
    x = np.asarray(srgb, dtype=np.float32)
    luma = x @ _LUMA
    if style.grayscale or style.saturation != 1.0:
        sat = 0.0 if style.grayscale else style.saturation
        x = luma[..., None] + (x - luma[..., None]) * np.float32(sat)
    if style.contrast != 1.0:
        mid = np.float32(luma.mean())
        x = mid + (x - mid) * np.float32(style.contrast)
    if style.blur > 0:
        x = cv2.GaussianBlur(x, (0, 0), style.blur)
    x = x * 255.0
    if style.noise > 0:
        rng = np.random.default_rng(style.seed)
        h, w = x.shape[:2]
        mono = rng.standard_normal((h, w, 1), dtype=np.float32)
        chroma = rng.standard_normal((h, w, 3), dtype=np.float32)
        c = np.float32(style.chroma_noise)
        # brighter pixels get more noise (shot noise), dark ones keep a floor (read noise)
        level = np.float32(style.noise) * np.sqrt(0.3 + 0.7 * np.clip(x / 255.0, 0, 1))
        x = x + level * ((1 - c) * mono + c * chroma)
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if style.grayscale:
        out[:] = out.mean(axis=2, keepdims=True).astype(np.uint8)
    if style.jpeg_quality > 0:
        ok, data = cv2.imencode(
            ".jpg",
            cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, style.jpeg_quality],
        )
        if ok:
            out = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)
