"""Solid (3D) procedural textures, evaluated at ray hit points: no UV coordinates needed.

A pattern maps world points float32 (N, 3) to a blend factor float32 (N,) in [0, 1]
between a material's two colours (`svr.photo.materials`). Coordinates are world units
(the object fits [-0.5, 0.5]^3); a pattern's `scale` is in cycles (or lattice cells) per
world unit. Every function is vectorised numpy; the noise is value noise on a fixed,
lazily built periodic lattice (period 64 cells), varied per material by a domain offset
and a rotation, so patterns are deterministic for given parameters.

`PATTERNS` is the registry: kind name -> function(points, params). Which kinds each
randomisation family may use is decided in `svr.photo.families`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "PatternParams",
    "PATTERNS",
    "value_noise",
    "fbm",
    "worley",
    "evaluate_pattern",
    "rotation_from_vector",
]

_PERIOD = 64  # lattice period of the value noise, in cells


@dataclass(frozen=True)
class PatternParams:
    """Parameters of one pattern.

    scale: cycles (or cells) per world unit; direction: unit axis (3,) of rings, stripes,
    veins and ramps; offset: domain offset (3,) in world units (the "seed" of the noise);
    rotation: 3 angles in radians turning the domain; warp: strength of the noise that
    perturbs the pattern, 0-1; sharpness: 1 = soft, larger = crisper transitions;
    duty: share of a period taken by the second colour (stripes, dots).
    """

    scale: float = 4.0
    direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    warp: float = 0.3
    sharpness: float = 1.0
    duty: float = 0.5


@cache
def _lattice() -> np.ndarray:
    """Lattice table float32 (4, 64^3) in [0, 1], fixed seed: row 0 the noise values, rows
    1-3 the jitter of the Worley feature points."""
    rng = np.random.default_rng(0x5EED)
    return rng.random(_PERIOD**3 * 4, dtype=np.float32).reshape(4, -1)


def _cell_index(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray) -> np.ndarray:
    m = _PERIOD - 1
    return ((ix & m) * _PERIOD + (iy & m)) * _PERIOD + (iz & m)


def value_noise(points: np.ndarray) -> np.ndarray:
    """Smooth value noise float32 (N,) in [0, 1] at points (N, 3) (lattice units)."""
    p = np.asarray(points, dtype=np.float32)
    base = np.floor(p)
    f = p - base
    f = f * f * (3.0 - 2.0 * f)  # smoothstep fade
    i = base.astype(np.int64)
    table = _lattice()[0]
    m = _PERIOD - 1
    # wrapped lattice coordinates of the two corners along each axis, pre-multiplied
    xs = ((i[:, 0] & m) * _PERIOD**2, ((i[:, 0] + 1) & m) * _PERIOD**2)
    ys = ((i[:, 1] & m) * _PERIOD, ((i[:, 1] + 1) & m) * _PERIOD)
    zs = (i[:, 2] & m, (i[:, 2] + 1) & m)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    wx = (1.0 - fx, fx)
    wy = (1.0 - fy, fy)
    wz = (1.0 - fz, fz)
    out = np.zeros(len(p), dtype=np.float32)
    for dx in (0, 1):
        for dy in (0, 1):
            xy = xs[dx] + ys[dy]
            wxy = wx[dx] * wy[dy]
            for dz in (0, 1):
                out += (wxy * wz[dz]) * table[xy + zs[dz]]
    return out


def fbm(
    points: np.ndarray, octaves: int = 4, lacunarity: float = 2.0, gain: float = 0.5
) -> np.ndarray:
    """Fractal sum of value noise, float32 (N,) in [0, 1], at points (N, 3) (lattice units)."""
    p = np.asarray(points, dtype=np.float32)
    total = np.zeros(len(p), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        # shift each octave so that the lattices do not line up
        total += amp * value_noise(p * (lacunarity**k) + np.float32(17.3 * k))
        norm += amp
        amp *= gain
    return total / norm


def worley(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cellular noise at points (N, 3) (lattice units): one jittered feature point per cell.

    Returns (F1, F2, cell value): distances float32 (N,) to the nearest and second nearest
    feature points and a random value float32 (N,) in [0, 1] of the nearest one's cell.
    """
    p = np.asarray(points, dtype=np.float32)
    base = np.floor(p).astype(np.int64)
    lattice = _lattice()
    f1 = np.full(len(p), np.inf, dtype=np.float32)
    f2 = np.full(len(p), np.inf, dtype=np.float32)
    value = np.zeros(len(p), dtype=np.float32)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                cx, cy, cz = base[:, 0] + dx, base[:, 1] + dy, base[:, 2] + dz
                idx = _cell_index(cx, cy, cz)
                feature = np.stack([cx, cy, cz], axis=1).astype(np.float32)
                feature += lattice[1:4, idx].T
                d = np.sqrt(((p - feature) ** 2).sum(axis=1))
                nearer = d < f1
                f2 = np.where(nearer, f1, np.minimum(f2, d))
                value = np.where(nearer, lattice[0, idx], value)
                f1 = np.where(nearer, d, f1)
    return f1, f2, value


def rotation_from_vector(angles: tuple[float, float, float]) -> np.ndarray:
    """Rotation matrix float32 (3, 3) from three angles in radians (x, then y, then z)."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).astype(np.float32)


def _domain(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Points turned and shifted into the pattern's domain, float32 (N, 3), world units."""
    p = np.asarray(points, dtype=np.float32)
    return p @ rotation_from_vector(params.rotation).T + np.asarray(params.offset, np.float32)


def _sharpen(t: np.ndarray, sharpness: float) -> np.ndarray:
    """Push values in [0, 1] towards 0 and 1 around 0.5 (sharpness 1 leaves them)."""
    if sharpness == 1.0:
        return t
    return np.clip(0.5 + (t - 0.5) * sharpness, 0.0, 1.0)


def _axis(params: PatternParams) -> np.ndarray:
    d = np.asarray(params.direction, dtype=np.float32)
    return d / max(float(np.linalg.norm(d)), 1e-6)


def _plain(points: np.ndarray, params: PatternParams) -> np.ndarray:
    return np.zeros(len(points), dtype=np.float32)


def _mottled(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """fBm noise: stone, plastic grain, worn paint."""
    t = fbm(_domain(points, params) * params.scale, octaves=4)
    return _sharpen(np.clip((t - 0.5) * 2.2 + 0.5, 0.0, 1.0), params.sharpness)


def _wood(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Growth rings around an axis through the (shifted) origin, warped by noise, plus grain."""
    p = _domain(points, params)
    axis = _axis(params)
    along = p @ axis
    radial = np.linalg.norm(p - along[:, None] * axis, axis=1)
    warp = fbm(p * np.float32(params.scale * 0.5), octaves=2)
    rings = (radial * params.scale + params.warp * 4.0 * warp) % 1.0
    rings = np.abs(rings * 2.0 - 1.0) ** 3  # thin dark late-wood lines
    grain = value_noise(p * np.float32(params.scale * 6.0) + axis * (along[:, None] * -5.0))
    return _sharpen(np.clip(0.75 * rings + 0.25 * grain, 0.0, 1.0), params.sharpness)


def _stripes(points: np.ndarray, params: PatternParams) -> np.ndarray:
    p = _domain(points, params)
    s = p @ _axis(params) * params.scale
    if params.warp > 0:
        s = s + params.warp * (fbm(p * 2.0, octaves=2) - 0.5)
    phase = s % 1.0
    edge = 0.04 * params.sharpness  # width of the soft edge in periods
    return np.clip(
        (params.duty - np.abs(phase - 0.5) * 2 * params.duty) / max(edge, 1e-3) + 0.5, 0, 1
    )


def _checks(points: np.ndarray, params: PatternParams) -> np.ndarray:
    p = np.floor(_domain(points, params) * params.scale).astype(np.int64)
    return (p.sum(axis=1) % 2).astype(np.float32)


def _weave(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Fabric: over-under threads along two axes of the domain, with fine noise."""
    p = _domain(points, params) * params.scale
    u, v = p[:, 0] + p[:, 2] * 0.5, p[:, 1] + p[:, 2] * 0.5
    cu, cv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    over = (cu + cv) % 2 == 0
    fu, fv = u - cu, v - cv
    thread = np.where(over, np.sin(np.pi * fv), np.sin(np.pi * fu)) ** 0.7
    fuzz = value_noise(p * 3.0)
    return np.clip(0.7 * (1.0 - thread) + 0.3 * fuzz, 0.0, 1.0).astype(np.float32)


def _marble(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Veins: a sine along an axis, phase-warped by turbulent noise."""
    p = _domain(points, params)
    turb = fbm(p * np.float32(params.scale), octaves=5)
    s = np.sin((p @ _axis(params)) * params.scale * 2.0 + params.warp * 12.0 * turb)
    vein = (1.0 - np.abs(s)) ** (4.0 * params.sharpness)
    return np.clip(vein, 0.0, 1.0).astype(np.float32)


def _cells(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Stones / crackle: flat random value per Worley cell, darker seams between cells."""
    f1, f2, value = worley(_domain(points, params) * params.scale)
    seam = np.clip((f2 - f1) * 8.0 / params.sharpness, 0.0, 1.0)
    return np.clip(0.15 + 0.7 * value * seam + (1.0 - seam) * 0.95, 0.0, 1.0)


def _dots(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Polka dots: balls on a cubic lattice, radius set by `duty`."""
    p = _domain(points, params) * params.scale
    d = np.linalg.norm(p - np.round(p), axis=1)
    radius = 0.2 + 0.25 * params.duty
    return np.clip((radius - d) * 20.0 * params.sharpness + 0.5, 0.0, 1.0).astype(np.float32)


def _camo(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Blotches: thresholded noise in three levels (0, 0.5, 1)."""
    t = fbm(_domain(points, params) * params.scale, octaves=3)
    return (np.digitize(t, [0.45, 0.58]) / 2.0).astype(np.float32)


def _ramp(points: np.ndarray, params: PatternParams) -> np.ndarray:
    """A smooth colour ramp along an axis across the object (two-tone, faded)."""
    p = np.asarray(points, np.float32) @ rotation_from_vector(params.rotation).T  # no offset
    s = p @ _axis(params)
    return np.clip(0.5 + s * params.scale * 0.5, 0.0, 1.0).astype(np.float32)


PATTERNS: dict[str, Callable[[np.ndarray, PatternParams], np.ndarray]] = {
    "plain": _plain,
    "mottled": _mottled,
    "wood": _wood,
    "stripes": _stripes,
    "checks": _checks,
    "weave": _weave,
    "marble": _marble,
    "cells": _cells,
    "dots": _dots,
    "camo": _camo,
    "ramp": _ramp,
}


def evaluate_pattern(kind: str, points: np.ndarray, params: PatternParams) -> np.ndarray:
    """Blend factor float32 (N,) in [0, 1] of pattern `kind` at world points (N, 3)."""
    try:
        fn = PATTERNS[kind]
    except KeyError:
        raise ValueError(f"unknown pattern {kind!r}: expected one of {sorted(PATTERNS)}") from None
    if len(points) == 0:
        return np.zeros(0, dtype=np.float32)
    return fn(np.asarray(points, dtype=np.float32).reshape(-1, 3), params).astype(np.float32)
