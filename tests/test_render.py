"""Tests of svr.render: camera matrices against hand-computed projections, renderings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from svr.render import (
    DEFAULT_RANGES,
    Camera,
    fit_camera,
    part_colors,
    random_camera,
    random_light,
    render,
    viewer_rotation,
)


def _project(camera: Camera, point: np.ndarray, size: int) -> np.ndarray:
    """Project with the public K, R, t (not Camera.project) to test the matrices themselves."""
    K = camera.intrinsics(size)
    R, t = camera.extrinsics()
    x = K @ (R @ np.asarray(point, dtype=float) + t)
    return x[:2] / x[2]


def test_front_camera_projects_hand_computed_pixels() -> None:
    # fov 90 at 100 px: f = 50 / tan(45 deg) = 50, principal point (50, 50); camera at (0, 0, 2).
    cam = Camera(azimuth=0, elevation=0, distance=2, fov=90)
    K = cam.intrinsics(100)
    np.testing.assert_allclose(K, [[50, 0, 50], [0, 50, 50], [0, 0, 1]], atol=1e-12)
    R, t = cam.extrinsics()
    np.testing.assert_allclose(R, [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    np.testing.assert_allclose(t, [0, 0, 2], atol=1e-12)
    # (0.5, 0.5, 0): camera coords (0.5, -0.5, 2) -> u = 50 + 50 * 0.25, v = 50 - 50 * 0.25
    np.testing.assert_allclose(_project(cam, [0.5, 0.5, 0], 100), [62.5, 37.5], atol=1e-9)
    # the origin projects to the image centre
    np.testing.assert_allclose(_project(cam, [0, 0, 0], 100), [50, 50], atol=1e-9)


def test_side_and_elevated_cameras_project_hand_computed_pixels() -> None:
    # azimuth 90: camera on +x looking along -x; the object's back (-z) is on the image's right.
    side = Camera(azimuth=90, elevation=0, distance=2, fov=90)
    np.testing.assert_allclose(side.position, [2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(_project(side, [0, 0, -0.5], 100), [62.5, 50], atol=1e-9)
    # elevation 30: eye (0, 1, sqrt 3); for (0, 0.5, 0): down = -0.433, depth = 1.75
    up = Camera(azimuth=0, elevation=30, distance=2, fov=90)
    np.testing.assert_allclose(up.position, [0, 1, math.sqrt(3)], atol=1e-12)
    expected_v = 50 + 50 * (-math.sqrt(3) / 4) / 1.75
    np.testing.assert_allclose(_project(up, [0, 0.5, 0], 100), [50, expected_v], atol=1e-9)
    np.testing.assert_allclose(
        up.project(np.array([[0, 0.5, 0]]), 100)[0], [50, expected_v], atol=1e-9
    )


@pytest.mark.parametrize("az,el", [(0, 0), (37, 12), (200, -5), (310, 35)])
def test_extrinsics_are_a_rigid_look_at(az: float, el: float) -> None:
    cam = Camera(az, el, 2.1, 40)
    R, t = cam.extrinsics()
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R @ cam.position + t, 0, atol=1e-12)  # centre maps to 0
    np.testing.assert_allclose(R[2], -cam.position / 2.1, atol=1e-12)  # looks at the origin
    assert R[1] @ [0, 1, 0] < 0  # image y (down) points against world up


def test_viewer_rotation() -> None:
    np.testing.assert_allclose(
        viewer_rotation(Camera(0, 0, 2).extrinsics()[0]), np.eye(3), atol=1e-12
    )
    # camera on +x: the side facing the camera (+x) comes towards the viewer (+z)
    rot = viewer_rotation(Camera(90, 0, 2).extrinsics()[0])
    np.testing.assert_allclose(rot @ [1, 0, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rot @ [0, 1, 0], [0, 1, 0], atol=1e-12)


def test_invalid_cameras_raise() -> None:
    with pytest.raises(ValueError, match="elevation"):
        Camera(0, 90, 2)
    with pytest.raises(ValueError, match="distance"):
        Camera(0, 0, 0)
    with pytest.raises(ValueError, match="field of view"):
        Camera(0, 0, 2, fov=180)


def _sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=0.4)


def test_sphere_silhouette_matches_its_projection() -> None:
    mesh = _sphere()
    cam = Camera(0, 0, 2.0, 40)
    size = 101
    image = render(mesh, np.full((len(mesh.faces), 3), 0.5), cam, image_size=size, supersample=1)
    assert image.shape == (size, size, 4) and image.dtype == np.uint8
    alpha = image[..., 3]
    assert set(np.unique(alpha)) <= {0, 255}  # one ray per pixel: no partial coverage
    # silhouette of a sphere: radius f * tan(asin(r / d)) pixels around the centre
    radius = cam.focal_length(size) * math.tan(math.asin(0.4 / 2.0))
    assert (alpha > 0).sum() == pytest.approx(math.pi * radius**2, rel=0.03)
    assert alpha[size // 2, size // 2] == 255
    assert alpha[0, 0] == alpha[0, -1] == alpha[-1, 0] == alpha[-1, -1] == 0
    assert (image[alpha == 0] == 0).all()  # background fully transparent and black


def test_head_on_light_gives_full_colour_on_a_box_face() -> None:
    box = trimesh.creation.box((0.6, 0.6, 0.6))
    colors = np.tile([1.0, 0.5, 0.25], (len(box.faces), 1))
    cam = Camera(0, 0, 2.0, 40)
    image = render(box, colors, cam, image_size=64, light_dir=np.array([0, 0, 1.0]), ambient=0.3)
    # the front face (+z) is lit head-on: brightness ambient + (1 - ambient) * 1 = 1
    np.testing.assert_array_equal(image[32, 32], [255, 128, 64, 255])
    # light from behind: only the ambient term
    dark = render(box, colors, cam, image_size=64, light_dir=np.array([0, 0, -1.0]), ambient=0.3)
    np.testing.assert_array_equal(
        dark[32, 32], [round(255 * 0.3), round(127.5 * 0.3), round(63.75 * 0.3), 255]
    )


def test_lit_side_is_brighter_and_rendering_is_deterministic() -> None:
    mesh = _sphere()
    colors = np.full((len(mesh.faces), 3), 0.8)
    cam = Camera(0, 0, 2.0, 40)
    image = render(mesh, colors, cam, image_size=64, light_dir=np.array([1.0, 0, 0]))
    lum = image[..., :3].astype(float).mean(axis=2)
    mask = image[..., 3] == 255
    left = lum[:, :28][mask[:, :28]].mean()
    right = lum[:, 36:][mask[:, 36:]].mean()
    assert right > left + 50  # world +x is on the image's right for the front camera
    again = render(mesh, colors, cam, image_size=64, light_dir=np.array([1.0, 0, 0]))
    np.testing.assert_array_equal(image, again)


def test_supersampling_gives_partial_alpha_only_on_edges() -> None:
    mesh = _sphere()
    image = render(mesh, np.full((len(mesh.faces), 3), 0.5), Camera(0, 0, 2.0), 64, supersample=2)
    alpha = image[..., 3]
    partial = (alpha > 0) & (alpha < 255)
    assert partial.any()
    # partial pixels touch both covered and empty pixels (they lie on the silhouette)
    ys, xs = np.nonzero(partial)
    for y, x in zip(ys[:20], xs[:20], strict=False):
        window = alpha[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        assert window.max() > 0 and (window.min() < 255)


def test_part_colours_are_visible_per_face() -> None:
    a = trimesh.creation.box((0.4, 0.4, 0.4))
    a.apply_translation([-0.3, 0, 0])
    b = a.copy()
    b.apply_translation([0.6, 0, 0])
    mesh = trimesh.util.concatenate([a, b])
    colors = np.zeros((len(mesh.faces), 3))
    colors[: len(a.faces), 0] = 1.0  # left box red
    colors[len(a.faces) :, 2] = 1.0  # right box blue
    image = render(mesh, colors, Camera(0, 0, 2.0), 64, light_dir=np.array([0, 0, 1.0]))
    left, right = image[32, 16], image[32, 48]
    assert left[3] == right[3] == 255
    assert left[0] > 200 and left[2] == 0
    assert right[2] > 200 and right[0] == 0


def test_bad_inputs_raise() -> None:
    mesh = _sphere()
    with pytest.raises(ValueError, match="face_colors"):
        render(mesh, np.zeros((3, 3)), Camera(0, 0, 2))
    with pytest.raises(ValueError, match="light_dir"):
        render(mesh, np.zeros((len(mesh.faces), 3)), Camera(0, 0, 2), light_dir=np.zeros(3))


def test_random_cameras_lights_and_colours() -> None:
    rng = np.random.default_rng(5)
    cams = [random_camera(rng) for _ in range(200)]
    r = DEFAULT_RANGES
    assert all(0 <= c.azimuth < 360 for c in cams)
    assert all(r.elevation[0] <= c.elevation <= r.elevation[1] for c in cams)
    assert all(r.distance[0] <= c.distance <= r.distance[1] for c in cams)
    again = np.random.default_rng(5)
    assert cams == [random_camera(again) for _ in range(200)]  # reproducible from the seed
    for cam in cams[:20]:
        light = random_light(rng, cam)
        assert np.linalg.norm(light) == pytest.approx(1.0)
        assert light @ cam.position > 0  # always from the camera's side
    colors = part_colors(np.random.default_rng(0), 6)
    assert colors.shape == (6, 3) and colors.min() >= 0 and colors.max() <= 1
    assert len({tuple(c.round(3)) for c in colors}) == 6


def test_default_ranges_keep_a_unit_shape_inside_the_image() -> None:
    # a 1 x 0.5 x 0.5 box (longest side 1, like most normalised shapes) from 30 random views
    box = trimesh.creation.box((1.0, 0.5, 0.5))
    rng = np.random.default_rng(1)
    colors = np.full((len(box.faces), 3), 0.5)
    for _ in range(30):
        image = render(box, colors, random_camera(rng), 64, supersample=1)
        alpha = image[..., 3] > 0
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert not border.any()
        assert alpha.mean() > 0.08  # and it is not tiny


def test_box_silhouette_covers_exactly_the_pixel_centres_inside_its_projection() -> None:
    # cube of side 0.6 seen head-on from distance 2 with fov 90 at 100 px (f = 50): the
    # front face (depth 1.7) spans u, v in 50 +- 50 * 0.3 / 1.7 = [41.18, 58.82]; pixel
    # centres j + 0.5 inside that range are j = 41..58.
    box = trimesh.creation.box((0.6, 0.6, 0.6))
    image = render(
        box, np.full((len(box.faces), 3), 0.5), Camera(0, 0, 2.0, 90), 100, supersample=1
    )
    covered = image[..., 3] > 0
    rows = np.flatnonzero(covered.any(axis=1))
    cols = np.flatnonzero(covered.any(axis=0))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (41, 58, 41, 58)
    assert covered.sum() == 18 * 18


def test_fit_camera_keeps_a_unit_cube_inside_the_image() -> None:
    cube = trimesh.creation.box((1.0, 1.0, 1.0))
    close = Camera(azimuth=45, elevation=35, distance=1.9, fov=40)
    # the nearest corner of the cube leaves the image from this camera
    assert np.abs(close.project(cube.vertices, 64) - 32).max() > 32
    fitted = fit_camera(close, cube.vertices)
    assert fitted.distance > close.distance
    assert (fitted.azimuth, fitted.elevation, fitted.fov) == (45, 35, 40)
    uv = fitted.project(cube.vertices, 64)
    assert np.abs(uv - 32).max() <= 0.95 * 32 + 1e-9
    assert np.abs(uv - 32).max() > 0.85 * 32  # moved back only as far as needed
    far = Camera(0, 10, 2.0)
    assert fit_camera(far, cube.vertices * 0.5) is far  # already fits: unchanged
