"""Named parts of one procedural shape and their fusion into a single watertight surface."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import trimesh
from manifold3d import Manifold, OpType

logger = logging.getLogger(__name__)

# components of the union with less than this fraction of its volume are discarded
_SLIVER_FRACTION = 1e-6


@dataclass
class Assembly:
    """The parts a family draws for one shape, before fusion.

    parts: (part index, solid) pairs; several solids may share one part index (e.g. the four
    legs of a chair are all part "leg"). part_names: the name of each part index.
    variant: the discrete structural choices, e.g. "chair:pedestal,arms,slatted-back".
    params: the continuous parameters drawn (floats, family units).
    """

    class_name: str
    parts: list[tuple[int, Manifold]] = field(default_factory=list)
    part_names: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    params: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, *solids: Manifold) -> None:
        """Add solids under part `name` (parts with the same name share an index)."""
        if name not in self.part_names:
            self.part_names.append(name)
        idx = self.part_names.index(name)
        for solid in solids:
            if solid.is_empty():
                raise ValueError(f"{self.class_name}: part {name!r} is an empty solid")
            self.parts.append((idx, solid))

    def choose(
        self, rng: np.random.Generator, options: list[str], p: list[float] | None = None
    ) -> str:
        """Draw one discrete option, record it in the variant string and return it."""
        pick = str(options[int(rng.choice(len(options), p=p))])
        self.variants.append(pick)
        return pick

    def flag(self, rng: np.random.Generator, name: str, prob: float) -> bool:
        """Draw a yes/no option; recorded in the variant as `name` or `no-name`."""
        on = bool(rng.random() < prob)
        self.variants.append(name if on else f"no-{name}")
        return on

    def uniform(self, rng: np.random.Generator, name: str, lo: float, hi: float) -> float:
        """Draw a continuous parameter uniformly from [lo, hi) and record it."""
        value = float(rng.uniform(lo, hi))
        self.params[name] = value
        return value

    @property
    def variant(self) -> str:
        return f"{self.class_name}:{','.join(self.variants)}"


def fuse(assembly: Assembly) -> tuple[trimesh.Trimesh, np.ndarray, int]:
    """Boolean union of all parts (zero-volume slivers of the union are discarded).

    Returns the fused mesh (float64 vertices, not yet normalised), face_parts int64 (F,) giving
    the part index each output triangle came from, and the number of connected components.
    """
    if not assembly.parts:
        raise ValueError(f"{assembly.class_name}: assembly has no parts")
    originals: list[Manifold] = []
    id_to_part: dict[int, int] = {}
    for idx, solid in assembly.parts:
        orig = solid.as_original()
        id_to_part[int(orig.original_id())] = idx
        originals.append(orig)
    fused = Manifold.batch_boolean(originals, OpType.Add)
    if fused.is_empty():
        raise ValueError(f"{assembly.class_name}: the union of the parts is empty")
    pieces = fused.decompose()
    if len(pieces) > 1:
        # drop zero-volume slivers that coplanar contacts can leave behind
        total = fused.volume()
        kept = [p for p in pieces if p.volume() > _SLIVER_FRACTION * total]
        if len(kept) < len(pieces):
            logger.debug("%s: dropped %d sliver(s)", assembly.class_name, len(pieces) - len(kept))
            fused = Manifold.compose(kept)
        pieces = kept
    out = fused.to_mesh64()
    verts = np.asarray(out.vert_properties, dtype=np.float64)[:, :3]
    faces = np.asarray(out.tri_verts, dtype=np.int64)
    run_index = np.asarray(out.run_index, dtype=np.int64)
    run_ids = np.asarray(out.run_original_id, dtype=np.int64)
    face_parts = np.empty(len(faces), dtype=np.int64)
    for k, oid in enumerate(run_ids):
        face_parts[run_index[k] // 3 : run_index[k + 1] // 3] = id_to_part[int(oid)]
    n_components = len(pieces)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    return mesh, face_parts, n_components
