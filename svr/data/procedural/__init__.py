"""Deterministic procedural stand-ins for the 13 ShapeNet classes of the 3D-R2N2 subset.

Each class is a parametric family (`FAMILIES[name](rng) -> Assembly`) built from named parts
(boxes, cylinders, rounded and tapered primitives, extrusions, revolutions, hulls) with
continuous parameters and discrete structural variants. `generate_shape` fuses the parts into
one watertight surface by a manifold3d boolean union, keeps the part each triangle came from,
and normalises the result (bbox centred, longest side 1).

Canonical frame (the project's): right-handed, +y up, the object's front towards +z; seen
from the front (from +z), +x points to the viewer's right. Every object stands on the ground
at its minimum y (legs, wheels, bases, keels down). Per class, "front" means:

- airplane: nose towards +z, wings along x, fin up.
- bench, chair, sofa: the side one sits on faces +z (backrest at -z).
- cabinet: doors / drawers / open shelves face +z.
- car: bonnet (driving direction) towards +z, wheels on the ground.
- display: screen faces +z.
- lamp: the shade / light opening faces +z or down; arm lamps reach towards +z.
- loudspeaker: drivers face +z.
- rifle: muzzle towards +z, upright (sights up +y, grip and magazine down), stock at -z.
- table: long side along x; no particular front.
- telephone: handheld phones stand upright (or lean on a stand / sit in a dock), screen /
  keypad facing +z; desk phones lie on the ground, keypad up, front edge towards +z.
- watercraft: bow towards +z, deck up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh

from svr.classes import CLASS_NAMES
from svr.data.layout import normalize_mesh
from svr.data.procedural.assembly import Assembly, fuse
from svr.data.procedural.furniture import bench, cabinet, chair, sofa, table
from svr.data.procedural.objects import display, lamp, loudspeaker, rifle, telephone
from svr.data.procedural.vehicles import airplane, car, watercraft

__all__ = ["ProceduralShape", "generate_shape", "FAMILIES", "Assembly"]

logger = logging.getLogger(__name__)

FAMILIES: dict[str, Callable[[np.random.Generator], Assembly]] = {
    "airplane": airplane,
    "bench": bench,
    "cabinet": cabinet,
    "car": car,
    "chair": chair,
    "display": display,
    "lamp": lamp,
    "loudspeaker": loudspeaker,
    "rifle": rifle,
    "sofa": sofa,
    "table": table,
    "telephone": telephone,
    "watercraft": watercraft,
}


@dataclass
class ProceduralShape:
    """One generated shape.

    mesh: one watertight manifold surface (union of all parts), normalised: bbox centred at
    the origin, longest side 1. face_parts: int64 (F,) part index of each face.
    part_names: name of each part index. variant: the discrete structural choices, e.g.
    "chair:pedestal,arms,slatted-back". params: the continuous parameters drawn (family
    units, before normalisation).
    """

    class_name: str
    mesh: trimesh.Trimesh
    face_parts: np.ndarray
    part_names: list[str]
    variant: str
    params: dict[str, float]


def _validate_class(class_name: str) -> None:
    if class_name not in FAMILIES:
        raise ValueError(
            f"unknown procedural class {class_name!r}: expected one of {', '.join(CLASS_NAMES)}"
        )


def generate_shape(class_name: str, seed: int) -> ProceduralShape:
    """Generate shape number `seed` of a class; the same (class, seed) gives the same mesh bytes.

    Raises ValueError for an unknown class name.
    """
    _validate_class(class_name)
    rng = np.random.default_rng(seed)
    assembly = FAMILIES[class_name](rng)
    mesh, face_parts, n_components = fuse(assembly)
    if n_components != 1:
        logger.warning(
            "%s seed %d (%s): union has %d connected components",
            class_name,
            seed,
            assembly.variant,
            n_components,
        )
    return ProceduralShape(
        class_name=class_name,
        mesh=normalize_mesh(mesh),
        face_parts=face_parts,
        part_names=list(assembly.part_names),
        variant=assembly.variant,
        params=dict(assembly.params),
    )
