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
    assert list(rec.timings) == ["preprocess", "network", "mesh extraction", "export"]
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
