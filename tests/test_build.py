"""Tests of the benchmark builder, the stats, the sheet and the `python -m svr.data` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.ndimage import binary_dilation

from svr.data import layout
from svr.data.__main__ import main
from svr.data.build import PRESETS, Preset, build_benchmark, estimate_size, plan_shapes
from svr.data.layout import SPLITS, Benchmark
from svr.data.sheet import make_sheet
from svr.data.stats import pairwise_iou, stats
from svr.geometry import voxel_centers

GT_FILES = (
    "mesh.ply",
    "voxels_32.npy",
    "voxels_128.npy",
    "points.npy",
    "normals.npy",
    "occupancy.npz",
)
# Two classes, one train and one test shape each, two views of 32 x 32: a build of seconds.
MICRO = Preset("micro", train=1, val=0, test=1, views=2, image_size=32, classes=("chair", "table"))
QUIET = {"progress": lambda done, total: None}


def _failing_generator(class_name: str, seed: int):
    """A top-level (picklable) generator that breaks on the second class."""
    if class_name == "table":
        raise RuntimeError("generator exploded")
    from svr.data.procedural import generate_shape

    return generate_shape(class_name, seed)


def _winding_number(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalised winding number (Van Oosterom-Strackee solid angles): ~1 inside, ~0 outside."""
    tri = vertices[faces]
    out = np.zeros(len(points))
    for s in range(0, len(points), 256):
        p = points[s : s + 256, None, None, :]
        a, b, c = (tri[None, :, i, :] - p[:, :, 0, :] for i in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
        det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
        dot = lambda x, y: np.einsum("pfi,pfi->pf", x, y)  # noqa: E731
        denom = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb
        out[s : s + 256] = (2 * np.arctan2(det, denom)).sum(axis=1) / (4 * np.pi)
    return out


# ---------------------------------------------------------------------------------------------
# The tiny benchmark built once per session (tests/conftest.py)


def test_tiny_has_the_full_layout_and_counts(tiny_benchmark: Path) -> None:
    bench = Benchmark(tiny_benchmark)
    meta = bench.meta
    preset = PRESETS["tiny"]
    assert (meta.name, meta.source, meta.frame, meta.preset) == (
        "svr-procedural-13",
        "procedural",
        "object",
        "tiny",
    )
    assert meta.image_size == preset.image_size and meta.views_per_shape == preset.views
    assert meta.test_checksum == layout.test_checksum(tiny_benchmark)
    assert len(bench.class_names) == 13
    for split in SPLITS:
        for name in bench.class_names:
            assert (
                len(bench.shapes(split, [name])) == preset.count(split) == meta.counts[split][name]
            )
        for ref in bench.shapes(split):
            folder = ref.path(tiny_benchmark)
            for f in GT_FILES:
                assert (folder / f).is_file(), f"{folder / f} missing"
            assert bench.views(ref) == list(range(preset.views))
            assert len(bench.cameras(ref)) == preset.views
            for view in bench.views(ref):
                with Image.open(folder / "views" / f"{view}.png") as image:
                    assert image.mode == "RGBA" and image.size == (preset.image_size,) * 2
    assert not [
        p for p in tiny_benchmark.parent.iterdir() if p.name.startswith(".")
    ]  # no staging left


def test_tiny_shapes_are_in_one_split_only(tiny_benchmark: Path) -> None:
    bench = Benchmark(tiny_benchmark)
    keys = {s: {r.key for r in bench.shapes(s)} for s in SPLITS}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    # and different shapes: no two test shapes have the same grid as a training shape
    tests = bench.shapes("test")
    train = bench.shapes("train")
    grid = lambda r: np.load(r.path(tiny_benchmark) / "voxels_128.npy")  # noqa: E731
    train_grids = [grid(r) for r in train]
    for ref in tests[:6]:
        assert not any(np.array_equal(grid(ref), g) for g in train_grids)


def test_tiny_ground_truth_is_consistent_with_the_mesh(tiny_benchmark: Path) -> None:
    bench = Benchmark(tiny_benchmark)
    rng = np.random.default_rng(0)
    for ref in [bench.shapes("test", ["chair"])[0], bench.shapes("train", ["airplane"])[0]]:
        folder = ref.path(tiny_benchmark)
        mesh = trimesh.load(folder / "mesh.ply", force="mesh", process=False)
        assert mesh.is_watertight
        lo, hi = mesh.bounds
        assert (hi - lo).max() == pytest.approx(1.0) and np.allclose((lo + hi) / 2, 0, atol=1e-9)
        points, normals = np.load(folder / "points.npy"), np.load(folder / "normals.npy")
        assert points.shape == normals.shape == (100_000, 3) and points.dtype == np.float32
        sub = points[rng.choice(len(points), 2000, replace=False)]
        _, distance, _ = trimesh.proximity.closest_point(mesh, sub)
        assert distance.max() < 1e-5
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-4)
        # 32^3 grid against an independent inside test at 3000 random voxel centres
        grid = np.load(folder / "voxels_32.npy")
        assert grid.shape == (32, 32, 32) and grid.dtype == bool and grid.any()
        idx = rng.integers(0, 32, size=(3000, 3))
        centres = voxel_centers(32)[idx]
        inside = _winding_number(mesh.vertices, mesh.faces, centres) > 0.5
        agree = (inside == grid[idx[:, 0], idx[:, 1], idx[:, 2]]).mean()
        assert agree >= 0.99, f"{ref.key}: 32^3 grid agrees with the winding number on {agree:.3f}"
        with np.load(folder / "occupancy.npz") as occ:
            assert occ["points"].shape == (100_000, 3) and occ["occupied"].dtype == bool
            assert 0 < occ["occupied"].mean() < 1


def test_tiny_cameras_match_the_renderings(tiny_benchmark: Path) -> None:
    """Surface points projected with K, R, t from cameras.json land on the object's pixels."""
    bench = Benchmark(tiny_benchmark)
    size = bench.meta.image_size
    refs = bench.shapes("test")[::4]
    for ref in refs:
        points = np.load(ref.path(tiny_benchmark) / "points.npy")[::50].astype(np.float64)
        for view, cam in enumerate(bench.cameras(ref)):
            K, R, t = (np.array(cam[k]) for k in ("K", "R", "t"))
            assert cam["width"] == cam["height"] == cam["image_size"] == size
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
            focal = (size / 2) / np.tan(np.deg2rad(cam["fov"]) / 2)
            np.testing.assert_allclose(
                K, [[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], atol=1e-6
            )
            x = (points @ R.T + t) @ K.T
            uv = np.floor(x[:, :2] / x[:, 2:]).astype(int)
            assert ((uv >= 0) & (uv < size)).all(), "object cut off by the image border"
            with Image.open(bench.image_path(bench.item(f"{ref.key}/{view}"))) as image:
                alpha = np.asarray(image)[..., 3]
            # every point lands on or next to a covered pixel (parts thinner than the 2 x 2
            # supersampling step can fall between rays), nearly all on one
            near = binary_dilation(alpha > 0, structure=np.ones((3, 3), dtype=bool))
            assert near[uv[:, 1], uv[:, 0]].all()
            assert (alpha[uv[:, 1], uv[:, 0]] > 0).mean() > 0.94
            assert 0.01 < (alpha > 0).mean() < 0.9  # thin rifles and lamps cover ~3-5 %


def test_stats_on_tiny_match_a_naive_computation(tiny_benchmark: Path) -> None:
    report = stats(tiny_benchmark)
    bench = Benchmark(tiny_benchmark)
    assert [c.name for c in report.classes] == bench.class_names
    load = lambda r: np.load(r.path(tiny_benchmark) / "voxels_32.npy")  # noqa: E731
    train = [load(r) for r in bench.shapes("train")]
    chair = next(c for c in report.classes if c.name == "chair")
    assert chair.counts == {"train": 2, "val": 1, "test": 2}
    tests = [load(r) for r in bench.shapes("test", ["chair"])]

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return (a & b).sum() / (a | b).sum()

    best = [max(iou(t, g) for g in train) for t in tests]
    assert chair.oracle_nn.count == 2
    assert chair.oracle_nn.max == pytest.approx(max(best))
    assert chair.oracle_nn.mean == pytest.approx(np.mean(best))
    chairs = [load(r) for r in bench.shapes("train", ["chair"])]
    assert chair.within_iou == pytest.approx(iou(chairs[0], chairs[1]))
    others = [load(r) for r in bench.shapes("train") if r.class_name != "chair"]
    assert chair.between_iou == pytest.approx(np.mean([iou(a, b) for a in chairs for b in others]))
    assert "chair" in report.format_table()
    assert report.oracle_nn.count == 26


def test_pairwise_iou_matches_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    a = rng.random((7, 6, 6, 6)) < 0.3
    b = rng.random((5, 6, 6, 6)) < 0.5
    a[0] = False  # an empty grid
    b[1] = False
    fast = pairwise_iou(a, b)
    for i in range(7):
        for j in range(5):
            union = (a[i] | b[j]).sum()
            expected = 1.0 if union == 0 else (a[i] & b[j]).sum() / union
            assert fast[i, j] == pytest.approx(expected)
    assert fast[0, 1] == 1.0 and fast[0, 0] == 0.0
    np.testing.assert_allclose(np.diag(pairwise_iou(a[1:])), 1.0)
    # symmetric case, in several blocks
    monkeypatch.setattr("svr.data.stats._BLOCK", 3)
    both = np.concatenate([a, b])
    full = pairwise_iou(both)
    for i in range(12):
        for j in range(12):
            union = (both[i] | both[j]).sum()
            expected = 1.0 if union == 0 else (both[i] & both[j]).sum() / union
            assert full[i, j] == pytest.approx(expected)
    with pytest.raises(ValueError, match="differ in size"):
        pairwise_iou(a, b[:, :3])


def test_sheet_has_one_row_per_class(tiny_benchmark: Path, tmp_path: Path) -> None:
    sheet = make_sheet(tiny_benchmark, per_class=3, cell=40)
    assert sheet.size[1] == 13 * 44 + 4
    out = tmp_path / "sheet.png"
    assert main(["sheet", str(tiny_benchmark), "--out", str(out), "--per-class", "2"]) == 0
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert image.size[1] == 13 * (64 + 4) + 4
    assert (pixels.std(axis=2) > 20).any()  # coloured renderings, not an empty sheet


def test_cli_stats_json_and_errors(tiny_benchmark: Path, tmp_path: Path, capsys) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "svr.data", "stats", str(tiny_benchmark), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["classes"]) == 13 and data["classes"][0]["counts"]["train"] == 2
    assert main(["stats", str(tmp_path / "missing")]) == 1
    assert "not a benchmark folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build", "--preset", "huge", "--out", str(tmp_path / "x")])


# ---------------------------------------------------------------------------------------------
# Small builds of their own


def test_plan_is_stable_and_disjoint() -> None:
    small, default = plan_shapes("small", 0), plan_shapes("default", 0)
    ids = {(t.class_name, t.shape_id) for t in default}
    assert len(ids) == len(default) == 13 * 275
    # a smaller preset holds the first shapes of a larger one with the same seed
    by_place = {(t.split, t.class_name, t.index): t for t in default}
    assert all(by_place[(t.split, t.class_name, t.index)] == t for t in small)
    assert plan_shapes("small", 1)[0].seed != small[0].seed


@pytest.mark.slow
def test_builds_are_deterministic_and_viewer_frames_complete(tmp_path: Path) -> None:
    a = build_benchmark(tmp_path / "a", MICRO, seed=3, workers=1, **QUIET)
    v = build_benchmark(tmp_path / "v", MICRO, seed=3, frame="viewer", workers=2, **QUIET)
    c = build_benchmark(tmp_path / "c", MICRO, seed=4, workers=1, **QUIET)
    assert a.test_checksum != c.test_checksum
    assert a.counts["train"] == {**{n: 0 for n in a.counts["train"]}, "chair": 1, "table": 1}
    # same seed: the object-frame files are byte-identical whatever the frame and workers
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) == 4 * (len(GT_FILES) + 3) + 1
    for rel in files:
        if rel.name != "benchmark.json":
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "v" / rel).read_bytes(), rel
    # viewer frame: frames/<k>/ for every view, the mesh turned as cameras.json says
    bench = Benchmark(tmp_path / "v")
    assert bench.meta.frame == "viewer" and v.frame == "viewer"
    for item in bench.items("test") + bench.items("train"):
        folder = bench.gt_dir(item)
        assert folder == item.shape.path(bench.root) / "frames" / str(item.view)
        for f in GT_FILES:
            assert (folder / f).is_file()
        cam = bench.cameras(item.shape)[item.view]
        obj = trimesh.load(item.shape.path(bench.root) / "mesh.ply", process=False)
        viewed = trimesh.load(folder / "mesh.ply", process=False)
        transform = np.array(cam["viewer_transform"])
        np.testing.assert_allclose(
            obj.vertices @ transform[:3, :3].T + transform[:3, 3], viewed.vertices, atol=1e-6
        )
        rotation = transform[:3, :3] / np.cbrt(np.linalg.det(transform[:3, :3]))
        np.testing.assert_allclose(rotation, np.diag([1, -1, -1]) @ np.array(cam["R"]), atol=1e-6)
        lo, hi = viewed.bounds
        assert (hi - lo).max() == pytest.approx(1.0)


@pytest.mark.slow
def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="generator exploded"):
        build_benchmark(out, MICRO, workers=2, generator=_failing_generator, **QUIET)
    assert list(tmp_path.iterdir()) == []
    # an existing benchmark is left untouched by a failed overwrite
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        build_benchmark(out, MICRO, workers=1, **QUIET)
    with pytest.raises(RuntimeError, match="generator exploded"):
        build_benchmark(
            out, MICRO, workers=1, overwrite=True, generator=_failing_generator, **QUIET
        )
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (out / "keep.txt").read_text() == "mine"


def test_a_build_that_cannot_fit_on_disk_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    assert estimate_size("default", "viewer") > 6 * estimate_size("default", "object") * 0.9
    assert estimate_size("tiny") > 65 * 5_000_000  # 65 shapes of about 5.5 MB

    class Usage:
        free = 10_000_000

    monkeypatch.setattr("svr.data.build.shutil.disk_usage", lambda path: Usage)
    with pytest.raises(OSError, match="not enough disk space"):
        build_benchmark(tmp_path / "x", "tiny", **QUIET)
    assert main(["build", "--preset", "tiny", "--out", str(tmp_path / "x")]) == 1
    assert "not enough disk space" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        build_benchmark(tmp_path / "x", "huge")
    with pytest.raises(ValueError, match="frame"):
        build_benchmark(tmp_path / "x", MICRO, frame="camera")
    with pytest.raises(ValueError, match="workers"):
        build_benchmark(tmp_path / "x", MICRO, workers=0)
    with pytest.raises(ValueError, match="unknown or no classes"):
        Preset("bad", 1, 0, 1, 1, classes=("unicorn",))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_small_preset_builds(tmp_path: Path) -> None:
    """The `small` preset (the one the issue promises builds in under 2 minutes on 2 cores)
    builds completely; its shapes are those of `tiny` plus more (same seed, same places)."""
    out = tmp_path / "small"
    meta = build_benchmark(out, preset="small", seed=0, workers=2)
    preset = PRESETS["small"]
    bench = Benchmark(out)
    for split, per_class in (("train", preset.train), ("val", preset.val), ("test", preset.test)):
        assert meta.counts[split] == {name: per_class for name in bench.class_names}
        assert len(bench.shapes(split)) == 13 * per_class
    items = bench.items("test")
    assert len(items) == 13 * preset.test * preset.views
    assert meta.test_checksum == layout.test_checksum(out)
    first = items[0]
    image = np.asarray(Image.open(bench.image_path(first)))
    assert image.shape == (137, 137, 4)
    assert 0 < (image[..., 3] > 0).mean() < 1
    tiny_ids = {s.shape_id for s in plan_shapes(PRESETS["tiny"], 0)}
    small_ids = {s.shape_id for s in plan_shapes(preset, 0)}
    assert tiny_ids < small_ids


def test_staging_left_by_a_killed_build_is_removed(tmp_path: Path) -> None:
    """A build killed with SIGKILL leaves its staging folder; the next build removes it,
    unless its builder process is still alive."""
    import os
    import socket

    from svr.data.build import remove_stale_staging

    out = tmp_path / "bench"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / ".bench.abc123.building"
    (stale / "train").mkdir(parents=True)
    (stale / ".builder-pid").write_text(f"{socket.gethostname()} {dead.stdout.strip()}\n")
    orphan = tmp_path / ".bench.noowner.building"
    orphan.mkdir()
    running = tmp_path / ".bench.running.building"
    running.mkdir()
    (running / ".builder-pid").write_text(f"{socket.gethostname()} {os.getpid()}\n")
    other = tmp_path / ".another.x.building"
    other.mkdir()
    removed = remove_stale_staging(out)
    assert sorted(removed) == sorted([stale, orphan])
    assert not stale.exists() and not orphan.exists()
    assert running.exists() and other.exists()
