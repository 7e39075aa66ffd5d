"""Colour helpers of the photo renderer: sRGB <-> linear, HSV, colour temperature.

Shading runs in linear RGB; colours are specified (palettes, backdrops) and images are
stored in sRGB. All values are floats in [0, 1] unless stated.
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["srgb_to_linear", "linear_to_srgb", "hex_rgb", "hsv", "jitter_hsv", "kelvin_rgb"]

# Approximate sRGB colour of a black body (normalised so the largest channel is 1), from
# the widely tabulated values of blackbody colour; linear interpolation in between.
_KELVIN = np.array([1900, 2500, 3000, 3500, 4000, 4500, 5000, 5500, 6000, 6500, 7000, 8000, 10000])
_KELVIN_RGB = (
    np.array(
        [
            [255, 131, 0],
            [255, 161, 72],
            [255, 180, 107],
            [255, 196, 137],
            [255, 209, 163],
            [255, 219, 186],
            [255, 228, 206],
            [255, 236, 224],
            [255, 243, 239],
            [255, 249, 253],
            [245, 243, 255],
            [227, 233, 255],
            [204, 219, 255],
        ],
        dtype=np.float64,
    )
    / 255.0
)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values (any shape) in [0, 1] -> linear values, float32 (gamma 2.2)."""
    return np.power(np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0), np.float32(2.2))


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear values (any shape) -> sRGB-encoded float32 in [0, 1] (gamma 1/2.2, clipped)."""
    return np.power(np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0), np.float32(1 / 2.2))


def hex_rgb(code: str) -> tuple[float, float, float]:
    """'#RRGGBB' -> sRGB triple in [0, 1]."""
    code = code.lstrip("#")
    if len(code) != 6:
        raise ValueError(f"expected a colour as '#RRGGBB', got {code!r}")
    return tuple(int(code[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (hue in turns, saturation, value in [0, 1]) -> sRGB triple."""
    return colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))


def jitter_hsv(
    rgb: tuple[float, float, float], rng: np.random.Generator, hue: float, sat: float, val: float
) -> tuple[float, float, float]:
    """A nearby colour: hue shifted by up to +-hue turns, saturation and value scaled by
    up to +-sat / +-val (relative)."""
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    return hsv(
        h + rng.uniform(-hue, hue),
        s * (1 + rng.uniform(-sat, sat)),
        v * (1 + rng.uniform(-val, val)),
    )


def kelvin_rgb(kelvin: float) -> tuple[float, float, float]:
    """Linear RGB of a light of colour temperature `kelvin` (1900-10000 K), max channel 1."""
    k = float(np.clip(kelvin, _KELVIN[0], _KELVIN[-1]))
    srgb = np.array([np.interp(k, _KELVIN, _KELVIN_RGB[:, c]) for c in range(3)])
    lin = srgb_to_linear(srgb).astype(np.float64)
    return tuple(float(c) for c in lin / lin.max())  # type: ignore[return-value]
