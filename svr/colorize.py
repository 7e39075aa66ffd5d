"""Colour a reconstruction from the photo on the side the camera saw, grey elsewhere.

`colorize(mesh, image, camera)`:

1. Project the mesh's vertices with the estimated camera (`svr.render.Camera`: azimuth and
   elevation from the method, the benchmark's nominal distance and field of view).
2. Fit the projection's scale and offset to the object in the input image: the input is
   re-centred by `svr.preprocess.crop_and_center` (its longest side spans the foreground
   ratio of the image), so the camera distance cannot be read off the photo. The projected
   vertices' bounding box (the silhouette's) is mapped onto the bounding box of the input's
   alpha mask by one isotropic scale (least squares over width and height) and an offset
   (centres aligned).
3. Decide which vertices the camera sees by ray casting (Embree, `svr.render.
   embree_intersector`): a vertex is visible when the segment from it towards the camera
   centre meets no surface.
4. Sample the image's colour at each visible vertex's fitted projection (bilinear over
   alpha-premultiplied colour); a vertex that lands just outside the mask (the
   reconstruction is not the object) takes the nearest masked pixel's colour if it is at most
   `max_gap` pixels away. Every other vertex is `HIDDEN_GREY`.

Units: pixels for image coordinates (`(u, v)`, origin at the top-left corner, pixel centres
at half-integers, as `Camera.project`), the unit cube for the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from svr.render import Camera, embree_intersector

__all__ = [
    "HIDDEN_GREY",
    "VertexColors",
    "fit_projection",
    "visible_vertices",
    "sample_image",
    "colorize",
]

HIDDEN_GREY = (160, 160, 160, 255)  # RGBA of vertices the photo does not show
_ALPHA_MASK = 128  # alpha >= this is the object (as svr.preprocess.alpha_mask)
_RAY_OFFSET = 2e-4  # rays start this far from the vertex (unit cube) to leave its own faces;
# thin parts of the procedural shapes put the surface in front as close as 1e-3


@dataclass(frozen=True)
class VertexColors:
    """Colours of a mesh's vertices from one photo.

    colors: uint8 (V, 4) RGBA; visible: bool (V,), seen from the camera (ray casting);
    sampled: bool (V,), coloured from the photo (visible and on or near the object's mask);
    camera: the camera used; scale, offset: the fitted image transform, pixel
    `(u, v) = scale * camera.project(x) + offset` (offset float64 (2,)).
    """

    colors: np.ndarray
    visible: np.ndarray
    sampled: np.ndarray
    camera: Camera
    scale: float
    offset: np.ndarray

    @property
    def sampled_share(self) -> float:
        """Share of vertices coloured from the photo, in [0, 1]."""
        return float(self.sampled.mean()) if len(self.sampled) else 0.0


def _validate_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
        raise ValueError(f"the image must be RGBA uint8 (H, W, 4), got {image.dtype} {image.shape}")
    if not (image[..., 3] >= _ALPHA_MASK).any():
        raise ValueError("the image's alpha mask is empty: there is no object to colour from")
    return image


def fit_projection(uv: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, offset float64 (2,)) mapping projected points uv float (N, 2) in pixels onto
    the bounding box of `mask` bool (H, W): `scale * uv + offset` has the mask's box centre
    and, in the least-squares sense over width and height, its size.

    The mask's box spans whole pixels, [x0, x1 + 1) x [y0, y1 + 1)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    if len(uv) == 0 or not mask.any():
        raise ValueError("fit_projection needs projected points and a non-empty mask")
    rows, cols = np.nonzero(mask)
    box_min = np.array([cols.min(), rows.min()], np.float64)
    box_max = np.array([cols.max() + 1, rows.max() + 1], np.float64)
    target = box_max - box_min
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    size = hi - lo
    denominator = float(size @ size)
    scale = float(size @ target) / denominator if denominator > 1e-12 else 1.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    offset = (box_min + box_max) / 2.0 - scale * (lo + hi) / 2.0
    return scale, offset


def visible_vertices(mesh: trimesh.Trimesh, eye: np.ndarray) -> np.ndarray:
    """bool (V,): True where the segment from the vertex to the camera centre `eye` float (3,)
    (world units) meets no face of `mesh` (rays start `_RAY_OFFSET` from the vertex)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) == 0 or len(mesh.faces) == 0:
        return np.zeros(len(vertices), bool)
    eye = np.asarray(eye, dtype=np.float64).reshape(3)
    towards = eye - vertices
    length = np.linalg.norm(towards, axis=1, keepdims=True)
    directions = towards / np.maximum(length, 1e-12)
    origins = vertices + _RAY_OFFSET * directions
    # the mesh lies in the unit cube and the camera outside it: nothing is hit beyond the eye
    blocked = embree_intersector(mesh).intersects_any(origins, directions)
    return ~np.asarray(blocked, dtype=bool)


def sample_image(
    image: np.ndarray, uv: np.ndarray, max_gap: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Colours of RGBA uint8 (H, W, 4) `image` at pixel positions uv float (N, 2).

    Returns (rgb uint8 (N, 3), found bool (N,)). Inside the mask (bilinear alpha >= 0.5) the
    colour is the bilinear mean of alpha-premultiplied colour divided by alpha; elsewhere the
    colour of the nearest mask pixel if its centre lies within `max_gap` pixels, else not
    found (rgb 0)."""
    from scipy import ndimage

    image = _validate_image(image)
    h, w = image.shape[:2]
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    rgba = image.astype(np.float64) / 255.0
    premultiplied = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=2)
    # bilinear: pixel (c, r) has its centre at (c + 0.5, r + 0.5)
    x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    inside_image = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
    c0 = np.clip(x0, 0, w - 1).astype(np.int64)
    c1 = np.clip(x0 + 1, 0, w - 1).astype(np.int64)
    r0 = np.clip(y0, 0, h - 1).astype(np.int64)
    r1 = np.clip(y0 + 1, 0, h - 1).astype(np.int64)
    mixed = (
        premultiplied[r0, c0] * (1 - fx) * (1 - fy)
        + premultiplied[r0, c1] * fx * (1 - fy)
        + premultiplied[r1, c0] * (1 - fx) * fy
        + premultiplied[r1, c1] * fx * fy
    )
    alpha = mixed[:, 3]
    on_object = inside_image & (alpha >= 0.5)
    rgb = np.zeros((len(uv), 3))
    rgb[on_object] = mixed[on_object, :3] / alpha[on_object, None]
    found = on_object.copy()
    rest = np.flatnonzero(~on_object)
    if len(rest) and max_gap > 0:
        mask = image[..., 3] >= _ALPHA_MASK
        _, (near_r, near_c) = ndimage.distance_transform_edt(~mask, return_indices=True)
        col = np.clip(np.floor(uv[rest, 0]), 0, w - 1).astype(np.int64)
        row = np.clip(np.floor(uv[rest, 1]), 0, h - 1).astype(np.int64)
        nr, nc = near_r[row, col], near_c[row, col]
        gap = np.hypot(nc + 0.5 - uv[rest, 0], nr + 0.5 - uv[rest, 1])
        close = gap <= max_gap
        rgb[rest[close]] = rgba[nr[close], nc[close], :3]
        found[rest[close]] = True
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8), found


def colorize(
    mesh: trimesh.Trimesh, image: np.ndarray, camera: Camera, max_gap: float | None = None
) -> VertexColors:
    """Vertex colours of `mesh` (unit cube) from RGBA uint8 (H, W, 4) `image` (the
    preprocessed input: object on a transparent background) seen from `camera` (its azimuth
    and elevation matter; distance and field of view set the perspective, the image scale and
    offset are fitted to the mask). `max_gap`: pixels a vertex may land outside the mask and
    still take the nearest mask colour (default 3% of the image side). See the module
    docstring for the steps."""
    image = _validate_image(image)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("colorize needs a triangle mesh with faces")
    size = max(image.shape[:2])
    gap = 0.03 * size if max_gap is None else float(max_gap)
    projected = camera.project(mesh.vertices, size)
    scale, offset = fit_projection(projected, image[..., 3] >= _ALPHA_MASK)
    uv = scale * projected + offset
    visible = visible_vertices(mesh, camera.position)
    colors = np.tile(np.asarray(HIDDEN_GREY, np.uint8), (len(mesh.vertices), 1))
    sampled = np.zeros(len(mesh.vertices), bool)
    index = np.flatnonzero(visible)
    if len(index):
        rgb, found = sample_image(image, uv[index], gap)
        colors[index[found], :3] = rgb[found]
        sampled[index[found]] = True
    return VertexColors(colors, visible, sampled, camera, scale, offset)
