"""Tests of the shape descriptors used to compare real and procedural shapes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from svr.data.descriptors import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    Standardizer,
    align_grid,
    connected_components,
    describe_grid,
    nearest_neighbours,
    neighbour_class_accuracy,
)


def _box(size: tuple[int, int, int], grid: int = 64, at: tuple[int, int, int] = (2, 2, 2)):
    g = np.zeros((grid,) * 3, dtype=bool)
    x, y, z = at
    g[x : x + size[0], y : y + size[1], z : z + size[2]] = True
    return g


def _feature(d: np.ndarray, name: str) -> float:
    return float(d[FEATURE_NAMES.index(name)])


def _table(grid: int = 64) -> np.ndarray:
    """A 48 x 36 slab, 4 voxels thick, on four 3 x 3 legs 20 voxels long."""
    g = np.zeros((grid,) * 3, dtype=bool)
    g[4:52, 20:24, 10:46] = True
    for x in (5, 48):
        for z in (11, 42):
            g[x : x + 3, 0:20, z : z + 3] = True
    return g


def test_a_box_has_known_descriptors():
    d = describe_grid(_box((40, 24, 10)))
    assert d.shape == (len(FEATURE_NAMES),)
    assert _feature(d, "height") == pytest.approx(24 / 40)
    assert _feature(d, "length") == pytest.approx(1.0)
    assert _feature(d, "width") == pytest.approx(10 / 40)
    assert _feature(d, "fill") == pytest.approx(1.0)
    for i in range(6):  # 24 rows: 4 per band
        assert _feature(d, f"band_{i}") == pytest.approx(1 / 6)
    for name in ("footprint_low", "footprint_mid", "footprint_high"):
        assert _feature(d, name) == pytest.approx(1.0)
    # top view 40 x 10: 16 * 400 / 100^2
    assert _feature(d, "top_compactness") == pytest.approx(0.64)
    assert _feature(d, "top_fill") == pytest.approx(1.0)
    # local thickness: the deepest voxels of a 10-voxel slab are 5 from the outside
    assert _feature(d, "thickness_q90") == pytest.approx(2 * 5 / 40)


def test_a_table_has_a_high_top_and_a_small_footprint_below():
    d = describe_grid(_table())
    assert _feature(d, "footprint_low") < 0.05
    assert _feature(d, "footprint_high") == pytest.approx(1.0)
    assert _feature(d, "band_5") > 0.6  # the slab's voxels are in the top band
    assert _feature(d, "top_fill") == pytest.approx(1.0)
    assert _feature(d, "side_compactness") < 0.5  # legs make the side view ragged


def test_descriptors_ignore_azimuth_mirroring_position_and_scale():
    g = _table()
    d = describe_grid(g)
    for turned in (
        np.rot90(g, 1, axes=(0, 2)),
        np.rot90(g, 3, axes=(0, 2)),
        g[::-1],
        g[:, :, ::-1],
    ):
        np.testing.assert_allclose(describe_grid(turned), d, atol=1e-12)
    shifted = np.roll(g, (5, 3, 7), axis=(0, 1, 2))
    np.testing.assert_allclose(describe_grid(shifted), d, atol=1e-12)
    # twice the resolution: same proportions and profiles, close elsewhere
    big = g.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    np.testing.assert_allclose(describe_grid(big), d, atol=0.03)


def test_an_oblique_shape_is_turned_onto_the_axes():
    g = _box((40, 10, 12), grid=80, at=(20, 10, 34))
    turned = ndimage.rotate(g.astype(np.uint8), 30, axes=(0, 2), reshape=True, order=0) > 0
    aligned = align_grid(turned)
    assert aligned.shape[1] == 10
    assert aligned.shape[0] == pytest.approx(40, abs=2)
    assert aligned.shape[2] == pytest.approx(12, abs=2)
    d0, d1 = describe_grid(g), describe_grid(turned)
    for name in ("height", "length", "width"):
        assert _feature(d1, name) == pytest.approx(_feature(d0, name), abs=0.08), name
    # two nearest-neighbour resamplings (turn and turn back) nibble at edges and corners
    for name in ("fill", "top_fill"):
        assert _feature(d1, name) == pytest.approx(1.0, abs=0.15), name


def test_the_up_axis_is_not_ignored():
    """A slab lying down (a table top) and one standing up (a phone) differ."""
    lying = describe_grid(_box((40, 4, 20)))
    standing = describe_grid(_box((40, 20, 4)))
    assert _feature(lying, "height") == pytest.approx(0.1)
    assert _feature(standing, "height") == pytest.approx(0.5)
    # the rotation-robust principal ratios agree
    for name in ("pca_mid", "pca_min"):
        assert _feature(lying, name) == pytest.approx(_feature(standing, name))


def test_invalid_grids_raise():
    with pytest.raises(ValueError, match="empty"):
        describe_grid(np.zeros((8, 8, 8), dtype=bool))
    with pytest.raises(ValueError, match="3D"):
        describe_grid(np.ones((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="multiple of 32"):
        connected_components(np.ones((40, 40, 40), dtype=bool))


def test_connected_components_at_32():
    g = _box((10, 10, 10)) | _box((10, 10, 10), at=(30, 2, 2))
    assert connected_components(g) == 2
    assert connected_components(_table()) == 1
    # a one-voxel gap at 64^3 closes when pooled to 32^3
    assert connected_components(_box((10, 10, 10)) | _box((10, 10, 10), at=(13, 2, 2))) == 1


def test_standardizer_weighs_each_group_equally():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(50, len(FEATURE_NAMES))) * rng.uniform(0.1, 5, len(FEATURE_NAMES))
    d[:, 0] = 3.0  # no spread: scale 1, not a division by zero
    std = Standardizer.fit(d)
    z = std(d)
    assert np.all(np.isfinite(z))
    start = 0
    for names in FEATURE_GROUPS.values():
        w = std.weight[start : start + len(names)]
        assert float((w**2).sum()) == pytest.approx(1.0)
        start += len(names)
    np.testing.assert_allclose(z[:, 1:].std(axis=0), std.weight[1:], rtol=1e-9)
    with pytest.raises(ValueError):
        Standardizer.fit(d[:1])


def test_nearest_neighbours_match_a_naive_loop():
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(7, 5)), rng.normal(size=(20, 5))
    idx, dist = nearest_neighbours(q, r, k=3)
    for i in range(7):
        d = np.sqrt(((r - q[i]) ** 2).sum(axis=1))
        order = np.argsort(d, kind="stable")[:3]
        assert idx[i].tolist() == order.tolist()
        np.testing.assert_allclose(dist[i], d[order], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError):
        nearest_neighbours(q, r, k=21)


def test_neighbour_class_accuracy_known_case():
    truth = np.array(["a", "a", "a", "b"])
    found = np.array(["a", "b", "a", "b"])
    acc, balanced, per = neighbour_class_accuracy(truth, found)
    assert acc == pytest.approx(0.75)
    assert per == {"a": pytest.approx(2 / 3), "b": 1.0}
    assert balanced == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(ValueError):
        neighbour_class_accuracy(truth, found[:2])
