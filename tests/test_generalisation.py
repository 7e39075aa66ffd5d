"""Generalisation measurements: cluster classes, frame, rotation grid, best-rotation F-score,
the photo test table on tiny weights and the photo test pool of a secret benchmark."""

from __future__ import annotations

import gzip
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh
from app_helpers import shared_tiny_weights

from svr.data.build import Preset, build_benchmark
from svr.data.layout import Benchmark
from svr.data.pool import PoolSpec, _mesh_and_parts, build_pool
from svr.data.realshapes import (
    RELEASE_TO_OBJECT,
    ClusterLabel,
    ClusterMeans,
    cluster_labels,
    read_cluster_labels,
    to_object_frame,
)
from svr.data.secret import TestSecret
from svr.evaluation import DEFAULT_PROTOCOL, Scorer
from svr.generalisation import (
    F_PROTOCOL,
    AlignTarget,
    RealRow,
    RealView,
    Surface,
    best_rotation_fscore,
    class_accuracy,
    evaluate_photo_test,
    evaluate_real_views,
    format_confusions,
    format_photo_table,
    format_real_table,
    fscore_within,
    identity_index,
    load_photo_test,
    rotation_grid,
)
from svr.io import binvox_bytes
from svr.metrics import fscore
from svr.models import load_model
from svr.types import Prediction

QUIET = {"progress": lambda done, total: None, "workers": 1}

LABEL_LINES = [
    "chair/a1/0.png 0",
    "chair/a1/1.png 0",
    "chair/a2/0.png 0",
    "table/b1/0.png 0",
    "",
    "vessel/c1/0.png 1",
    "vessel/c1/1.png 1",
    "cellular/d1/0.png 2",
    "cellular/d2/0.png 2",
    "telephone/d3/0.png 2",
    "sofa/e1/0.png 3",
    "bench/e2/0.png 3",
]


# ------------------------------------------------------------------------------------------------
# Cluster classes and frame
# ------------------------------------------------------------------------------------------------


def test_cluster_classes_from_a_hand_made_label_file(tmp_path: Path) -> None:
    path = tmp_path / "val.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(LABEL_LINES) + "\n")
    labels = read_cluster_labels(path)
    assert labels == cluster_labels(LABEL_LINES)
    assert labels[0] == ClusterLabel(0, "chair", "chair", 0.75, 4)
    assert labels[1] == ClusterLabel(1, "vessel", "watercraft", 1.0, 2)  # release name mapped
    # ShapeNet's cellular telephone is not our telephone (04401088)
    assert labels[2].release_class == "cellular" and labels[2].class_name is None
    assert labels[3].release_class == "bench" and labels[3].purity == 0.5  # tie: by name
    with pytest.raises(ValueError, match="line 2"):
        cluster_labels(["chair/a/0.png 1", "chair/a/0.png seven"])


def _fake_release(folder: Path, grids: dict[int, np.ndarray]) -> Path:
    folder.mkdir()
    with gzip.open(folder / "val_images_true_cluster.txt.gz", "wt") as f:
        f.write("\n".join(LABEL_LINES) + "\n")
    with zipfile.ZipFile(folder / "cluster_mean_shapes.zip", "w") as z:
        for k, g in grids.items():
            z.writestr(f"binvox_mean/{k}.binvox", binvox_bytes(g))
    return folder


def test_release_grids_are_turned_into_our_object_frame(tmp_path: Path) -> None:
    # a "chair": a seat slab, and a back on the release's back side (+z: front -z)
    g = np.zeros((128, 128, 128), bool)
    g[30:98, 40:50, 30:98] = True
    g[30:98, 50:110, 88:98] = True
    means = ClusterMeans(_fake_release(tmp_path / "release", {0: g, 3: g[:, :, ::-1].copy()}))
    assert [lab.cluster for lab in means.kept()] == [0, 1, 3]  # chair, watercraft, bench
    assert [lab.cluster for lab in means.kept(["bench"])] == [3]
    assert np.array_equal(means.grid(0), g) and np.array_equal(means.grid(3), g[:, :, ::-1])

    # to_object_frame is exactly the rotation RELEASE_TO_OBJECT of the voxel centres
    def centres(grid: np.ndarray) -> np.ndarray:
        pts = -0.5 + (np.argwhere(grid) + 0.5) / grid.shape[0]
        return pts[np.lexsort(pts.T[::-1])]

    turned = centres(g) @ RELEASE_TO_OBJECT.T
    assert np.allclose(centres(to_object_frame(g)), turned[np.lexsort(turned.T[::-1])])
    assert np.allclose(RELEASE_TO_OBJECT @ RELEASE_TO_OBJECT.T, np.eye(3))
    assert np.linalg.det(RELEASE_TO_OBJECT) == pytest.approx(1.0)
    mesh = means.mesh(0)
    lo, hi = mesh.bounds
    assert np.allclose((lo + hi) / 2, 0, atol=1e-9) and (hi - lo).max() == pytest.approx(1.0)
    back = mesh.vertices[mesh.vertices[:, 1] > 0.2]  # the back rises above the seat...
    assert back[:, 2].mean() < -0.3  # ...behind it: our front is +z
    with pytest.raises(ValueError, match="no binvox_mean/7"):
        means.grid(7)
    with pytest.raises(FileNotFoundError, match="lacks"):
        ClusterMeans(tmp_path)


# ------------------------------------------------------------------------------------------------
# Rotation grid and best-rotation F-score
# ------------------------------------------------------------------------------------------------


def test_rotation_grid_is_proper_distinct_and_holds_the_identity() -> None:
    grid = rotation_grid(24, (-30, -15, 0, 15, 30))
    assert grid.shape == (120, 3, 3)
    eye = np.broadcast_to(np.eye(3), grid.shape)
    assert np.allclose(grid @ grid.transpose(0, 2, 1), eye, atol=1e-12)
    assert np.allclose(np.linalg.det(grid), 1.0)
    assert np.allclose(grid[identity_index(grid)], np.eye(3))
    flat = grid.reshape(len(grid), 9)
    gaps = np.abs(flat[:, None] - flat[None]).max(-1) + np.eye(len(grid))
    assert gaps.min() > 0.1  # no rotation twice
    # the up axis stays up without tilt; a tilt moves it by the tilt angle
    up = grid @ np.array([0.0, 1.0, 0.0])
    tilt = np.degrees(np.arccos(np.clip(up[:, 1], -1, 1))).reshape(5, 24)
    assert np.allclose(tilt, np.abs(np.array([-30, -15, 0, 15, 30]))[:, None], atol=1e-9)
    with pytest.raises(ValueError, match="identity"):
        identity_index(rotation_grid(8, (15.0,)))
    with pytest.raises(ValueError):
        rotation_grid(0)


def _l_shape() -> trimesh.Trimesh:
    """An asymmetric shape: a long bar, a post at one end and a fin, normalised."""
    move = trimesh.transformations.translation_matrix
    parts = [
        trimesh.creation.box((1.0, 0.12, 0.2)),
        trimesh.creation.box((0.12, 0.5, 0.2), move((0.44, 0.3, 0))),
        trimesh.creation.box((0.3, 0.05, 0.35), move((-0.3, 0.08, 0.2))),
    ]
    mesh = trimesh.util.concatenate(parts)
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(1 / (hi - lo).max())
    return mesh


def test_fscore_within_equals_the_project_fscore() -> None:
    rng = np.random.default_rng(3)
    target = AlignTarget(rng.uniform(-0.5, 0.5, (3000, 3)))
    for noise in (0.002, 0.006, 0.02):
        pred = target.points[:2000] + rng.normal(scale=noise, size=(2000, 3))
        for t in (0.005, 0.01, 0.05):
            assert fscore_within(pred, target, t) == fscore(pred, target.points, t)["fscore"]
    assert fscore_within(np.zeros((0, 3)), target) == 0.0


def test_best_rotation_recovers_a_rotated_copy_and_the_aligned_score_does_not() -> None:
    mesh = _l_shape()
    target = AlignTarget.from_mesh(mesh)  # samples with seed 1
    plain = Surface.from_mesh(mesh)  # seed 0
    unrotated = fscore_within(plain.normalised(), target)
    assert 0.3 < unrotated < 0.95  # two independent samplings of one surface
    grid = rotation_grid()
    score = best_rotation_fscore(plain, target, grid)
    assert score.rotation == identity_index(grid) and score.best == score.aligned == unrotated
    for k in (7, 24 * 3 + 17, 24 * 4 + 12):  # azimuth 105; tilt 15, az 255; tilt 30, az 180
        turned = mesh.copy()
        turned.vertices = mesh.vertices @ grid[k]  # R_k^T x: grid rotation k undoes it
        score = best_rotation_fscore(Surface.from_mesh(turned), target, grid)
        assert score.rotation == k
        assert score.best == pytest.approx(unrotated, abs=1e-3)
        assert score.aligned < unrotated - 0.2  # a wrong frame is punished without the grid
    empty = best_rotation_fscore(Surface(np.zeros((0, 3)), np.zeros((0, 3))), target, grid)
    assert empty.best == empty.aligned == 0.0


def test_real_rows_score_every_view_with_the_same_grid() -> None:
    mesh = _l_shape()
    targets = {5: AlignTarget.from_mesh(mesh)}
    image = np.zeros((8, 8, 3), np.uint8)
    views = [RealView(5, "bench", v, image) for v in range(3)]
    grid = rotation_grid(12, (0.0,))
    turned = mesh.copy()
    turned.vertices = mesh.vertices @ grid[4]

    def predict(chunk):
        return [Prediction("m", mesh=turned, info={"predicted_class": "bench"}) for _ in chunk]

    row = evaluate_real_views("m", views, targets, grid, predict, batch_size=2)
    assert row.items == 3 and row.accuracy == 1.0 and (row.rotation == 4).all()
    assert (row.best > row.aligned + 0.2).all()
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    ref = evaluate_real_views(
        "sphere", views, targets, grid, lambda c: [Prediction("s", mesh=sphere) for _ in c]
    )
    assert ref.accuracy is None and (ref.best >= ref.aligned).all()
    table = format_real_table([row, ref])
    assert "| m | 3 | 100.0 % |" in table and "| sphere | 3 | n/a |" in table


def test_class_accuracy_reads_predicted_class_or_says_none() -> None:
    def pred(info):
        return Prediction("x", points=np.zeros((1, 3)), info=info)

    preds = [pred({"predicted_class": "car"}), pred({"predicted_class": "sofa"})]
    assert class_accuracy(preds, ["car", "car"]) == 0.5
    assert class_accuracy([pred({}), pred({})], ["car", "car"]) is None
    with pytest.raises(ValueError):
        class_accuracy(preds, ["car"])


def test_confusions_count_right_answers_and_the_commonest_wrong_one() -> None:
    def row(name, predicted):
        n = len(predicted)
        z = np.zeros(n)
        classes = ["table"] * 4 + ["car"] * 2
        return RealRow(name, None, z, z, z.astype(np.int64), classes=classes, predicted=predicted)

    a = row("a", ["table", "rifle", "rifle", "bench", "car", "car"])
    # a tie between bench and rifle goes to bench (CLASS_NAMES order); None is "none"
    b = row("b", ["bench", "rifle", None, None, "car", "sofa"])
    silent = row("sphere", [None] * 6)
    table = format_confusions([a, b, silent]).splitlines()
    assert table[0] == "| class | a | b |"
    assert table[2] == "| car | 2/2 | 1/2, sofa x1 |"
    assert table[3] == "| table | 1/4, rifle x2 | 0/4, none x2 |"
    assert format_confusions([silent]) == ""


# ------------------------------------------------------------------------------------------------
# Photo-style test set
# ------------------------------------------------------------------------------------------------


class _ConstantModel:
    """A stand-in method: the same sphere for every input, no class reported."""

    def __init__(self) -> None:
        self.mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.4)

    def reconstruct(self, images):
        return [Prediction("constant", mesh=self.mesh) for _ in images]

    def reconstruct_items(self, benchmark, items):
        return self.reconstruct(items)


@pytest.fixture(scope="module")
def photo_test(tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("photo_test") / "pool"
    spec = PoolSpec(split="test", views=1, family="heldout", image_size=32)
    build_pool(tiny_benchmark, out, spec, workers=1, progress=lambda d, t: None)
    return out


def test_photo_table_on_tiny_weights(
    tiny_benchmark: Path, photo_test: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    weights = shared_tiny_weights(tmp_path_factory, tiny_benchmark)
    test = load_photo_test(tiny_benchmark, photo_test, per_class=1, seed=0)
    assert len(test.items) == 13 and test.family == "heldout"
    assert sorted(set(test.classes)) == sorted(Benchmark(tiny_benchmark).class_names)
    assert test.photos.shape == (13, 32, 32, 3) and test.photos.dtype == np.uint8
    again = load_photo_test(tiny_benchmark, photo_test, per_class=1, seed=0)
    assert [it.item_id for it in again.items] == [it.item_id for it in test.items]
    models = {name: load_model(name, weights / name) for name in ("clustering", "voxel")}
    models["constant"] = _ConstantModel()
    protocol = replace(F_PROTOCOL, n_samples=2000)  # fewer samples: a faster test
    rows = evaluate_photo_test(models, test, protocol, batch_size=5)
    assert [r.method for r in rows] == ["clustering", "voxel", "constant"]
    by = {r.method: r for r in rows}
    for r in rows:
        assert r.items == 13
        assert ((r.fscore_photo >= 0) & (r.fscore_photo <= 1)).all()
    assert 0 <= by["clustering"].accuracy_photo <= 1 and 0 <= by["clustering"].accuracy_clean <= 1
    # the same answer for a photo and its clean view: the same score, ratio 1, no class
    const = by["constant"]
    assert np.array_equal(const.fscore_photo, const.fscore_clean) and const.ratio == 1.0
    assert const.accuracy_photo is None and const.fscore_clean.mean() > 0
    # clean F-scores are the leaderboard Scorer's (with IoU, the F-score is unchanged)
    bench = Benchmark(tiny_benchmark)
    item = test.items[3]
    pred = models["clustering"].reconstruct_items(bench, [item])[0]
    with_iou = replace(DEFAULT_PROTOCOL, n_samples=2000)
    ref = Scorer(with_iou).score(pred, bench.ground_truth(item))
    assert by["clustering"].fscore_clean[3] == ref.fscore[0.01]
    table = format_photo_table(rows)
    assert table.count("\n") == 4 and "| constant | 13 | n/a | n/a |" in table
    assert "| 1.00 (1.00-1.00) |" in table


def test_photo_test_refuses_other_pools(tiny_benchmark: Path, tmp_path: Path) -> None:
    bench = Benchmark(tiny_benchmark)
    with pytest.raises(FileNotFoundError, match="--split test --family heldout"):
        load_photo_test(bench, tmp_path)
    info = {"benchmark": bench.meta.identifier, "split": "val", "family": "heldout"}
    (tmp_path / "pool.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not the test split"):
        load_photo_test(bench, tmp_path)
    (tmp_path / "pool.json").write_text(json.dumps({**info, "benchmark": "other-1.0-abc"}))
    with pytest.raises(ValueError, match="rendered from other"):
        load_photo_test(bench, tmp_path)


def test_photo_test_pool_of_a_secret_benchmark(tmp_path: Path) -> None:
    preset = Preset("micro", train=1, val=0, test=2, views=1, image_size=16,
                    classes=("chair", "table", "telephone"))  # fmt: skip
    root = tmp_path / "bench"
    build_benchmark(root, preset=preset, test_secret=TestSecret.from_text("x" * 20), **QUIET)
    bench = Benchmark(root)
    assert bench.meta.test_split == "secret"
    # test shape ids are not seeds: the pool renders the benchmark's own mesh (drawn parts),
    # while public shapes are regenerated with their part ids
    for ref in bench.shapes("test"):
        mesh, parts = _mesh_and_parts(str(root), ref, procedural=True)
        assert parts is None and len(mesh.faces) > 0
    train_ref = bench.shapes("train")[0]
    assert _mesh_and_parts(str(root), train_ref, procedural=True)[1] is not None
    out = tmp_path / "photo"
    spec = PoolSpec(split="test", views=1, family="heldout", image_size=32)
    info = build_pool(root, out, spec, workers=1, progress=lambda d, t: None)
    assert info["shapes"] == 6 and info["images"] == 6 and info["split"] == "test"
    test = load_photo_test(bench, out)
    assert len(test.items) == 6 and all(it.view == 0 for it in test.items)
    assert {it.shape.shape_id for it in test.items} == {r.shape_id for r in bench.shapes("test")}
    assert all(photo.std() > 5 for photo in test.photos)  # an object, not a blank image
