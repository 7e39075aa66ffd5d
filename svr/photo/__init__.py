"""Photo-style training views with domain randomisation (see `svr.photo.pipeline`).

`render_photo(mesh, seed, family="train" | "heldout", face_parts=None) -> PhotoSample`
renders a procedural-texture, multi-light, cluttered, degraded photo of a mesh and
preprocesses it exactly as the app preprocesses a user's photo (`svr.preprocess`), giving
the network input. `draw_style` + `render_style` split the random draw from the
rendering; `FAMILIES` holds the two disjoint randomisation families.
"""

from svr.photo.families import FAMILIES, CameraStyle, Family, MaskingStyle, PhotoStyle, draw_style
from svr.photo.pipeline import STAGES, PhotoConfig, PhotoSample, render_photo, render_style
from svr.photo.scene import PreparedMesh, prepare_mesh

__all__ = [
    "FAMILIES",
    "Family",
    "CameraStyle",
    "MaskingStyle",
    "PhotoStyle",
    "PhotoConfig",
    "PhotoSample",
    "PreparedMesh",
    "STAGES",
    "draw_style",
    "prepare_mesh",
    "render_photo",
    "render_style",
]
