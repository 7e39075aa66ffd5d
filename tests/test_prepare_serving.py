"""The compact serving build (what the app builds first), its readers, the training split
added on demand, and Oracle NN on a benchmark it was not made on.

The full tiny benchmark of `tiny_benchmark` (seed 0) is the reference: a serving build of the
same preset and seed must hold the same test items, images and ground truth (the protocol's
subsample of the points) and give the same scores, in a fraction of the bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from svr.data.build import (
    PRESETS,
    add_training_split,
    build_benchmark,
    estimate_size,
    training_split_ready,
)
from svr.data.layout import (
    SERVING_POINTS,
    Benchmark,
    load_ground_truth,
    load_voxels,
    serving_subsample,
)
from svr.data.layout import (
    test_checksum as layout_checksum,
)
from svr.evaluation import DEFAULT_PROTOCOL, Protocol, Scorer
from svr.types import Prediction

QUIET = {"progress": lambda done, total: None}
SERVING_FILES = {
    "mesh.ply",
    "voxels_32.bits.npy",
    "voxels_128.bits.npy",
    "points.npy",
    "normals.npy",
    "views",
}
REFERENCE_FILES = {"mesh.ply", "voxels_32.bits.npy"}  # the 128^3 grid is voxelised when asked


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serving build of `tiny` (seed 0), without a training split (read-only)."""
    out = tmp_path_factory.mktemp("serving") / "tiny"
    build_benchmark(out, preset="tiny", seed=0, workers=1, content="serving", **QUIET)
    return out


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_serving_subsample_is_the_default_protocols() -> None:
    """The stored points are exactly what the default protocol reads of the full ones."""
    assert DEFAULT_PROTOCOL.n_samples == SERVING_POINTS and DEFAULT_PROTOCOL.seed == 0


def test_a_serving_build_holds_test_then_val_compactly(serving: Path, tiny_benchmark: Path) -> None:
    bench = Benchmark(serving)
    meta = bench.meta
    assert meta.contents == {"test": "serving", "val": "serving"}
    assert meta.stored_points == {"n": SERVING_POINTS, "seed": 0, "of": 100_000}
    assert sum(meta.counts["train"].values()) == 0 and not (serving / "train").exists()
    assert meta.test_checksum == layout_checksum(serving)
    full = Benchmark(tiny_benchmark)
    assert [i.item_id for i in bench.items("test")] == [i.item_id for i in full.items("test")]
    assert [i.item_id for i in bench.items("val")] == [i.item_id for i in full.items("val")]
    for split in ("test", "val"):
        for ref in bench.shapes(split):
            folder = ref.path(serving)
            assert {p.name for p in folder.iterdir()} == SERVING_FILES, folder
            for view in bench.views(ref):  # same renderings, byte for byte
                name = f"views/{view}.png"
                assert (folder / name).read_bytes() == (
                    ref.path(tiny_benchmark) / name
                ).read_bytes()
    # bytes per test shape: the compact folder is far smaller than the full one
    ref = bench.shapes("test")[0]
    compact, whole = _folder_bytes(ref.path(serving)), _folder_bytes(ref.path(tiny_benchmark))
    assert compact * 8 < whole, (compact, whole)
    assert _folder_bytes(serving) < estimate_size("tiny", content="serving")


def test_compact_ground_truth_equals_the_full_one_and_scores_the_same(
    serving: Path, tiny_benchmark: Path
) -> None:
    compact_bench, full_bench = Benchmark(serving), Benchmark(tiny_benchmark)
    items = full_bench.items("test")[::7]
    scorer = Scorer(DEFAULT_PROTOCOL)
    for n, item in enumerate(items):
        a = compact_bench.ground_truth(item, with_mesh=True)
        b = full_bench.ground_truth(item, with_mesh=True)
        full_dir = full_bench.gt_dir(item)
        for r, grid in ((32, a.voxels_32), (128, a.voxels_128)):
            assert grid.dtype == bool and grid.shape == (r,) * 3
            assert np.array_equal(grid, np.load(full_dir / f"voxels_{r}.npy"))
        kept, kept_normals = serving_subsample(b.points, b.normals)
        assert len(a.points) == SERVING_POINTS and np.array_equal(a.points, kept)
        assert np.array_equal(a.normals, kept_normals)
        assert a.occ_points is None and b.occ_points is not None
        assert np.array_equal(a.mesh.vertices, b.mesh.vertices)
        # a prediction (another test shape, as a mesh and as a grid) scores identically
        other = full_bench.ground_truth(items[(n + 1) % len(items)], with_mesh=True)
        for pred in (
            Prediction("m", mesh=other.mesh),
            Prediction("g", occupancy=other.voxels_32),
        ):
            assert scorer.score(pred, a).to_dict() == scorer.score(pred, b).to_dict()


def test_a_protocol_that_needs_the_full_points_is_refused(serving: Path, tiny_benchmark) -> None:
    bench = Benchmark(serving)
    bench.check_protocol(DEFAULT_PROTOCOL.n_samples, DEFAULT_PROTOCOL.seed)
    other = Protocol(n_samples=20_000)
    with pytest.raises(ValueError, match="compact build.*full ground truth"):
        bench.check_protocol(other.n_samples, other.seed)
    Benchmark(tiny_benchmark).check_protocol(other.n_samples, other.seed)  # full: any protocol


def test_old_unpacked_folders_still_load(tiny_benchmark: Path) -> None:
    """A benchmark written before compact builds (bool grids, 100,000 points) reads as before."""
    bench = Benchmark(tiny_benchmark)
    folder = bench.shapes("test")[0].path(tiny_benchmark)
    assert (folder / "voxels_128.npy").is_file() and not (folder / "voxels_128.bits.npy").exists()
    gt = load_ground_truth(folder)
    assert gt.voxels_128.dtype == bool and gt.voxels_128.shape == (128,) * 3
    assert gt.points.shape == (100_000, 3) and gt.occ_labels is not None
    assert np.array_equal(load_voxels(folder, 32), np.load(folder / "voxels_32.npy"))
    assert bench.meta.split_contents("train") == "full"
    assert training_split_ready(tiny_benchmark, "reference")
    assert training_split_ready(tiny_benchmark, "full")


def test_training_is_refused_on_serving_folders_with_what_to_run(
    serving: Path, tmp_path: Path
) -> None:
    from svr.data.dataset import load_training_data

    with pytest.raises(ValueError, match="add-train"):
        load_training_data(Benchmark(serving), "train")
    copy = tmp_path / "bench"
    shutil.copytree(serving, copy)
    add_training_split(copy, "reference", workers=1, **QUIET)
    with pytest.raises(ValueError, match="built for serving only.*add-train"):
        load_training_data(Benchmark(copy), "train")


def _oracle():
    from svr.models import load_model
    from svr.settings import REPO_ROOT

    return load_model("oracle_nn", REPO_ROOT / "assets" / "models" / "oracle_nn")


def test_shipped_oracle_predicts_a_benchmark_of_another_preset(tiny_benchmark: Path) -> None:
    """The shipped Oracle NN was made on `default`; on `tiny` it searches tiny's own training
    split (it was a ValueError, and the leaderboard lacked Oracle NN on `small`)."""
    oracle = _oracle()
    bench = Benchmark(tiny_benchmark)
    assert len(oracle.database_keys) == 13 * PRESETS["default"].train
    items = bench.items("test")[:4]
    preds = oracle.reconstruct_items(bench, items)
    train_keys = {f"train/{r.key}" for r in bench.shapes("train")}
    for item, pred in zip(items, preds, strict=True):
        assert pred.info["retrieved"] in train_keys
        # the answer is the best training shape by IoU at 32^3 (a plain loop)
        gt = load_voxels(bench.gt_dir(item), 32)
        ious = {
            k: (gt & load_voxels(tiny_benchmark / k, 32)).sum()
            / max((gt | load_voxels(tiny_benchmark / k, 32)).sum(), 1)
            for k in sorted(train_keys)
        }
        assert pred.info["iou_32"] == pytest.approx(max(ious.values()), abs=1e-4)
        assert pred.occupancy.shape == (128,) * 3


def test_oracle_on_a_serving_build_needs_and_then_uses_the_reference_shapes(
    serving: Path, tiny_benchmark: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "bench"
    shutil.copytree(serving, copy)
    bench = Benchmark(copy)
    items = bench.items("test")[::4][:4]  # views of more than one shape
    with pytest.raises(ValueError, match="add-train --benchmark .* --reference"):
        _oracle().reconstruct_items(bench, items)
    assert not training_split_ready(copy, "reference")
    before = json.loads((copy / "benchmark.json").read_text())
    meta = add_training_split(copy, "reference", workers=1, **QUIET)
    assert training_split_ready(copy, "reference") and not training_split_ready(copy, "full")
    assert meta.identifier == Benchmark(serving).meta.identifier  # the test split is unchanged
    assert meta.contents["train"] == "reference" and meta.test_checksum == before["test_checksum"]
    refs = Benchmark(copy).shapes("train")
    assert len(refs) == 13 * PRESETS["tiny"].train
    for ref in refs:
        folder = ref.path(copy)
        assert {p.name for p in folder.iterdir()} == REFERENCE_FILES
        full = ref.path(tiny_benchmark)  # the same shapes as the full build's training split
        assert (folder / "mesh.ply").read_bytes() == (full / "mesh.ply").read_bytes()
        assert np.array_equal(load_voxels(folder, 32), np.load(full / "voxels_32.npy"))
    assert not [p for p in copy.iterdir() if p.name.startswith(".")]  # no staging left
    on_serving = _oracle().reconstruct_items(Benchmark(copy), items)
    on_full = _oracle().reconstruct_items(Benchmark(tiny_benchmark), items)
    assert [p.info for p in on_serving] == [p.info for p in on_full]
    # the 128^3 answer voxelised from the reference mesh (float32 PLY vertices) is the full
    # build's grid (voxelised from float64 vertices) up to a voxel whose centre lies within
    # 1e-8 of a face: 1 voxel in 1 of 520 shapes measured
    for lazy, stored in zip(on_serving, on_full, strict=True):
        assert lazy.occupancy.shape == (128, 128, 128) and lazy.occupancy.any()
        assert np.count_nonzero(lazy.occupancy != stored.occupancy) <= 2
    # asked again: nothing is built
    stamp = (copy / "benchmark.json").stat().st_mtime_ns
    add_training_split(copy, "reference", workers=1, **QUIET)
    assert (copy / "benchmark.json").stat().st_mtime_ns == stamp


def test_add_training_split_refuses_what_it_cannot_rebuild(tmp_path: Path, serving: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a benchmark folder"):
        add_training_split(tmp_path / "missing")
    copy = tmp_path / "bench"
    shutil.copytree(serving, copy)
    meta = json.loads((copy / "benchmark.json").read_text())
    (copy / "benchmark.json").write_text(json.dumps({**meta, "preset": "mine"}))
    with pytest.raises(ValueError, match="known preset"):
        add_training_split(copy)
    with pytest.raises(ValueError, match="'reference' or 'full'"):
        add_training_split(copy, "serving")
    with pytest.raises(ValueError, match="content must be"):
        build_benchmark(tmp_path / "x", preset="tiny", content="train-only", **QUIET)


def test_preparation_reports_a_state_per_step() -> None:
    from svr.prepare import Preparation, Step

    def boom(progress) -> None:
        progress(1, 4, "one of four")
        raise OSError("disk full")

    prep = Preparation(
        [
            Step("there", lambda p: None, skip_if=lambda: True),
            Step("ok", lambda p: p(2, 2)),
            Step("breaks", boom),
            Step("never", lambda p: None),
        ]
    )
    assert [s.state for s in prep.status().steps] == ["pending"] * 4
    prep.start()
    assert prep.join(10)
    status = prep.status()
    assert status.state == "failed" and "disk full" in status.error
    assert [s.state for s in status.steps] == ["skipped", "done", "failed", "pending"]
    assert [(s.done, s.total) for s in status.steps] == [(0, 0), (2, 2), (1, 4), (0, 0)]
    assert status.steps[3].seconds is None and status.steps[1].seconds >= 0
    status.steps[0].state = "changed"  # a snapshot: the preparation's own state is untouched
    assert prep.status().steps[0].state == "skipped"
