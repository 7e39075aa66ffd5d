"""Tiny weights whose class and camera heads give a known answer, and weights as they were
saved before the heads existed, for the tests of what the app reports (test_app,
test_inference, test_reconstruct).

`pinned_weights` copies the session's tiny weights (`app_helpers.shared_tiny_weights`) and
rewrites them: voxel's heads answer PINNED for every image (zero weights, one large bias per
head: class chair, azimuth bin 6 = 90 degrees, elevation bin 8 = [20, 25) degrees, whose
centre is 22.5), retrieval is saved without heads (`view_heads=False`, as the shipped
weights), clustering keeps its untrained heads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from app_helpers import shared_tiny_weights

from svr.classes import CLASS_NAMES

PINNED = {"predicted_class": "chair", "azimuth": 90.0, "elevation": 22.5}
_AZIMUTH_BIN, _ELEVATION_BIN = 6, 8


def pin_view_heads(folder: Path, name: str) -> None:
    """Rewrite the saved model in `folder` so that its heads always answer PINNED."""
    from svr.models import load_model

    model = load_model(name, folder, device="cpu")
    heads = model.view
    with torch.no_grad():
        for layer in (heads.cls, heads.azimuth, heads.elevation):
            layer.weight.zero_()
            layer.bias.fill_(-30.0)
        heads.cls.bias[CLASS_NAMES.index(PINNED["predicted_class"])] = 30.0
        heads.azimuth.bias[_AZIMUTH_BIN] = 30.0
        heads.elevation.bias[_ELEVATION_BIN] = 30.0
    model.save_pretrained(folder)


def strip_view_heads(src: Path, dst: Path, name: str) -> Path:
    """Save the model in `src` into `dst` as if trained before the heads (view_heads=False)."""
    from svr.models import load_model

    model = load_model(name, src, device="cpu")
    old = type(model).from_config(model.config, view_heads=False)
    old.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("view.")})
    old.import_arrays(model.export_arrays())
    old.training_info = dict(model.training_info)
    return old.save_pretrained(dst)


def pinned_weights(tmp_path_factory, benchmark_dir: Path) -> Path:
    """A models folder (made once per session): voxel pinned, retrieval without heads,
    clustering as made (see the module docstring)."""
    out = tmp_path_factory.getbasetemp() / "svr_pinned_weights"
    done = out / ".complete"
    if done.is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    source = shared_tiny_weights(tmp_path_factory, benchmark_dir)
    out.mkdir(parents=True)
    shutil.copytree(source / "clustering", out / "clustering")
    shutil.copytree(source / "voxel", out / "voxel")
    pin_view_heads(out / "voxel", "voxel")
    strip_view_heads(source / "retrieval", out / "retrieval", "retrieval")
    done.write_text("ok")
    return out
