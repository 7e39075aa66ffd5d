"""Mirror averaging at inference: the class (and a recognition baseline's answer) from an
image and its left-right mirror image, checked against the average computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_heads import OVERRIDES, SMALL

from svr.classes import CLASS_NAMES
from svr.data.dataset import load_training_data
from svr.data.layout import Benchmark
from svr.models import REGISTRY, load_model
from svr.models.heads import ViewHeads


def test_heads_average_the_class_over_the_mirror_and_keep_the_camera() -> None:
    torch.manual_seed(0)
    heads = ViewHeads(4)
    code, mirrored = torch.randn(3, 4), torch.randn(3, 4)
    with torch.no_grad():
        by_hand = (torch.softmax(heads.cls(code), 1) + torch.softmax(heads.cls(mirrored), 1)) / 2
    averaged = heads.describe(code, mirrored)
    alone = heads.describe(code)
    for i, (a, b) in enumerate(zip(averaged, alone, strict=True)):
        best = int(by_hand[i].argmax())
        assert a["predicted_class"] == CLASS_NAMES[best]
        assert a["class_probability"] == pytest.approx(float(by_hand[i, best]), abs=1e-4)
        assert (a["azimuth"], a["elevation"]) == (b["azimuth"], b["elevation"])


@pytest.fixture(scope="module")
def prepared(tiny_benchmark: Path) -> dict[str, torch.nn.Module]:
    """Untrained small models of the methods with a class, prepared on the tiny train split."""
    torch.manual_seed(0)
    bench = Benchmark(tiny_benchmark)
    out = {}
    for name in ("clustering", "retrieval", "mean_shape", "voxel"):
        cls = REGISTRY[name]
        model = cls.from_config(**SMALL, **OVERRIDES[name])
        model.prepare(load_training_data(bench, "train", fields=cls.target_fields, image_size=32))
        out[name] = model.eval()
    return out


def _answer(info: dict) -> tuple:
    """What identifies a prediction's answer and class in its info."""
    keys = ("cluster", "retrieved", "predicted_class")
    return tuple(info.get(k) for k in keys)


@pytest.mark.parametrize("name", ["clustering", "retrieval", "mean_shape", "voxel"])
def test_mirror_averaged_predictions_do_not_change_when_the_image_is_mirrored(
    name: str, prepared: dict
) -> None:
    model = prepared[name]
    assert model.config.mirror_average is True  # the default of new models
    x = torch.rand(4, 3, 32, 32)
    flipped = torch.flip(x, dims=[3])
    with torch.no_grad():
        assert model.mirrored_code(x) is not None
        assert torch.allclose(model.mirrored_code(x), model.encoder(flipped))
    one, two = model.reconstruct(x), model.reconstruct(flipped)
    for a, b in zip(one, two, strict=True):
        assert _answer(a.info) == _answer(b.info)
        assert a.info["class_probability"] == pytest.approx(b.info["class_probability"], abs=1e-4)
    model.train()
    assert model.mirrored_code(x) is None  # training sees each image as it is
    model.eval()


def test_clustering_and_retrieval_answer_from_the_averaged_scores(prepared: dict) -> None:
    x = torch.rand(4, 3, 32, 32)
    flipped = torch.flip(x, dims=[3])
    clustering, retrieval = prepared["clustering"], prepared["retrieval"]
    with torch.no_grad():
        probs = (
            torch.softmax(clustering.head(clustering.encoder(x)), 1)
            + torch.softmax(clustering.head(clustering.encoder(flipped)), 1)
        ) / 2
        embedding = (
            retrieval.head(retrieval.encoder(x)) + retrieval.head(retrieval.encoder(flipped))
        ) / 2
    database = torch.from_numpy(retrieval.embedding)
    nearest = torch.cdist(embedding, database).argmin(1)
    for i, pred in enumerate(clustering.reconstruct(x)):
        assert pred.info["cluster"] == int(probs[i].argmax())
    for i, pred in enumerate(retrieval.reconstruct(x)):
        assert pred.info["retrieved"] == retrieval.database_keys[int(nearest[i])]


def test_switched_off_and_legacy_weights_read_the_image_alone(
    prepared: dict, tmp_path: Path
) -> None:
    model = prepared["clustering"]
    folder = model.save_pretrained(tmp_path / "clustering")
    payload = json.loads((folder / "config.json").read_text())
    del payload["config"]["mirror_average"]  # weights saved before the field existed
    (folder / "config.json").write_text(json.dumps(payload))
    legacy = load_model("clustering", folder, device="cpu")
    assert legacy.config.mirror_average is False
    x = torch.rand(4, 3, 32, 32)
    assert legacy.mirrored_code(x) is None
    with torch.no_grad():
        plain = torch.softmax(legacy.head(legacy.encoder(x)), 1)
    for i, pred in enumerate(legacy.reconstruct(x)):
        assert pred.info["cluster"] == int(plain[i].argmax())
    # a headless encoder-decoder has nothing that reads the mirror: the encoder runs once
    voxel = REGISTRY["voxel"].from_config(**SMALL, **OVERRIDES["voxel"], view_heads=False)
    assert voxel.eval().mirrored_code(x) is None
