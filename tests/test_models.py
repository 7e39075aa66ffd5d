"""Tests of the reconstruction methods (svr.models) and the training dataset (svr.data.dataset).

Every registry entry gets a one-batch smoke test on the shared `tiny_benchmark` with a tiny
config; the numerical parts (k-means, MDS / Sammon mapping, the mean-shape threshold, pairwise
IoU, Chamfer) are checked against naive implementations and toy data with known answers.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svr.data.dataset import (
    composite_rgba,
    load_training_data,
    pack_grids,
    prepare_images,
    uint8_to_input,
    unpack_grids,
)
from svr.data.layout import Benchmark
from svr.metrics import voxel_iou
from svr.models import REGISTRY, available_models, load_model, model_class
from svr.models.atlas import chamfer_loss, grid_faces
from svr.models.base import resolve_pretrained_path
from svr.models.clustering import best_threshold, kmeans
from svr.models.retrieval import classical_mds, pairwise_iou, sammon, sammon_stress
from svr.types import Prediction

SMALL_NET = {"channels": (8, 16, 16, 32), "code_dim": 32, "batch_size": 8, "epochs": 1}
TINY: dict[str, dict[str, object]] = {
    "clustering": {**SMALL_NET, "n_clusters": 4, "members_per_cluster": 3, "kmeans_iterations": 5},
    "retrieval": {**SMALL_NET, "embedding_dim": 4, "sammon_iterations": 10},
    "voxel": {**SMALL_NET, "decoder_channels": (8, 8, 4)},
    "occupancy": {**SMALL_NET, "hidden": 32, "blocks": 1, "occ_per_step": 128},
    "atlas": {**SMALL_NET, "n_patches": 3, "hidden": 16, "points_per_step": 150, "grid_size": 4},
    "oracle_nn": {"chunk": 4},
    "mean_shape": {**SMALL_NET, "members_per_class": 2, "output_resolution": 32},
}


@pytest.fixture(scope="module")
def bench(tiny_benchmark) -> Benchmark:
    return Benchmark(Path(tiny_benchmark))


@pytest.fixture(scope="module")
def train_data(bench):
    return load_training_data(
        bench, "train", fields=("vox32", "occupancy", "points"), occ_points=512, surface_points=512
    )


def _params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


# ------------------------------------------------------------------------------ registry


def test_registry_covers_every_task_method_and_tiny_configs_exist():
    assert set(REGISTRY) == {
        "clustering",
        "retrieval",
        "voxel",
        "occupancy",
        "atlas",
        "oracle_nn",
        "mean_shape",
    }
    assert set(TINY) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert cls.kind in (
            "recognition baseline",
            "encoder-decoder",
            "reference (uses ground truth)",
        )
        assert cls.description and "\n" not in cls.description
        assert cls.representation in ("voxels", "mesh", "points")


def test_available_models_leave_out_the_references():
    demo = available_models(demo_only=True)
    assert "oracle_nn" not in demo and "mean_shape" not in demo
    assert {"clustering", "retrieval", "voxel", "occupancy", "atlas"} <= set(demo)
    assert set(available_models(demo_only=False)) == set(REGISTRY)
    with pytest.raises(ValueError, match="unknown method"):
        model_class("nerf")


@pytest.mark.parametrize("name", sorted(TINY))
def test_one_batch_fit_save_load_reconstruct(name, bench, train_data, tmp_path):
    torch.manual_seed(0)
    cls = REGISTRY[name]
    model = cls.from_config(**TINY[name])
    model.prepare(train_data)
    if model.trainable:
        before = _params(model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = train_data.batch(
            torch.arange(min(8, train_data.num_images)), occ_per_step=128, points_per_step=150
        )
        loss = model.training_loss(batch)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        opt.step()
        assert not torch.equal(before, _params(model)), "one optimiser step changed nothing"
    model.eval()
    folder = model.save_pretrained(tmp_path / name)
    for f in ("config.json", "model.pt", "arrays.npz", "MODEL_CARD.md"):
        assert (folder / f).is_file()
    assert f"# {name}" in (folder / "MODEL_CARD.md").read_text()
    loaded = load_model(name, folder, device="cpu")
    assert loaded.config == model.config

    items = bench.items("test")[:2]
    first = model.reconstruct_items(bench, items)
    second = loaded.reconstruct_items(bench, items)
    assert len(first) == len(second) == 2
    for a, b in zip(first, second, strict=False):
        assert isinstance(a, Prediction) and a.method == name
        if a.occupancy is not None:
            assert a.occupancy.ndim == 3 and len(set(a.occupancy.shape)) == 1
            np.testing.assert_array_equal(a.occupancy, b.occupancy)
        if a.mesh is not None:
            np.testing.assert_allclose(a.mesh.vertices, b.mesh.vertices, atol=1e-6)
            np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)
            if len(a.mesh.vertices):
                assert np.abs(a.mesh.vertices).max() <= 0.5 + 1e-6
        if a.points is not None:
            assert np.abs(a.points).max() <= 0.5
    if not cls.needs_ground_truth:
        # reconstruct() from raw RGBA arrays gives the same result as from the item files
        rgba = [np.asarray(Image.open(bench.image_path(it)).convert("RGBA")) for it in items]
        again = loaded.reconstruct(rgba)
        for a, b in zip(second, again, strict=False):
            if a.occupancy is not None:
                np.testing.assert_array_equal(a.occupancy, b.occupancy)
    else:
        with pytest.raises(ValueError, match="ground truth"):
            loaded.reconstruct([np.zeros((8, 8, 4), np.uint8)])


def test_oracle_picks_the_training_shape_of_highest_iou(bench, train_data):
    model = REGISTRY["oracle_nn"].from_config(chunk=3)
    model.prepare(train_data)
    items = bench.items("test")[:3]
    preds = model.reconstruct_items(bench, items)
    train_grids = train_data.voxels32()
    for item, pred in zip(items, preds, strict=False):
        gt = bench.ground_truth(item).voxels_32
        ious = [voxel_iou(g, gt) for g in train_grids]
        best = train_data.target_keys[int(np.argmax(ious))]
        assert pred.info["retrieved"] == best
        assert pred.info["iou_32"] == pytest.approx(max(ious), abs=1e-4)
        assert pred.occupancy.shape == (128, 128, 128)


def test_clustering_clamps_k_and_records_class_mix(train_data):
    model = REGISTRY["clustering"].from_config(**{**TINY["clustering"], "n_clusters": 10_000})
    model.prepare(train_data)
    assert model.config.n_clusters == train_data.num_targets
    assert model.head.out_features == train_data.num_targets
    assert model.class_counts.sum() == train_data.num_targets
    pred = model.reconstruct(torch.rand(1, 4, 32, 32))[0]
    assert abs(sum(pred.info["cluster_classes"].values()) - 1) < 1e-3


def test_retrieval_database_cap_and_extension(train_data):
    over = {**TINY["retrieval"], "max_database": 5}
    model = REGISTRY["retrieval"].from_config(**over, extend_to_all=False)
    model.prepare(train_data)
    assert len(model.database_keys) == 5 and model.embedding.shape == (5, 4)
    rows = model._target_row[train_data.image_target]
    mask = model.training_image_mask(train_data)
    assert torch.equal(mask, rows >= 0) and 5 <= int(mask.sum()) < train_data.num_images

    model = REGISTRY["retrieval"].from_config(**over, extend_to_all=True)
    model.prepare(train_data)
    assert bool(model.training_image_mask(train_data).all())
    grids = train_data.voxels32()
    db = [train_data.target_keys.index(k) for k in model.database_keys]
    for t in range(train_data.num_targets):
        row = int(model._target_row[t])
        ious = [voxel_iou(grids[t], grids[d]) for d in db]
        assert ious[row] == pytest.approx(max(ious), abs=1e-6)


def test_retrieval_nearest_is_a_sorted_brute_force_search(train_data):
    torch.manual_seed(0)
    model = REGISTRY["retrieval"].from_config(**TINY["retrieval"]).eval()
    model.prepare(train_data)
    x = uint8_to_input(train_data.images[:3])
    with torch.no_grad():
        rows, dist = model.nearest(x, k=4)
        mirrored = model.head(model.encoder(torch.flip(x, dims=[3])))
        emb = ((model.head(model.encoder(x)) + mirrored) / 2).numpy()  # mirror averaged
    for b in range(3):  # naive: every database row's Euclidean distance, sorted
        naive = np.sqrt(((model.embedding - emb[b]) ** 2).sum(1))
        order = np.argsort(naive, kind="stable")[:4]
        np.testing.assert_allclose(dist[b].numpy(), naive[order], rtol=1e-5, atol=1e-6)
        assert rows[b, 0].item() == order[0]
    with torch.no_grad():
        preds = model.predict_batch(x)
    assert [p.info["retrieved"] for p in preds] == [model.database_keys[r] for r in rows[:, 0]]


# ------------------------------------------------------------------------------ loading


def test_from_pretrained_missing_path_is_a_clear_error_and_offline(tmp_path, monkeypatch):
    import huggingface_hub

    def boom(*args, **kwargs):
        raise AssertionError("the network must not be touched")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", boom)
    with pytest.raises(FileNotFoundError, match="no saved model folder"):
        load_model("voxel", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="local_files_only=False"):
        resolve_pretrained_path("someone/some-model", local_files_only=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model("voxel", tmp_path / "empty")


def test_loading_a_folder_of_another_method_is_refused(tmp_path):
    REGISTRY["voxel"].from_config(**TINY["voxel"]).save_pretrained(tmp_path / "v")
    with pytest.raises(ValueError, match="'voxel' model, not 'atlas'"):
        load_model("atlas", tmp_path / "v")


# ------------------------------------------------------------------------------ images


def test_composite_on_white_and_tensor_input_agree():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom transparent
    rgb = composite_rgba(rgba)
    assert (rgb[:2] == [200, 0, 0]).all() and (rgb[2:] == 255).all()
    x_np = prepare_images([rgba], size=4)
    x_t = prepare_images(torch.from_numpy(rgba).permute(2, 0, 1)[None].float() / 255, size=4)
    assert x_np.shape == (1, 3, 4, 4)
    torch.testing.assert_close(x_np, x_t, atol=1 / 127.5, rtol=0)
    with pytest.raises(ValueError, match="uint8"):
        prepare_images([rgba.astype(np.float32)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prepare_images(torch.full((1, 3, 4, 4), 255.0))


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    grids = rng.random((3, 8, 8, 8)) < 0.3
    np.testing.assert_array_equal(unpack_grids(pack_grids(grids), 8), grids)


def test_training_data_targets_and_batch(bench, train_data):
    assert train_data.num_images == len(bench.items("train"))
    assert train_data.images.dtype == torch.uint8 and train_data.images.shape[1:] == (3, 64, 64)
    first = bench.items("train")[0]
    t = int(train_data.image_target[0])
    np.testing.assert_array_equal(train_data.voxels32()[t], bench.ground_truth(first).voxels_32)
    batch = train_data.batch(torch.tensor([0, 1]), occ_per_step=100, points_per_step=50)
    assert batch.vox32.shape == (2, 32, 32, 32) and batch.occ_points.shape == (2, 100, 3)
    assert batch.occ_labels.shape == (2, 100) and batch.surface_points.shape == (2, 50, 3)
    assert batch.images.min() >= -1 and batch.images.max() <= 1


# ------------------------------------------------------------------------------ numerics


def test_kmeans_recovers_well_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float)
    truth = np.repeat(np.arange(4), 30)
    x = centres[truth] + rng.normal(scale=0.5, size=(120, 3))
    found_centres, labels = kmeans(x.astype(np.float32), 4, seed=3)
    # the partition equals the truth up to a renaming of the clusters
    pairs = set(zip(truth.tolist(), labels.tolist(), strict=False))
    assert len(pairs) == 4 and len({p[1] for p in pairs}) == 4
    for c in found_centres:
        assert np.min(np.linalg.norm(centres - c, axis=1)) < 0.5
    again = kmeans(x.astype(np.float32), 4, seed=3)[1]
    np.testing.assert_array_equal(labels, again)


def test_kmeans_on_binary_grids_and_bad_k():
    rng = np.random.default_rng(0)
    protos = rng.random((3, 512)) < 0.5
    truth = np.repeat(np.arange(3), 10)
    x = protos[truth] ^ (rng.random((30, 512)) < 0.02)
    labels = kmeans(x, 3, seed=0)[1]
    assert len(set(zip(truth.tolist(), labels.tolist(), strict=False))) == 3
    with pytest.raises(ValueError, match="k must be"):
        kmeans(x, 31)


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(5)
    for _trial in range(5):
        members = rng.random((6, 5, 5, 5)) < rng.uniform(0.2, 0.6)
        mean = members.mean(0)
        thr, iou = best_threshold(mean, members)
        candidates = np.unique(mean[mean > 0])
        brute = [np.mean([voxel_iou(mean, m, t) for m in members]) for t in candidates]
        assert iou == pytest.approx(max(brute), abs=1e-12)
        assert np.mean([voxel_iou(mean, m, thr) for m in members]) == pytest.approx(iou, abs=1e-12)
        # any threshold on a fine grid does no better
        grid = np.linspace(0.01, 1.0, 100)
        assert max(np.mean([voxel_iou(mean, m, t) for m in members]) for t in grid) <= iou + 1e-12


def test_best_threshold_hand_case():
    # two members: voxels 0,1 and voxels 0,2 -> mean [1, .5, .5, 0]
    members = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool)
    thr, iou = best_threshold(members.mean(0), members)
    # t = 1: {0} -> IoU 1/2 each; t = .5: {0,1,2} -> IoU 2/3 each
    assert thr == 0.5 and iou == pytest.approx(2 / 3)


def test_pairwise_iou_matches_voxel_iou():
    rng = np.random.default_rng(2)
    a = rng.random((5, 4, 4, 4)) < 0.4
    b = rng.random((3, 4, 4, 4)) < 0.4
    b[0] = False
    got = pairwise_iou(a.reshape(5, -1), b.reshape(3, -1), chunk=2)
    for i, j in itertools.product(range(5), range(3)):
        expected = voxel_iou(a[i], b[j]) if (a[i] | b[j]).any() else 1.0
        assert got[i, j] == pytest.approx(expected, abs=1e-6)


def _planar_points(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uv = rng.uniform(-1, 1, size=(n, 2))
    basis = np.linalg.qr(rng.normal(size=(3, 2)))[0]  # an arbitrary plane through 0 in 3-D
    return uv @ basis.T


def _distances(x: np.ndarray) -> np.ndarray:
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


@pytest.mark.parametrize("n", [40, 1100])  # dense eigensolver / subspace iteration
def test_classical_mds_recovers_a_plane(n):
    d = _distances(_planar_points(n, 0))
    y = classical_mds(d, 2)
    np.testing.assert_allclose(_distances(y.astype(np.float64)), d, atol=2e-4)


def test_sammon_decreases_stress_and_preserves_planar_distances():
    d = _distances(_planar_points(30, 1))
    rng = np.random.default_rng(0)
    start = rng.normal(scale=0.5, size=(30, 2))
    y, history = sammon(d, 2, init=start, iterations=1500, lr=0.02)
    assert history[-1] < 0.1 * history[0]
    assert history[-1] == pytest.approx(
        float(sammon_stress(torch.tensor(d), torch.tensor(y, dtype=torch.float64))), rel=1e-3
    )
    assert history[-1] < 1e-3
    np.testing.assert_allclose(_distances(y.astype(np.float64)), d, atol=0.05)


def test_sammon_stress_matches_naive_loop():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 3))
    d = _distances(x)
    y = rng.normal(size=(7, 2))
    num = sum(
        (d[i, j] - np.linalg.norm(y[i] - y[j])) ** 2 / d[i, j]
        for i in range(7)
        for j in range(i + 1, 7)
    )
    den = sum(d[i, j] for i in range(7) for j in range(i + 1, 7))
    assert float(sammon_stress(torch.tensor(d), torch.tensor(y))) == pytest.approx(
        num / den, rel=1e-9
    )


def test_chamfer_loss_matches_naive_and_grid_faces():
    rng = np.random.default_rng(4)
    a = torch.tensor(rng.random((2, 9, 3)), requires_grad=True)
    b = torch.tensor(rng.random((2, 7, 3)))
    naive = 0.0
    for k in range(2):
        d = ((a[k, :, None] - b[k, None]) ** 2).sum(-1)
        naive = naive + d.min(1).values.mean() + d.min(0).values.mean()
    naive = naive / 2
    assert float(chamfer_loss(a, b).detach()) == pytest.approx(float(naive.detach()), rel=1e-12)
    g1 = torch.autograd.grad(chamfer_loss(a, b), a)[0]
    g2 = torch.autograd.grad(naive, a)[0]
    torch.testing.assert_close(g1, g2)
    faces = grid_faces(3)
    assert faces.shape == (8, 3) and faces.max() == 8


def test_occupancy_fourier_features_by_hand():
    import math

    from svr.models.occupancy import OccupancyDecoder

    dec = OccupancyDecoder(code_dim=4, hidden=8, blocks=1, frequencies=2)
    feats = dec.encode_points(torch.tensor([[[0.25, 0.0, -0.5]]]))
    assert feats.shape == (1, 1, 3 + 6 * 2) and dec.point_in.in_features == 15
    # layout: xyz, then sin of (x f0, x f1, y f0, y f1, z f0, z f1), then their cos
    expected_sin = [math.sin(math.pi * 0.25), math.sin(2 * math.pi * 0.25), 0, 0,
                    math.sin(-math.pi * 0.5), math.sin(-2 * math.pi * 0.5)]  # fmt: skip
    expected_cos = [math.cos(math.pi * 0.25), math.cos(2 * math.pi * 0.25), 1, 1,
                    math.cos(-math.pi * 0.5), math.cos(-2 * math.pi * 0.5)]  # fmt: skip
    expected = torch.tensor([0.25, 0.0, -0.5, *expected_sin, *expected_cos])
    torch.testing.assert_close(feats[0, 0], expected, atol=1e-6, rtol=0)
    assert OccupancyDecoder(4, 8, 1, frequencies=0).encode_points(torch.ones(2, 3)).shape == (2, 3)


def test_grid_answers_are_never_empty(tmp_path) -> None:
    from svr.models.base import MIN_OCCUPIED_SHARE, grid_prediction, nonempty_threshold

    grid = np.full((10, 10, 10), 0.1, dtype=np.float32)
    assert nonempty_threshold(grid, 0.5) == pytest.approx(0.1)  # ties: every cell kept
    grid[2:4, 2:4, 2:4] = 0.3
    grid[3, 3, 3] = 0.45
    k = int(np.ceil(MIN_OCCUPIED_SHARE * grid.size))  # 2 cells of 1000
    t = nonempty_threshold(grid, 0.5)
    assert t == pytest.approx(0.3) and (grid >= t).sum() >= k
    grid[5, 5, 5] = 0.9
    assert nonempty_threshold(grid, 0.5) == 0.5
    pred = grid_prediction("voxel", np.where(grid > 0.5, 0.2, grid), 0.5)
    assert pred.threshold == pytest.approx(0.3) and pred.info["threshold_lowered_to"] == 0.3
    assert len(pred.mesh.faces) > 0
    model = REGISTRY["voxel"].from_config(**TINY["voxel"]).eval()
    with torch.no_grad():
        model.decoder.up[-1].bias.fill_(-50.0)  # every cell far below 0.5
    (p,) = model.reconstruct(np.zeros((1, 64, 64, 3), dtype=np.uint8) + 128)
    assert len(p.mesh.faces) > 0 and p.threshold < 0.5
    from svr.predict import encode_prediction

    ext, _ = encode_prediction(
        dataclasses.replace(p, occupancy=p.occupancy >= p.threshold), "voxels"
    )
    assert ext == "binvox"
