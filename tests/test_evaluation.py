"""svr.evaluation: protocol, representation conversions, per-item scores."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import trimesh

from svr.data.layout import compute_ground_truth, normalize_mesh
from svr.evaluation import (
    DEFAULT_PROTOCOL,
    PredictionData,
    Protocol,
    Scorer,
    metric_keys,
    missing_item_score,
    resample_occupancy,
    score_item,
    subsample_points,
)
from svr.geometry import voxelize_mesh
from svr.metrics import point_metrics, voxel_iou
from svr.types import Prediction

BOX_EXTENTS = (1.0, 0.6, 0.4)


@pytest.fixture(scope="module")
def box_gt():
    return compute_ground_truth(normalize_mesh(trimesh.creation.box(extents=BOX_EXTENTS)), seed=3)


@pytest.fixture(scope="module")
def sphere_gt():
    return compute_ground_truth(normalize_mesh(trimesh.creation.icosphere(subdivisions=3)), seed=5)


def _mesh_data(mesh: trimesh.Trimesh, shift=(0.0, 0.0, 0.0)) -> PredictionData:
    return PredictionData(vertices=mesh.vertices + np.asarray(shift), faces=mesh.faces)


# ------------------------------------------------------------------------------------------------
# Protocol
# ------------------------------------------------------------------------------------------------


def test_protocol_identifier_changes_with_every_field():
    base = Protocol()
    assert base.identifier == Protocol().identifier
    assert base.identifier.startswith("svr-eval-1-")
    changed = {
        "version": "svr-eval-2",
        "n_samples": 20_000,
        "seed": 1,
        "thresholds": (0.01, 0.02),
        "headline": 0.02,
        "iou_resolutions": (32,),
        "chamfer_l1_worst": 2.0,
        "chamfer_l2_worst": 3.0,
    }
    assert set(changed) == {f.name for f in dataclasses.fields(Protocol)}
    ids = {base.identifier}
    for name, value in changed.items():
        other = dataclasses.replace(base, **{name: value})
        assert other.identifier != base.identifier, name
        ids.add(other.identifier)
    assert len(ids) == len(changed) + 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.seed = 3  # type: ignore[misc]
    assert Protocol.from_dict(base.to_dict()) == base
    assert base.chamfer_worst == {"chamfer_l1": math.sqrt(3), "chamfer_l2": 6.0}
    assert base.headline_key == "fscore@0.01"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"headline": 0.03}, "headline"),
        ({"iou_resolutions": (64,)}, "iou_resolutions"),
        ({"thresholds": (0.01, -0.1)}, "positive"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_protocol_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**kwargs)


def test_metric_keys_match_to_dict(box_gt):
    keys = metric_keys(DEFAULT_PROTOCOL)
    assert keys[:2] == ["iou", "iou_128"]
    assert "fscore@0.005" in keys and "precision@0.2" in keys and "recall@0.01" in keys
    assert keys[-3:] == ["chamfer_l1", "chamfer_l2", "normal_consistency"]
    assert list(missing_item_score().to_dict()) == keys
    assert list(score_item(PredictionData(points=box_gt.points[:100]), box_gt).to_dict()) == keys


# ------------------------------------------------------------------------------------------------
# Perfect and imperfect predictions
# ------------------------------------------------------------------------------------------------


def test_perfect_mesh_scores_what_sampling_density_allows(box_gt):
    """A perfect prediction is limited only by sampling: with N uniform samples on area A, the
    chance that a point has no other-set sample within r is exp(-N pi r^2 / A), so F@r is
    about 1 - exp(-N pi r^2 / A). For the 1 x 0.6 x 0.4 box (A = 2.48) and N = 10,000 that is
    0.272 at 0.005, 0.718 at 0.01 and 0.994 at 0.02; a wrong definition (squared distances,
    <= instead of <, swapped sets, a unit error) lands far from these values."""
    s = score_item(_mesh_data(box_gt.mesh), box_gt)
    area = 2 * (1.0 * 0.6 + 1.0 * 0.4 + 0.6 * 0.4)
    n = DEFAULT_PROTOCOL.n_samples
    for t in (0.005, 0.01, 0.02):
        expected = 1 - math.exp(-n * math.pi * t * t / area)
        assert s.fscore[t] == pytest.approx(expected, abs=0.03), t
        assert s.precision[t] == pytest.approx(s.recall[t], abs=0.03)
    assert s.fscore[0.05] == 1.0 and s.fscore[0.2] == 1.0
    assert s.iou == 1.0 and s.iou_128 == 1.0
    assert 0.95 < s.normal_consistency <= 1.0
    # Mean nearest-neighbour distance of a 2-D Poisson process: 0.5 * sqrt(A / N).
    assert s.chamfer_l1 == pytest.approx(0.5 * math.sqrt(area / n), rel=0.1)
    assert not s.empty and s.kind == "mesh"


def test_shifted_mesh_scores_lower(box_gt):
    perfect = score_item(_mesh_data(box_gt.mesh), box_gt)
    shifted = score_item(_mesh_data(box_gt.mesh, (0.02, 0.0, 0.0)), box_gt)
    assert shifted.fscore[0.01] < perfect.fscore[0.01] - 0.1
    assert shifted.fscore[0.02] < perfect.fscore[0.02] - 0.1
    assert shifted.chamfer_l1 > perfect.chamfer_l1 and shifted.chamfer_l2 > perfect.chamfer_l2
    assert shifted.iou < 1.0


def test_ground_truth_grids_as_predictions(box_gt):
    s32 = score_item(PredictionData(grid=box_gt.voxels_32), box_gt)
    assert s32.iou == 1.0 and s32.kind == "voxels"
    s128 = score_item(PredictionData(grid=box_gt.voxels_128), box_gt)
    assert s128.iou_128 == 1.0
    # IoU@32 of the 128 grid is its mean-pooled version against the ground truth's 32 grid.
    expected = voxel_iou(resample_occupancy(box_gt.voxels_128, 32), box_gt.voxels_32)
    assert s128.iou == pytest.approx(expected)
    # Marching cubes of the ground-truth grid is a good surface: F@0.02 near the perfect one.
    assert s128.fscore[0.02] > 0.95
    assert s128.normal_consistency > 0.9
    via_prediction = score_item(
        Prediction("voxels", occupancy=box_gt.voxels_32.astype(np.float32)), box_gt
    )
    assert via_prediction.to_dict() == s32.to_dict()


def test_finer_grids_of_the_same_shape_give_iou32_near_the_32_grid(sphere_gt):
    mesh = sphere_gt.mesh
    for res in (48, 64, 128):  # 48 takes the nearest-centre path, 64 and 128 are pooled
        grid = voxelize_mesh(mesh.vertices, mesh.faces, res)
        s = score_item(PredictionData(grid=grid), sphere_gt)
        assert s.iou > 0.95, res
        assert s.iou_128 > 0.9, res


def test_float_grid_threshold_is_used(sphere_gt):
    grid = voxelize_mesh(sphere_gt.mesh.vertices, sphere_gt.mesh.faces, 32).astype(np.float32) * 0.6
    at_half = score_item(PredictionData(grid=grid, threshold=0.5), sphere_gt)
    assert at_half.iou == 1.0 and not at_half.empty
    at_07 = score_item(PredictionData(grid=grid, threshold=0.7), sphere_gt)
    assert at_07.empty and at_07.iou == 0.0 and at_07.fscore[0.01] == 0.0


# ------------------------------------------------------------------------------------------------
# Conversions
# ------------------------------------------------------------------------------------------------


def test_resample_occupancy_hand_cases():
    fine = np.zeros((64, 64, 64), dtype=bool)
    fine[0:2, 0:2, 0:1] = True  # 4 of 8 sub-voxels: exactly half -> occupied
    fine[2:4, 0:2, 0:2] = True
    fine[2, 0, 0] = False  # 7 of 8
    fine[4, 0, 0] = True  # 1 of 8 -> empty
    coarse = resample_occupancy(fine, 32)
    assert coarse.shape == (32, 32, 32)
    assert coarse[0, 0, 0] and coarse[1, 0, 0] and not coarse[2, 0, 0]
    assert coarse.sum() == 2
    # Nearest centre, 48 -> 32: target i reads floor((i + 0.5) * 48 / 32) = 0, 2, 3, 5, ...
    src = np.zeros((48, 48, 48), dtype=bool)
    src[2, 3, 5] = True
    src[1, 0, 0] = True  # never read
    out = resample_occupancy(src, 32)
    assert out[1, 2, 3] and out.sum() == 1
    # Upsampling 32 -> 128 replicates each voxel 4 x 4 x 4.
    up = resample_occupancy(coarse, 128)
    assert up.sum() == 2 * 64 and up[0:8, 0:4, 0:4].all()


def test_point_clouds_have_no_iou_and_are_subsampled_deterministically(box_gt):
    rng = np.random.default_rng(0)
    cloud = box_gt.mesh.sample(25_000, return_index=False) + rng.normal(
        scale=0.002, size=(25_000, 3)
    )
    a = score_item(PredictionData(points=cloud), box_gt)
    b = score_item(Prediction("points", points=cloud.astype(np.float32).astype(np.float64)), box_gt)
    assert a.iou is None and a.iou_128 is None and a.normal_consistency is None
    assert a.kind == "points"
    assert a.to_dict() == score_item(PredictionData(points=cloud), box_gt).to_dict()
    # The same subsample as subsample_points with the protocol seed, against the GT subsample.
    p = DEFAULT_PROTOCOL
    pred_pts, _ = subsample_points(cloud, p.n_samples, p.seed)
    gt_pts, _ = subsample_points(box_gt.points, p.n_samples, p.seed)
    assert len(pred_pts) == p.n_samples
    direct = point_metrics(pred_pts, gt_pts, p.thresholds)
    assert [a.fscore[t] for t in p.thresholds] == direct.fscore.tolist()
    assert a.chamfer_l1 == direct.chamfer_l1
    assert b.fscore[0.01] == pytest.approx(a.fscore[0.01], abs=0.02)
    # Fewer points than n_samples: all are used.
    small = cloud[:500]
    direct_small = point_metrics(small, gt_pts, p.thresholds)
    s = score_item(PredictionData(points=small), box_gt)
    assert [s.recall[t] for t in p.thresholds] == direct_small.recall.tolist()


# ------------------------------------------------------------------------------------------------
# Empty and missing predictions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, kind",
    [
        (PredictionData(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64)), "mesh"),
        (PredictionData(vertices=np.zeros((3, 3)), faces=np.array([[0, 1, 2]])), "mesh"),  # no area
        (PredictionData(grid=np.zeros((32, 32, 32), dtype=bool)), "voxels"),
        (PredictionData(grid=np.zeros((64, 64, 64), dtype=np.float32)), "voxels"),
        (PredictionData(points=np.zeros((0, 3))), "points"),
    ],
)
def test_empty_predictions_score_worst(box_gt, data, kind):
    s = score_item(data, box_gt)
    assert s.empty and s.kind == kind
    assert all(v == 0.0 for v in s.fscore.values())
    assert all(v == 0.0 for v in s.precision.values()) and all(v == 0.0 for v in s.recall.values())
    assert s.chamfer_l1 == DEFAULT_PROTOCOL.chamfer_l1_worst
    assert s.chamfer_l2 == DEFAULT_PROTOCOL.chamfer_l2_worst
    if kind == "points":
        assert s.iou is None and s.iou_128 is None and s.normal_consistency is None
    else:
        assert s.iou == 0.0 and s.iou_128 == 0.0 and s.normal_consistency == 0.0


def test_missing_item_score():
    m = missing_item_score(DEFAULT_PROTOCOL)
    assert m.empty and m.kind == "missing"
    assert m.iou == 0.0 and m.iou_128 == 0.0 and m.normal_consistency == 0.0
    assert m.to_dict()["fscore@0.01"] == 0.0 and m.chamfer_l1 == math.sqrt(3)
    p = missing_item_score(DEFAULT_PROTOCOL, kind="points")
    assert p.iou is None and p.normal_consistency is None
    only32 = missing_item_score(Protocol(iou_resolutions=(32,)))
    assert only32.iou == 0.0 and only32.iou_128 is None


# ------------------------------------------------------------------------------------------------
# Validation, caching, backends
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "needs a mesh"),
        ({"grid": np.zeros((32, 32, 16))}, "cubic"),
        ({"grid": np.zeros((8, 8, 8))}, "outside 16..256"),
        ({"grid": np.full((16, 16, 16), np.nan)}, "NaN"),
        ({"vertices": np.zeros((3, 3))}, "both vertices and faces"),
        ({"vertices": np.zeros((3, 3)), "faces": np.array([[0, 1, 3]])}, "outside 0..2"),
        ({"vertices": np.zeros((3, 3)), "faces": np.array([[0.0, 1.0, 2.0]])}, "integers"),
        ({"points": np.array([[0.0, np.inf, 0.0]])}, "NaN or infinite"),
        ({"points": np.zeros((5, 2))}, "shape"),
    ],
)
def test_prediction_data_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PredictionData(**kwargs)


def test_scorer_reuses_ground_truth_and_matches_score_item(box_gt):
    protocol = Protocol(iou_resolutions=(32,))  # keeps the test fast
    scorer = Scorer(protocol, device=None)
    preds = [_mesh_data(box_gt.mesh, (0.003 * k, 0.0, 0.0)) for k in range(3)]
    first = [scorer.score(p, box_gt, key="box") for p in preds]
    assert scorer.index.misses == 1 and len(scorer.index) == 1
    for p, s in zip(preds, first, strict=True):
        assert s.to_dict() == score_item(p, box_gt, protocol).to_dict()
        assert s.iou_128 is None
    many = scorer.score_many(
        [(p, box_gt, "box") for p in preds] + [(None, box_gt, "box")], threads=2
    )
    assert [s.to_dict() for s in many[:3]] == [s.to_dict() for s in first]
    assert many[3].kind == "missing"


def test_torch_device_gives_identical_scores(box_gt):
    rng = np.random.default_rng(1)
    cloud = box_gt.points[:3000].astype(np.float64) + rng.normal(scale=0.004, size=(3000, 3))
    small = Protocol(n_samples=3000)
    for data in (PredictionData(points=cloud), PredictionData(grid=box_gt.voxels_32)):
        cpu_tree = score_item(data, box_gt, small, device=None)
        brute = score_item(data, box_gt, small, device="cpu")
        assert cpu_tree.to_dict() == brute.to_dict()


@pytest.mark.slow  # builds the shared session benchmark when no other test has
def test_tiny_benchmark_items_if_available(request):
    try:
        bench = request.getfixturevalue("tiny_benchmark")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_benchmark fixture not available")
    from svr.data.layout import Benchmark

    bench = bench if isinstance(bench, Benchmark) else Benchmark(bench)
    items = bench.items("test")[:3]
    if not items:
        pytest.skip("tiny benchmark has no test items")
    scorer = Scorer()
    for item in items:
        gt = bench.ground_truth(item, with_mesh=True)
        s = scorer.score(_mesh_data(gt.mesh), gt, key=str(bench.gt_dir(item)))
        assert s.iou == 1.0 and s.fscore[0.05] > 0.9
