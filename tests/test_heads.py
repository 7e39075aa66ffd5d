"""Class and camera heads: binning, the loss, what every method reports, legacy weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from svr.classes import CLASS_NAMES
from svr.data.dataset import load_training_data
from svr.data.layout import Benchmark
from svr.models import REGISTRY, load_model
from svr.models.heads import (
    AZIMUTH_BINS,
    ELEVATION_BINS,
    ELEVATION_RANGE,
    ViewHeads,
    azimuth_bins,
    elevation_bins,
)

SMALL = {"channels": (8, 16), "code_dim": 16, "image_size": 32, "batch_size": 8}
OVERRIDES = {
    "clustering": {"n_clusters": 6, "output_resolution": 32},
    "retrieval": {"sammon_iterations": 5},
    "voxel": {"decoder_channels": (8, 8, 4)},
    "occupancy": {"hidden": 16, "blocks": 1, "resolution": 32},
    "atlas": {"hidden": 16, "n_patches": 2, "grid_size": 4},
    "mean_shape": {"output_resolution": 32},
}


def test_bins_by_hand() -> None:
    az = torch.tensor([0.0, 7.4, 7.6, 352.6, 359.9, -15.0, 720.0 + 30.0])
    assert azimuth_bins(az).tolist() == [0, 0, 1, 0, 0, AZIMUTH_BINS - 1, 2]
    el = torch.tensor([ELEVATION_RANGE[0] - 10, -20.0, -15.1, -15.0, 44.9, 49.99, 80.0])
    assert elevation_bins(el).tolist() == [0, 0, 0, 1, 12, ELEVATION_BINS - 1, ELEVATION_BINS - 1]


def test_describe_reads_the_logits_and_the_loss_skips_unknown_cameras() -> None:
    heads = ViewHeads(4)
    with torch.no_grad():
        for layer in (heads.cls, heads.azimuth, heads.elevation):
            layer.weight.zero_()
            layer.bias.fill_(-30.0)
        heads.cls.bias[CLASS_NAMES.index("chair")] = 10.0
        heads.azimuth.bias[6] = 10.0  # 90 degrees
        heads.azimuth.bias[7] = 10.0  # 105 degrees: the estimate lies between the two
        heads.elevation.bias[8] = 10.0  # [20, 25): centre 22.5
    (info,) = heads.describe(torch.zeros(1, 4))
    assert info["predicted_class"] == "chair" and info["class_probability"] > 0.999
    assert info["azimuth"] == pytest.approx(97.5, abs=0.1)
    assert info["elevation"] == pytest.approx(22.5, abs=0.1)
    assert info["azimuth_probability"] > 0.999
    # around 0 degrees the circular mean does not average 345 and 15 to 180
    with torch.no_grad():
        heads.azimuth.bias.fill_(-30.0)
        heads.azimuth.bias[0] = 10.0
        heads.azimuth.bias[AZIMUTH_BINS - 1] = 10.0
    assert heads.describe(torch.zeros(1, 4))[0]["azimuth"] == pytest.approx(352.5, abs=0.1)
    code = torch.randn(3, 4)
    classes = torch.tensor([0, 1, 2])
    only_class = heads.loss(code, classes)
    nan = torch.full((3,), math.nan)
    assert torch.allclose(heads.loss(code, classes, nan, nan), only_class)
    known = heads.loss(code, classes, torch.tensor([0.0, 90, 180]), torch.tensor([0.0, 10, 20]))
    assert known > only_class


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_every_method_learns_and_reports_class_and_camera(name: str, tiny_benchmark: Path):
    bench = Benchmark(tiny_benchmark)
    cls = REGISTRY[name]
    model = cls.from_config(**SMALL, **OVERRIDES[name])
    assert model.view is not None
    data = load_training_data(bench, "train", fields=cls.target_fields, image_size=32)
    assert torch.isfinite(data.image_azimuth).all() and torch.isfinite(data.image_elevation).all()
    model.prepare(data)
    batch = data.batch(torch.arange(8), occ_per_step=64, points_per_step=64)
    assert batch.azimuth is not None and batch.azimuth.shape == (8,)
    before = model.view.azimuth.weight.detach().clone()
    loss = model.training_loss(batch)
    loss.backward()
    assert (
        model.view.azimuth.weight.grad is not None
        and model.view.azimuth.weight.grad.abs().sum() > 0
    )
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.view.azimuth.weight)
    (pred,) = model.eval().reconstruct_items(bench, bench.items("val")[:1])
    assert pred.info["predicted_class"] in CLASS_NAMES
    assert 0.0 <= pred.info["class_probability"] <= 1.0
    assert 0.0 <= pred.info["azimuth"] < 360.0
    assert ELEVATION_RANGE[0] <= pred.info["elevation"] <= ELEVATION_RANGE[1]


def test_weights_saved_before_the_heads_load_without_them(tmp_path: Path) -> None:
    """A folder written before the heads existed (no `view_heads` in config.json, no `view.`
    tensors) loads as a headless model that reports no class."""
    cls = REGISTRY["voxel"]
    model = cls(cls.config_class(**SMALL, **OVERRIDES["voxel"], view_heads=False))
    folder = model.save_pretrained(tmp_path / "legacy")
    payload = json.loads((folder / "config.json").read_text())
    del payload["config"]["view_heads"]
    (folder / "config.json").write_text(json.dumps(payload))
    assert not any(k.startswith("view.") for k in torch.load(folder / "model.pt"))
    loaded = load_model("voxel", folder, device="cpu")
    assert loaded.view is None and loaded.config.view_heads is False
    (pred,) = loaded.reconstruct(torch.rand(1, 3, 32, 32))
    assert "predicted_class" not in pred.info
    assert pred.mesh is not None
