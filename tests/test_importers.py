"""Importers of ShapeNetCore, 3D-R2N2 and what3d, on miniature layouts the tests write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_layouts import (
    AIRPLANE,
    CHAIR,
    fake_renderer,
    make_r2n2,
    make_shapenet,
    make_what3d,
    write_split_csv,
)
from PIL import Image
from scipy.ndimage import binary_dilation

from svr.data.importers import IMPORTERS, run_import
from svr.data.importers import common as common_mod
from svr.data.importers import r2n2 as r2n2_mod
from svr.data.importers.common import (
    ShapeTask,
    hash_split,
    look_at,
    normalize_grid,
    read_split_file,
    staged_output,
)
from svr.data.layout import Benchmark
from svr.data.layout import test_checksum as layout_checksum

LAYOUT_FILES = (
    "mesh.ply",
    "voxels_32.npy",
    "voxels_128.npy",
    "points.npy",
    "normals.npy",
    "occupancy.npz",
)


def _leftovers(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def _check_gt_dir(d: Path) -> None:
    for name in LAYOUT_FILES:
        assert (d / name).is_file(), d / name
    v32, v128 = np.load(d / "voxels_32.npy"), np.load(d / "voxels_128.npy")
    assert v32.shape == (32, 32, 32) and v32.dtype == np.bool_ and v32.any()
    assert v128.shape == (128, 128, 128) and v128.dtype == np.bool_ and v128.any()
    pts, nrm = np.load(d / "points.npy"), np.load(d / "normals.npy")
    assert pts.dtype == np.float32 and pts.shape == nrm.shape and pts.shape[1] == 3
    assert np.abs(pts).max() <= 0.5 + 1e-4  # normalised into the unit cube
    ext = pts.max(0) - pts.min(0)
    assert ext.max() == pytest.approx(1.0, abs=0.04)  # longest side 1
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-4)


def _check_skips(summary, expected: dict[str, str]) -> None:
    """Exactly the expected models were skipped, each with a reason containing the text."""
    for model, reason in expected.items():
        hits = [r for p, r in summary.skipped if model in Path(p).parts]
        assert len(hits) == 1, f"{model}: {hits}; skipped: {summary.skipped}"
        assert reason in hits[0], (model, hits[0])
    assert len(summary.skipped) == len(expected), summary.skipped


# ------------------------------------------------------------------------------ common pieces


def test_hash_split_is_deterministic_and_near_70_10_20() -> None:
    ids = [f"model{i:05d}" for i in range(4000)]
    splits = [hash_split(i) for i in ids]
    assert splits == [hash_split(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert abs(share["train"] - 0.7) < 0.03 and abs(share["val"] - 0.1) < 0.02
    assert abs(share["test"] - 0.2) < 0.03


def test_read_split_file_formats(tmp_path: Path) -> None:
    official = tmp_path / "all.csv"
    official.write_text(
        "id,synsetId,subSynsetId,modelId,split\n1,03001627,03001627,abc,train\n"
        "2,03001627,03001627,def,val\n3,02691156,02691156,ghi,test\n"
    )
    assert read_split_file(official) == {"abc": "train", "def": "val", "ghi": "test"}
    plain = tmp_path / "plain.csv"
    plain.write_text("abc,train\ndef,validation\n")
    assert read_split_file(plain) == {"abc": "train", "def": "val"}
    lists = tmp_path / "s.json"
    lists.write_text(json.dumps({"train": ["a", "b"], "test": ["c"]}))
    assert read_split_file(lists) == {"a": "train", "b": "train", "c": "test"}
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"a": "val"}))
    assert read_split_file(mapping) == {"a": "val"}
    bad = tmp_path / "bad.csv"
    bad.write_text("modelId,split\nabc,holdout\n")
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        read_split_file(bad)
    noid = tmp_path / "noid.csv"
    noid.write_text("name,split\nabc,train\n")
    with pytest.raises(ValueError, match="no modelId"):
        read_split_file(noid)


def test_normalize_grid_centres_and_scales() -> None:
    grid = np.zeros((32, 32, 32), dtype=bool)
    grid[0:16, 0:8, 0:4] = True  # in the low corner, 16 x 8 x 4 voxels
    out, k, o = normalize_grid(grid, 32)
    idx = np.argwhere(out)
    lo, hi = idx.min(0), idx.max(0) + 1
    assert tuple(hi - lo) == (32, 16, 8)  # longest side spans the grid: zoom 2
    assert k == 2.0
    np.testing.assert_array_equal(lo + hi, [32, 32, 32])  # centred
    assert out.sum() == grid.sum() * 8
    # the same at zoom 1 keeps voxel counts and centres to within half a voxel
    grid2 = np.zeros((32, 32, 32), dtype=bool)
    grid2[0:32, 3:10, 20:25] = True
    out2, k2, _ = normalize_grid(grid2, 32)
    assert k2 == 1.0 and out2.sum() == grid2.sum()
    idx2 = np.argwhere(out2)
    assert np.all(np.abs(idx2.min(0) + idx2.max(0) + 1 - 32) <= 1)
    with pytest.raises(ValueError, match="empty"):
        normalize_grid(np.zeros((4, 4, 4), dtype=bool), 32)


def test_look_at_hand_computed() -> None:
    R, t = look_at(np.array([0.0, 0.0, 2.0]), np.zeros(3))
    np.testing.assert_allclose(R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(t, [0, 0, 2.0], atol=1e-12)
    R90, _ = look_at(np.array([0.0, 0.0, 2.0]), np.zeros(3), roll_deg=90)
    np.testing.assert_allclose(R90[0], [0, -1, 0], atol=1e-12)  # right axis turned to world down


def test_staged_output_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "x").write_text("half")
        raise RuntimeError("boom")
    assert not out.exists() and _leftovers(tmp_path, "bench") == []
    out.mkdir()
    (out / "keep").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"), staged_output(out):
        pass
    with pytest.raises(RuntimeError), staged_output(out, overwrite=True):
        raise RuntimeError("boom")
    assert (out / "keep").read_text() == "old" and _leftovers(tmp_path, "bench") == []
    with staged_output(out, overwrite=True) as staging:
        (staging / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"] and _leftovers(tmp_path, "bench") == []


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    assert set(IMPORTERS) == {"shapenet", "r2n2", "what3d"}
    with pytest.raises(ValueError, match="unknown import kind 'pix3d'"):
        run_import("pix3d", tmp_path, tmp_path / "out")


# ------------------------------------------------------------------------------------- R2N2


@pytest.fixture(scope="module")
def r2n2_import(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("r2n2")
    mini = make_r2n2(tmp / "src")
    splits = tmp / "split.csv"
    write_split_csv(
        splits,
        mini,
        {m: CHAIR for m in mini.good["chair"]} | {m: AIRPLANE for m in mini.good["airplane"]},
    )
    summary = run_import("r2n2", mini.root, tmp / "out", splits=splits, views=4, seed=3)
    return mini, summary, tmp / "out"


def test_r2n2_import_writes_a_valid_benchmark(r2n2_import) -> None:
    mini, summary, out = r2n2_import
    bench = Benchmark(out)
    assert bench.meta.source == "r2n2" and bench.meta.frame == "object"
    assert bench.meta.name == "shapenet-r2n2-13" and bench.meta.views_per_shape == 4
    assert bench.meta.test_checksum == layout_checksum(out)
    for split in ("train", "val", "test"):
        expected = sorted(m for c in mini.good.values() for m in c if mini.split_of[m] == split)
        assert sorted(s.shape_id for s in bench.shapes(split)) == expected
        for cls, n in bench.meta.counts[split].items():
            assert n == summary.counts.get(split, {}).get(cls, 0)
    items = bench.items("test")
    assert len(items) == 4 * 2  # one test shape per class, 4 views each
    for item in items:
        _check_gt_dir(bench.gt_dir(item))
        with Image.open(bench.image_path(item)) as im:
            assert im.size == (137, 137) and im.mode == "RGBA"
    assert summary.ignored == {"02747177": 1}
    _check_skips(summary, mini.corrupt)
    assert "truncated" in str(summary) and "skipped: 3" in str(summary)
    assert _leftovers(out.parent, "out") == []


def test_r2n2_ground_truth_matches_source_grid(r2n2_import) -> None:
    mini, _, out = r2n2_import
    bench = Benchmark(out)
    shape = bench.shapes("test", ["chair"])[0]
    from svr.io import read_binvox

    src = read_binvox(mini.root / "ShapeNetVox32" / CHAIR / shape.shape_id / "model.binvox")
    gt = bench.ground_truth(next(i for i in bench.items("test") if i.shape == shape))
    assert gt.voxels_32.sum() == src.sum()  # re-centring moves voxels, never adds or drops
    np.testing.assert_array_equal(
        gt.voxels_128, gt.voxels_32.repeat(4, 0).repeat(4, 1).repeat(4, 2)
    )
    # occupancy labels agree with the grid
    idx = np.floor((gt.occ_points + 0.5) * 32).astype(int)
    ok = np.all((idx >= 0) & (idx < 32), axis=1)
    labels = np.zeros(len(idx), dtype=bool)
    labels[ok] = gt.voxels_32[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    np.testing.assert_array_equal(labels, gt.occ_labels)


def _check_projection(out: Path) -> int:
    """Points of every imported shape, projected with its imported cameras, land on the
    silhouettes the fixture drew with an independent implementation of R2N2's Blender
    camera. Returns the number of views checked."""
    bench = Benchmark(out)
    checked = 0
    for shape in [s for split in ("train", "val", "test") for s in bench.shapes(split)]:
        points = np.load(shape.path(out) / "points.npy")[::20].astype(np.float64)
        for view, cam in enumerate(bench.cameras(shape)):
            K, R, t = (np.asarray(cam[k]) for k in ("K", "R", "t"))
            uvw = (points @ R.T + t) @ K.T
            ij = np.floor(uvw[:, :2] / uvw[:, 2:]).astype(int)
            with Image.open(shape.path(out) / "views" / f"{view}.png") as im:
                mask = np.asarray(im)[..., 3] > 0
            assert ((ij >= 0) & (ij < 137)).all()
            inside = binary_dilation(mask, iterations=3)[ij[:, 1], ij[:, 0]].mean()
            assert inside > 0.98, (shape.key, view, inside)
            hit = np.zeros_like(mask)
            hit[ij[:, 1], ij[:, 0]] = True
            coverage = (binary_dilation(hit, iterations=3) & mask).sum() / mask.sum()
            assert coverage > 0.9, (shape.key, view, coverage)
            checked += 1
    return checked


def test_r2n2_cameras_project_ground_truth_onto_the_renderings(r2n2_import) -> None:
    """The binvox ground truth (flipped, re-centred, normalised) and the cameras agree."""
    _, _, out = r2n2_import
    assert _check_projection(out) == 6 * 4


def test_r2n2_with_shapenet_meshes(tmp_path: Path) -> None:
    """With a ShapeNetCore v1 root, ground truth comes from the meshes, and the cameras
    are mapped with the mesh normalisation: projections still land on the renderings."""
    mini = make_r2n2(tmp_path / "src", per_class=2)
    (mini.root / "ShapeNetCore.v1" / CHAIR / "ch0001bb" / "model.obj").unlink()
    summary = run_import(
        "r2n2", mini.root, tmp_path / "out", views=2, shapenet=mini.root / "ShapeNetCore.v1"
    )
    bench = Benchmark(tmp_path / "out")
    # views=2 does not need the missing 02.png of "norender": 4 good shapes + norender
    assert summary.total == 5 and len(summary.skipped) == 2
    assert bench.meta.extra["shapes_from_meshes"] == 7 - 1  # all 7 listed, less the one removed
    assert _check_projection(tmp_path / "out") == 5 * 2
    for split in ("train", "val", "test"):
        for shape in bench.shapes(split):
            v32 = np.load(shape.path(bench.root) / "voxels_32.npy")
            v128 = np.load(shape.path(bench.root) / "voxels_128.npy")
            upsampled = np.array_equal(v128, v32.repeat(4, 0).repeat(4, 1).repeat(4, 2))
            # boxes voxelised at 128 from the mesh are not a x4 upsampling of the 32 grid,
            # except for the model whose mesh was removed (binvox fallback)
            assert upsampled == (shape.shape_id == "ch0001bb"), shape.key


def test_r2n2_camera_convention_hand_computed() -> None:
    # azimuth 90, elevation 0: Blender position (0, d, 0) -> OBJ (0, 0, -d), in front of a
    # ShapeNet model (front -z); after our 180-degree turn the camera is on +z looking at -z.
    A = np.diag([-1.0, 1.0, -1.0])
    cam = r2n2_mod.r2n2_camera(np.array([90.0, 0.0, 0.0, 0.8, 25.0]), A, np.zeros(3))
    np.testing.assert_allclose(cam.R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(-cam.R.T @ cam.t, [0, 0, 0.8 * 1.75], atol=1e-12)
    assert cam.K[0, 0] == pytest.approx(68.5 / np.tan(np.radians(12.5)))


def test_r2n2_metadata_errors(tmp_path: Path) -> None:
    path = tmp_path / "rendering_metadata.txt"
    path.write_text("10 20 0 0.8 25\n10 20 0 0.8\n")
    with pytest.raises(ValueError, match=r":2: 4 columns, expected 5"):
        r2n2_mod.read_rendering_metadata(path)
    path.write_text("10 20 0 0.8 abc\n")
    with pytest.raises(ValueError, match="not a number"):
        r2n2_mod.read_rendering_metadata(path)


def test_r2n2_viewer_frame_and_hash_splits(tmp_path: Path) -> None:
    mini = make_r2n2(tmp_path / "src", per_class=1)
    seen = []

    def progress(iterable, total, desc):
        seen.append((total, desc))
        return iterable

    summary = run_import(
        "r2n2",
        mini.root,
        tmp_path / "out",
        views=2,
        frame="viewer",
        limit_per_class=2,
        progress=progress,
    )
    assert seen == [(3, "importing r2n2")]
    bench = Benchmark(tmp_path / "out")
    assert bench.meta.frame == "viewer"
    shapes = [s for split in ("train", "val", "test") for s in bench.shapes(split)]
    for s in shapes:
        assert s.split == hash_split(s.shape_id)
        _check_gt_dir(s.path(bench.root))  # the object frame is written too
        obj_points = np.load(s.path(bench.root) / "points.npy").astype(np.float64)
        for view, cam in zip(bench.views(s), bench.cameras(s), strict=True):
            frame_dir = s.path(bench.root) / "frames" / str(view)
            _check_gt_dir(frame_dir)
            # viewer_transform takes object-frame points into frame k: same bounding box
            T = np.asarray(cam["viewer_transform"])
            moved = obj_points @ T[:3, :3].T + T[:3, 3]
            frame_points = np.load(frame_dir / "points.npy")
            np.testing.assert_allclose(moved.min(0), frame_points.min(0), atol=0.02)
            np.testing.assert_allclose(moved.max(0), frame_points.max(0), atol=0.02)
            # and its rotation is the camera's, in OpenGL axes (x right, y up, z to viewer)
            rot = T[:3, :3] / np.cbrt(np.linalg.det(T[:3, :3]))
            np.testing.assert_allclose(
                rot, np.diag([1.0, -1.0, -1.0]) @ np.asarray(cam["R"]), atol=1e-9
            )
    # chair: first 2 sorted models are ch0000bb and "badmeta" (skipped); airplane: 1 shape
    assert summary.total == 2 and len(summary.skipped) == 1


def test_failure_mid_import_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mini = make_r2n2(tmp_path / "src", per_class=2)
    real = r2n2_mod.write_ground_truth
    calls = []

    def failing(directory, gt):
        calls.append(directory)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        real(directory, gt)

    monkeypatch.setattr(r2n2_mod, "write_ground_truth", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_import("r2n2", mini.root, tmp_path / "out", views=1)
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path, "out") == []
    # an existing benchmark survives a failed overwrite untouched
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "benchmark.json").write_text("{}")
    calls.clear()
    with pytest.raises(RuntimeError):
        run_import("r2n2", mini.root, tmp_path / "out", views=1, overwrite=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["benchmark.json"]
    assert _leftovers(tmp_path, "out") == []


def test_nothing_importable_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "ShapeNetVox32" / CHAIR / "x").mkdir(parents=True)
    (src / "ShapeNetVox32" / CHAIR / "x" / "model.binvox").write_bytes(b"#binvox 1\ndim 2 2 2\n")
    with pytest.raises(ValueError, match="nothing imported.*header ends"):
        run_import("r2n2", src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path, "out") == []
    with pytest.raises(FileNotFoundError, match="not a 3D-R2N2 release"):
        run_import("r2n2", tmp_path / "missing", tmp_path / "out")


# --------------------------------------------------------------------------------- ShapeNet


@pytest.mark.parametrize("version", [1, 2])
def test_shapenet_import(tmp_path: Path, version: int) -> None:
    mini = make_shapenet(tmp_path / "src", version=version, per_class=3)
    splits = tmp_path / "split.csv"
    write_split_csv(splits, mini, {m: AIRPLANE for m in mini.good["airplane"]})
    summary = run_import(
        "shapenet", mini.root, tmp_path / "out", splits=splits, views=2, renderer=fake_renderer
    )
    bench = Benchmark(tmp_path / "out")
    assert bench.meta.source == "shapenet" and bench.meta.name == "shapenet-13"
    assert summary.ignored == {"02747177": 2}
    _check_skips(summary, mini.corrupt)
    for split in ("train", "val", "test"):
        expected = sorted(m for c in mini.good.values() for m in c if mini.split_of[m] == split)
        assert sorted(s.shape_id for s in bench.shapes(split)) == expected
    items = bench.items("test")
    assert len(items) == 2 * 2
    for item in items:
        _check_gt_dir(bench.gt_dir(item))
        gt = bench.ground_truth(item)
        # the fixture's primitives are watertight: the inside test is exact, so occupied
        # voxels fill a sensible part of the normalised cube
        assert 0.02 < gt.voxels_32.mean() < 0.9
        cams = bench.cameras(item.shape)
        assert len(cams) == 2 and np.asarray(cams[0]["K"]).shape == (3, 3)


def test_shapenet_mesh_is_turned_to_face_plus_z(tmp_path: Path) -> None:
    """A wedge whose tall end is at -z in ShapeNet's frame (its front) ends at +z in ours."""
    import trimesh

    from svr.data.importers.shapenet import load_shapenet_mesh

    wedge = trimesh.Trimesh(
        [[0, 0, 0], [1, 0, 0], [0, 0, -2], [1, 0, -2], [0, 1, -2], [1, 1, -2]],
        [[0, 2, 1], [1, 2, 3], [0, 4, 2], [1, 3, 5], [2, 4, 5], [2, 5, 3], [0, 1, 5], [0, 5, 4]],
    )
    path = tmp_path / "m.obj"
    path.write_text(wedge.export(file_type="obj"))
    mesh = load_shapenet_mesh(path)
    top = mesh.vertices[mesh.vertices[:, 1] > 0.4]
    assert np.all(top[:, 2] > 0.4)  # the tall end is now at +z
    assert mesh.bounds[1, 2] - mesh.bounds[0, 2] == pytest.approx(1.0)


def test_shapenet_with_project_renderer(tmp_path: Path) -> None:
    pytest.importorskip("svr.render")
    mini = make_shapenet(tmp_path / "src", version=2, per_class=1)
    summary = run_import("shapenet", mini.root, tmp_path / "out", views=1, seed=1)
    bench = Benchmark(tmp_path / "out")
    shapes = [s for split in ("train", "val", "test") for s in bench.shapes(split)]
    assert len(shapes) == summary.total == 2
    with Image.open(shapes[0].path(bench.root) / "views" / "0.png") as im:
        alpha = np.asarray(im)[..., 3]
    assert 0.02 < (alpha > 0).mean() < 0.9  # the object is in the picture, not filling it
    cam = bench.cameras(shapes[0])[0]
    assert {"K", "R", "t", "azimuth", "elevation", "distance", "fov"} <= set(cam)


# ----------------------------------------------------------------------------------- what3d


@pytest.mark.slow
def test_what3d_import(tmp_path: Path) -> None:
    mini = make_what3d(tmp_path / "src", per_class=3, views=2)
    summary = run_import("what3d", mini.root, tmp_path / "out", views=2, seed=5)
    bench = Benchmark(tmp_path / "out")
    assert bench.meta.frame == "viewer" and bench.meta.source == "what3d"
    assert bench.meta.image_size == 64
    assert summary.ignored == {"bag": 3}
    _check_skips(summary, mini.corrupt)
    assert set(summary.counts["train"]) == {"chair", "watercraft"}  # vessel -> watercraft
    for split in ("train", "val", "test"):
        expected = sorted(m for c in mini.good.values() for m in c if mini.split_of[m] == split)
        assert sorted(s.shape_id for s in bench.shapes(split)) == expected
    items = bench.items("test")
    assert len(items) == 2 * 2
    for item in items:
        d = bench.gt_dir(item)
        assert d.parts[-2:] == ("frames", str(item.view))
        _check_gt_dir(d)
        # the released points are kept (normalised), not resampled
        assert np.load(d / "points.npy").shape == (3000, 3)
        cam = bench.cameras(item.shape)[item.view]
        assert cam["K"] is None and cam["t"] is None


def test_what3d_paths_are_configurable(tmp_path: Path) -> None:
    from svr.data.importers.what3d import What3DPaths

    mini = make_what3d(tmp_path / "src", per_class=1, views=2)
    (mini.root / "voxels").rename(mini.root / "vox")
    paths = What3DPaths(voxels=("vox/{cls}/{model}/{view}.binvox",))
    summary = run_import("what3d", mini.root, tmp_path / "out", views=2, paths=paths)
    assert summary.total == 2  # one chair, one vessel
    with pytest.raises(ValueError, match="nothing imported.*missing voxels"):
        run_import("what3d", mini.root, tmp_path / "out2", views=2)


def test_workers_give_the_same_benchmark(tmp_path: Path) -> None:
    mini = make_r2n2(tmp_path / "src", per_class=2)
    one = run_import("r2n2", mini.root, tmp_path / "a", views=1)
    two = run_import("r2n2", mini.root, tmp_path / "b", views=1, workers=2)
    assert one.counts == two.counts and sorted(one.skipped) == sorted(two.skipped)
    assert (
        Benchmark(tmp_path / "a").meta.test_checksum == Benchmark(tmp_path / "b").meta.test_checksum
    )


def test_task_extra_lookup() -> None:
    task = ShapeTask("test", "chair", "x", Path("x"), (("views", 3),))
    assert task.get("views") == 3 and task.get("missing", 7) == 7 and task.key == "chair/x"
    assert common_mod.downsample_grid(np.ones((8, 8, 8), dtype=bool), 4).all()
