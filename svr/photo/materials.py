"""Per-part materials: realistic palettes, material archetypes, and part splits.

A `MaterialStyle` is a solid pattern (`svr.photo.textures`) blending two sRGB colours,
plus Blinn-Phong specular (`specular` strength, `shininess` exponent) and a `metallic`
share (metals tint their highlights and reflections with the base colour and lose most of
their diffuse term). Archetypes (wood, metal, fabric, stone, ...) say which patterns,
palettes and ranges go together; `ARCHETYPES` is the registry and each randomisation
family (`svr.photo.families`) lists the archetypes it may draw.

Meshes without part ids (marching-cubes meshes of voxel grids) get a plausible split
into material regions by `split_parts`: connected components, height bands or spatial
clusters of faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from svr.photo.color import hex_rgb, hsv, jitter_hsv, srgb_to_linear
from svr.photo.textures import PatternParams, evaluate_pattern

__all__ = [
    "PALETTES",
    "Archetype",
    "ARCHETYPES",
    "MaterialStyle",
    "PartSplitStyle",
    "draw_material",
    "draw_part_split",
    "split_parts",
    "material_table",
    "evaluate_albedo",
]

Rgb = tuple[float, float, float]

# Realistic base colours (sRGB), shared by both families.
PALETTES: dict[str, tuple[Rgb, ...]] = {
    name: tuple(hex_rgb(c) for c in codes.split())
    for name, codes in {
        "wood": "#C8A165 #8B5A2B #A0522D #DEB887 #5C3A21 #B5835A #E3C08D #6F4E37",
        "metal": "#C0C0C0 #A8A9AD #B5A642 #B87333 #4A4A4F #D4D4D8 #8C8C8C #2F3136",
        "plastic": "#F2F2F2 #1E1E1E #C62828 #1565C0 #F9A825 #2E7D32 #9E9E9E #E8DCC8 #FF7043",
        "fabric": "#2C3E50 #4A4A4A #D8C8A8 #6B7B3A #7B2D3A #2A7F7F #C9A227 #EFE6D2 #8E9AAF",
        "paint": "#E8E8E8 #101010 #B0B4B8 #9B1B1B #1F3A93 #234F1E #F4D03F #5D6D7E",
        "neutral": "#FFFFFF #F5F5F0 #D9D9D9 #A6A6A6 #6E6E6E #2B2B2B",
        "stone": "#E8E4DC #2F2F33 #B9A58C #7F8C8D #C2B280 #8E6E53",
        "ceramic": "#F4F1EA #3B6E8F #A8C3B8 #C75B39 #E6D7B9 #2E4A62",
    }.items()
}


@dataclass(frozen=True)
class Archetype:
    """What goes together in one kind of material.

    patterns: pattern kinds (with equal weight); palettes: palette names, or () for random
    HSV colours; second: how the second colour is made: "shade" (a darker or lighter
    version of the base, factor drawn from `shade`), "palette" (another palette colour) or
    "random"; scale: pattern frequency range (cycles per world unit); specular, shininess,
    metallic: uniform ranges.
    """

    patterns: tuple[str, ...]
    palettes: tuple[str, ...]
    second: str = "shade"
    shade: tuple[float, float] = (0.6, 0.85)
    scale: tuple[float, float] = (3.0, 8.0)
    specular: tuple[float, float] = (0.0, 0.2)
    shininess: tuple[float, float] = (8.0, 40.0)
    metallic: tuple[float, float] = (0.0, 0.0)


_TRAIN_PATTERNS = ("plain", "mottled", "wood", "stripes", "checks", "weave")
_HELDOUT_PATTERNS = ("ramp", "marble", "cells", "dots", "camo")

ARCHETYPES: dict[str, Archetype] = {
    # training family
    "wood": Archetype(("wood",), ("wood",), "shade", (0.5, 0.75), (3.0, 12.0), (0.05, 0.35)),
    "metal": Archetype(
        ("plain", "mottled"),
        ("metal",),
        "shade",
        (0.85, 0.95),
        (6.0, 20.0),
        (0.5, 1.0),
        (30.0, 200.0),
        (0.7, 1.0),
    ),
    "plastic": Archetype(
        ("plain",), ("plastic", "neutral"), specular=(0.2, 0.6), shininess=(20.0, 120.0)
    ),
    "fabric": Archetype(("weave", "mottled"), ("fabric",), "shade", (0.6, 0.85), (15.0, 40.0)),
    "painted": Archetype(
        ("plain",), ("paint",), specular=(0.4, 0.9), shininess=(60.0, 250.0), metallic=(0.0, 0.4)
    ),
    "patterned": Archetype(
        ("stripes", "checks"),
        ("plastic", "fabric", "neutral", "paint"),
        "palette",
        scale=(3.0, 10.0),
        specular=(0.05, 0.4),
    ),
    "random": Archetype(
        _TRAIN_PATTERNS,
        (),
        "random",
        scale=(2.0, 12.0),
        specular=(0.0, 0.8),
        shininess=(5.0, 200.0),
        metallic=(0.0, 0.6),
    ),
    # held-out family
    "stone": Archetype(
        ("marble", "cells"),
        ("stone",),
        "shade",
        (0.35, 0.7),
        (2.0, 6.0),
        (0.2, 0.6),
        (30.0, 100.0),
    ),
    "anodised": Archetype(
        ("ramp",),
        ("metal", "paint"),
        "shade",
        (0.7, 0.9),
        (0.5, 2.0),
        (0.5, 1.0),
        (30.0, 200.0),
        (0.6, 1.0),
    ),
    "glazed": Archetype(
        ("ramp", "cells"),
        ("ceramic",),
        "shade",
        (0.75, 0.92),
        (3.0, 8.0),
        (0.5, 0.9),
        (60.0, 250.0),
    ),
    "printed": Archetype(
        ("dots", "camo"),
        ("fabric", "plastic"),
        "palette",
        scale=(4.0, 12.0),
        specular=(0.0, 0.3),
    ),
    "random_heldout": Archetype(
        _HELDOUT_PATTERNS,
        (),
        "random",
        scale=(1.0, 10.0),
        specular=(0.0, 0.8),
        shininess=(5.0, 200.0),
        metallic=(0.0, 0.6),
    ),
}


@dataclass(frozen=True)
class MaterialStyle:
    """One material: archetype and pattern names, pattern parameters, two sRGB colours
    in [0, 1], specular strength (0-1), Blinn-Phong shininess, metallic share (0-1)."""

    archetype: str
    pattern: str
    params: PatternParams
    color: Rgb
    color2: Rgb
    specular: float
    shininess: float
    metallic: float


def _unit(rng: np.random.Generator) -> tuple[float, float, float]:
    v = rng.normal(size=3)
    v /= max(float(np.linalg.norm(v)), 1e-9)
    return (float(v[0]), float(v[1]), float(v[2]))


def _random_color(rng: np.random.Generator) -> Rgb:
    return hsv(rng.random(), rng.uniform(0.0, 1.0) ** 0.8, rng.uniform(0.12, 1.0))


def draw_material(rng: np.random.Generator, archetype: str) -> MaterialStyle:
    """Draw a material of the named archetype (see ARCHETYPES)."""
    try:
        arch = ARCHETYPES[archetype]
    except KeyError:
        raise ValueError(
            f"unknown material archetype {archetype!r}: expected one of {sorted(ARCHETYPES)}"
        ) from None
    pattern = arch.patterns[rng.integers(len(arch.patterns))]
    if arch.palettes:
        palette = PALETTES[arch.palettes[rng.integers(len(arch.palettes))]]
        color = jitter_hsv(palette[rng.integers(len(palette))], rng, 0.02, 0.12, 0.1)
    else:
        color = _random_color(rng)
    if arch.second == "shade":
        f = rng.uniform(*arch.shade)
        if rng.random() < 0.3:  # lighter instead of darker
            color2 = tuple(float(1 - (1 - c) * f) for c in color)
        else:
            color2 = tuple(float(c * f) for c in color)
    elif arch.second == "palette":
        names = arch.palettes or ("neutral",)
        palette = PALETTES[names[rng.integers(len(names))]]
        color2 = palette[rng.integers(len(palette))]
    else:
        color2 = _random_color(rng)
    params = PatternParams(
        scale=float(rng.uniform(*arch.scale)),
        direction=_unit(rng) if rng.random() < 0.5 else (0.0, 1.0, 0.0),
        offset=tuple(float(x) for x in rng.uniform(-20, 20, size=3)),  # type: ignore[arg-type]
        rotation=tuple(float(x) for x in rng.uniform(-np.pi, np.pi, size=3)),  # type: ignore[arg-type]
        warp=float(rng.uniform(0.1, 0.6)),
        sharpness=float(rng.uniform(0.8, 2.5)),
        duty=float(rng.uniform(0.3, 0.7)),
    )
    return MaterialStyle(
        archetype=archetype,
        pattern=pattern,
        params=params,
        color=tuple(float(c) for c in color),  # type: ignore[arg-type]
        color2=tuple(float(c) for c in color2),  # type: ignore[arg-type]
        specular=float(rng.uniform(*arch.specular)),
        shininess=float(rng.uniform(*arch.shininess)),
        metallic=float(rng.uniform(*arch.metallic)),
    )


@dataclass(frozen=True)
class PartSplitStyle:
    """How to split a mesh without part ids into material regions.

    kind: "components" (connected components, falling back to height bands when there is
    only one), "height" (bands of the face centroids' height, `cuts` as fractions of the
    height range) or "clusters" (k-means of face centroids, `count` regions, `seed`).
    """

    kind: str
    count: int
    cuts: tuple[float, ...]
    seed: int


def draw_part_split(rng: np.random.Generator) -> PartSplitStyle:
    """Draw a split for a mesh without part ids: 2-4 regions."""
    kind = ("components", "height", "clusters")[rng.choice(3, p=[0.3, 0.4, 0.3])]
    count = int(rng.integers(2, 5))
    cuts = tuple(float(c) for c in np.sort(rng.uniform(0.1, 0.9, size=count - 1)))
    return PartSplitStyle(kind, count, cuts, int(rng.integers(2**31)))


def _height_bands(centroids: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    y = centroids[:, 1]
    lo, hi = float(y.min()), float(y.max())
    t = (y - lo) / max(hi - lo, 1e-9)
    return np.digitize(t, np.asarray(cuts)).astype(np.int64)


def _clusters(centroids: np.ndarray, count: int, seed: int) -> np.ndarray:
    """k-means (8 rounds) of face centroids (F, 3), farthest-point initialisation."""
    rng = np.random.default_rng(seed)
    count = min(count, len(centroids))
    centres = [centroids[rng.integers(len(centroids))]]
    for _ in range(count - 1):
        d = np.min([((centroids - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(centroids[int(np.argmax(d))])
    c = np.stack(centres)
    for _ in range(8):
        labels = ((centroids[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
        for k in range(count):
            members = centroids[labels == k]
            if len(members):
                c[k] = members.mean(0)
    return ((centroids[:, None, :] - c[None]) ** 2).sum(2).argmin(1).astype(np.int64)


def split_parts(mesh: trimesh.Trimesh, split: PartSplitStyle) -> tuple[np.ndarray, str]:
    """Material regions of a mesh without part ids: (int64 (F,) region per face, kind used).

    Regions are numbered from 0 and all non-empty. "components" keeps the components with
    at least 2 % of the faces as regions (smaller ones join the largest) and falls back to
    "height" when fewer than two remain.
    """
    n = len(mesh.faces)
    if n == 0:
        return np.zeros(0, dtype=np.int64), split.kind
    centroids = np.asarray(mesh.triangles_center, dtype=np.float64)
    labels: np.ndarray | None = None
    kind = split.kind
    if kind == "components":
        comp = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=n)
        counts = np.bincount(comp)
        big = np.flatnonzero(counts >= 0.02 * n)
        if len(big) >= 2:
            remap = np.full(len(counts), int(np.argmax(counts)), dtype=np.int64)
            remap[big] = big
            labels = remap[comp]
        else:
            kind = "height"
    if kind == "height":
        labels = _height_bands(centroids, split.cuts)
    elif kind == "clusters":
        labels = _clusters(centroids, split.count, split.seed)
    if labels is None:
        raise ValueError(f"unknown part split {split.kind!r}: components, height or clusters")
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64).reshape(-1), kind


def material_table(
    materials: list[MaterialStyle],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-material arrays: (colour, colour2) linear RGB float32 (M, 3), specular,
    shininess, metallic float32 (M,)."""
    c1 = srgb_to_linear(np.array([m.color for m in materials], np.float32).reshape(-1, 3))
    c2 = srgb_to_linear(np.array([m.color2 for m in materials], np.float32).reshape(-1, 3))
    spec = np.array([m.specular for m in materials], np.float32)
    shin = np.array([m.shininess for m in materials], np.float32)
    metal = np.array([m.metallic for m in materials], np.float32)
    return c1, c2, spec, shin, metal


def evaluate_albedo(
    materials: list[MaterialStyle], material_index: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Linear albedo float32 (H, 3) of H surface points (world units, (H, 3)) given the
    material index (H,) of each: each material's pattern blends its two colours."""
    c1, c2, _, _, _ = material_table(materials)
    albedo = c1[material_index].copy()
    for m in np.unique(material_index):
        mat = materials[int(m)]
        if mat.pattern == "plain":
            continue
        sel = np.flatnonzero(material_index == m)
        t = evaluate_pattern(mat.pattern, points[sel], mat.params)[:, None]
        albedo[sel] = c1[m] * (1.0 - t) + c2[m] * t
    return albedo
