"""python -m svr.reconstruct: the JSON report (class, probability, camera, files), --model all
and --color, with tiny weights whose heads give a known answer (tests/view_weights.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from view_weights import PINNED, pinned_weights

from svr import reconstruct
from svr.data.layout import Benchmark


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_benchmark) -> Path:
    return pinned_weights(tmp_path_factory, tiny_benchmark)


@pytest.fixture(scope="module")
def view(tiny_benchmark) -> Path:
    bench = Benchmark(tiny_benchmark)
    return bench.image_path(bench.items("val")[0])


def _run(*args: str) -> int:
    return reconstruct.main([str(a) for a in args])


def test_all_methods_report_class_camera_and_files(weights, view, tmp_path, capsys):
    report = tmp_path / "report.json"
    out = tmp_path / "shape.glb"
    assert _run(view, "--model", "all", "--models", weights, "--out", out, "--json", report) == 0
    data = json.loads(report.read_text())
    assert data["image"] == str(view)
    results = {r["method"]: r for r in data["results"]}
    assert list(results) == ["clustering", "retrieval", "voxel", "occupancy", "atlas"]
    voxel = results["voxel"]
    assert {k: voxel[k] for k in PINNED} == PINNED and voxel["kind"] == "encoder-decoder"
    assert voxel["class_probability"] == pytest.approx(1.0, abs=1e-3)
    assert results["retrieval"]["azimuth"] is None and results["retrieval"]["elevation"] is None
    assert results["retrieval"]["predicted_class"] is not None  # its answer's class
    assert 0 <= results["clustering"]["azimuth"] < 360  # untrained heads: some camera
    for name in ("clustering", "retrieval", "voxel"):
        path = Path(results[name]["files"]["glb"])
        assert path == tmp_path / f"shape_{name}.glb" and results[name]["error"] is None
        assert len(trimesh.load(path, force="mesh").faces) > 0
        assert results[name]["colored"] is False  # --color not given
    for name in ("occupancy", "atlas"):
        assert "no weights" in results[name]["error"] and results[name]["files"] == {}
    printed = capsys.readouterr().out
    assert "voxel): chair (p = 1.00); azimuth 90°, elevation 22°" in printed
    assert "retrieval" in printed and "no camera estimate" in printed


def test_one_method_to_stdout_with_colours(weights, view, tmp_path, capsys):
    out = tmp_path / "chair.ply"
    code = _run(
        view, "--model", "voxel", "--weights", weights / "voxel", "--out", out, "--json", "-",
        "--color",
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    (result,) = json.loads(captured.out)["results"]
    assert result["files"] == {"ply": str(out)} and result["colored"] is True
    assert 0 < result["colored_share"] < 1 and "wrote" in captured.err
    colors = np.asarray(trimesh.load(out, process=False).visual.vertex_colors)
    assert len(np.unique(colors, axis=0)) > 2
    # retrieval has no camera: --color leaves it uncoloured and the report says so
    grey, report = tmp_path / "grey.glb", tmp_path / "grey.json"
    code = _run(
        view, "--model", "retrieval", "--models", weights, "--out", grey, "--color",
        "--json", report,
    )  # fmt: skip
    assert code == 0
    (result,) = json.loads(report.read_text())["results"]
    assert result["colored"] is False and result["azimuth"] is None
    mesh = trimesh.load(grey, force="mesh", process=False)
    assert len(np.unique(np.asarray(mesh.visual.vertex_colors), axis=0)) == 1


def test_bad_requests_exit_2_with_a_reason(weights, view, tmp_path, capsys):
    out = tmp_path / "x.glb"
    assert _run(view, "--model", "all", "--weights", weights / "voxel", "--out", out) == 2
    assert "--models" in capsys.readouterr().err
    assert _run(view, "--model", "voxel", "--models", tmp_path / "none", "--out", out) == 2
    assert "no saved model folder" in capsys.readouterr().err
    assert _run(view, "--model", "all", "--models", tmp_path / "none", "--out", out) == 2
    assert not out.exists()


def test_a_photo_is_masked_and_centred_as_the_app_does_unless_as_is(
    weights, view, tmp_path, capsys
):
    """A JPEG on a coloured, noisy background (no alpha): by default the CLI feeds the
    network what the app would (svr.preprocess), with --as-is the raw pixels."""
    from PIL import Image

    from svr.models import load_model
    from svr.preprocess import preprocess

    rgba = np.asarray(Image.open(view).convert("RGBA")).astype(np.float32)
    rng = np.random.default_rng(0)
    h, w = rgba.shape[:2]
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    backdrop = np.array([70, 120, 200], np.float32) * (0.6 + 0.4 * ramp)
    backdrop = backdrop + rng.normal(0, 6, (h, w, 3))
    alpha = rgba[..., 3:] / 255.0
    photo = rgba[..., :3] * alpha + backdrop * (1 - alpha)
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(path, quality=92)

    model = load_model("clustering", weights / "clustering", device="cpu")
    as_app = model.reconstruct([np.asarray(preprocess(path).image)])[0]
    raw = model.reconstruct([np.asarray(Image.open(path).convert("RGB"))])[0]
    # the two inputs differ enough for the tiny classifier to tell them apart
    assert as_app.info["class_probability"] != raw.info["class_probability"]
    for extra, expected in (([], as_app), (["--as-is"], raw)):
        report = tmp_path / f"r{len(extra)}.json"
        out = tmp_path / f"s{len(extra)}.glb"
        args = [path, "--model", "clustering", "--models", weights, "--out", out]
        assert _run(*args, "--json", report, *extra) == 0
        (result,) = json.loads(report.read_text())["results"]
        assert result["predicted_class"] == expected.info["predicted_class"]
        assert result["class_probability"] == pytest.approx(
            expected.info["class_probability"], abs=1e-3
        )
    # colouring needs no transparent background once the photo is masked
    out, report = tmp_path / "coloured.glb", tmp_path / "coloured.json"
    args = [path, "--model", "voxel", "--models", weights, "--out", out, "--color"]
    assert _run(*args, "--json", report) == 0
    (result,) = json.loads(report.read_text())["results"]
    assert result["colored"] is True and 0 < result["colored_share"] < 1
