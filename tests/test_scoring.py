"""Scoring of parsed submissions end to end on a tiny benchmark built in a temporary folder."""

from __future__ import annotations

import io
import json
import math
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from leaderboard.archive import open_submission, write_submission_zip, write_template
from leaderboard.scoring import ScoringTimeout, SubmissionScores, aggregate, score_submission
from leaderboard.validation import Manifest
from svr.data import layout
from svr.data.layout import (
    Benchmark,
    BenchmarkMeta,
    compute_ground_truth,
    normalize_mesh,
    write_ground_truth,
    write_meta,
)
from svr.evaluation import DEFAULT_PROTOCOL, Protocol, metric_keys

REPO = Path(__file__).resolve().parents[1]
VIEWS = 2
PROTOCOL = Protocol(n_samples=3000)


def _shapes() -> dict[str, dict[str, trimesh.Trimesh]]:
    return {
        "chair": {
            "box": trimesh.creation.box(extents=(1.0, 0.5, 0.7)),
            "cyl": trimesh.creation.cylinder(radius=0.3, height=1.0, sections=24),
        },
        "table": {"slab": trimesh.creation.box(extents=(1.0, 0.2, 0.8))},
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    """3 shapes in 2 classes, 2 views each, object frame: 6 test items, with ground truth."""
    root = tmp_path_factory.mktemp("bench")
    for cls, shapes in _shapes().items():
        for k, (shape_id, mesh) in enumerate(shapes.items()):
            folder = root / "test" / cls / shape_id
            write_ground_truth(folder, compute_ground_truth(normalize_mesh(mesh), seed=k))
            (folder / "views").mkdir()
            for v in range(VIEWS):
                (folder / "views" / f"{v}.png").write_bytes(b"")
    meta = BenchmarkMeta(
        "tiny", "1", 0, "object", "procedural", test_checksum=layout.test_checksum(root)
    )
    write_meta(root, meta)
    return Benchmark(root)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def ids(bench: Benchmark) -> list[str]:
    return [item.item_id for item in bench.items("test")]


def gt_grid_submission(bench: Benchmark, path: Path, keep: list[str] | None = None) -> Path:
    items = []
    for item_id in keep if keep is not None else ids(bench):
        gt = bench.ground_truth(bench.item(item_id))
        items.append((item_id, "npy", npy(gt.voxels_32)))
    write_submission_zip(path, Manifest("gt32", "voxels", bench.meta.frame), items)
    return path


def score(bench: Benchmark, path: Path, **kwargs: object) -> SubmissionScores:
    with open_submission(path, bench) as parsed:
        return score_submission(parsed, bench, kwargs.pop("protocol", PROTOCOL), **kwargs)  # type: ignore[arg-type]


def test_ground_truth_grids_score_iou_one_exactly(tmp_path: Path, bench: Benchmark) -> None:
    scores = score(bench, gt_grid_submission(bench, tmp_path / "gt.zip"))
    assert set(scores.items) == set(ids(bench))
    assert all(m["iou"] == 1.0 for m in scores.items.values())
    assert scores.overall["mean_over_items"]["iou"] == 1.0
    assert scores.overall["mean_of_class_means"]["iou"] == 1.0
    assert scores.coverage == {
        "fraction": 1.0,
        "n_items": 6,
        "n_present": 6,
        "n_missing": 0,
        "n_empty": 0,
    }
    # marching cubes of the 32^3 grid is close to the true surface
    assert scores.overall["mean_over_items"]["fscore@0.05"] > 0.9
    assert set(scores.item_status.values()) == {"ok"}


def test_missing_half_counts_as_zero_and_worst(tmp_path: Path, bench: Benchmark) -> None:
    all_ids = ids(bench)
    keep = all_ids[::2]
    scores = score(bench, gt_grid_submission(bench, tmp_path / "half.zip", keep))
    assert scores.coverage["fraction"] == 0.5
    assert scores.coverage["n_missing"] == 3 and scores.coverage["n_present"] == 3
    over = scores.overall["mean_over_items"]
    assert over["iou"] == pytest.approx(0.5)
    head = DEFAULT_PROTOCOL.headline_key
    present_f = [scores.items[i][head] for i in keep]
    assert over[head] == pytest.approx(sum(present_f) / 6)
    present_cd = [scores.items[i]["chamfer_l1"] for i in keep]
    assert over["chamfer_l1"] == pytest.approx((sum(present_cd) + 3 * math.sqrt(3)) / 6)
    for i in set(all_ids) - set(keep):
        assert scores.item_status[i] == "missing"
        assert scores.items[i]["iou"] == 0.0 and scores.items[i][head] == 0.0
        assert scores.items[i]["chamfer_l2"] == PROTOCOL.chamfer_l2_worst


def test_aggregates_match_naive_recomputation(tmp_path: Path, bench: Benchmark) -> None:
    scores = score(bench, gt_grid_submission(bench, tmp_path / "half.zip", ids(bench)[1:]))
    for cls in ("chair", "table"):
        rows = [m for i, m in scores.items.items() if i.startswith(cls + "/")]
        for key in ("iou", "fscore@0.01", "chamfer_l1"):
            values = [r[key] for r in rows]
            assert scores.per_class[cls][key]["mean"] == pytest.approx(sum(values) / len(values))
            assert scores.per_class[cls][key]["median"] == pytest.approx(statistics.median(values))
    means = [scores.per_class[c]["chamfer_l1"]["mean"] for c in ("chair", "table")]
    assert scores.overall["mean_of_class_means"]["chamfer_l1"] == pytest.approx(sum(means) / 2)
    assert scores.class_counts == {
        "chair": {"n": 4, "missing": 1, "empty": 0},
        "table": {"n": 2, "missing": 0, "empty": 0},
    }


def test_aggregate_hand_computed() -> None:
    items = {
        "a/s/0": {"x": 1.0, "y": None},
        "a/s/1": {"x": 0.0, "y": None},
        "a/t/0": {"x": 0.5, "y": None},
        "b/u/0": {"x": 0.2, "y": None},
    }
    per_class, overall = aggregate(items, ["x", "y"])
    assert per_class["a"]["x"] == {"mean": pytest.approx(0.5), "median": 0.5}
    assert per_class["b"]["x"] == {"mean": pytest.approx(0.2), "median": 0.2}
    assert overall["mean_of_class_means"]["x"] == pytest.approx(0.35)
    assert overall["mean_over_items"]["x"] == pytest.approx(1.7 / 4)
    # not applicable stays None, never 0
    assert per_class["a"]["y"] == {"mean": None, "median": None}
    assert overall["mean_over_items"]["y"] is None


def test_point_cloud_iou_is_not_applicable_even_for_missing_items(
    tmp_path: Path, bench: Benchmark
) -> None:
    items = []
    for item_id in ids(bench)[:3]:
        gt = bench.ground_truth(bench.item(item_id))
        items.append((item_id, "npy", npy(gt.points[:5000])))
    path = tmp_path / "pts.zip"
    write_submission_zip(path, Manifest("pts", "points", "object"), items)
    scores = score(bench, path)
    assert all(m["iou"] is None and m["iou_128"] is None for m in scores.items.values())
    assert all(m["normal_consistency"] is None for m in scores.items.values())
    assert scores.overall["mean_over_items"]["iou"] is None
    assert all(pc["iou"]["mean"] is None for pc in scores.per_class.values())
    # 5,000 points on the true surface (spacing ~0.025): nearly all within 5% both ways
    assert all(scores.items[i]["fscore@0.05"] > 0.95 for i in ids(bench)[:3])
    assert all(scores.items[i]["fscore@0.01"] == 0.0 for i in ids(bench)[3:])


def test_empty_prediction_scores_worst_and_counts_in_coverage(
    tmp_path: Path, bench: Benchmark
) -> None:
    all_ids = ids(bench)
    items = [(i, "npy", npy(np.zeros((32, 32, 32), bool))) for i in all_ids[:1]]
    items += [(i, "npy", npy(bench.ground_truth(bench.item(i)).voxels_32)) for i in all_ids[1:]]
    path = tmp_path / "empty.zip"
    write_submission_zip(path, Manifest("e", "voxels", "object"), items)
    scores = score(bench, path)
    first = scores.items[all_ids[0]]
    assert scores.item_status[all_ids[0]] == "empty"
    assert first["fscore@0.01"] == 0.0 and first["iou"] == 0.0
    assert first["chamfer_l1"] == PROTOCOL.chamfer_l1_worst
    assert scores.coverage["n_empty"] == 1 and scores.coverage["fraction"] == pytest.approx(5 / 6)
    assert scores.class_counts["chair"]["empty"] == 1


def test_mesh_submission_of_ground_truth_meshes(tmp_path: Path, bench: Benchmark) -> None:
    items = []
    for item_id in ids(bench):
        mesh = trimesh.load(bench.gt_dir(bench.item(item_id)) / "mesh.ply", process=False)
        items.append((item_id, "ply", mesh.export(file_type="ply")))
    path = tmp_path / "mesh.zip"
    write_submission_zip(path, Manifest("m", "mesh", "object"), items)
    scores = score(bench, path)
    over = scores.overall["mean_over_items"]
    assert over["iou"] == 1.0  # the ground-truth grids are voxelisations of these meshes
    # two independent samplings of the same surface: nearly all pairs within 5%
    assert over["fscore@0.05"] > 0.99
    assert over["normal_consistency"] > 0.95


def test_ground_truth_loaded_once_per_shape(
    tmp_path: Path, bench: Benchmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = Benchmark.ground_truth

    def counting(self: Benchmark, item, with_mesh: bool = False):  # type: ignore[no-untyped-def]
        calls.append(item.shape.key)
        return original(self, item, with_mesh)

    path = gt_grid_submission(bench, tmp_path / "gt.zip")
    monkeypatch.setattr(Benchmark, "ground_truth", counting)
    score(bench, path)
    assert sorted(calls) == ["chair/box", "chair/cyl", "table/slab"]


def test_progress_and_time_limit(tmp_path: Path, bench: Benchmark) -> None:
    path = gt_grid_submission(bench, tmp_path / "gt.zip")
    seen: list[tuple[int, int]] = []
    score(bench, path, progress=lambda d, t: seen.append((d, t)), batch_size=2)
    assert seen[-1] == (6, 6) and len(seen) >= 3
    with pytest.raises(ScoringTimeout, match="limit 0 s"):
        score(bench, path, time_limit_s=0.0, batch_size=2)


def test_json_is_strict_and_round_trips(tmp_path: Path, bench: Benchmark) -> None:
    scores = score(bench, gt_grid_submission(bench, tmp_path / "gt.zip", ids(bench)[:2]))
    text = scores.to_json()
    data = json.loads(text)
    assert {"protocol", "benchmark", "overall", "per_class", "items", "coverage"} <= set(data)
    assert set(data["items"][ids(bench)[0]]) == set(metric_keys(PROTOCOL))
    assert SubmissionScores.from_json(text) == scores


@pytest.mark.parametrize("representation", ["voxels", "mesh", "points"])
def test_template_is_valid_and_scores(
    tmp_path: Path, bench: Benchmark, representation: str
) -> None:
    path = tmp_path / f"example-{representation}.zip"
    write_template(bench, path, representation)
    with zipfile.ZipFile(path) as zf:
        assert "submission.json" in zf.namelist()
    scores = score(bench, path)
    assert scores.coverage["fraction"] == 1.0
    over = scores.overall["mean_over_items"]
    assert 0.0 < over["fscore@0.1"] < 1.0
    assert (over["iou"] is None) == (representation == "points")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaderboard", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_template_then_score_writes_json(tmp_path: Path, bench: Benchmark) -> None:
    archive = tmp_path / "example.zip"
    made = _cli("template", "--benchmark", str(bench.root), "--out", str(archive))
    assert made.returncode == 0, made.stderr
    out = tmp_path / "scores.json"
    run = _cli(
        "score", str(archive), "--benchmark", str(bench.root), "--device", "cpu", "--json", str(out)
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert {"protocol", "benchmark", "overall", "per_class", "items", "coverage"} <= set(data)
    assert data["benchmark"] == bench.meta.identifier
    assert data["protocol"] == DEFAULT_PROTOCOL.identifier
    assert set(data["items"]) == set(ids(bench))
    assert "mean_of_class_means" in run.stdout and "chair" in run.stdout


def test_cli_score_bad_archive_exits_nonzero(tmp_path: Path, bench: Benchmark) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("chair/box/0.npy", npy(np.zeros((32, 32, 32), bool)))
    run = _cli("score", str(bad), "--benchmark", str(bench.root))
    assert run.returncode == 2
    assert "no submission.json manifest" in run.stderr


def test_viewer_frame_scores_against_each_views_ground_truth(tmp_path: Path) -> None:
    root = tmp_path / "viewer"
    base = normalize_mesh(trimesh.creation.box(extents=(1.0, 0.3, 0.6)))
    folder = root / "test" / "chair" / "box"
    write_ground_truth(folder, compute_ground_truth(base, seed=0))
    (folder / "views").mkdir()
    for v in range(2):
        turned = base.copy()
        turned.apply_transform(trimesh.transformations.rotation_matrix(v * np.pi / 2, [0, 1, 0]))
        write_ground_truth(folder / "frames" / str(v), compute_ground_truth(turned, seed=v))
        (folder / "views" / f"{v}.png").write_bytes(b"")
    write_meta(root, BenchmarkMeta("tinyv", "1", 0, "viewer", "procedural", test_checksum="0" * 64))
    bench = Benchmark(root)
    grids = {i: bench.ground_truth(bench.item(i)).voxels_32 for i in ids(bench)}
    right = tmp_path / "right.zip"
    write_submission_zip(
        right, Manifest("v", "voxels", "viewer"), [(i, "npy", npy(g)) for i, g in grids.items()]
    )
    assert all(m["iou"] == 1.0 for m in score(bench, right).items.values())
    swapped = tmp_path / "swapped.zip"
    a, b = ids(bench)
    write_submission_zip(
        swapped,
        Manifest("v", "voxels", "viewer"),
        [(a, "npy", npy(grids[b])), (b, "npy", npy(grids[a]))],
    )
    assert all(m["iou"] < 0.6 for m in score(bench, swapped).items.values())


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tmp_path: Path, tiny_benchmark: Path) -> None:
    """The shared procedural benchmark: GT grids score IoU 1 exactly on every item, half of
    them give coverage 0.5 with missing items counted as 0."""
    bench = Benchmark(tiny_benchmark)
    all_ids = ids(bench)
    scores = score(bench, gt_grid_submission(bench, tmp_path / "gt.zip"))
    assert len(scores.items) == len(all_ids) > 0
    assert all(m["iou"] == 1.0 for m in scores.items.values())
    keep = all_ids[: len(all_ids) // 2]
    half = score(bench, gt_grid_submission(bench, tmp_path / "half.zip", keep))
    assert half.coverage["fraction"] == pytest.approx(len(keep) / len(all_ids))
    assert half.overall["mean_over_items"]["iou"] == pytest.approx(len(keep) / len(all_ids))
    assert all(half.items[i]["iou"] == 0.0 for i in all_ids[len(keep) :])
