"""Headless rendering of triangle meshes by ray casting with Embree (no GPU, no OpenGL).

Camera convention (the same as `views/cameras.json` of every benchmark):

- World = the benchmark's normalised object frame: right-handed, +y up, the object's front
  faces +z, the shape fits [-0.5, 0.5]^3.
- A `Camera` sits on a sphere around the origin and looks at the origin with world +y up.
  Azimuth 0, elevation 0 puts the camera on +z, looking at the object's front (-z
  direction); positive azimuth moves the camera towards +x (the object's right-hand side,
  counter-clockwise seen from above); positive elevation moves it up. Camera position:
  `distance * (cos(el) sin(az), sin(el), cos(el) cos(az))`.
- Extrinsics follow OpenCV: `x_cam = R @ x_world + t` with camera x to the right of the
  image, y down, z forward (into the scene). Intrinsics `K` map camera points to pixels:
  `(u, v) = (K @ x_cam)[:2] / z`, `(0, 0)` is the top-left corner of the image, pixel
  `(col, row)` covers `[col, col + 1) x [row, row + 1)` so its centre is at half-integers.
  Square images, square pixels, principal point at the image centre, `fov` is the full
  field of view in degrees (horizontal = vertical).
- `roll` (degrees, default 0) turns the camera about its viewing axis after the look-at:
  positive roll turns the camera counter-clockwise as seen from behind it, so the scene
  appears turned clockwise in the image. With roll 0 the matrices (and `to_dict`) are
  exactly those of a camera without roll.
- The viewer frame (`viewer_rotation`) is the camera frame with OpenGL axes: x right, y up,
  z towards the viewer. A camera at azimuth 0, elevation 0 gives the identity.

Shading: Lambertian with one directional light plus ambient, double-sided (a back face is
shaded with its flipped normal). `light_dir` points from the surface towards the light,
in world coordinates. Images are RGBA uint8 with alpha 0 on the background; with
`supersample=s` each pixel averages s x s rays (anti-aliased edges, fractional alpha).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import trimesh

__all__ = [
    "Camera",
    "CameraRanges",
    "DEFAULT_RANGES",
    "render",
    "random_camera",
    "fit_camera",
    "random_light",
    "part_colors",
    "viewer_rotation",
    "embree_intersector",
]

log = logging.getLogger(__name__)

_GL_FROM_CV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at the origin (see the module docstring for the axes).

    azimuth, elevation, fov, roll in degrees; distance from the origin in world units.
    """

    azimuth: float
    elevation: float
    distance: float
    fov: float = 40.0
    roll: float = 0.0

    def __post_init__(self) -> None:
        values = [self.azimuth, self.elevation, self.distance, self.fov, self.roll]
        if not np.isfinite(values).all():
            raise ValueError(f"camera parameters must be finite: {self}")
        if not -180.0 <= self.roll <= 180.0:
            raise ValueError(f"roll must be in [-180, 180] degrees, got {self.roll}")
        if not -89.0 <= self.elevation <= 89.0:
            raise ValueError(f"elevation must be in [-89, 89] degrees, got {self.elevation}")
        if self.distance <= 0:
            raise ValueError(f"camera distance must be positive, got {self.distance}")
        if not 0 < self.fov < 180:
            raise ValueError(f"field of view must be in (0, 180) degrees, got {self.fov}")

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates, float64 (3,)."""
        az, el = np.deg2rad(self.azimuth), np.deg2rad(self.elevation)
        return self.distance * np.array(
            [np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)]
        )

    def focal_length(self, image_size: int) -> float:
        """Focal length in pixels for a square image of `image_size` pixels."""
        return (image_size / 2.0) / np.tan(np.deg2rad(self.fov) / 2.0)

    def intrinsics(self, image_size: int) -> np.ndarray:
        """K float64 (3, 3) in pixels for a square image (principal point at the centre)."""
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        f = self.focal_length(image_size)
        c = image_size / 2.0
        return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])

    def extrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """World-to-camera (R float64 (3, 3), t float64 (3,)), OpenCV axes: x_cam = R x + t."""
        eye = self.position
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        if self.roll != 0.0:
            c, s = np.cos(np.deg2rad(self.roll)), np.sin(np.deg2rad(self.roll))
            right, down = c * right - s * down, s * right + c * down
        R = np.stack([right, down, forward])
        return R, -R @ eye

    def project(self, points: np.ndarray, image_size: int) -> np.ndarray:
        """Pixel coordinates (u, v) float64 (N, 2) of world points (N, 3)."""
        R, t = self.extrinsics()
        cam = np.asarray(points, dtype=np.float64).reshape(-1, 3) @ R.T + t
        uvw = cam @ self.intrinsics(image_size).T
        return uvw[:, :2] / uvw[:, 2:3]

    def to_dict(self, image_size: int) -> dict[str, object]:
        """JSON-ready description: parameters, K, R, t (lists of floats) and the convention.

        "roll" is present only for a camera with non-zero roll."""
        R, t = self.extrinsics()
        # no "roll" key without roll: cameras.json stays as it was before roll existed
        roll = {"roll": float(self.roll)} if self.roll != 0.0 else {}
        return {
            "azimuth": float(self.azimuth),
            "elevation": float(self.elevation),
            "distance": float(self.distance),
            "fov": float(self.fov),
            **roll,
            "K": self.intrinsics(image_size).round(9).tolist(),
            "R": R.round(12).tolist(),
            "t": t.round(12).tolist(),
            "width": int(image_size),
            "height": int(image_size),
            "image_size": int(image_size),
            "convention": "opencv: x_cam = R @ x_world + t, x right, y down, z forward",
        }


@dataclass(frozen=True)
class CameraRanges:
    """Ranges of `random_camera`, all uniform: (low, high) in degrees or world units.

    Defaults: azimuth [0, 360), elevation [-5, 35] (3D-R2N2 rendered at 25-30 degrees; a
    wider band gives more varied views, few from below), distance [1.9, 2.3] with a 40 degree
    field of view: a shape of longest side 1 then spans about 60-75 % of the image width
    along its longest side, so the object fills most of the image. Box-like shapes seen
    across a diagonal can still reach the border; the builder then moves the camera back
    with `fit_camera` (recorded in cameras.json).
    Light: direction in the camera frame, azimuth [-60, 60] degrees about the camera's up
    axis and elevation [15, 65] degrees above the camera's horizontal plane (always from
    the camera's side of the object); ambient term fixed.
    """

    azimuth: tuple[float, float] = (0.0, 360.0)
    elevation: tuple[float, float] = (-5.0, 35.0)
    distance: tuple[float, float] = (1.9, 2.3)
    fov: float = 40.0
    light_azimuth: tuple[float, float] = (-60.0, 60.0)
    light_elevation: tuple[float, float] = (15.0, 65.0)
    ambient: float = 0.3


DEFAULT_RANGES = CameraRanges()


def random_camera(rng: np.random.Generator, ranges: CameraRanges = DEFAULT_RANGES) -> Camera:
    """Draw a camera: azimuth, elevation and distance uniform in `ranges` (see CameraRanges)."""
    return Camera(
        azimuth=float(rng.uniform(*ranges.azimuth)) % 360.0,
        elevation=float(rng.uniform(*ranges.elevation)),
        distance=float(rng.uniform(*ranges.distance)),
        fov=float(ranges.fov),
    )


def fit_camera(camera: Camera, vertices: np.ndarray, margin: float = 0.95) -> Camera:
    """Move the camera back (same direction) until every vertex projects inside the image.

    vertices: float (V, 3) world points. `margin`: the largest allowed distance from the
    image centre as a fraction of half the image side. Returns `camera` itself when the
    points already fit, else a copy with a larger distance (at most 20 steps of >= 2 %).
    """
    if not 0 < margin <= 1:
        raise ValueError(f"margin must be in (0, 1], got {margin}")
    points = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        return camera
    for _ in range(20):
        R, t = camera.extrinsics()
        cam = points @ R.T + t
        depth = cam[:, 2]
        if depth.min() > 1e-6:
            extent = float(np.abs(cam[:, :2] / depth[:, None]).max()) / np.tan(
                np.deg2rad(camera.fov) / 2
            )
            if extent <= margin:
                return camera
            factor = max(1.02, extent / margin)
        else:
            factor = 1.5
        camera = replace(camera, distance=camera.distance * factor)
    return camera


def random_light(
    rng: np.random.Generator, camera: Camera, ranges: CameraRanges = DEFAULT_RANGES
) -> np.ndarray:
    """A unit light direction float64 (3,) in world coordinates, varying per view.

    Drawn in the camera frame (see CameraRanges) so that the lit side always faces the
    camera somewhat, then turned into the world frame.
    """
    az = np.deg2rad(rng.uniform(*ranges.light_azimuth))
    el = np.deg2rad(rng.uniform(*ranges.light_elevation))
    # OpenCV camera axes: towards the camera is -z, up is -y.
    in_cam = np.array([np.cos(el) * np.sin(az), -np.sin(el), -np.cos(el) * np.cos(az)])
    R, _ = camera.extrinsics()
    d = R.T @ in_cam
    return d / np.linalg.norm(d)


def part_colors(rng: np.random.Generator, n_parts: int) -> np.ndarray:
    """Random, distinguishable part colours float64 (n_parts, 3) in [0, 1].

    HSV with a random base hue and golden-ratio hue steps between parts, saturation in
    [0.35, 0.7] and value in [0.65, 0.95]. The builder draws one palette per shape, so a
    shape has the same colours in all its views.
    """
    if n_parts < 0:
        raise ValueError(f"n_parts must be non-negative, got {n_parts}")
    base = rng.random()
    hue = (base + 0.6180339887 * np.arange(n_parts)) % 1.0
    sat = rng.uniform(0.35, 0.7, size=n_parts)
    val = rng.uniform(0.65, 0.95, size=n_parts)
    return _hsv_to_rgb(hue, sat, val)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ]
    )
    return table[i, np.arange(len(h))]


def viewer_rotation(R: np.ndarray) -> np.ndarray:
    """Rotation float64 (3, 3) from the object frame to the viewer frame of extrinsics R.

    Viewer frame: the camera's axes with x right, y up, z towards the viewer (OpenGL).
    """
    return _GL_FROM_CV @ np.asarray(R, dtype=np.float64)


def embree_intersector(mesh: trimesh.Trimesh):
    """An Embree ray intersector of `mesh`; RuntimeError if Embree (embreex) is unavailable."""
    try:
        from trimesh.ray import ray_pyembree
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "rendering needs Embree ray casting (trimesh.ray.ray_pyembree); install the pinned "
            "'embreex' package from requirements.txt"
        ) from exc
    if not getattr(ray_pyembree, "exists", True):  # pragma: no cover
        raise RuntimeError("trimesh.ray.ray_pyembree is present but embreex failed to load")
    intersector = mesh.ray  # trimesh caches it on the mesh; Embree when embreex loads
    if not isinstance(intersector, ray_pyembree.RayMeshIntersector):
        intersector = ray_pyembree.RayMeshIntersector(mesh)
    return intersector


def _validate_render_inputs(
    mesh: trimesh.Trimesh, face_colors: np.ndarray, image_size: int
) -> np.ndarray:
    if not isinstance(mesh, trimesh.Trimesh):
        raise ValueError(f"render needs a trimesh.Trimesh, got {type(mesh).__name__}")
    colors = np.asarray(face_colors, dtype=np.float64)
    if colors.shape != (len(mesh.faces), 3):
        raise ValueError(
            f"face_colors must have shape (F, 3) = ({len(mesh.faces)}, 3), got {colors.shape}"
        )
    if not np.isfinite(colors).all():
        raise ValueError("face_colors contains NaN or infinite values")
    if image_size < 1 or image_size > 4096:
        raise ValueError(f"image_size must be in [1, 4096], got {image_size}")
    return np.clip(colors, 0.0, 1.0)


def render(
    mesh: trimesh.Trimesh,
    face_colors: np.ndarray,
    camera: Camera,
    image_size: int = 137,
    light_dir: np.ndarray | None = None,
    ambient: float = 0.3,
    supersample: int = 2,
) -> np.ndarray:
    """Render a mesh: RGBA uint8 (image_size, image_size, 4), alpha 0 on the background.

    Args:
        mesh: triangle mesh in world coordinates.
        face_colors: float (F, 3) RGB in [0, 1] per face (values are clipped).
        camera: the `Camera` (OpenCV convention, see the module docstring).
        image_size: side of the square image in pixels.
        light_dir: float (3,) direction from the surface towards the light, world frame;
            default: from the camera's upper left, (-0.4, -0.6, -0.7) in camera axes.
        ambient: ambient fraction in [0, 1]; a face lit head-on gets brightness 1.
        supersample: s x s rays per pixel (1 = one ray through each pixel centre).
    """
    colors = _validate_render_inputs(mesh, face_colors, image_size)
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient must be in [0, 1], got {ambient}")
    if supersample < 1 or supersample > 8:
        raise ValueError(f"supersample must be in [1, 8], got {supersample}")
    R, _ = camera.extrinsics()
    if light_dir is None:
        light_dir = R.T @ np.array([-0.4, -0.6, -0.7])
    light = np.asarray(light_dir, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(light)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("light_dir must be a finite, non-zero vector")
    light = light / norm

    n = image_size * supersample
    f = camera.focal_length(image_size) * supersample
    centre = n / 2.0
    px = (np.arange(n, dtype=np.float64) + 0.5 - centre) / f
    u, v = np.meshgrid(px, px, indexing="xy")  # u along columns (x), v along rows (y down)
    dirs_cam = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    dirs = dirs_cam @ R  # rows: R.T @ d
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.broadcast_to(camera.position, dirs.shape)

    if len(mesh.faces):
        tri = embree_intersector(mesh).intersects_first(origins, dirs)
    else:
        tri = np.full(len(dirs), -1, dtype=np.int64)
    hit = tri >= 0
    rgb = np.zeros((len(dirs), 3))
    if hit.any():
        faces = tri[hit]
        normals = mesh.face_normals[faces]
        # double-sided: flip normals that face away from the camera
        facing = np.einsum("ij,ij->i", normals, dirs[hit])
        normals = np.where(facing[:, None] > 0, -normals, normals)
        lambert = np.clip(normals @ light, 0.0, None)
        shade = ambient + (1.0 - ambient) * lambert
        rgb[hit] = colors[faces] * shade[:, None]
    alpha = hit.astype(np.float64)
    s = supersample
    rgb = rgb.reshape(image_size, s, image_size, s, 3).sum(axis=(1, 3))
    alpha = alpha.reshape(image_size, s, image_size, s).sum(axis=(1, 3))
    covered = alpha > 0
    rgb[covered] /= alpha[covered][:, None]  # mean colour of the rays that hit
    alpha /= s * s
    image = np.zeros((image_size, image_size, 4), dtype=np.uint8)
    image[..., :3] = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    image[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return image
