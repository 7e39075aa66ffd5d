"""Tests of svr.photo: the domain-randomised photo renderer and its two families."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import cv2
import numpy as np
import pytest
import torch
import trimesh

import svr.preprocess
from svr.data.dataset import prepare_images
from svr.geometry import grid_to_mesh
from svr.photo import FAMILIES, PhotoConfig, draw_style, prepare_mesh, render_photo, render_style
from svr.photo.augment import DegradationStyle, degrade, develop
from svr.photo.backgrounds import BACKDROPS, SCENE_KINDS, BackdropStyle, render_backdrop
from svr.photo.families import Family
from svr.photo.materials import ARCHETYPES, PartSplitStyle, split_parts
from svr.photo.scene import corner_normals
from svr.photo.textures import PATTERNS, PatternParams, evaluate_pattern
from svr.render import Camera, fit_camera, part_colors, random_camera, random_light, render

CONFIG = PhotoConfig(image_size=32, app_size=40)


def _tiny(name: str) -> Family:
    """A family as shipped but with small photos (fast GrabCut)."""
    return dataclasses.replace(FAMILIES[name], photo_size=(56, 64))


def _object() -> tuple[trimesh.Trimesh, np.ndarray]:
    """A two-part object standing on y = -0.5 (a box seat on a cylinder), normalised."""
    seat = trimesh.creation.box((0.9, 0.25, 0.6))
    seat.apply_translation([0.0, 0.1, 0.0])
    leg = trimesh.creation.cylinder(radius=0.12, height=0.5, sections=16)
    leg.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    leg.apply_translation([0.0, -0.25, 0.0])
    mesh = trimesh.util.concatenate([seat, leg])
    parts = np.r_[np.zeros(len(seat.faces), int), np.ones(len(leg.faces), int)]
    return mesh, parts


@pytest.fixture(scope="module")
def obj() -> tuple[trimesh.Trimesh, np.ndarray]:
    return _object()


# -- the benchmark's renderer is unchanged ---------------------------------------------------

# Computed with svr/render.py as it was before roll was added (commit 9337394).
_GOLDEN_RENDER = "d97f0d7d50bcd49974c19a9527c990ed8e998439c3f2da9764c7bb50542913f0"
# The camera of that render, as cameras.json stored it before roll existed. Compared to 1e-9,
# not by hash: numpy's SIMD arctan2/sqrt may differ in the last bit between CPUs.
_GOLDEN_CAMERA = {
    "K": [[188.202203233, 0.0, 68.5], [0.0, 188.202203233, 68.5], [0.0, 0.0, 1.0]],
    "R": [
        [-0.743294258083, 0.0, -0.66896460736],
        [0.131526705944, -0.980481301404, -0.146140833517],
        [-0.655907288817, -0.196612353624, 0.728786121492],
    ],
    "azimuth": 138.01279708278656,
    "convention": "opencv: x_cam = R @ x_world + t, x right, y down, z forward",
    "distance": 1.918110077560978,
    "elevation": 11.338928216799946,
    "fov": 40.0,
    "height": 137,
    "image_size": 137,
    "t": [0.0, 0.0, 1.918110077561],
    "width": 137,
}


def test_benchmark_renders_are_byte_identical() -> None:
    a = trimesh.creation.icosphere(subdivisions=3, radius=0.35)
    b = trimesh.creation.box((0.8, 0.2, 0.5))
    b.apply_translation([0.0, -0.3, 0.0])
    mesh = trimesh.util.concatenate([a, b])
    parts = np.r_[np.zeros(len(a.faces), int), np.ones(len(b.faces), int)]
    rng = np.random.default_rng(5)
    colors = part_colors(rng, 2)[parts]
    cam = fit_camera(random_camera(rng), mesh.vertices)
    light = random_light(rng, cam)
    image = render(mesh, colors, cam, 137, light_dir=light, supersample=2)
    assert hashlib.sha256(image.tobytes()).hexdigest() == _GOLDEN_RENDER
    stored = cam.to_dict(137)
    assert sorted(stored) == sorted(_GOLDEN_CAMERA)  # no "roll" key, nothing new
    for key, golden in _GOLDEN_CAMERA.items():
        if isinstance(golden, str):
            assert stored[key] == golden
        else:
            np.testing.assert_allclose(np.asarray(stored[key], float), golden, rtol=0, atol=1e-9)


def test_roll_turns_the_image_clockwise() -> None:
    # fov 90 at 100 px, camera on +z: the point (0, 0.5, 0) is 12.5 px above the centre.
    plain = Camera(0, 0, 2, 90)
    rolled = Camera(0, 0, 2, 90, roll=90)
    np.testing.assert_allclose(plain.project(np.array([[0, 0.5, 0]]), 100)[0], [50, 37.5])
    # camera turned counter-clockwise by 90 degrees: "up" now points to the image's right
    np.testing.assert_allclose(rolled.project(np.array([[0, 0.5, 0]]), 100)[0], [62.5, 50])
    R, t = rolled.extrinsics()
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R[2], plain.extrinsics()[0][2])  # same viewing direction
    assert rolled.to_dict(64)["roll"] == 90.0
    with pytest.raises(ValueError, match="roll"):
        Camera(0, 0, 2, roll=200)


# -- kernels against slow references ---------------------------------------------------------


def _corner_normals_loop(vertices: np.ndarray, faces: np.ndarray, crease: float) -> np.ndarray:
    cross = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    area2 = np.linalg.norm(cross, axis=1)
    fn = cross / area2[:, None]
    out = np.zeros((len(faces), 3, 3))
    for f, face in enumerate(faces):
        for k, vert in enumerate(face):
            acc = np.zeros(3)
            for g, other in enumerate(faces):
                if vert in other and fn[f] @ fn[g] >= math.cos(math.radians(crease)):
                    acc += fn[g] * area2[g]
            out[f, k] = acc / np.linalg.norm(acc)
    return out


def test_corner_normals_match_a_loop() -> None:
    mesh = trimesh.creation.cylinder(radius=0.3, height=0.4, sections=16)  # 22.5 degree steps
    got = corner_normals(mesh.vertices, mesh.faces, 35.0)
    want = _corner_normals_loop(np.asarray(mesh.vertices), np.asarray(mesh.faces), 35.0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the cylinder's side is smooth (corners differ from the flat face normal), caps stay flat
    side = np.abs(mesh.face_normals[:, 2]) < 0.5
    assert not np.allclose(got[side], mesh.face_normals[side][:, None, :], atol=1e-3)
    np.testing.assert_allclose(
        got[~side], np.repeat(mesh.face_normals[~side][:, None], 3, 1), atol=1e-5
    )


@pytest.mark.parametrize("kind", sorted(PATTERNS))
def test_patterns_are_bounded_and_deterministic(kind: str) -> None:
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, size=(500, 3))
    params = PatternParams(scale=6.0, offset=(1.0, 2.0, 3.0), rotation=(0.3, 0.2, 0.1))
    t = evaluate_pattern(kind, pts, params)
    assert t.shape == (500,) and t.dtype == np.float32
    assert np.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
    np.testing.assert_array_equal(t, evaluate_pattern(kind, pts, params))
    if kind != "plain":
        assert t.std() > 0.01, "a pattern must vary over the object"


@pytest.mark.parametrize("kind", sorted(BACKDROPS))
def test_backdrops_are_images(kind: str) -> None:
    style = BackdropStyle(
        kind, ((0.9, 0.2, 0.1), (0.1, 0.3, 0.8), (0.5, 0.5, 0.5)), 0.7, 0.8, 3, "stripes"
    )
    img = render_backdrop(style, 48)
    assert img.shape == (48, 48, 3) and img.dtype == np.float32
    assert img.min() >= 0 and img.max() <= 1
    np.testing.assert_array_equal(img, render_backdrop(style, 48))


def test_degradations() -> None:
    srgb = develop(np.full((40, 40, 3), 0.2, np.float32), DegradationStyle())
    assert srgb.dtype == np.float32 and srgb.shape == (40, 40, 3)
    clean = degrade(srgb, DegradationStyle())
    assert (clean == clean[0, 0]).all()  # a flat image stays flat
    noisy = degrade(srgb, DegradationStyle(noise=6.0, jpeg_quality=40, seed=1))
    assert noisy.dtype == np.uint8 and noisy.std() > 1
    np.testing.assert_array_equal(
        noisy, degrade(srgb, DegradationStyle(noise=6.0, jpeg_quality=40, seed=1))
    )
    colour = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    grey = degrade(colour, DegradationStyle(grayscale=True))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert develop(np.full((4, 4, 3), 0.2), DegradationStyle(exposure=1)).mean() > srgb.mean()


# -- families --------------------------------------------------------------------------------


def test_families_are_disjoint() -> None:
    train, held = FAMILIES["train"], FAMILIES["heldout"]
    assert not set(train.archetypes) & set(held.archetypes)
    assert not train.pattern_kinds & held.pattern_kinds
    assert not set(train.light_rigs) & set(held.light_rigs)
    assert not set(train.backgrounds) & set(held.backgrounds)
    assert not set(train.backdrops) & set(held.backdrops)
    (a0, an), (b0, bn) = train.clutter_seeds, held.clutter_seeds
    assert a0 + an <= b0 or b0 + bn <= a0
    for lo, hi in train.fov_bands:
        for lo2, hi2 in held.fov_bands:
            assert hi <= lo2 or hi2 <= lo, "fov bands overlap"
    # all fov bands lie within 15-60 degrees
    assert min(lo for f in (train, held) for lo, _ in f.fov_bands) >= 15
    assert max(hi for f in (train, held) for _, hi in f.fov_bands) <= 60


@pytest.mark.parametrize("name", ["train", "heldout"])
def test_drawn_styles_stay_in_their_family(name: str) -> None:
    fam = FAMILIES[name]
    other = FAMILIES["heldout" if name == "train" else "train"]
    backgrounds, rigs, patterns, archetypes = set(), set(), set(), set()
    for seed in range(300):
        st = draw_style(name, seed, n_parts=3)
        assert any(lo <= st.camera.fov <= hi for lo, hi in fam.fov_bands)
        assert not any(lo < st.camera.fov < hi for lo, hi in other.fov_bands)
        assert fam.roll[0] <= st.camera.roll <= fam.roll[1]
        assert fam.elevation[0] <= st.camera.elevation <= fam.elevation[1]
        backgrounds.add(st.background.kind)
        rigs.add(st.lighting.rig)
        mats = list(st.materials) + [m for m in (st.background.floor, st.background.wall) if m]
        mats += [m for c in st.background.clutter for m in c.materials]
        patterns |= {m.pattern for m in mats}
        archetypes |= {m.archetype for m in mats}
        if st.background.kind in SCENE_KINDS:
            assert st.background.backdrop.kind in fam.backdrops
        for c in st.background.clutter:
            assert fam.clutter_seeds[0] <= c.shape_seed < sum(fam.clutter_seeds)
    assert backgrounds == set(fam.backgrounds)  # every kind gets drawn ...
    assert rigs == set(fam.light_rigs)
    assert archetypes == set(fam.archetypes)
    assert patterns <= fam.pattern_kinds  # ... and nothing from the other family
    assert not patterns & other.pattern_kinds
    # the style is a pure function of (family, seed)
    assert draw_style(name, 7, 3) == draw_style(name, 7, 3)
    assert draw_style(name, 7, 3) != draw_style(name, 8, 3)


def test_all_archetypes_belong_to_one_family() -> None:
    owners = [n for n in ARCHETYPES for f in FAMILIES.values() if n in f.archetypes]
    assert sorted(owners) == sorted(ARCHETYPES)


# -- samples ---------------------------------------------------------------------------------


def test_sample_is_deterministic_with_sane_outputs(obj) -> None:
    mesh, parts = obj
    a = render_photo(mesh, 3, _tiny("train"), parts, CONFIG)
    b = render_photo(mesh, 3, _tiny("train"), parts, CONFIG)
    for field in ("image", "photo", "mask", "true_mask", "coverage"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.style == b.style and a.camera == b.camera
    c = render_photo(mesh, 4, _tiny("train"), parts, CONFIG)
    assert not np.array_equal(a.image, c.image)
    p = a.style.camera.photo_size
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.uint8
    assert a.photo.shape[:2] == (p, p) and a.photo.dtype == np.uint8 and a.photo.shape[2] in (3, 4)
    assert a.mask.shape == a.true_mask.shape == (p, p) and a.mask.dtype == bool
    assert a.coverage.min() >= 0 and a.coverage.max() <= 1
    assert a.camera.roll == a.style.camera.roll and a.camera.fov == a.style.camera.fov
    assert set(a.timings) == {"background", "render", "degradations", "masking"}
    # the input's border is white (composited on white, object centred)
    assert (a.image[0] > 240).all()


@pytest.mark.parametrize("name", ["train", "heldout"])
def test_object_stays_in_frame_and_fills_as_drawn(obj, name: str) -> None:
    mesh, parts = obj
    prepared = prepare_mesh(mesh)
    fam = _tiny(name)
    for seed in range(6):
        st = draw_style(fam, seed, 2)
        # the extremes of framing: largest fill, object pushed to a corner
        st = dataclasses.replace(
            st, camera=dataclasses.replace(st.camera, fill=0.85, offset=(1.0, -1.0))
        )
        s = render_style(prepared, st, parts, CONFIG)
        size = st.camera.photo_size
        ys, xs = np.nonzero(s.coverage > 0)
        pad = max(3, int(0.06 * size)) - 1
        assert ys.min() >= pad and xs.min() >= pad, "object reaches the border"
        assert ys.max() < size - pad and xs.max() < size - pad, "object reaches the border"
        extent = max(np.ptp(ys), np.ptp(xs)) + 1
        assert extent == pytest.approx(0.85 * size, rel=0.12)


def _spy_grabcut(monkeypatch) -> list[tuple[int, ...]]:
    calls: list[tuple[int, ...]] = []
    original = svr.preprocess.foreground_mask

    def spy(rgb, *args, **kwargs):
        calls.append(rgb.shape)
        return original(rgb, *args, **kwargs)

    monkeypatch.setattr(svr.preprocess, "foreground_mask", spy)
    return calls


def test_photo_without_alpha_goes_through_grabcut(obj, monkeypatch) -> None:
    mesh, parts = obj
    calls = _spy_grabcut(monkeypatch)
    st = draw_style(_tiny("train"), 11, 2)
    st = dataclasses.replace(
        st, masking=dataclasses.replace(st.masking, cutout=False, shift=(0.0, 0.0))
    )
    plain = dataclasses.replace(st.background.backdrop, kind="solid", colors=((0.95, 0.95, 0.93),))
    background = dataclasses.replace(
        st.background, kind="solid", clutter=(), floor=None, wall=None, backdrop=plain
    )
    st = dataclasses.replace(st, background=background)
    s = render_style(mesh, st, parts, CONFIG)
    assert calls, "the app's GrabCut path was not used"
    assert s.photo.shape[2] == 3  # uploaded without alpha
    assert s.mask_source == "grabcut" and s.mask_iou > 0.8
    assert not np.array_equal(s.mask, s.true_mask) or s.mask_iou == 1.0
    # the input is exactly what the app would feed: preprocess, then the network's resize
    cv2.setRNGSeed(st.seed)  # GrabCut draws from OpenCV's RNG; the renderer seeds it so
    app = svr.preprocess.preprocess(s.photo, st.masking.foreground_ratio, CONFIG.app_size)
    want = prepare_images([app.image], CONFIG.image_size)
    got = torch.from_numpy(s.image.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_cutout_uses_the_alpha_channel(obj, monkeypatch) -> None:
    mesh, parts = obj
    calls = _spy_grabcut(monkeypatch)
    st = draw_style(_tiny("heldout"), 2, 2)
    st = dataclasses.replace(st, masking=dataclasses.replace(st.masking, cutout=True))
    s = render_style(mesh, st, parts, CONFIG)
    assert not calls
    assert s.mask_source == "alpha" and s.photo.shape[2] == 4
    np.testing.assert_array_equal(s.photo[..., 3] >= 128, s.mask)
    assert s.mask_iou > 0.95


def test_share_of_cutouts_and_grabcut(obj) -> None:
    cutouts = [draw_style("train", seed, 2).masking.cutout for seed in range(400)]
    assert 0.2 < np.mean(cutouts) < 0.4
    ratios = [draw_style("train", seed, 2).masking.foreground_ratio for seed in range(100)]
    assert min(ratios) >= svr.preprocess.DEFAULT_FOREGROUND_RATIO * 0.88 - 1e-9
    assert max(ratios) <= svr.preprocess.DEFAULT_FOREGROUND_RATIO * 1.12 + 1e-9
    assert np.std(ratios) > 0.01


def test_mesh_without_part_ids() -> None:
    # a marching-cubes mesh of a voxel grid: a table-like slab on a post, one component
    grid = np.zeros((24, 24, 24), bool)
    grid[4:20, 14:17, 4:20] = True
    grid[10:14, 3:14, 10:14] = True
    vertices, faces = grid_to_mesh(grid.astype(np.float32))
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    for kind in ("components", "height", "clusters"):
        labels, used = split_parts(mesh, PartSplitStyle(kind, 3, (0.5,), 0))
        assert labels.shape == (len(faces),) and labels.min() == 0
        assert len(np.unique(labels)) >= 2
        assert used == ("height" if kind == "components" else kind)  # one component only
    labels, _ = split_parts(mesh, PartSplitStyle("height", 2, (0.5,), 0))
    y = mesh.triangles_center[:, 1]
    assert y[labels == 1].min() >= y[labels == 0].max() - 1e-9  # bands by height
    s = render_photo(mesh, 1, _tiny("train"), None, CONFIG)
    assert s.part_split in ("height", "clusters") and s.style.parts is not None
    assert s.image.shape == (32, 32, 3) and s.true_mask.any()


def test_two_components_become_two_regions() -> None:
    a = trimesh.creation.box((0.4, 0.4, 0.4))
    b = trimesh.creation.box((0.3, 0.3, 0.3))
    b.apply_translation([0.5, 0, 0])
    mesh = trimesh.util.concatenate([a, b])
    labels, used = split_parts(mesh, PartSplitStyle("components", 2, (0.5,), 0))
    assert used == "components"
    assert (
        len(np.unique(labels[: len(a.faces)])) == 1 and len(np.unique(labels[len(a.faces) :])) == 1
    )
    assert labels[0] != labels[-1]


def test_invalid_inputs_raise(obj) -> None:
    mesh, parts = obj
    with pytest.raises(ValueError, match="family"):
        render_photo(mesh, 0, "nope", parts, CONFIG)
    with pytest.raises(ValueError, match="face_parts"):
        render_photo(mesh, 0, _tiny("train"), parts[:-1], CONFIG)
    with pytest.raises(ValueError, match="no faces"):
        prepare_mesh(trimesh.Trimesh())
