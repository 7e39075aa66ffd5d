"""svr.metrics and svr.geometry.sample_surface against naive references and hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svr.geometry import sample_surface
from svr.metrics import (
    DEFAULT_THRESHOLDS,
    GroundTruthIndex,
    PointIndex,
    chamfer_l1,
    chamfer_l2,
    fscore,
    fscore_batch,
    nearest_distances,
    normal_consistency,
    point_metrics,
    point_metrics_batch,
    voxel_iou,
)

# ------------------------------------------------------------------------------------------------
# Independent naive references (full distance matrix with explicit differences, float64)
# ------------------------------------------------------------------------------------------------


def naive_dist_matrix(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def naive_nn(a, b) -> tuple[np.ndarray, np.ndarray]:
    d = naive_dist_matrix(a, b)
    idx = np.argmin(d, axis=1)  # first index on ties
    return d[np.arange(len(a)), idx], idx


def naive_fscore(pred, gt, thresholds):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    out = {"precision": [], "recall": [], "fscore": []}
    for t in thresholds:
        if len(pred) == 0 or len(gt) == 0:
            p = r = f = 0.0
        else:
            d = naive_dist_matrix(pred, gt)
            p = float(np.mean(d.min(axis=1) < t))
            r = float(np.mean(d.min(axis=0) < t))
            f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        out["precision"].append(p)
        out["recall"].append(r)
        out["fscore"].append(f)
    return {k: np.array(v) for k, v in out.items()}


def naive_chamfer(pred, gt):
    d = naive_dist_matrix(pred, gt)
    pg, gp = d.min(axis=1), d.min(axis=0)
    return 0.5 * (pg.mean() + gp.mean()), (pg**2).mean() + (gp**2).mean()


def naive_normal_consistency(pp, pn, gp, gn):
    pn = np.asarray(pn, dtype=np.float64)
    gn = np.asarray(gn, dtype=np.float64)
    pn = pn / np.linalg.norm(pn, axis=1, keepdims=True)
    gn = gn / np.linalg.norm(gn, axis=1, keepdims=True)
    d = naive_dist_matrix(pp, gp)
    i_pg = np.argmin(d, axis=1)
    i_gp = np.argmin(d, axis=0)
    a = np.abs((pn * gn[i_pg]).sum(1)).mean()
    b = np.abs((gn * pn[i_gp]).sum(1)).mean()
    return 0.5 * (a + b)


def loop_nn(a, b):
    """Pure-Python double loop: the most obvious reference (tiny inputs only)."""
    out = []
    for p in a:
        best = math.inf
        for q in b:
            best = min(
                best, math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(p, q, strict=True)))
            )
        out.append(best)
    return np.array(out)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------------
# voxel_iou
# ------------------------------------------------------------------------------------------------


def test_voxel_iou_hand_cases():
    a = np.zeros((4, 4, 4), dtype=bool)
    b = np.zeros((4, 4, 4), dtype=bool)
    a[0, 0, :2] = True  # 2 voxels
    b[0, 0, 1:4] = True  # 3 voxels, overlap 1
    assert voxel_iou(a, b) == pytest.approx(1 / 4)
    assert voxel_iou(a, a) == 1.0
    assert voxel_iou(a, ~a) == 0.0
    assert math.isnan(voxel_iou(np.zeros_like(a), np.zeros_like(a)))
    assert voxel_iou(np.zeros_like(a), b) == 0.0


def test_voxel_iou_threshold_is_inclusive_and_float_grids(rng):
    p = np.array([0.2, 0.5, 0.7, 0.49]).reshape(1, 1, 4)
    g = np.array([1, 1, 0, 0], dtype=np.uint8).reshape(1, 1, 4)
    # occupied where value >= 0.5: p -> [0, 1, 1, 0]; g -> [1, 1, 0, 0]; I = 1, U = 3
    assert voxel_iou(p, g) == pytest.approx(1 / 3)
    assert voxel_iou(p, g, threshold=0.7) == pytest.approx(0.0)
    probs = rng.random((16, 16, 16))
    truth = rng.random((16, 16, 16)) > 0.6
    a, b = probs >= 0.3, truth
    assert voxel_iou(probs, truth, 0.3) == pytest.approx((a & b).sum() / (a | b).sum())


def test_voxel_iou_bool_grids_at_every_threshold():
    a = np.zeros((2, 2, 2), dtype=bool)
    b = np.zeros((2, 2, 2), dtype=bool)
    a[0] = True  # 4 voxels
    b[:, 0] = True  # 4 voxels, overlap 2
    for t in (1e-9, 0.5, 1.0):  # a bool grid is its own occupancy for t in (0, 1]
        assert voxel_iou(a, b, threshold=t) == pytest.approx(2 / 6)
    assert voxel_iou(a, b, threshold=0.0) == 1.0  # every voxel >= 0
    assert math.isnan(voxel_iou(a, b, threshold=1.5))  # none >= 1.5


def test_voxel_iou_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        voxel_iou(np.zeros((32, 32, 32)), np.zeros((64, 64, 64)))


def test_voxel_iou_torch_input():
    a = torch.zeros(8, 8, 8, dtype=torch.bool)
    a[:4] = True
    b = torch.zeros(8, 8, 8)
    b[:2] = 1.0
    assert voxel_iou(a, b) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------
# nearest_distances
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, m", [(1, 1), (7, 1), (1, 9), (200, 300), (10, 20_000)])
def test_nearest_distances_equals_naive_exactly(rng, n, m):
    a, b = rng.random((n, 3)), rng.random((m, 3))
    d, i = nearest_distances(a, b)
    nd, ni = naive_nn(a, b)
    np.testing.assert_array_equal(d, nd)
    np.testing.assert_array_equal(i, ni)
    d_t, i_t = nearest_distances(a, b, device="cpu")
    np.testing.assert_array_equal(d_t, nd)
    np.testing.assert_array_equal(i_t, ni)


def test_nearest_distances_tiny_double_loop():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.3, -0.2, 0.1]])
    b = np.array([[0.5, 0.0, 0.0], [1.0, 1.0, 2.5], [0.0, -0.2, 0.1]])
    d, i = nearest_distances(a, b)
    np.testing.assert_allclose(d, loop_nn(a, b), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(i, [2, 0, 2])
    assert d[2] == pytest.approx(0.3)


def test_nearest_distances_ties_give_first_index(rng):
    base = rng.random((50, 3))
    b = np.concatenate([base, base, base])  # every point three times
    perm = rng.permutation(len(b))
    b = b[perm]
    a = np.concatenate([rng.random((100, 3)), base[:10]])
    nd, ni = naive_nn(a, b)
    for device in (None, "cpu"):
        d, i = nearest_distances(a, b, device=device)
        np.testing.assert_array_equal(d, nd)
        np.testing.assert_array_equal(i, ni)
    # Equidistant: (1,0,0) and (-1,0,0) from the origin.
    d, i = nearest_distances([[0, 0, 0]], [[2, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0]])
    assert d[0] == 1.0 and i[0] == 1


def test_nearest_distances_large_offsets(rng):
    for offset in (1e3, 1e4, 1e5, 1e6):
        a = offset + rng.random((300, 3))
        b = offset + rng.random((400, 3))
        nd, ni = naive_nn(a, b)
        for device in (None, "cpu"):
            d, i = nearest_distances(a, b, device=device)
            np.testing.assert_array_equal(d, nd)
            np.testing.assert_array_equal(i, ni)


def test_nearest_distances_float32_and_torch_inputs(rng):
    a32 = rng.random((100, 3)).astype(np.float32)
    b32 = rng.random((150, 3)).astype(np.float32)
    nd, ni = naive_nn(a32, b32)  # the naive reference also works in float64
    tensors = (torch.from_numpy(a32), torch.from_numpy(b32))
    for a, b in ((a32, b32), tensors, (tensors[0].requires_grad_(True), tensors[1].double())):
        for device in (None, "cpu"):
            d, i = nearest_distances(a, b, device=device)
            assert d.dtype == np.float64
            np.testing.assert_array_equal(d, nd)
            np.testing.assert_array_equal(i, ni)


def test_bfloat16_and_float16_tensors(rng):
    a = torch.from_numpy(rng.random((50, 3))).to(torch.bfloat16)
    b = torch.from_numpy(rng.random((60, 3))).to(torch.float16)
    nd, ni = naive_nn(a.double().numpy(), b.double().numpy())
    d, i = nearest_distances(a, b)
    np.testing.assert_array_equal(d, nd)
    np.testing.assert_array_equal(i, ni)


def test_nearest_distances_empty_target():
    d, i = nearest_distances(np.zeros((3, 3)), np.zeros((0, 3)))
    assert np.isinf(d).all() and (i == -1).all()
    d, i = nearest_distances(np.zeros((0, 3)), np.ones((4, 3)))
    assert d.shape == (0,) and i.shape == (0,)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 2)), "shape"),
        (np.zeros((4, 3, 1)), "shape"),
        (np.array([[0.0, np.nan, 0.0]]), "NaN"),
        (np.array([[0.0, np.inf, 0.0]]), "NaN or infinite"),
        (np.array([["a", "b", "c"]]), "numeric"),
    ],
)
def test_validation_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        nearest_distances(bad, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=message):
        fscore(np.zeros((2, 3)), bad)
    with pytest.raises(ValueError, match=message):
        chamfer_l1(bad, np.zeros((2, 3)))


def test_threshold_validation():
    with pytest.raises(ValueError, match="positive"):
        fscore(np.zeros((2, 3)), np.zeros((2, 3)), thresholds=(0.01, -1.0))
    with pytest.raises(ValueError, match="positive"):
        fscore(np.zeros((2, 3)), np.zeros((2, 3)), thresholds=())


# ------------------------------------------------------------------------------------------------
# F-score
# ------------------------------------------------------------------------------------------------


def test_fscore_identical_and_disjoint(rng):
    x = rng.random((500, 3))
    r = fscore(x, x)
    for key in ("precision", "recall", "fscore"):
        assert r[key].shape == (len(DEFAULT_THRESHOLDS),) and r[key].dtype == np.float64
        np.testing.assert_array_equal(r[key], 1.0)
    far = fscore(x, x + 10.0)
    for key in ("precision", "recall", "fscore"):
        np.testing.assert_array_equal(far[key], 0.0)


@pytest.mark.parametrize("side", ["pred", "gt", "both"])
def test_fscore_empty_sets_score_zero(side):
    x = np.random.default_rng(0).random((20, 3))
    empty = np.zeros((0, 3))
    pred = empty if side in ("pred", "both") else x
    gt = empty if side in ("gt", "both") else x
    r = fscore(pred, gt)
    for key in ("precision", "recall", "fscore"):
        np.testing.assert_array_equal(r[key], 0.0)
    assert math.isnan(chamfer_l1(pred, gt)) and math.isnan(chamfer_l2(pred, gt))


def test_fscore_precision_recall_are_not_swapped():
    # The prediction covers one of the two ground-truth points: every predicted point is
    # accurate (precision 1) but only half of the ground truth is covered (recall 0.5).
    pred = [[0.0, 0.0, 0.0]]
    gt = [[0.0, 0.0, 0.001], [0.4, 0.0, 0.0]]
    r = fscore(pred, gt, thresholds=0.01)
    assert r == {"precision": 1.0, "recall": 0.5, "fscore": pytest.approx(2 / 3)}
    assert all(isinstance(v, float) for v in r.values())


def test_fscore_single_points_hand_computed():
    r = fscore([[0, 0, 0]], [[0.03, 0.04, 0]], thresholds=[0.01, 0.05, 0.06])
    # distance 0.05: strictly closer than 0.06 only (0.05 is not < 0.05)
    np.testing.assert_array_equal(r["precision"], [0, 0, 1])
    np.testing.assert_array_equal(r["recall"], [0, 0, 1])
    np.testing.assert_array_equal(r["fscore"], [0, 0, 1])


def test_fscore_distance_exactly_at_threshold_is_not_counted():
    pred = np.array([[0.0, 0.0, 0.0], [0.0, 0.3, -0.2]])
    gt = pred + np.array([0.01, 0.0, 0.0])  # exactly 0.01 along x: 0.01 - 0.0 has no rounding
    d, _ = nearest_distances(pred, gt)
    assert (d == 0.01).all()
    at = fscore(pred, gt, thresholds=0.01)
    assert at == {"precision": 0.0, "recall": 0.0, "fscore": 0.0}
    above = fscore(pred, gt, thresholds=np.nextafter(0.01, 1.0))
    assert above == {"precision": 1.0, "recall": 1.0, "fscore": 1.0}


def test_fscore_at_threshold_with_large_offsets_follows_float64(rng):
    # With an offset the float64 difference is not exactly 0.01; the definition is the float64
    # computation, so the result must match the naive one bit for bit, whatever it is.
    for offset in (1e3, 1e4, 1e5, 1e6):
        pred = offset + np.array([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.0, 0.3, 0.7]])
        gt = pred + np.array([0.01, 0.0, 0.0])
        ts = (0.005, 0.01, 0.02)
        expected = naive_fscore(pred, gt, ts)
        for device in (None, "cpu"):
            got = fscore(pred, gt, thresholds=ts, device=device)
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key])


@pytest.mark.parametrize("n, m", [(10, 20_000), (300, 200), (1000, 1000)])
def test_fscore_matches_naive(rng, n, m):
    pred = rng.normal(scale=0.2, size=(n, 3))
    gt = rng.normal(scale=0.2, size=(m, 3))
    ts = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    expected = naive_fscore(pred, gt, ts)
    for device in (None, "cpu"):
        got = fscore(pred, gt, ts, device=device)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_fscore_duplicated_points(rng):
    base = rng.random((40, 3))
    pred = np.concatenate([base, base[:10], base[:10]])  # duplicates weigh in the shares
    gt = rng.random((60, 3))
    ts = (0.05, 0.1, 0.2)
    expected = naive_fscore(pred, gt, ts)
    got = fscore(pred, gt, ts)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


# ------------------------------------------------------------------------------------------------
# Chamfer
# ------------------------------------------------------------------------------------------------


def test_chamfer_hand_computed():
    pred = [[0.0, 0.0, 0.0]]
    gt = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    # pred->gt: 1; gt->pred: 1 and 2 (mean 1.5)
    assert chamfer_l1(pred, gt) == pytest.approx(0.5 * (1.0 + 1.5))
    assert chamfer_l2(pred, gt) == pytest.approx(1.0 + (1.0 + 4.0) / 2)
    assert chamfer_l1(gt, gt) == 0.0 and chamfer_l2(gt, gt) == 0.0


def test_chamfer_matches_naive(rng):
    pred = rng.random((400, 3)).astype(np.float32)
    gt = 1e4 + rng.random((700, 3))
    gt -= 1e4
    l1, l2 = naive_chamfer(pred, gt)
    for device in (None, "cpu"):
        assert chamfer_l1(pred, gt, device=device) == pytest.approx(l1, rel=1e-14)
        assert chamfer_l2(pred, gt, device=device) == pytest.approx(l2, rel=1e-14)


# ------------------------------------------------------------------------------------------------
# Normal consistency
# ------------------------------------------------------------------------------------------------


def test_normal_consistency_hand_computed():
    pp = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    pn = [[0.0, 0.0, 1.0], [0.0, 0.0, -2.0]]  # sign and length do not matter
    gp = [[0.0, 0.0, 0.1]]
    gn = [[0.0, 1.0, 1.0]]
    # pred->gt: both take gn: |cos| = 1/sqrt2 each; gt->pred: nearest is pp[0]: 1/sqrt2
    assert normal_consistency(pp, pn, gp, gn) == pytest.approx(1 / math.sqrt(2))
    assert normal_consistency(pp, pn, pp, pn) == pytest.approx(1.0)


def test_normal_consistency_matches_naive(rng):
    pp, gp = rng.random((300, 3)), rng.random((500, 3))
    pn, gn = rng.normal(size=(300, 3)), rng.normal(size=(500, 3))
    expected = naive_normal_consistency(pp, pn, gp, gn)
    for device in (None, "cpu"):
        got = normal_consistency(pp, pn, gp, gn, device=device)
        assert got == pytest.approx(expected, rel=1e-14)


def test_normal_consistency_empty_and_invalid():
    assert math.isnan(
        normal_consistency(np.zeros((0, 3)), np.zeros((0, 3)), [[0, 0, 0]], [[0, 0, 1]])
    )
    with pytest.raises(ValueError, match="zero-length"):
        normal_consistency([[0, 0, 0]], [[0, 0, 0]], [[0, 0, 0]], [[0, 0, 1]])
    with pytest.raises(ValueError, match="must match"):
        normal_consistency([[0, 0, 0]], [[0, 0, 1], [0, 1, 0]], [[0, 0, 0]], [[0, 0, 1]])


# ------------------------------------------------------------------------------------------------
# Torch path, batches, reusable indices
# ------------------------------------------------------------------------------------------------


def test_torch_path_identical_to_numpy_path(rng):
    pred = rng.random((1500, 3)) - 0.5
    gt = rng.random((2500, 3)) - 0.5
    pn, gn = rng.normal(size=(1500, 3)), rng.normal(size=(2500, 3))
    ref = point_metrics(pred, gt, pred_normals=pn, gt_normals=gn)
    tor = point_metrics(
        torch.from_numpy(pred).float(),
        torch.from_numpy(gt),
        pred_normals=pn,
        gt_normals=gn,
        device="cpu",
    )
    num32 = point_metrics(pred.astype(np.float32), gt, pred_normals=pn, gt_normals=gn)
    for a, b in (
        (ref, point_metrics(pred, gt, pred_normals=pn, gt_normals=gn, device="cpu")),
        (num32, tor),
    ):
        for name in ("precision", "recall", "fscore"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.chamfer_l1 == b.chamfer_l1
        assert a.chamfer_l2 == b.chamfer_l2
        assert a.normal_consistency == b.normal_consistency


def test_small_chunks_in_torch_path_are_exact(rng, monkeypatch):
    import svr.metrics as metrics

    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 997)  # many blocks, ragged last block
    base = rng.random((30, 3))
    a = np.concatenate([base, base, rng.random((70, 3))])
    b = np.concatenate([rng.random((40, 3)), base, base])
    ref = point_metrics(a, b, pred_normals=np.ones((130, 3)), gt_normals=np.ones((100, 3)))
    got = point_metrics(
        a, b, pred_normals=np.ones((130, 3)), gt_normals=np.ones((100, 3)), device="cpu"
    )
    np.testing.assert_array_equal(ref.fscore, got.fscore)
    assert ref.chamfer_l1 == got.chamfer_l1 and ref.chamfer_l2 == got.chamfer_l2
    d, i = nearest_distances(b, a, device="cpu")
    nd, ni = naive_nn(b, a)
    np.testing.assert_array_equal(d, nd)
    np.testing.assert_array_equal(i, ni)


def test_batches_equal_single_calls_and_reuse_trees(rng):
    index = GroundTruthIndex(max_entries=2)
    gts = {k: rng.random((800, 3)) for k in ("a", "b", "c")}
    keys = ["a", "a", "b", "a", "c", "b"]
    preds = [rng.random((int(rng.integers(1, 900)), 3)) for _ in keys]
    targets = [index.get(k, gts[k]) for k in keys]
    assert index.misses == 4 and index.hits == 2  # "b" was evicted by "c" (max 2 entries)
    assert targets[0] is targets[1] is targets[3]
    with pytest.raises(KeyError):
        index.get("never-seen")
    batch = fscore_batch(preds, targets, thresholds=(0.01, 0.05))
    assert batch["fscore"].shape == (len(keys), 2)
    for j, (p, k) in enumerate(zip(preds, keys, strict=True)):
        expected = naive_fscore(p, gts[k], (0.01, 0.05))
        for key in expected:
            np.testing.assert_array_equal(batch[key][j], expected[key])
    threaded = point_metrics_batch(preds, targets, threads=2)
    serial = point_metrics_batch(preds, targets, threads=1)
    for x, y in zip(threaded, serial, strict=True):
        np.testing.assert_array_equal(x.fscore, y.fscore)
        assert x.chamfer_l1 == y.chamfer_l1
    with pytest.raises(ValueError, match="predictions for"):
        fscore_batch(preds[:2], targets)


def test_point_index_carries_normals(rng):
    pts, normals = rng.random((100, 3)), rng.normal(size=(100, 3))
    idx = PointIndex(pts, normals)
    m = point_metrics(pts, idx, pred_normals=normals)
    assert m.normal_consistency == pytest.approx(1.0)
    assert point_metrics(pts, idx).normal_consistency is None  # no prediction normals


# ------------------------------------------------------------------------------------------------
# CPU nearest-neighbour backends (pykdtree, scipy cKDTree), Morton order, threads
# ------------------------------------------------------------------------------------------------


@pytest.fixture(params=["pykdtree", "scipy"])
def backend(request, monkeypatch):
    """Run a test with each CPU nearest-neighbour library (fresh PointIndex objects)."""
    import svr.metrics as metrics

    metrics._backend()  # resolve first, so that the OpenMP runtimes are found as usual
    if request.param == "pykdtree":
        pytest.importorskip("pykdtree.kdtree")
    monkeypatch.setattr(metrics, "_backend_name", request.param)
    return request.param


def _tied_clouds(rng):
    """Clouds full of exact ties: repeated points in both sets, and a lattice queried from
    points equidistant to several lattice points."""
    base = rng.random((120, 3))
    a = np.concatenate([base, base[:40], rng.random((400, 3)), base[:40]])
    b = np.concatenate([base[::-1], rng.random((300, 3)), base])
    b = b[rng.permutation(len(b))]
    grid = np.stack(np.meshgrid(*[np.arange(6) * 0.125] * 3, indexing="ij"), -1).reshape(-1, 3)
    mid = grid[:40] + 0.0625  # centres of lattice cells: 8 lattice points equally near
    return np.concatenate([a, mid]), np.concatenate([b, grid])


def test_backends_exact_on_random_and_tied_points(rng, backend):
    for a, b in ((rng.random((700, 3)), rng.random((900, 3))), _tied_clouds(rng)):
        nd, ni = naive_nn(a, b)
        d, i = nearest_distances(a, b)  # > 256 queries: Morton-ordered path
        np.testing.assert_array_equal(d, nd)
        np.testing.assert_array_equal(i, ni)
        d, i = nearest_distances(a[:100], PointIndex(b))  # few queries: direct path
        np.testing.assert_array_equal(d, nd[:100])
        np.testing.assert_array_equal(i, ni[:100])
        ts = (0.01, 0.05, 0.1)
        expected = naive_fscore(a, b, ts)
        got = fscore(a, b, ts)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
        l1, l2 = naive_chamfer(a, b)
        assert chamfer_l1(a, b) == pytest.approx(l1, rel=1e-14)
        assert chamfer_l2(a, b) == pytest.approx(l2, rel=1e-14)
        an, bn = rng.normal(size=a.shape), rng.normal(size=b.shape)
        nc = normal_consistency(a, an, b, bn)  # uses first-index tie resolution both ways
        assert nc == pytest.approx(naive_normal_consistency(a, an, b, bn), rel=1e-14)


def test_pykdtree_and_scipy_paths_identical(rng, monkeypatch):
    pytest.importorskip("pykdtree.kdtree")
    import svr.metrics as metrics

    metrics._backend()
    surface = rng.normal(size=(3000, 3))
    surface /= np.linalg.norm(surface, axis=1, keepdims=True)  # a sphere's shell
    cases = [
        (rng.random((2000, 3)), rng.random((1500, 3)), None, None),
        (*_tied_clouds(rng), None, None),
        (surface[:1500] * 0.5, surface[1500:] * 0.49, surface[:1500], surface[1500:]),
    ]
    a, b = _tied_clouds(rng)
    cases.append((a, b, rng.normal(size=a.shape), rng.normal(size=b.shape)))
    for pred, gt, pn, gn in cases:
        out = {}
        for name in ("pykdtree", "scipy"):
            monkeypatch.setattr(metrics, "_backend_name", name)
            out[name] = (
                point_metrics(pred, gt, pred_normals=pn, gt_normals=gn),
                nearest_distances(gt, pred),
            )
        (m1, (d1, i1)), (m2, (d2, i2)) = out["pykdtree"], out["scipy"]
        for name in ("precision", "recall", "fscore"):
            np.testing.assert_array_equal(getattr(m1, name), getattr(m2, name))
        assert m1.chamfer_l1 == m2.chamfer_l1 and m1.chamfer_l2 == m2.chamfer_l2
        assert m1.normal_consistency == m2.normal_consistency
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(i1, i2)


def test_results_independent_of_thread_count(rng, backend):
    a, b = _tied_clouds(rng)
    an, bn = rng.normal(size=a.shape), rng.normal(size=b.shape)
    gt = PointIndex(b, bn)  # one shared tree, queried from several threads at once
    runs = [point_metrics(a, gt, pred_normals=an, workers=w) for w in (1, 2, -1)]
    preds = [a + rng.normal(scale=0.01, size=a.shape) for _ in range(6)]
    normals = [an] * len(preds)
    runs += point_metrics_batch(preds[:1], [gt], pred_normals=normals[:1], threads=1)
    serial = point_metrics_batch(preds, [gt] * 6, pred_normals=normals, threads=1)
    threaded = point_metrics_batch(preds, [gt] * 6, pred_normals=normals, threads=3)
    for x, y in [(runs[0], r) for r in runs[1:3]] + list(zip(serial, threaded, strict=True)):
        for name in ("precision", "recall", "fscore"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
        assert x.chamfer_l1 == y.chamfer_l1 and x.chamfer_l2 == y.chamfer_l2
        assert x.normal_consistency == y.normal_consistency
    expected = naive_fscore(preds[3], b, DEFAULT_THRESHOLDS)
    np.testing.assert_array_equal(threaded[3].fscore, expected["fscore"])
    for w in (1, -1):
        d, i = nearest_distances(a, gt, workers=w)
        nd, ni = naive_nn(a, b)
        np.testing.assert_array_equal(d, nd)
        np.testing.assert_array_equal(i, ni)
    with pytest.raises(ValueError, match="workers"):
        nearest_distances(a, b, workers=0)


def test_openmp_thread_limit_is_per_thread_and_restored():
    pytest.importorskip("pykdtree.kdtree")
    import threading

    import svr.metrics as metrics

    metrics._backend()
    if not metrics._openmp:
        pytest.skip("no OpenMP runtime found for pykdtree (not Linux, or built without OpenMP)")
    before = [lib.omp_get_max_threads() for lib in metrics._openmp]
    inside: list[list[int]] = []
    seen_from_main: list[list[int]] = []
    entered, release = threading.Event(), threading.Event()

    def worker():
        with metrics._openmp_threads(1):
            inside.append([lib.omp_get_max_threads() for lib in metrics._openmp])
            entered.set()
            release.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    assert entered.wait(10)
    seen_from_main.append([lib.omp_get_max_threads() for lib in metrics._openmp])
    release.set()
    t.join(10)
    assert inside == [[1] * len(before)]
    assert seen_from_main == [before]  # the limit of the worker thread does not leak
    with metrics._openmp_threads(1):
        assert all(lib.omp_get_max_threads() == 1 for lib in metrics._openmp)
    assert [lib.omp_get_max_threads() for lib in metrics._openmp] == before


def test_morton_order_is_a_permutation(rng):
    from svr.metrics import _morton_order

    for pts in (
        rng.random((1000, 3)),
        np.repeat(rng.random((10, 3)), 7, axis=0),  # duplicates
        np.zeros((5, 3)),  # one point repeated: zero extent
        np.array([[1e6, -1e6, 3.0]]),
        np.zeros((0, 3)),
    ):
        order = _morton_order(pts)
        assert order.dtype == np.int64
        np.testing.assert_array_equal(np.sort(order), np.arange(len(pts)))
    # Points of a 2x2x2 lattice come out in z-curve order: x varies fastest, then y, then z.
    lattice = np.stack(np.meshgrid([0.0, 1.0], [0.0, 1.0], [0.0, 1.0], indexing="ij"), -1)
    lattice = lattice.reshape(-1, 3)
    sorted_pts = lattice[_morton_order(lattice)]
    keys = sorted_pts[:, 0] + 2 * sorted_pts[:, 1] + 4 * sorted_pts[:, 2]
    np.testing.assert_array_equal(keys, np.arange(8))


def test_ground_truth_index_builds_each_key_once_under_threads(rng):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    index = GroundTruthIndex(max_entries=4)
    calls: list[str] = []
    gate = threading.Barrier(4)
    clouds = {k: rng.random((500, 3)) for k in "ab"}

    def build(key):
        calls.append(key)
        return PointIndex(clouds[key])

    def ask(key):
        gate.wait(10)  # all four threads ask at once
        return index.get_or_build(key, lambda: build(key))

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(ask, ["a", "a", "b", "a"]))
    assert sorted(calls) == ["a", "b"]
    assert got[0] is got[1] is got[3] and got[2] is not got[0]
    assert index.misses == 2 and index.hits == 2
    with pytest.raises(ValueError, match="boom"):
        index.get_or_build("c", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert "c" not in index and index.get_or_build("c", lambda: PointIndex(clouds["a"]))


# ------------------------------------------------------------------------------------------------
# svr.geometry.sample_surface
# ------------------------------------------------------------------------------------------------


def _two_triangles():
    # Triangle 0: area 0.5 (unit right triangle); triangle 1: area 1.5 (legs 1 and 3); ratio 1:3.
    v = np.array(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 1], [3, 0, 1], [2, 3, 1]],
        dtype=np.float64,
    )
    f = np.array([[0, 1, 2], [3, 4, 5]])
    return v, f


def test_sample_surface_uniform_by_area():
    v, f = _two_triangles()
    n = 40_000
    _, _, face = sample_surface(v, f, n, seed=3)
    counts = np.bincount(face, minlength=2)
    expected = np.array([0.25, 0.75]) * n
    chi2 = (((counts - expected) ** 2) / expected).sum()
    assert chi2 < 10.83  # chi-square, 1 degree of freedom, p = 0.001
    # Within a triangle the samples are uniform too: quadrants of the unit right triangle.
    pts, _, face = sample_surface(v, f, n, seed=4)
    tri0 = pts[face == 0]
    inner = (tri0[:, 0] < 0.5) & (tri0[:, 1] < 0.5) & (tri0.sum(1) > 0.5)  # middle quarter
    share = inner.mean()
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(tri0))


def test_sample_surface_reproducible_and_seed_dependent():
    v, f = _two_triangles()
    a = sample_surface(v, f, 1000, seed=7)
    b = sample_surface(v, f, 1000, seed=7)
    c = sample_surface(v, f, 1000, seed=8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_sample_surface_never_samples_zero_area_faces():
    v, f = _two_triangles()
    v = np.concatenate([v, [[5, 5, 5], [6, 6, 6], [7, 7, 7]]])  # collinear: zero area
    f = np.array([[6, 7, 8], [0, 1, 2], [6, 6, 7], [3, 4, 5], [0, 0, 0]])
    _, normals, face = sample_surface(v, f, 20_000, seed=0)
    assert set(np.unique(face)) == {1, 3}
    assert np.isfinite(normals).all()
    empty = sample_surface(v, f[[0, 2, 4]], 100, seed=0)
    assert all(len(x) == 0 for x in empty)


def test_sample_surface_points_lie_on_their_faces():
    v, f = _two_triangles()
    pts, normals, face = sample_surface(v, f, 5000, seed=1)
    tri = v[f[face]]
    # Barycentric coordinates of each point in its own triangle: all in [0, 1], summing to 1,
    # and the point lies in the triangle's plane.
    e1, e2, rel = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], pts - tri[:, 0]
    plane = np.abs((rel * normals).sum(1))
    assert plane.max() < 1e-12
    d11, d12, d22 = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
    r1, r2 = (rel * e1).sum(1), (rel * e2).sum(1)
    den = d11 * d22 - d12 * d12
    b1 = (d22 * r1 - d12 * r2) / den
    b2 = (d11 * r2 - d12 * r1) / den
    assert (b1 >= -1e-12).all() and (b2 >= -1e-12).all() and (b1 + b2 <= 1 + 1e-12).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Device path: float32 GEMM candidates + exact float64 refinement (svr.metrics._gemm_nearest)
# ------------------------------------------------------------------------------------------------


def _surface_cloud(rng, n, noise=0.0):
    """n points on a sphere of radius 0.45 (optionally jittered): a surface-like cloud."""
    v = rng.normal(size=(n, 3))
    v *= 0.45 / np.linalg.norm(v, axis=1, keepdims=True)
    return v + rng.normal(scale=noise, size=v.shape) if noise else v


def _gemm_both(a, b):
    import svr.metrics as metrics

    ta, tb = (
        torch.from_numpy(np.asarray(a, np.float64)),
        torch.from_numpy(np.asarray(b, np.float64)),
    )
    ab_sq, ab_i, ba_sq, ba_i = metrics._gemm_nearest(ta, tb, both=True)
    one_sq, one_i, none_sq, none_i = metrics._gemm_nearest(ta, tb, both=False)
    assert none_sq is None and none_i is None
    assert torch.equal(one_sq, ab_sq) and torch.equal(one_i, ab_i)
    ref = metrics._torch_both_directions(ta, tb)  # the float64 brute force ("exact64")
    for got, want in zip((ab_sq, ab_i, ba_sq, ba_i), ref, strict=True):
        assert torch.equal(got, want)
    return np.sqrt(ab_sq.numpy()), ab_i.numpy(), np.sqrt(ba_sq.numpy()), ba_i.numpy()


@pytest.fixture
def count_fallback(monkeypatch):
    """Counts the rows the GEMM path hands to the float64 brute force."""
    import svr.metrics as metrics

    rows = []
    original = metrics._torch_one_direction

    def spy(a, b):
        rows.append(len(a))
        return original(a, b)

    monkeypatch.setattr(metrics, "_torch_one_direction", spy)
    return rows


@pytest.mark.parametrize(
    "kind, n, m",
    [
        ("uniform", 500, 700),
        ("surface", 2000, 2500),
        ("noisy_surface", 1500, 1000),
        ("offset_1e3", 400, 600),
        ("offset_1e5", 400, 600),
        ("uniform", 10, 20_000),
        ("surface", 20_000, 10),
        ("uniform", 1, 1),
    ],
)
def test_gemm_path_equals_naive_exact64_and_kdtree(rng, kind, n, m, count_fallback):
    if kind == "uniform":
        a, b = rng.random((n, 3)), rng.random((m, 3))
    elif kind.startswith("offset"):
        offset = float(kind.split("_")[1])
        a, b = offset + rng.random((n, 3)), offset + rng.random((m, 3))
    else:
        noise = 0.005 if kind == "noisy_surface" else 0.0
        a, b = _surface_cloud(rng, n, noise), _surface_cloud(rng, m, noise)
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    nd, ni = naive_nn(a, b)
    np.testing.assert_array_equal(d_ab, nd)
    np.testing.assert_array_equal(i_ab, ni)
    nd, ni = naive_nn(b, a)
    np.testing.assert_array_equal(d_ba, nd)
    np.testing.assert_array_equal(i_ba, ni)
    kd, ki = nearest_distances(a, b)
    np.testing.assert_array_equal(d_ab, kd)
    np.testing.assert_array_equal(i_ab, ki)
    # Centring keeps the bound tight: ordinary clouds never need the float64 brute force.
    assert count_fallback == []


def test_gemm_ties_and_duplicates_give_first_index(rng, count_fallback):
    base = rng.random((60, 3))
    b = np.concatenate([base, base, base])[rng.permutation(180)]  # exact ties everywhere
    a = np.concatenate([rng.random((100, 3)), base[:20], [[0.5, 0.5, 0.5]]])
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    for got, want in zip((d_ab, i_ab), naive_nn(a, b), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip((d_ba, i_ba), naive_nn(b, a), strict=True):
        np.testing.assert_array_equal(got, want)
    assert count_fallback == []  # three copies fit in the top-8 candidates
    # Equidistant targets (hand-made): the first index wins.
    d, i, _, _ = _gemm_both([[0.0, 0.0, 0.0]], [[2, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0]])
    assert d[0] == 1.0 and i[0] == 1


def test_gemm_more_ties_than_candidates_fall_back_exactly(rng, count_fallback):
    base = rng.random((5, 3))
    b = np.concatenate([base] * 12)[rng.permutation(60)]  # 12 copies > the 8 candidates
    a = base + 1e-3
    d, i, _, _ = _gemm_both(a, b)
    nd, ni = naive_nn(a, b)
    np.testing.assert_array_equal(d, nd)
    np.testing.assert_array_equal(i, ni)
    assert sum(count_fallback) > 0


def test_gemm_falls_back_when_the_bound_swamps_the_gaps(rng, count_fallback):
    # A tiny cluster (spacing ~1e-8) and one far point: the float32 error bound, which grows
    # with the squared extent (1e3), is far larger than the gaps, so nothing can be certified
    # by float32 alone; the answer must still be exact (float64 brute force).
    a = 1e-7 * rng.random((40, 3))
    b = np.concatenate([1e-7 * rng.random((50, 3)), [[1e3, 0.0, 0.0]]])
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    for got, want in zip((d_ab, i_ab), naive_nn(a, b), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip((d_ba, i_ba), naive_nn(b, a), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sum(count_fallback) >= len(a)


def test_gemm_error_bound_holds_and_is_not_vacuous(rng):
    import svr.metrics as metrics

    for offset, spread in ((0.0, 1.0), (1e3, 1.0), (1e5, 0.01), (-7.0, 1e4)):
        a = offset + spread * rng.random((300, 3))
        b = offset + spread * (rng.random((400, 3)) - 0.5)
        big_a, big_b, scale2, bound = metrics._gemm_operands(
            torch.from_numpy(a), torch.from_numpy(b)
        )
        approx = (big_a @ big_b.T).double().numpy()
        exact = naive_dist_matrix(a, b) ** 2 * scale2  # float64: ~1e-16 relative, << bound
        err = np.abs(approx - exact).max()
        assert err <= bound
        assert bound < 1e-4 * exact.max()  # tight enough to certify ordinary gaps


def test_gemm_bound_widens_for_reduced_precision_matmul(rng):
    import svr.metrics as metrics

    a, b = rng.random((300, 3)), rng.random((200, 3))
    full = metrics._gemm_operands(torch.from_numpy(a), torch.from_numpy(b))[3]
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        reduced = metrics._gemm_operands(torch.from_numpy(a), torch.from_numpy(b))[3]
        d, i = nearest_distances(a, b, device="cpu")
    finally:
        torch.set_float32_matmul_precision(previous)
    assert reduced > 100 * full
    nd, ni = naive_nn(a, b)
    np.testing.assert_array_equal(d, nd)
    np.testing.assert_array_equal(i, ni)


def test_gemm_small_chunks_are_exact(rng, monkeypatch):
    import svr.metrics as metrics

    monkeypatch.setattr(metrics, "_GEMM_CHUNK_ELEMENTS", 997)  # many blocks, ragged last one
    base = rng.random((30, 3))
    a = np.concatenate([base, base, rng.random((70, 3))])
    b = np.concatenate([rng.random((40, 3)), base, base])
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    for got, want in zip((d_ab, i_ab), naive_nn(a, b), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip((d_ba, i_ba), naive_nn(b, a), strict=True):
        np.testing.assert_array_equal(got, want)


def test_device_path_selects_gemm_and_exact64_on_request(rng, monkeypatch):
    import svr.metrics as metrics

    calls = []
    for name in ("_gemm_nearest", "_torch_both_directions"):
        original = getattr(metrics, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(metrics, name, spy)
    pred, gt = rng.random((200, 3)), rng.random((300, 3))
    gemm = point_metrics(pred, gt, device="cpu")
    assert calls == ["_gemm_nearest"]
    monkeypatch.setattr(metrics, "_TORCH_METHOD", "exact64")
    exact = point_metrics(pred, gt, device="cpu")
    assert calls == ["_gemm_nearest", "_torch_both_directions"]
    np.testing.assert_array_equal(gemm.fscore, exact.fscore)
    assert gemm.chamfer_l1 == exact.chamfer_l1 and gemm.chamfer_l2 == exact.chamfer_l2


def test_gemm_fscore_at_threshold_and_offsets_identical_to_numpy(rng):
    pred = np.array([[0.0, 0.0, 0.0], [0.0, 0.3, -0.2], [0.0, 0.1, 0.45]])
    gt = pred + np.array([0.01, 0.0, 0.0])  # every distance exactly 0.01 (x: 0.01 - 0.0)
    d, _ = nearest_distances(pred, gt, device="cpu")
    assert (d == 0.01).all()
    assert fscore(pred, gt, thresholds=0.01, device="cpu") == {
        "precision": 0.0,
        "recall": 0.0,
        "fscore": 0.0,
    }
    above = fscore(pred, gt, thresholds=np.nextafter(0.01, 1.0), device="cpu")
    assert above == {"precision": 1.0, "recall": 1.0, "fscore": 1.0}
    for offset in (0.0, 1e3, 1e5):
        p = offset + _surface_cloud(rng, 800, 0.004)
        g = offset + _surface_cloud(rng, 900)
        g[:50] = p[:50] + np.array([0.0, 0.01, 0.0])  # at (or, offset, near) the threshold
        ts = (0.005, 0.01, 0.02, 0.05)
        expected = naive_fscore(p, g, ts)
        got = fscore(p, g, ts, device="cpu")
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_gemm_point_metrics_identical_to_numpy_path(rng):
    pred = _surface_cloud(rng, 3000, 0.003).astype(np.float32)
    gt = _surface_cloud(rng, 2000)
    pn, gn = rng.normal(size=(3000, 3)), rng.normal(size=(2000, 3))
    cpu = point_metrics(pred, gt, pred_normals=pn, gt_normals=gn)
    dev = point_metrics(torch.from_numpy(pred), gt, pred_normals=pn, gt_normals=gn, device="cpu")
    for name in ("precision", "recall", "fscore"):
        np.testing.assert_array_equal(getattr(cpu, name), getattr(dev, name))
    assert cpu.chamfer_l1 == dev.chamfer_l1 and cpu.chamfer_l2 == dev.chamfer_l2
    assert cpu.normal_consistency == dev.normal_consistency
    assert chamfer_l1(pred, gt, device="cpu") == chamfer_l1(pred, gt)
    assert chamfer_l2(pred, gt, device="cpu") == chamfer_l2(pred, gt)


def test_gemm_empty_sets_on_device():
    d, i = nearest_distances(np.zeros((3, 3)), np.zeros((0, 3)), device="cpu")
    assert np.isinf(d).all() and (i == -1).all()
    d, i = nearest_distances(np.zeros((0, 3)), np.ones((4, 3)), device="cpu")
    assert d.shape == (0,) and i.shape == (0,)
    r = fscore(np.zeros((0, 3)), np.ones((4, 3)), device="cpu")
    for key in ("precision", "recall", "fscore"):
        np.testing.assert_array_equal(r[key], 0.0)
    assert math.isnan(chamfer_l1(np.ones((4, 3)), np.zeros((0, 3)), device="cpu"))


def test_gemm_identical_points_everywhere(count_fallback):
    # All points equal (zero extent): every distance is 0 and the first index wins.
    a = np.full((5, 3), 0.25)
    b = np.full((20, 3), 0.25)
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    assert (d_ab == 0).all() and (i_ab == 0).all() and (d_ba == 0).all() and (i_ba == 0).all()


def test_gemm_near_ties_below_float32_resolution(rng):
    # Each query has two targets at 0.01 * (1 +- ~1e-9): float32 cannot order them, so only
    # the margin-and-refine logic can give the exact float64 answer.
    a = rng.random((200, 3)) - 0.5
    u = rng.normal(size=(2, 200, 3))
    u /= np.linalg.norm(u, axis=2, keepdims=True)
    r = 0.01 * (1.0 + rng.uniform(-1e-9, 1e-9, size=(2, 200, 1)))
    b = np.empty((400, 3))
    b[0::2] = a + r[0] * u[0]
    b[1::2] = a + r[1] * u[1]
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    nd, ni = naive_nn(a, b)
    assert (ni % 2 == 1).any() and (ni % 2 == 0).any()  # both targets win somewhere
    np.testing.assert_array_equal(d_ab, nd)
    np.testing.assert_array_equal(i_ab, ni)
    for got, want in zip((d_ba, i_ba), naive_nn(b, a), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("magnitude", [1e-320, 1e-300, 1e150, 1e200, 1e300])
def test_gemm_extreme_magnitudes_stay_exact(rng, magnitude):
    # Subnormal extents, squared distances near the float64 limits and beyond it (inf): the
    # power-of-two scaling is capped and whatever float32 cannot certify falls back to float64.
    a = magnitude * rng.random((20, 3))
    b = -magnitude * rng.random((30, 3))
    with np.errstate(over="ignore", invalid="ignore"):
        nd, ni = naive_nn(a, b)
        nd2, ni2 = naive_nn(b, a)
    d_ab, i_ab, d_ba, i_ba = _gemm_both(a, b)
    np.testing.assert_array_equal(d_ab, nd)
    np.testing.assert_array_equal(i_ab, ni)
    np.testing.assert_array_equal(d_ba, nd2)
    np.testing.assert_array_equal(i_ba, ni2)
