"""Test inputs for researchers: the zip, its reader, template and predictions from it alone."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from leaderboard.__main__ import main as leaderboard_main
from leaderboard.archive import open_submission
from svr.data.inputs import CAMERA_FIELDS, TestInputs, cached_test_inputs, write_test_inputs
from svr.data.layout import Benchmark
from svr.models import load_model
from svr.predict import write_submission
from svr.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "assets" / "models"


@pytest.fixture(scope="module")
def inputs_zip(tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_inputs(tiny_benchmark, tmp_path_factory.mktemp("inputs") / "inputs.zip")


def test_the_zip_holds_views_cameras_and_ids_and_no_ground_truth(
    inputs_zip: Path, tiny_benchmark: Path
) -> None:
    bench = Benchmark(tiny_benchmark)
    items = [it.item_id for it in sorted(bench.items("test"), key=lambda i: (i.shape.key, i.view))]
    with zipfile.ZipFile(inputs_zip) as zf:
        names = set(zf.namelist())
        expected = {"README.txt", "inputs.json", "cameras.json"}
        expected |= {f"views/{i}.png" for i in items}
        assert names == expected  # nothing else: no mesh, grid, point or benchmark.json
        header = json.loads(zf.read("inputs.json"))
        cameras = json.loads(zf.read("cameras.json"))
        for item in bench.items("test"):
            png = zf.read(f"views/{item.item_id}.png")
            assert png == bench.image_path(item).read_bytes()
            original = bench.cameras(item.shape)[item.view]
            assert set(cameras[item.item_id]) == set(CAMERA_FIELDS)
            assert (
                "viewer_transform" in original and "viewer_transform" not in cameras[item.item_id]
            )
            assert cameras[item.item_id]["R"] == original["R"]
    assert header["items"] == items and header["benchmark"] == bench.meta.identifier
    assert header["test_split"] == "public" and header["frame"] == "object"
    again = write_test_inputs(tiny_benchmark, inputs_zip.with_name("again.zip"))
    assert again.read_bytes() == inputs_zip.read_bytes()  # deterministic


def test_cache_builds_once_per_identifier(tiny_benchmark: Path, tmp_path: Path) -> None:
    first = cached_test_inputs(tiny_benchmark, tmp_path)
    stamp = first.stat().st_mtime_ns
    (tmp_path / "test-inputs-old-identifier.zip").write_bytes(b"stale")
    second = cached_test_inputs(tiny_benchmark, tmp_path / ".")
    assert second == first and first.stat().st_mtime_ns == stamp
    assert Benchmark(tiny_benchmark).meta.identifier in first.name


def test_reader_round_trip_and_refusals(inputs_zip: Path, tiny_benchmark: Path, tmp_path: Path):
    bench = Benchmark(tiny_benchmark)
    with TestInputs(inputs_zip) as inputs:
        assert [it.item_id for it in inputs.items()] == inputs.item_ids
        item = bench.items("test")[0]
        image = inputs.image(item.item_id)
        assert image.shape == (64, 64, 4) and image.dtype.name == "uint8"
        assert inputs.camera(item.item_id)["fov"] == bench.cameras(item.shape)[item.view]["fov"]
    not_zip = tmp_path / "x.zip"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a zip"):
        TestInputs(not_zip)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("something.txt", "x")
    with pytest.raises(ValueError, match="no inputs.json"):
        TestInputs(other)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("inputs.json", json.dumps({"format": 1, "items": ["../../etc/passwd"]}))
    with pytest.raises(ValueError, match="no valid item list"):
        TestInputs(bad)


def test_template_from_the_inputs_alone_is_a_complete_valid_submission(
    inputs_zip: Path, tiny_benchmark: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "example.zip"
    assert leaderboard_main(["template", "--inputs", str(inputs_zip), "--out", str(out)]) == 0
    assert "items" in capsys.readouterr().out
    bench = Benchmark(tiny_benchmark)
    with open_submission(out, bench, scratch=tmp_path) as parsed:
        assert sorted(parsed.test_ids) == sorted(it.item_id for it in bench.items("test"))
        assert not parsed.missing


def test_predictions_from_the_inputs_equal_those_from_the_benchmark(
    inputs_zip: Path, tiny_benchmark: Path, tmp_path: Path
) -> None:
    model = load_model("clustering", SHIPPED / "clustering", device="cpu")
    bench = Benchmark(tiny_benchmark)
    with TestInputs(inputs_zip) as inputs:
        a = write_submission(model, inputs, tmp_path / "a.zip", max_items=6)
    b = write_submission(model, bench, tmp_path / "b.zip", max_items=6)
    assert a == b
    with zipfile.ZipFile(tmp_path / "a.zip") as za, zipfile.ZipFile(tmp_path / "b.zip") as zb:
        assert za.namelist() == zb.namelist()
        for name in za.namelist():
            assert za.read(name) == zb.read(name), name
    oracle = load_model("oracle_nn", SHIPPED / "oracle_nn", device="cpu")
    with TestInputs(inputs_zip) as inputs, pytest.raises(ValueError, match="ground truth"):
        write_submission(oracle, inputs, tmp_path / "c.zip")
