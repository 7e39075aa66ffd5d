"""Tests of the training, prediction and reconstruction command lines on the tiny benchmark."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from svr import predict, reconstruct, train
from svr.data.layout import Benchmark
from svr.io import read_binvox_bytes

SMALL = ["--set", "channels=[8,16,16,32]", "--set", "code_dim=32"]


@pytest.fixture(scope="module")
def trained(tiny_benchmark, tmp_path_factory) -> dict[str, Path]:
    """Tiny clustering, voxel and atlas models trained through the CLI (one epoch each)."""
    root = tmp_path_factory.mktemp("models")
    extra = {
        "clustering": ["--set", "n_clusters=4", "--set", "members_per_cluster=3"],
        "voxel": ["--set", "decoder_channels=[8,8,4]"],
        "atlas": ["--set", "n_patches=2", "--set", "hidden=16", "--set", "points_per_step=100"],
    }
    out = {}
    for name, args in extra.items():
        folder = root / name
        code = train.main(
            [
                name,
                "--data",
                str(tiny_benchmark),
                "--out",
                str(folder),
                "--epochs",
                "1",
                "--max-minutes",
                "0.2",
                "--val-items",
                "3",
                *SMALL,
                *args,
            ]
        )
        assert code == 0
        out[name] = folder
    return out


def test_train_cli_writes_config_weights_and_card(trained, tiny_benchmark):
    folder = trained["clustering"]
    for f in ("config.json", "model.pt", "arrays.npz", "MODEL_CARD.md"):
        assert (folder / f).is_file()
    payload = json.loads((folder / "config.json").read_text())
    bench = Benchmark(tiny_benchmark)
    assert payload["method"] == "clustering"
    assert payload["config"]["n_clusters"] == 4 and payload["config"]["channels"] == [8, 16, 16, 32]
    info = payload["training"]
    assert info["data"] == bench.meta.identifier
    assert info["steps"] >= 1 and info["train_items"] == len(bench.items("train"))
    assert (
        0 <= info["val_fscore@0.01"] <= 1 and 0 <= info["val_iou"] <= 1 and info["val_items"] == 3
    )
    card = (folder / "MODEL_CARD.md").read_text()
    assert (
        bench.meta.identifier in card and "val_fscore@0.01" in card and "training_seconds" in card
    )


def test_time_budget_stops_training(tiny_benchmark, tmp_path):
    result = train.train(
        "voxel",
        tiny_benchmark,
        tmp_path / "v",
        epochs=10_000,
        seed=1,
        max_minutes=0.02,
        val_items=0,
        config_overrides={"channels": (8, 8, 8, 8), "code_dim": 8, "decoder_channels": (4, 4, 4)},
    )
    assert result.info["stopped_by_time_budget"] is True
    assert 1 <= result.info["steps"] < 10_000
    assert (tmp_path / "v" / "model.pt").is_file()


def test_train_rejects_unknown_config_fields(tiny_benchmark, tmp_path, capsys):
    code = train.main(
        [
            "voxel",
            "--data",
            str(tiny_benchmark),
            "--out",
            str(tmp_path / "x"),
            "--set",
            "n_clusters=3",
        ]
    )
    assert code == 2 and "no config fields" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name,ext", [("clustering", "binvox"), ("voxel", "npy"), ("atlas", "ply")])
def test_predict_cli_writes_a_complete_archive(name, ext, trained, tiny_benchmark, tmp_path):
    out = tmp_path / f"{name}.zip"
    code = predict.main(
        [
            "--model",
            name,
            "--weights",
            str(trained[name]),
            "--benchmark",
            str(tiny_benchmark),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    bench = Benchmark(tiny_benchmark)
    test_ids = {it.item_id for it in bench.items("test")}
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("submission.json"))
        members = {n.rsplit(".", 1)[0] for n in names if n != "submission.json"}
        assert members == test_ids and len(names) == len(test_ids) + 1
        # a voxel grid with no cell at 0.5 is written thresholded lower, as a bool .binvox
        allowed = (f".{ext}", ".binvox") if name == "voxel" else (f".{ext}",)
        assert all(n.endswith(allowed) for n in names if n != "submission.json")
        typed = sorted(n for n in names if n.endswith(f".{ext}"))
        lowered = sorted(n for n in names if name == "voxel" and n.endswith(".binvox"))
        assert typed or lowered
        for n in lowered:
            assert read_binvox_bytes(zf.read(n)).any()  # never empty
        sample = zf.read(typed[0]) if typed else None
    assert manifest["frame"] == bench.meta.frame and manifest["method"] == name
    assert manifest["authors"] == "svr project"
    if sample is None:
        return
    if ext == "binvox":
        assert read_binvox_bytes(sample).shape == (128, 128, 128)
    elif ext == "npy":
        import io

        assert np.load(io.BytesIO(sample), allow_pickle=False).shape == (32, 32, 32)
    else:
        import io

        mesh = trimesh.load(io.BytesIO(sample), file_type="ply", force="mesh")
        assert len(mesh.faces) > 0
    try:  # the leaderboard's own validator accepts it (when that package is present)
        from leaderboard.archive import open_submission
    except ImportError:
        return
    with open_submission(out, bench) as parsed:
        assert not parsed.missing and set(parsed.present) == test_ids


def test_predict_refuses_a_non_zip_target(trained, tiny_benchmark, tmp_path, capsys):
    code = predict.main(
        [
            "--model",
            "voxel",
            "--weights",
            str(trained["voxel"]),
            "--benchmark",
            str(tiny_benchmark),
            "--out",
            str(tmp_path / "a.tar"),
        ]
    )
    assert code == 2 and ".zip" in capsys.readouterr().err


def _reconstruct_clustering(trained, image, out) -> int:
    """Exit code of `python -m svr.reconstruct` with the tiny clustering model."""
    weights = str(trained["clustering"])
    return reconstruct.main(
        ["--model", "clustering", "--weights", weights, str(image), "--out", str(out)]
    )


@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_reconstruct_cli_writes_a_loadable_mesh(fmt, trained, tiny_benchmark, tmp_path):
    bench = Benchmark(tiny_benchmark)
    image = bench.image_path(bench.items("test")[0])
    out = tmp_path / f"shape.{fmt}"
    assert _reconstruct_clustering(trained, image, out) == 0
    mesh = trimesh.load(out, force="mesh")
    assert len(mesh.faces) > 0 and np.abs(mesh.vertices).max() <= 0.5 + 1e-6


def test_reconstruct_cli_accepts_rgb_and_rejects_bad_input(trained, tmp_path, capsys):
    rgb = tmp_path / "photo.jpg"
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(rgb)
    ply = tmp_path / "o.ply"
    # prepared as the app prepares a photo, a flat image holds no object to reconstruct
    assert _reconstruct_clustering(trained, rgb, ply) == 2
    assert "single colour" in capsys.readouterr().err and not ply.exists()
    weights = str(trained["clustering"])
    args = ["--model", "clustering", "--weights", weights, str(rgb), "--out", str(ply)]
    assert reconstruct.main([*args, "--as-is"]) == 0  # fed unchanged, as benchmark views
    assert len(trimesh.load(ply, force="mesh").faces) > 0
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert _reconstruct_clustering(trained, bad, tmp_path / "o.obj") == 2
    assert "not an image Pillow can read" in capsys.readouterr().err
    assert _reconstruct_clustering(trained, rgb, tmp_path / "o.stl") == 2
    assert (
        reconstruct.main(["--model", "oracle_nn", str(rgb), "--out", str(tmp_path / "o.obj")]) == 2
    )
    assert not (tmp_path / "o.obj").exists()


def test_init_encoder_copies_a_trained_encoder_and_refuses_another_architecture(
    trained, tiny_benchmark, tmp_path, capsys
):
    import torch

    small = {"channels": (8, 16, 16, 32), "code_dim": 32, "hidden": 16, "blocks": 1}  # = SMALL
    result = train.train(
        "occupancy", tiny_benchmark, tmp_path / "occ", epochs=0, val_items=0,
        config_overrides=small,
        init_encoder=trained["voxel"],
    )  # fmt: skip
    source = torch.load(trained["voxel"] / "model.pt", weights_only=True)
    copied = result.model.encoder.state_dict()
    assert copied and all(torch.equal(v, source[f"encoder.{k}"]) for k, v in copied.items())
    assert result.info["encoder_initialised_from"].startswith("voxel (svr-procedural")
    code = train.main(
        ["occupancy", "--data", str(tiny_benchmark), "--out", str(tmp_path / "bad"),
         "--init-encoder", str(trained["voxel"]), "--set", "code_dim=8"]
    )  # fmt: skip
    assert code == 2 and "does not match occupancy's" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_init_fine_tunes_a_saved_model_and_adds_fresh_heads(
    trained, tiny_benchmark, tmp_path, capsys
):
    """--init starts from the saved config and weights; heads the saved model lacks start
    fresh; another method or another architecture is refused with a clear error."""
    source = trained["atlas"]
    headless = train.train(
        "atlas", tiny_benchmark, tmp_path / "old", epochs=0, val_items=0,
        config_overrides={"view_heads": False}, init=source,
    ).model  # fmt: skip
    assert headless.view is None
    saved = torch.load(source / "model.pt", weights_only=True)
    code = train.main(
        ["atlas", "--data", str(tiny_benchmark), "--out", str(tmp_path / "new"), "--init",
         str(tmp_path / "old"), "--epochs", "0", "--val-items", "0", "--set", "view_heads=true"]
    )  # fmt: skip
    assert code == 0
    tuned = json.loads((tmp_path / "new" / "config.json").read_text())
    assert tuned["config"]["n_patches"] == 2 and tuned["config"]["hidden"] == 16  # not defaults
    assert tuned["training"]["initialised_from"].startswith("atlas (svr-procedural")
    weights = torch.load(tmp_path / "new" / "model.pt", weights_only=True)
    body = [k for k in weights if not k.startswith("view.")]
    assert body and all(torch.equal(weights[k], saved[k]) for k in body)
    heads = [k for k in weights if k.startswith("view.")]
    assert heads and not any(torch.equal(weights[k], saved[k]) for k in heads)  # fresh
    capsys.readouterr()
    assert train.main(
        ["voxel", "--data", str(tiny_benchmark), "--out", str(tmp_path / "x"), "--init", str(source)]
    ) == 2  # fmt: skip
    assert "holds a 'atlas' model" in capsys.readouterr().err
    assert train.main(
        ["atlas", "--data", str(tiny_benchmark), "--out", str(tmp_path / "y"), "--init",
         str(source), "--set", "hidden=8"]
    ) == 2  # fmt: skip
    assert "do not fit this atlas model (other shapes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_killed_run_resumes_to_the_same_weights(tiny_benchmark, tmp_path, monkeypatch):
    from svr.data.dataset import TrainingData

    small = {"channels": (8, 8), "code_dim": 8, "image_size": 32, "decoder_channels": (4, 4, 4)}
    kwargs = {"epochs": 3, "batch_size": 8, "val_items": 0, "config_overrides": small}
    whole = train.train("voxel", tiny_benchmark, tmp_path / "whole", **kwargs)
    original = TrainingData.batch
    calls = {"n": 0}

    def dies_at_step_5(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("killed")
        return original(self, *args, **kw)

    monkeypatch.setattr(TrainingData, "batch", dies_at_step_5)
    with pytest.raises(RuntimeError, match="killed"):
        train.train("voxel", tiny_benchmark, tmp_path / "cut", checkpoint_minutes=0.0, **kwargs)
    assert (tmp_path / "cut" / train.CHECKPOINT_FILE).is_file()
    monkeypatch.setattr(TrainingData, "batch", original)
    with pytest.raises(ValueError, match="another run"):
        train.train(
            "voxel", tiny_benchmark, tmp_path / "cut", resume=True,
            **{**kwargs, "batch_size": 4},
        )  # fmt: skip
    resumed = train.train("voxel", tiny_benchmark, tmp_path / "cut", resume=True, **kwargs)
    assert resumed.info["resumed_at_step"] == 4 and resumed.info["steps"] == whole.info["steps"]
    assert not (tmp_path / "cut" / train.CHECKPOINT_FILE).exists()
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
