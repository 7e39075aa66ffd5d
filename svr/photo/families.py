"""The two randomisation families, "train" and "heldout", and drawing a photo's style.

A `Family` says what a photo may look like: lens (field of view bands), camera
elevation, roll and framing, material archetypes, light rigs, background kinds, clutter
shapes, degradations and masking. The held-out family shares the geometry ranges
(elevation, roll, framing, photo size), the palettes, the degradations and the masking
with the training family, and nothing else:

| what | train | heldout |
|---|---|---|
| field of view | 20-50 degrees | 15-20 or 50-60 degrees |
| patterns | plain, mottled, wood, stripes, checks, weave | ramp, marble, cells, dots, camo |
| archetypes | wood, metal, plastic, fabric, painted, patterned, random | stone, anodised, glazed, printed, random_heldout |
| light rigs | key_fill, three_point, overhead, sun_sky | window, rim_back, coloured_pair, low_lamp |
| backgrounds | solid, gradient, radial, noise, pattern, shapes, clutter, floor | bokeh, tiles, cells, plaid, corner |
| clutter shapes | seeds 100000-100015 of each class | seeds 200000-200015 |

`draw_style(family, seed, n_parts)` draws every random choice of one photo into a
`PhotoStyle` (frozen dataclasses all the way down); `svr.photo.render_style` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from svr.photo.augment import DegradationRanges, DegradationStyle, draw_degradation
from svr.photo.backgrounds import (
    SCENE_KINDS,
    BackdropStyle,
    BackgroundStyle,
    ClutterStyle,
    draw_backdrop_colors,
    random_clutter_class,
)
from svr.photo.lighting import LightingStyle, draw_lighting
from svr.photo.materials import (
    ARCHETYPES,
    MaterialStyle,
    PartSplitStyle,
    draw_material,
    draw_part_split,
)
from svr.photo.textures import PatternParams
from svr.preprocess import DEFAULT_FOREGROUND_RATIO

__all__ = [
    "Family",
    "FAMILIES",
    "CameraStyle",
    "MaskingStyle",
    "PhotoStyle",
    "draw_style",
    "get_family",
]


@dataclass(frozen=True)
class Family:
    """One randomisation family (see the module docstring for the two).

    fov_bands: disjoint (low, high) bands of the field of view in degrees, drawn uniformly
    over their union; elevation, roll: degrees; fill: share of the photo side that the
    object's longest projected side spans; photo_size: side of the raw photo in pixels;
    archetypes, light_rigs, backgrounds: name -> weight; backdrops: the 2D kinds (with
    weights) used behind scene kinds; patterns: solid patterns of backdrops of kind
    "pattern"; clutter_seeds: (first, count) of `generate_shape` seeds for clutter;
    single_material: probability that the whole object gets one material; cutout:
    probability that the object comes with a clean alpha (no GrabCut); ratio_jitter:
    foreground ratio = DEFAULT_FOREGROUND_RATIO * (1 +- this); shift: largest translation
    of the network input, as a share of its side.
    """

    name: str
    fov_bands: tuple[tuple[float, float], ...]
    archetypes: dict[str, float]
    light_rigs: dict[str, float]
    backgrounds: dict[str, float]
    backdrops: dict[str, float]
    patterns: tuple[str, ...]
    clutter_seeds: tuple[int, int]
    elevation: tuple[float, float] = (-15.0, 45.0)
    roll: tuple[float, float] = (-10.0, 10.0)
    fill: tuple[float, float] = (0.35, 0.85)
    photo_size: tuple[int, int] = (112, 176)
    single_material: float = 0.25
    cutout: float = 0.3
    ratio_jitter: float = 0.12
    shift: float = 0.04
    degradation: DegradationRanges = field(default_factory=DegradationRanges)

    @property
    def pattern_kinds(self) -> frozenset[str]:
        """Every solid pattern the family's materials and backdrops can use."""
        kinds = {p for a in self.archetypes for p in ARCHETYPES[a].patterns}
        return frozenset(kinds | set(self.patterns))


FAMILIES: dict[str, Family] = {
    "train": Family(
        name="train",
        fov_bands=((20.0, 50.0),),
        archetypes={
            "wood": 0.16,
            "metal": 0.14,
            "plastic": 0.2,
            "fabric": 0.12,
            "painted": 0.16,
            "patterned": 0.08,
            "random": 0.14,
        },
        light_rigs={"key_fill": 0.35, "three_point": 0.25, "overhead": 0.15, "sun_sky": 0.25},
        backgrounds={
            "solid": 0.12,
            "gradient": 0.12,
            "radial": 0.08,
            "noise": 0.1,
            "pattern": 0.1,
            "shapes": 0.1,
            "clutter": 0.18,
            "floor": 0.2,
        },
        backdrops={"solid": 0.3, "gradient": 0.3, "radial": 0.1, "noise": 0.2, "shapes": 0.1},
        patterns=("stripes", "checks", "wood", "weave", "mottled"),
        clutter_seeds=(100_000, 16),
    ),
    "heldout": Family(
        name="heldout",
        fov_bands=((15.0, 20.0), (50.0, 60.0)),
        archetypes={
            "stone": 0.25,
            "anodised": 0.2,
            "glazed": 0.2,
            "printed": 0.15,
            "random_heldout": 0.2,
        },
        light_rigs={"window": 0.3, "rim_back": 0.2, "coloured_pair": 0.2, "low_lamp": 0.3},
        backgrounds={"bokeh": 0.2, "tiles": 0.2, "cells": 0.15, "plaid": 0.15, "corner": 0.3},
        backdrops={"bokeh": 0.4, "tiles": 0.2, "cells": 0.2, "plaid": 0.2},
        patterns=("marble", "cells", "dots"),
        clutter_seeds=(200_000, 16),
    ),
}


def get_family(family: str | Family) -> Family:
    """A family by name (or the family itself); ValueError for an unknown name."""
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}: expected one of {sorted(FAMILIES)}") from None


@dataclass(frozen=True)
class CameraStyle:
    """The drawn camera: azimuth, elevation, roll, fov in degrees; fill (share of the photo
    side spanned by the object's longest projected side); offset (x, y) in [-1, 1], where
    the object sits in the frame (`svr.photo.scene.frame_camera`); photo side in pixels."""

    azimuth: float
    elevation: float
    roll: float
    fov: float
    fill: float
    offset: tuple[float, float]
    photo_size: int


@dataclass(frozen=True)
class MaskingStyle:
    """cutout: the photo comes with a clean alpha (else the app's GrabCut path);
    foreground_ratio: passed to the app's `crop_and_center`; shift (dx, dy): translation
    of the network input after preprocessing, as a share of its side."""

    cutout: bool
    foreground_ratio: float
    shift: tuple[float, float]


@dataclass(frozen=True)
class PhotoStyle:
    """Every random choice of one photo. materials: one per part (part p uses
    materials[p % len]); single_material: all parts use materials[0]; parts: the split of
    a mesh without part ids (None when the mesh brings part ids)."""

    family: str
    seed: int
    camera: CameraStyle
    materials: tuple[MaterialStyle, ...]
    single_material: bool
    parts: PartSplitStyle | None
    lighting: LightingStyle
    background: BackgroundStyle
    degradation: DegradationStyle
    masking: MaskingStyle


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _draw_fov(rng: np.random.Generator, bands: tuple[tuple[float, float], ...]) -> float:
    widths = np.asarray([hi - lo for lo, hi in bands], dtype=np.float64)
    k = int(rng.choice(len(bands), p=widths / widths.sum()))
    return float(rng.uniform(*bands[k]))


def _draw_backdrop(rng: np.random.Generator, fam: Family, kind: str) -> BackdropStyle:
    pattern = "plain"
    params = PatternParams()
    if kind == "pattern":
        pattern = fam.patterns[int(rng.integers(len(fam.patterns)))]
        params = PatternParams(
            scale=float(rng.uniform(3, 12)),
            direction=(float(np.cos(a := rng.uniform(0, np.pi))), float(np.sin(a)), 0.0),
            offset=tuple(float(x) for x in rng.uniform(-20, 20, size=3)),  # type: ignore[arg-type]
            warp=float(rng.uniform(0, 0.5)),
            sharpness=float(rng.uniform(0.8, 2.0)),
            duty=float(rng.uniform(0.3, 0.7)),
        )
    return BackdropStyle(
        kind=kind,
        colors=draw_backdrop_colors(rng, 3),
        angle=float(rng.uniform(0, 2 * np.pi)),
        scale=float(rng.uniform(0.3, 1.5)),
        seed=int(rng.integers(2**31)),
        pattern=pattern,
        params=params,
    )


def _clutter_position(rng: np.random.Generator) -> tuple[float, float]:
    """Where a clutter shape appears (ndc, y down): mostly around the object, not on it."""
    x, y = rng.uniform(-1.1, 1.1), rng.uniform(-0.9, 0.9)
    if rng.random() < 0.8 and abs(x) < 0.55 and abs(y) < 0.55:
        x = np.sign(x or 1.0) * rng.uniform(0.55, 1.1)  # pushed sideways, off the object
    return (float(x), float(y))


def _draw_background(rng: np.random.Generator, fam: Family, camera: CameraStyle) -> BackgroundStyle:
    kinds = dict(fam.backgrounds)
    if camera.elevation < 5.0:  # a floor seen from (nearly) below it makes no photo
        kinds = {k: w for k, w in kinds.items() if k not in ("floor", "corner")}
    kind = _pick(rng, kinds)
    scene = kind in SCENE_KINDS
    backdrop = _draw_backdrop(rng, fam, _pick(rng, fam.backdrops) if scene else kind)
    archetypes = fam.archetypes
    floor = draw_material(rng, _pick(rng, archetypes)) if kind in ("floor", "corner") else None
    wall = draw_material(rng, _pick(rng, archetypes)) if kind == "corner" else None
    n_clutter = {"clutter": int(rng.integers(1, 5)), "floor": int(rng.integers(0, 3))}.get(
        kind, int(rng.integers(1, 4)) if kind == "corner" else 0
    )
    first, count = fam.clutter_seeds
    clutter = tuple(
        ClutterStyle(
            class_name=random_clutter_class(rng),
            shape_seed=first + int(rng.integers(count)),
            ndc=_clutter_position(rng),
            depth=float(rng.uniform(0.8, 3.0)),
            size=float(rng.uniform(0.2, 0.5)),
            yaw=float(rng.uniform(0, 360)),
            materials=(
                draw_material(rng, _pick(rng, archetypes)),
                draw_material(rng, _pick(rng, archetypes)),
            ),
        )
        for _ in range(n_clutter)
    )
    return BackgroundStyle(
        kind=kind,
        backdrop=backdrop,
        floor=floor,
        wall=wall,
        wall_depth=float(rng.uniform(1.2, 3.0)),
        clutter=clutter,
        drop_shadow=float(rng.uniform(0.2, 0.6)) if not scene and rng.random() < 0.5 else 0.0,
        shadow_blur=float(rng.uniform(1.5, 6.0)),
        contact_shadow=float(rng.uniform(0.3, 0.7)) if floor is not None else 0.0,
    )


def draw_style(
    family: str | Family, seed: int, n_parts: int, has_part_ids: bool = True
) -> PhotoStyle:
    """Draw the style of one photo: deterministic for (family, seed, n_parts, has_part_ids).

    n_parts: number of material regions of the object (for a mesh without part ids, the
    largest the split may produce: 4).
    """
    fam = get_family(family)
    if n_parts < 1:
        raise ValueError(f"n_parts must be at least 1, got {n_parts}")
    rng = np.random.default_rng([int(seed), sum(map(ord, fam.name))])
    camera = CameraStyle(
        azimuth=float(rng.uniform(0, 360)),
        elevation=float(rng.uniform(*fam.elevation)),
        roll=float(rng.uniform(*fam.roll)),
        fov=_draw_fov(rng, fam.fov_bands),
        fill=float(rng.uniform(*fam.fill)),
        offset=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        photo_size=int(rng.integers(fam.photo_size[0], fam.photo_size[1] + 1)),
    )
    parts = None if has_part_ids else draw_part_split(rng)
    count = n_parts if has_part_ids else max(n_parts, 4)
    materials = tuple(draw_material(rng, _pick(rng, fam.archetypes)) for _ in range(count))
    single = bool(rng.random() < fam.single_material)
    lighting = draw_lighting(rng, _pick(rng, fam.light_rigs), camera.azimuth)
    background = _draw_background(rng, fam, camera)
    degradation = draw_degradation(rng, fam.degradation)
    ratio = DEFAULT_FOREGROUND_RATIO * (1 + rng.uniform(-fam.ratio_jitter, fam.ratio_jitter))
    masking = MaskingStyle(
        cutout=bool(rng.random() < fam.cutout),
        foreground_ratio=float(np.clip(ratio, 0.1, 1.0)),
        shift=(
            float(rng.uniform(-fam.shift, fam.shift)),
            float(rng.uniform(-fam.shift, fam.shift)),
        ),
    )
    return PhotoStyle(
        family=fam.name,
        seed=int(seed),
        camera=camera,
        materials=materials,
        single_material=single,
        parts=parts,
        lighting=lighting,
        background=background,
        degradation=degradation,
        masking=masking,
    )
