"""The photo pool: deterministic, resumable, tied to its benchmark, loaded beside the views."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from svr.data.dataset import load_training_data
from svr.data.layout import Benchmark
from svr.data.pool import PoolSpec, build_pool, load_pool

SPEC = PoolSpec(split="val", views=2, image_size=32, seed=3)


@pytest.fixture(scope="module")
def pool(tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pool") / "val"
    build_pool(tiny_benchmark, out, SPEC, workers=1, progress=lambda done, total: None)
    return out


def test_pool_holds_every_shape_with_cameras(pool: Path, tiny_benchmark: Path) -> None:
    bench = Benchmark(tiny_benchmark)
    info = json.loads((pool / "pool.json").read_text())
    assert info["shapes"] == len(bench.shapes("val")) == 13 and info["images"] == 26
    assert info["benchmark"] == bench.meta.identifier
    for ref in bench.shapes("val"):
        with np.load(pool / "shapes" / ref.class_name / f"{ref.shape_id}.npz") as f:
            assert f["images"].shape == (2, 3, 32, 32) and f["images"].dtype == np.uint8
            assert np.all((f["azimuth"] >= 0) & (f["azimuth"] < 360))
            assert np.all((f["elevation"] >= -15 - 1e-3) & (f["elevation"] <= 45 + 1e-3))
            assert f["images"].std() > 5  # an object, not a blank image
            assert not np.array_equal(f["images"][0], f["images"][1])  # two different views


def test_pool_is_deterministic_and_resumes(pool: Path, tiny_benchmark: Path, tmp_path: Path):
    victim = sorted((pool / "shapes").glob("*/*.npz"))[4]
    before = victim.read_bytes()
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(pool, copy)
    (copy / victim.relative_to(pool)).unlink()
    info = build_pool(tiny_benchmark, copy, SPEC, workers=1, progress=lambda d, t: None)
    assert info["rendered_now"] == 1
    assert (copy / victim.relative_to(pool)).read_bytes() == before
    with pytest.raises(ValueError, match="another benchmark or spec"):
        build_pool(tiny_benchmark, copy, PoolSpec(split="val", views=3, image_size=32))


def test_load_pool_appends_images_of_the_right_targets(pool: Path, tiny_benchmark: Path):
    data = load_training_data(Benchmark(tiny_benchmark), "val", image_size=32)
    n = data.num_images
    assert load_pool(pool, data) == 26
    assert data.num_images == n + 26 and len(data.item_ids) == n + 26
    added = data.image_target[n:]
    assert torch.bincount(added, minlength=data.num_targets).tolist() == [2] * data.num_targets
    assert torch.isfinite(data.image_azimuth).all()
    batch = data.batch(torch.arange(n, n + 8))
    assert batch.images.shape == (8, 3, 32, 32) and batch.vox32.shape == (8, 32, 32, 32)
    # images are resized to the data's size
    other = load_training_data(Benchmark(tiny_benchmark), "val", image_size=24)
    load_pool(pool, other)
    assert other.images.shape[1:] == (3, 24, 24)
    # a pool of another benchmark or split is refused
    train = load_training_data(Benchmark(tiny_benchmark), "train", image_size=32)
    with pytest.raises(ValueError, match="no images of these training targets"):
        load_pool(pool, train)
    train.benchmark_id = "another-benchmark"
    with pytest.raises(ValueError, match="rendered from"):
        load_pool(pool, train)


@pytest.mark.slow
def test_one_command_builds_the_data_renders_the_pools_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from svr.data.build import PRESETS, Preset
    from svr.train import main

    micro = Preset("micro", train=1, val=1, test=1, views=1, image_size=32, classes=("chair",))
    monkeypatch.setitem(PRESETS, "micro", micro)
    data, pool, out = tmp_path / "bench", tmp_path / "pool", tmp_path / "model"
    pool2 = tmp_path / "pool2"

    def argv(*pools: Path) -> list[str]:
        return [
            "voxel", "--data", str(data), "--build", "micro",
            *(a for p in pools for a in ("--pool", str(p))),
            "--pool-views", "2", "--out", str(out), "--epochs", "1", "--val-items", "1",
            "--set", "channels=[8,16]", "--set", "code_dim=16", "--set", "image_size=32",
        ]  # fmt: skip

    assert main(argv(pool, pool2)) == 0  # two missing pools: rendered with seeds 0 and 1
    card = (out / "MODEL_CARD.md").read_text()
    assert (
        "| train_items_photo_pool | 4 |" in card and "| train_items_benchmark_views | 1 |" in card
    )
    assert "seed 0; family train, 2 views per shape, 32 px, seed 1" in card
    assert [json.loads((p / "pool.json").read_text())["seed"] for p in (pool, pool2)] == [0, 1]
    [first] = (pool / "shapes").glob("*/*.npz")
    with np.load(first) as a, np.load(pool2 / first.relative_to(pool)) as b:
        assert a["images"].shape == b["images"].shape and not np.array_equal(
            a["images"], b["images"]
        )
    # the same views twice would weigh them double: refused, by path or by seed
    copy = tmp_path / "copy"
    shutil.copytree(pool, copy)
    for twice in ((pool, pool), (pool, copy)):
        assert main(argv(*twice)) == 2
    assert "same seed (0)" in capsys.readouterr().err
