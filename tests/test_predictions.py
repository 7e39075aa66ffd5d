"""svr.predictions: the prediction cache gives the scores computed without it, and keys on
everything a conversion reads."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from svr.data.layout import compute_ground_truth, normalize_mesh
from svr.evaluation import Scorer
from svr.geometry import voxelize_mesh
from svr.predictions import (
    PredictionCache,
    PredictionData,
    prediction_digest,
    prediction_occupancy,
    prediction_surface,
)


@pytest.fixture(scope="module")
def box_gt():
    return compute_ground_truth(normalize_mesh(trimesh.creation.box(extents=(1.0, 0.6, 0.4))), 3)


def _predictions() -> list[PredictionData]:
    """Items of every representation, each distinct answer given several times (as a
    retrieval method does), in an interleaved order."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.35)
    box = trimesh.creation.box(extents=(0.8, 0.5, 0.3))
    grid128 = voxelize_mesh(box.vertices, box.faces, 128)
    soft = np.random.default_rng(0).random((32, 32, 32)).astype(np.float16)
    cloud = np.random.default_rng(1).uniform(-0.4, 0.4, (12_000, 3))
    distinct = [
        PredictionData(vertices=sphere.vertices, faces=sphere.faces),
        PredictionData(grid=grid128),
        PredictionData(grid=soft, threshold=0.5),
        PredictionData(grid=soft, threshold=0.7),  # same array, another threshold
        PredictionData(points=cloud),
    ]
    # fresh arrays with the same content, so equality cannot come from object identity
    copies = [
        PredictionData(
            vertices=None if d.vertices is None else d.vertices.copy(),
            faces=None if d.faces is None else d.faces.copy(),
            grid=None if d.grid is None else d.grid.copy(),
            threshold=d.threshold,
            points=None if d.points is None else d.points.copy(),
        )
        for d in distinct
    ]
    return distinct + copies[::-1] + distinct


def test_cached_scores_equal_uncached_scores_bit_for_bit(box_gt) -> None:
    items = _predictions()
    plain = Scorer(device=None)
    cached = Scorer(device=None, prediction_cache=4)  # smaller than the 5 answers: evictions
    want = [plain.score(d, box_gt, "box").to_dict() for d in items]
    got = [cached.score(d, box_gt, "box").to_dict() for d in items]
    assert got == want
    # threaded, as the worker scores
    again = Scorer(device=None, prediction_cache=64)
    triples = [(d, box_gt, "box") for d in items]
    assert [s.to_dict() for s in again.score_many(triples, threads=2)] == want
    cache = again.predictions
    assert cache is not None and cache.hits > 0
    # per distinct answer its surface, and the mesh's two grids and the 128^3 grid pooled to
    # 32^3: 5 + 3 keys, each built at least once; 3 lookups per mesh, 2 per 128^3 grid, 1 per other
    assert cache.misses >= 8 and cache.hits + cache.misses == len(items) + 3 * len(items) // 5


def test_cache_entries_are_the_conversions(box_gt) -> None:
    data = _predictions()[1]
    cache = PredictionCache(8)
    key = prediction_digest(data)
    pts, normals = cache.surface(data, key, 10_000, 0)
    ref_pts, ref_normals = prediction_surface(data, 10_000, 0)
    assert np.array_equal(pts, ref_pts) and np.array_equal(normals, ref_normals)
    assert not pts.flags.writeable
    for res in (32, 128):
        occ = cache.occupancy(data, key, res)
        assert occ.dtype == bool and np.array_equal(occ, prediction_occupancy(data, res))
        assert np.array_equal(cache.occupancy(data, key, res), occ)  # from the packed copy
    assert cache.occupancy(_predictions()[4], prediction_digest(_predictions()[4]), 32) is None
    # cached: the surface and the 128^3 grid pooled to 32^3; the grid at its own resolution
    # and the point cloud are converted each time
    assert cache.hits == 1 and cache.misses == 2
    mesh = _predictions()[0]
    occ = cache.occupancy(mesh, prediction_digest(mesh), 32)
    assert np.array_equal(occ, prediction_occupancy(mesh, 32)) and cache.misses == 3


def test_digest_keys_on_content_dtype_shape_and_threshold() -> None:
    grid = np.zeros((32, 32, 32), bool)
    grid[4:9, 4:9, 4:9] = True
    base = prediction_digest(PredictionData(grid=grid))
    assert prediction_digest(PredictionData(grid=grid.copy())) == base
    other = grid.copy()
    other[20, 20, 20] = True
    assert prediction_digest(PredictionData(grid=other)) != base
    assert prediction_digest(PredictionData(grid=grid.astype(np.uint8))) != base
    assert prediction_digest(PredictionData(grid=grid, threshold=0.6)) != base
    # a mesh's vertices and the same numbers as a point cloud are different predictions
    tri = np.eye(3)
    mesh = PredictionData(vertices=tri, faces=np.array([[0, 1, 2]]))
    assert prediction_digest(mesh) != prediction_digest(PredictionData(points=tri))


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = PredictionCache(2)
    cloud = [PredictionData(points=np.full((5, 3), v)) for v in (0.1, 0.2, 0.3)]
    keys = [prediction_digest(d) for d in cloud]
    for d, k in zip(cloud[:2], keys[:2], strict=True):
        cache.surface(d, k, 10, 0)
    cache.surface(cloud[0], keys[0], 10, 0)  # 0 is now the most recent
    cache.surface(cloud[2], keys[2], 10, 0)  # evicts 1
    assert cache.misses == 3 and cache.hits == 1
    cache.surface(cloud[0], keys[0], 10, 0)
    assert cache.hits == 2
    cache.surface(cloud[1], keys[1], 10, 0)
    assert cache.misses == 4
    with pytest.raises(ValueError):
        PredictionCache(0)
