"""The 13 ShapeNet classes of the 3D-R2N2 subset, keyed by synset id."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShapeClass:
    """One object class: its short name (used in paths and item ids) and ShapeNet synset."""

    name: str
    synset: str


CLASSES: tuple[ShapeClass, ...] = (
    ShapeClass("airplane", "02691156"),
    ShapeClass("bench", "02828884"),
    ShapeClass("cabinet", "02933112"),
    ShapeClass("car", "02958343"),
    ShapeClass("chair", "03001627"),
    ShapeClass("display", "03211117"),
    ShapeClass("lamp", "03636649"),
    ShapeClass("loudspeaker", "03691459"),
    ShapeClass("rifle", "04090263"),
    ShapeClass("sofa", "04256520"),
    ShapeClass("table", "04379243"),
    ShapeClass("telephone", "04401088"),
    ShapeClass("watercraft", "04530566"),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
SYNSET_TO_NAME: dict[str, str] = {c.synset: c.name for c in CLASSES}
NAME_TO_SYNSET: dict[str, str] = {c.name: c.synset for c in CLASSES}


def class_name(name_or_synset: str) -> str:
    """Return the short class name for a name or a synset id; raise ValueError if unknown."""
    if name_or_synset in NAME_TO_SYNSET:
        return name_or_synset
    if name_or_synset in SYNSET_TO_NAME:
        return SYNSET_TO_NAME[name_or_synset]
    raise ValueError(
        f"unknown class {name_or_synset!r}: expected one of {', '.join(CLASS_NAMES)} "
        "or their ShapeNet synset ids"
    )
