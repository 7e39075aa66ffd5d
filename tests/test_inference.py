"""svr.inference, svr.prepare and svr.settings: image -> prediction -> files, with tiny weights."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from app_helpers import shared_tiny_weights

from svr.data.layout import Benchmark
from svr.evaluation import score_item
from svr.inference import (
    ModelStore,
    ModelUnavailable,
    ReconstructionError,
    Reconstructor,
    SessionFiles,
    compare_with_ground_truth,
    export_prediction,
    file_sha256,
    recognise,
)
from svr.io import read_binvox
from svr.prepare import Preparation, Step
from svr.settings import Settings
from svr.types import Prediction


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_benchmark) -> Path:
    return shared_tiny_weights(tmp_path_factory, tiny_benchmark)


@pytest.fixture(scope="module")
def store(weights) -> ModelStore:
    return ModelStore(weights)


@pytest.fixture()
def reconstructor(store, tmp_path) -> Reconstructor:
    return Reconstructor(store, SessionFiles(tmp_path / "sessions"))


def _val_view(bench_dir: Path) -> tuple[Path, str]:
    bench = Benchmark(bench_dir)
    item = bench.items("val")[0]
    return bench.image_path(Benchmark(bench_dir).item(item.item_id, "val")), item.item_id


def _box_prediction() -> Prediction:
    mesh = trimesh.creation.box(extents=(0.6, 0.3, 0.2))
    mesh.apply_translation((0.1, 0.05, 0.0))
    return Prediction("box", mesh=mesh)


# ---- export: one mesh, one transform, every format ------------------------------------------


def test_export_writes_every_format_with_the_same_geometry(tmp_path):
    files, mesh, grid = export_prediction(_box_prediction(), tmp_path, "box")
    assert [p.suffix for p in files.downloads()] == [
        ".glb",
        ".obj",
        ".ply",
        ".stl",
        ".npy",
        ".binvox",
    ]
    expected = np.array([[-0.2, -0.1, -0.1], [0.4, 0.2, 0.1]])
    for path in (files.glb, files.obj, files.ply, files.stl):
        loaded = trimesh.load(path, force="mesh", process=False)
        assert np.allclose(loaded.bounds, expected, atol=1e-5), path.suffix  # same orientation
        assert len(loaded.faces) == len(mesh.faces)
    stored = np.load(files.npy)
    assert stored.dtype == bool and stored.shape == (32, 32, 32)
    assert np.array_equal(read_binvox(files.binvox), stored)
    # the box covers x in [-0.2, 0.4): voxel i covers [-0.5 + i/32, ...); centres inside the box
    centres = -0.5 + (np.arange(32) + 0.5) / 32
    inside_x = (centres > -0.2) & (centres < 0.4)
    assert np.array_equal(stored.any(axis=(1, 2)), inside_x)


def test_export_refuses_an_empty_shape_and_handles_points(tmp_path):
    empty = Prediction("empty", occupancy=np.zeros((32, 32, 32), np.float32))
    with pytest.raises(ReconstructionError, match="empty shape"):
        export_prediction(empty, tmp_path, "empty")
    pts = np.random.default_rng(0).uniform(-0.4, 0.4, (500, 3))
    files, mesh, grid = export_prediction(Prediction("pts", points=pts), tmp_path, "pts")
    assert mesh is None and grid is None and files.obj is None and files.stl is None
    assert files.glb.is_file() and files.ply.is_file()
    cloud = trimesh.load(files.ply, process=False)
    assert len(cloud.vertices) == 500


# ---- the model store ---------------------------------------------------------------------------


def test_store_lists_demo_methods_and_reports_missing_weights(store, tmp_path):
    infos = {m.name: m for m in store.methods()}
    assert {"clustering", "retrieval", "voxel"} <= set(infos)
    assert all(m.has_weights for n, m in infos.items() if n in ("clustering", "retrieval", "voxel"))
    assert "oracle_nn" not in infos  # needs the ground truth: not a demo method
    assert infos["clustering"].kind == "recognition baseline"
    assert infos["voxel"].kind == "encoder-decoder"
    empty = ModelStore(tmp_path / "nothing")
    with pytest.raises(ModelUnavailable, match="no weights for retrieval yet"):
        empty.get("retrieval")
    with pytest.raises(ModelUnavailable, match="unknown method"):
        store.get("no-such-method")
    assert "[no weights yet]" in {m.name: m for m in empty.methods()}["voxel"].label


# ---- end to end --------------------------------------------------------------------------------


def test_run_writes_downloads_in_a_session_folder_and_cleans_up(reconstructor, tiny_benchmark):
    image, _ = _val_view(tiny_benchmark)
    rec = reconstructor.run(image, "clustering", session="s1")
    stages = ["preprocess", "network", "mesh extraction", "colouring", "export"]
    assert list(rec.timings) == stages
    assert all(t >= 0 for t in rec.timings.values())
    assert rec.n_faces > 0 and rec.n_vertices > 0
    session_dir = reconstructor.sessions.root / "s1"
    assert all(p.is_file() and session_dir in p.parents for p in rec.files.downloads())
    # the cluster mean shape is what was exported
    glb = trimesh.load(rec.files.glb, force="mesh", process=False)
    assert np.allclose(glb.bounds, rec.mesh.bounds, atol=1e-5)
    other = reconstructor.run(image, "retrieval", session="s2")
    assert other.prediction.info["retrieved"].startswith("train/")
    reconstructor.sessions.cleanup("s1")
    assert not session_dir.exists() and (reconstructor.sessions.root / "s2").is_dir()
    assert reconstructor.sessions.sweep(max_age_s=3600) == 0
    assert reconstructor.sessions.sweep(max_age_s=-1) == 1


def test_run_rejects_bad_input_before_loading_anything(reconstructor, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        reconstructor.run(bad, "clustering")


def test_known_val_example_is_compared_with_its_ground_truth(
    reconstructor, tiny_benchmark, tmp_path
):
    image, item_id = _val_view(tiny_benchmark)
    reconstructor.known_items[file_sha256(image)] = item_id
    prepared, found = reconstructor.prepare_input(image)
    assert found == item_id
    # a benchmark view is fed as rendered: same pixels, no re-centring
    from svr.data.dataset import load_view

    assert prepared.image.shape[:2] == (reconstructor.input_size, reconstructor.input_size)
    rec = reconstructor.run(prepared, "clustering")
    cmp = compare_with_ground_truth(tiny_benchmark, item_id, rec, tmp_path)
    bench = Benchmark(tiny_benchmark)
    expected = score_item(rec.prediction, bench.ground_truth(bench.item(item_id, "val")))
    assert cmp.fscore == pytest.approx(expected.fscore[0.01])
    assert cmp.iou == pytest.approx(expected.iou)
    assert cmp.figure.is_file() and cmp.gt_glb.is_file()
    gt_mesh = trimesh.load(cmp.gt_glb, force="mesh", process=False)
    assert gt_mesh.bounds.max() <= 0.5 + 1e-6
    with pytest.raises(ValueError, match="not shown"):
        compare_with_ground_truth(tiny_benchmark, item_id, rec, tmp_path, split="test")
    assert load_view(image, 32).shape == (32, 32, 3)


def test_recognise_lists_nearest_training_shapes_and_cluster(reconstructor, store, tiny_benchmark):
    image, _ = _val_view(tiny_benchmark)
    rec = reconstructor.run(image, "retrieval")
    shapes = recognise(store, rec, k=3)
    retrieved = [s for s in shapes if s.source == "retrieval"]
    clusters = [s for s in shapes if s.source == "clustering"]
    assert len(retrieved) == 3 and len(clusters) == 1
    # the nearest shape in the embedding is the shape the retrieval method answered with ...
    assert retrieved[0].key == rec.prediction.info["retrieved"]
    # ... so the F-score between the output and it is (nearly) perfect
    assert retrieved[0].fscore > 0.95
    dists = [float(s.note.rsplit(" ", 1)[1]) for s in retrieved]
    assert dists == sorted(dists)
    for s in shapes:
        assert s.render.shape == (160, 160, 3) and s.render.min() < 200  # something was drawn
        assert 0.0 <= s.fscore <= 1.0


# ---- preparation and settings -----------------------------------------------------------------


def test_preparation_runs_steps_in_order_with_progress():
    seen, gate = [], threading.Event()

    def slow(progress):
        for i in range(3):
            progress(i + 1, 3)
            seen.append(i)
        gate.wait(5)

    prep = Preparation(
        [Step("first", slow), Step("skipped", lambda p: seen.append("no"), skip_if=lambda: True)]
    )
    finished = []
    prep.on_finish(lambda: finished.append(True))
    assert prep.status().state == "idle"
    prep.start()
    deadline = time.time() + 5
    while prep.status().done < 3 and time.time() < deadline:
        time.sleep(0.01)
    status = prep.status()
    assert status.state == "running" and (status.done, status.total) == (3, 3)
    assert "Preparing (1/2) first: 3/3 (100%)" in status.line()
    gate.set()
    assert prep.join(5)
    assert prep.status().state == "done" and finished == [True]
    assert seen == [0, 1, 2] and "already there" in prep.status().log[-1]


def test_preparation_reports_failure():
    def boom(progress):
        raise RuntimeError("disk full")

    prep = Preparation([Step("build", boom)])
    prep.start()
    assert prep.join(5)
    assert prep.status().state == "failed"
    assert "disk full" in prep.status().line()


def test_settings_defaults_and_errors(tmp_path):
    s = Settings.from_env({})
    assert s.home == Path.home() / ".local" / "share" / "svr-what3d"
    assert s.benchmark_dir == s.home / "benchmark"
    assert s.models_dir.name == "models" and s.models_dir.parent.name == "assets"
    assert s.prepare and s.preset == "default" and s.server_port == 7860
    s = Settings.from_env(
        {
            "SVR_HOME": str(tmp_path),
            "SVR_PREPARE": "0",
            "SVR_PRESET": "small",
            "GRADIO_SERVER_PORT": "9001",
        }
    )
    assert s.home == tmp_path and s.benchmark_dir == tmp_path / "benchmark"
    assert not s.prepare and s.preset == "small" and s.server_port == 9001
    with pytest.raises(ValueError, match="SVR_PREPARE"):
        Settings.from_env({"SVR_PREPARE": "maybe"})
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT"):
        Settings.from_env({"GRADIO_SERVER_PORT": "http"})


# ---- what a method saw, and from where: the report and the viewer's camera ------------------


def test_view_estimate_reads_the_info_and_refuses_what_is_malformed():
    from svr.viewpoint import ViewEstimate

    e = ViewEstimate.from_info(
        {"predicted_class": "chair", "class_probability": 0.8, "azimuth": -30.0, "elevation": 20}
    )
    assert (e.predicted_class, e.class_probability, e.azimuth, e.elevation) == (
        "chair", 0.8, 330.0, 20.0,
    )  # fmt: skip
    assert e.has_camera and e.camera().position[2] > 0  # azimuth 330: in front, to the left
    old = ViewEstimate.from_info({"predicted_class": "chair", "class_probability": 0.5})
    assert not old.has_camera and old.camera() is None and old.azimuth is None
    assert "no camera estimate" in old.camera_text()
    for bad in (
        {"azimuth": float("nan"), "elevation": 10.0},
        {"azimuth": 10.0},
        {"azimuth": "10", "elevation": 10.0},
        {"azimuth": True, "elevation": 10.0},
    ):
        assert not ViewEstimate.from_info(bad).has_camera, bad
    assert ViewEstimate.from_info({"predicted_class": "dragon"}).predicted_class is None
    assert ViewEstimate.from_info(None) == ViewEstimate()


def test_viewer_camera_by_hand_and_against_babylons_formula():
    from svr.viewpoint import DEFAULT_VIEWER_CAMERA, NOMINAL_DISTANCE, ViewEstimate, viewer_camera

    def cam(az, el):
        return viewer_camera(ViewEstimate(azimuth=az, elevation=el))

    d = NOMINAL_DISTANCE
    assert cam(0.0, 0.0) == (90.0, 90.0, d)  # in front of the object, on +z
    assert cam(90.0, 0.0) == (0.0, 90.0, d)  # on its right-hand side, +x
    assert cam(270.0, 30.0) == (180.0, 60.0, d)  # on its left, from above
    assert cam(135.0, -10.0) == (315.0, 100.0, d)  # behind on the right, from below
    assert viewer_camera(ViewEstimate()) == DEFAULT_VIEWER_CAMERA == (90.0, 75.0, None)
    # Babylon's ArcRotateCamera (gradio 6.31's Model3D, right-handed scene) sits at
    # r (cos(alpha) sin(beta), cos(beta), sin(alpha) sin(beta)): the benchmark camera's place
    rng = np.random.default_rng(0)
    for az, el in zip(rng.uniform(0, 360, 20), rng.uniform(-20, 50, 20), strict=True):
        estimate = ViewEstimate(azimuth=float(az), elevation=float(el))
        alpha, beta, radius = (np.deg2rad(v) if i < 2 else v for i, v in enumerate(cam(az, el)))
        babylon = radius * np.array(
            [np.cos(alpha) * np.sin(beta), np.cos(beta), np.sin(alpha) * np.sin(beta)]
        )
        assert np.allclose(babylon, estimate.camera().position, atol=1e-4)


def test_method_report_lists_class_camera_and_file_names(reconstructor, tiny_benchmark):
    from svr.report import MethodReport

    image, _ = _val_view(tiny_benchmark)
    rec = reconstructor.run(image, "voxel")
    report = MethodReport.from_reconstruction(rec, "encoder-decoder", names_only=True).to_dict()
    assert report["files"]["glb"] == rec.files.glb.name
    assert report["azimuth"] == rec.estimate.azimuth == rec.prediction.info["azimuth"]
    assert report["predicted_class"] == rec.prediction.info["predicted_class"]
    assert report["colored"] is rec.colored is True
    failed = MethodReport.failed("atlas", "encoder-decoder", "no weights").to_dict()
    assert failed["error"] == "no weights" and failed["files"] == {} and failed["azimuth"] is None


# ---- colouring from the photo -----------------------------------------------------------------

_PALETTE = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], float)


def _cube_sides(mesh: trimesh.Trimesh, half: np.ndarray) -> np.ndarray:
    """Per vertex of a box with half-extents `half`: the side it lies on, 2 * axis + (sign > 0),
    or -1 for vertices on an edge (two sides)."""
    on = np.isclose(np.abs(mesh.vertices), half)
    axis = np.argmax(on, axis=1)
    positive = mesh.vertices[np.arange(len(mesh.vertices)), axis] > 0
    return np.where(on.sum(axis=1) == 1, 2 * axis + positive, -1)


def test_colorize_a_box_by_hand():
    """A box with one flat colour per side, rendered without shading from azimuth 30,
    elevation 20 (sides +x, +y, +z face the camera), re-centred as the app does: the visible
    sides' vertices get exactly their side's colour, the others grey."""
    from svr.colorize import HIDDEN_GREY, colorize
    from svr.preprocess import crop_and_center
    from svr.render import Camera, render

    half = np.array([0.4, 0.25, 0.3])
    box = trimesh.creation.box(extents=2 * half).subdivide().subdivide().subdivide()
    normal_axis = np.argmax(np.abs(box.face_normals), axis=1)
    face_side = 2 * normal_axis + (box.face_normals[np.arange(len(box.faces)), normal_axis] > 0)
    photo = render(box, _PALETTE[face_side], Camera(30, 20, 1.9), image_size=256, ambient=1.0)
    image = crop_and_center(photo, photo[..., 3] >= 128, 0.67, 137)
    # the estimate: azimuth and elevation only, at the nominal distance, not the true 1.9
    colors = colorize(box, image, Camera(30, 20, 2.1))
    sides = _cube_sides(box, half)
    for side in range(6):
        on_side = sides == side
        assert on_side.sum() == 49
        if side in (1, 3, 5):  # +x, +y, +z
            assert colors.visible[on_side].all() and colors.sampled[on_side].all()
            expected = np.round(255 * _PALETTE[side]).astype(int)
            assert np.abs(colors.colors[on_side, :3].astype(int) - expected).max() <= 2, side
        else:
            assert not colors.visible[on_side].any()
            assert (colors.colors[on_side] == HIDDEN_GREY).all(), side
    # 2 * 8 = 16 side vertices per face-edge: the three visible faces' scale was fitted
    assert 0.5 < colors.sampled_share < 0.6 and colors.scale > 0


def test_colorize_a_benchmark_view_with_its_true_camera(tiny_benchmark):
    """The chair of the tiny benchmark with its faces coloured by octant (a colour per part
    that can be computed by hand), rendered flat at 137 px from view 0's camera
    (cameras.json), coloured from that image with the view's azimuth and elevation only.

    Where the image shows one part all around a vertex's true pixel (5 x 5) and the vertex
    faces the camera, a vertex found visible must carry exactly that part's colour; vertices
    facing away from the camera must be grey. (The mesh is subdivided first, same surface,
    so that many vertices lie inside parts rather than on their edges.)"""
    from scipy import ndimage

    from svr.colorize import HIDDEN_GREY, colorize
    from svr.render import Camera, render

    bench = Benchmark(tiny_benchmark)
    item = bench.item("chair/0601cd9c/0", "val")
    gt = bench.ground_truth(item, with_mesh=True).mesh
    mesh = trimesh.Trimesh(gt.vertices, gt.faces, process=False).subdivide().subdivide()
    true = bench.cameras(item.shape)[item.view]
    palette = np.array([[r, g, b] for r in (0.2, 0.9) for g in (0.2, 0.9) for b in (0.2, 0.9)])
    face_part = (mesh.triangles_center > 0) @ np.array([4, 2, 1])
    camera = Camera(true["azimuth"], true["elevation"], true["distance"], true["fov"])
    photo = render(mesh, palette[face_part], camera, image_size=137, ambient=1.0)
    colors = colorize(mesh, photo, Camera(true["azimuth"], true["elevation"], 2.1))
    # the part each pixel shows (-1: background or a blend at a part's edge)
    distance = np.abs(
        photo[..., None, :3].astype(int) - np.round(255 * palette).astype(int)[None, None]
    ).max(axis=-1)
    shown = np.where((photo[..., 3] >= 128) & (distance.min(-1) <= 2), distance.argmin(-1), -1)
    lowest = ndimage.minimum_filter(shown, size=5, mode="constant", cval=-1)
    highest = ndimage.maximum_filter(shown, size=5, mode="constant", cval=-1)
    # the part of each vertex where all its faces agree (-2: on a part's edge)
    parts = np.full(len(mesh.vertices), -1)
    for corner in range(3):
        v = mesh.faces[:, corner]
        parts[v] = np.where((parts[v] == -1) | (parts[v] == face_part), face_part, -2)
    col, row = np.floor(camera.project(mesh.vertices, 137)).astype(int).T
    inside = (col >= 0) & (col < 137) & (row >= 0) & (row < 137)
    row, col = np.clip(row, 0, 136), np.clip(col, 0, 136)
    towards = camera.position - mesh.vertices
    facing = np.einsum("ij,ij->i", mesh.vertex_normals, towards) / np.linalg.norm(towards, axis=1)
    clear = inside & (parts >= 0) & (lowest[row, col] == parts) & (highest[row, col] == parts)
    clear &= facing > 0.2
    seen = clear & colors.visible
    assert seen.sum() > 100, (clear.sum(), seen.sum())
    expected = np.round(255 * palette[parts[seen]]).astype(int)
    error = np.abs(colors.colors[seen, :3].astype(int) - expected).max(axis=1)
    assert (error <= 8).mean() > 0.98, (error <= 8).mean()
    # every face around the vertex turns away from the camera: on a closed surface the ray
    # from the camera must pass through the surface before it reaches the vertex
    face_facing = np.einsum("ij,ij->i", mesh.face_normals, camera.position - mesh.triangles_center)
    most = np.full(len(mesh.vertices), -np.inf)
    for corner in range(3):
        np.maximum.at(most, mesh.faces[:, corner], face_facing)
    away = most < -0.05  # (3 of 3,236 lie on a seam that both ray tests below see)
    assert away.sum() > 100 and colors.visible[away].mean() < 0.002
    assert (colors.colors[away & ~colors.visible] == HIDDEN_GREY).all()
    # visibility agrees with a depth test: the first surface on the ray from the camera
    # centre through the vertex is at the vertex's distance
    eye = colors.camera.position
    rays = mesh.vertices - eye
    depth = np.linalg.norm(rays, axis=1)
    _, index, hits = mesh.ray.intersects_id(
        np.broadcast_to(eye, rays.shape),
        rays / depth[:, None],
        multiple_hits=False,
        return_locations=True,
    )
    first = np.full(len(rays), np.inf)
    first[index] = np.linalg.norm(hits - eye, axis=1)
    assert ((first >= depth - 1e-3) == colors.visible).mean() > 0.99
    assert (colors.colors[~colors.visible] == HIDDEN_GREY).all()


def test_the_fitted_projection_is_the_true_one_for_a_view_fed_as_rendered(tiny_benchmark):
    """A benchmark view fed as rendered (no re-centring): fitting scale and offset to the
    silhouette from the nominal distance recovers the true camera's pixels within a pixel."""
    from svr.colorize import colorize
    from svr.data.dataset import load_view
    from svr.preprocess import preprocess
    from svr.render import Camera

    bench = Benchmark(tiny_benchmark)
    item = bench.item("car/fda5b6a2/1", "val")
    true = bench.cameras(item.shape)[item.view]
    gt = bench.ground_truth(item, with_mesh=True).mesh
    mesh = trimesh.Trimesh(gt.vertices, gt.faces, process=False)
    prepared = preprocess(bench.image_path(item), size=137, recenter=False)
    colors = colorize(mesh, prepared.image, Camera(true["azimuth"], true["elevation"], 2.1))
    exact = Camera(true["azimuth"], true["elevation"], true["distance"], true["fov"])
    truth = exact.project(mesh.vertices, true["image_size"]) * 137 / true["image_size"]
    fitted = colors.scale * colors.camera.project(mesh.vertices, 137) + colors.offset
    assert np.abs(fitted - truth).max(axis=1).mean() < 1.0
    assert load_view(bench.image_path(item), 32).shape == (32, 32, 3)


def test_export_carries_the_colours_in_glb_obj_and_ply_and_keeps_the_geometry(tmp_path):
    pred = _box_prediction()
    mesh = pred.to_mesh()
    colors = np.tile(np.array([[200, 30, 40, 255]], np.uint8), (len(mesh.vertices), 1))
    colors[::2] = (10, 220, 30, 255)
    plain, _, _ = export_prediction(pred, tmp_path / "plain", "box")
    colored, _, _ = export_prediction(pred, tmp_path / "colored", "box", vertex_colors=colors)
    for fmt in ("glb", "obj", "ply"):
        a = trimesh.load(getattr(plain, fmt), force="mesh", process=False)
        b = trimesh.load(getattr(colored, fmt), force="mesh", process=False)
        assert np.allclose(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces), fmt
        got = {tuple(c) for c in np.asarray(b.visual.vertex_colors)[:, :3]}
        assert got == {(200, 30, 40), (10, 220, 30)}, fmt
    with pytest.raises(ValueError, match="vertex_colors must be uint8"):
        export_prediction(pred, tmp_path, "box", vertex_colors=colors[:-1])


def test_run_colours_by_default_and_recolor_toggles_without_rerunning(
    reconstructor, tiny_benchmark
):
    from svr.colorize import HIDDEN_GREY
    from svr.export import MESH_GREY

    image, _ = _val_view(tiny_benchmark)
    rec = reconstructor.run(image, "voxel")  # tiny weights: heads (untrained) give a camera
    assert rec.estimate.has_camera and rec.colored and "coloured from the photo" in rec.color_note
    vertex = np.asarray(trimesh.load(rec.files.ply, process=False).visual.vertex_colors)
    assert np.array_equal(vertex, rec.colors.colors)
    assert (vertex[~rec.colors.sampled] == HIDDEN_GREY).all()
    off = reconstructor.recolor(rec, False)
    assert not off.colored and "off" in off.color_note and off.files.glb != rec.files.glb
    grey = trimesh.load(off.files.glb, force="mesh", process=False)
    assert {tuple(c) for c in np.asarray(grey.visual.vertex_colors)} == {MESH_GREY}
    assert off.prediction is rec.prediction and off.colors is rec.colors  # nothing recomputed
    on = reconstructor.recolor(off, True)
    assert on.colored and on.color_note == rec.color_note
    assert list(on.timings) == list(rec.timings)
    for fmt in ("glb", "obj", "ply", "stl"):  # same geometry and orientation, coloured or not
        a = trimesh.load(getattr(on.files, fmt), force="mesh", process=False)
        b = trimesh.load(getattr(off.files, fmt), force="mesh", process=False)
        assert np.allclose(a.bounds, b.bounds) and np.allclose(a.bounds, rec.mesh.bounds), fmt


def test_weights_without_heads_report_no_camera_and_stay_grey(tmp_path_factory, tiny_benchmark):
    from view_weights import pinned_weights

    store = ModelStore(pinned_weights(tmp_path_factory, tiny_benchmark))
    rec = Reconstructor(store, SessionFiles(tmp_path_factory.mktemp("s"))).run(
        _val_view(tiny_benchmark)[0], "retrieval"
    )
    assert rec.estimate.predicted_class is not None and not rec.estimate.has_camera
    assert rec.colors is None and not rec.colored and "no camera estimate" in rec.color_note


def test_default_method_is_one_constant_with_a_fallback(store, tmp_path):
    from svr.models import available_models
    from svr.store import DEFAULT_METHOD

    assert DEFAULT_METHOD in available_models(demo_only=True)  # a demo method's name
    with_weights = [m.name for m in store.methods() if m.has_weights]  # the tiny weights
    expected = DEFAULT_METHOD if DEFAULT_METHOD in with_weights else with_weights[0]
    assert store.default_method() == expected
    partial = tmp_path / "models"
    (partial / "voxel").mkdir(parents=True)
    (partial / "voxel" / "config.json").write_text("{}")
    assert ModelStore(partial).default_method() == "voxel"  # the first with weights
    assert ModelStore(tmp_path / "none").default_method() == "clustering"  # first registered
