"""Write a leaderboard submission for a trained method: every test item reconstructed.

    python -m svr.predict --model NAME --weights DIR --benchmark DIR --out ARCHIVE.zip
    python -m svr.predict --model NAME --weights DIR --inputs test-inputs.zip --out ARCHIVE.zip

The items come from a benchmark folder or from the test inputs zip the leaderboard serves
(`svr.data.inputs`: views and cameras only, no ground truth; the predictions are the same).

The archive holds `submission.json` (the leaderboard's manifest fields: method,
representation, frame, threshold, authors, training_data, description) and one file per test
item, `<class>/<shape id>/<view>.<ext>`, by the method's representation:

- bool grids (clustering, retrieval, mean shape, oracle NN; 128^3): `.binvox` (run-length
  encoded: a 128^3 `.npy` would be 2 MB per item and overflow the archive size limit);
- probability grids (voxel network, 32^3): `.npy` float16, scored at the manifest threshold;
- meshes (occupancy network: marching cubes of its 64^3 grid; atlas: its patches): binary `.ply`.

The archive is written to a temporary file and renamed when complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from svr.data.inputs import TestInputs
from svr.data.layout import Benchmark
from svr.io import atomic_path, binvox_bytes
from svr.types import Prediction

__all__ = ["encode_prediction", "write_submission", "main"]

logger = logging.getLogger(__name__)


def encode_prediction(pred: Prediction, representation: str) -> tuple[str, bytes]:
    """(extension, bytes) of one prediction in `representation` ("voxels", "mesh", "points")."""
    if representation == "voxels":
        if pred.occupancy is None:
            raise ValueError(f"{pred.method}: no occupancy grid to write as voxels")
        grid = np.asarray(pred.occupancy)
        if grid.dtype == bool:
            return "binvox", binvox_bytes(grid)
        buf = io.BytesIO()
        np.save(buf, grid.astype(np.float16), allow_pickle=False)
        return "npy", buf.getvalue()
    if representation == "mesh":
        mesh = pred.to_mesh()
        if mesh is None:
            raise ValueError(f"{pred.method}: no mesh to write")
        import trimesh

        data = trimesh.exchange.ply.export_ply(mesh, encoding="binary")
        return "ply", data
    if representation == "points":
        buf = io.BytesIO()
        np.save(buf, pred.to_points().astype(np.float32), allow_pickle=False)
        return "npy", buf.getvalue()
    raise ValueError(f"representation must be voxels, mesh or points; got {representation!r}")


def write_submission(
    model,
    benchmark: Benchmark | TestInputs,
    out: str | os.PathLike,
    split: str = "test",
    batch_size: int = 32,
    max_items: int | None = None,
    progress: bool = False,
) -> dict[str, object]:
    """Reconstruct every item of `split` with `model` (a ReconstructionModel) and write the
    archive `out` (.zip). `benchmark` is a benchmark folder or a test inputs zip (test split
    only). Returns the manifest written."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ValueError(f"the archive must be a .zip file, got {out.name!r}")
    from_inputs = isinstance(benchmark, TestInputs)
    if from_inputs:
        if split != "test":
            raise ValueError("a test inputs zip holds the test split only")
        if model.needs_ground_truth:
            raise ValueError(
                f"{model.name} reads the ground truth, which the test inputs do not contain; "
                "it can only predict from a benchmark folder"
            )
        items = benchmark.items()
        frame = benchmark.frame
        where = benchmark.path.name
    else:
        items = benchmark.items(split)
        frame = benchmark.meta.frame
        where = str(benchmark.root)
    if max_items is not None:
        items = items[:max_items]
    if not items:
        raise ValueError(f"the {split!r} split of {where} has no items")
    rep = model.representation
    grid_threshold = 0.5
    trained_on = model.training_info.get("data", "unknown data")
    manifest = {
        "method": model.name,
        "representation": rep,
        "frame": frame,
        "threshold": grid_threshold,
        "authors": "svr project",
        "training_data": f"{trained_on} (train split)",
        "description": (
            f"{model.kind}: {model.description} Baseline shipped with the project: yes."
            + (
                " Uses the test ground truth (a reference, not a method)."
                if model.needs_ground_truth
                else ""
            )
        ),
    }
    from tqdm.auto import tqdm

    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("submission.json", json.dumps(manifest, indent=2, sort_keys=True))
        bar = tqdm(total=len(items), desc=f"predict {model.name}", disable=not progress)
        for s in range(0, len(items), batch_size):
            chunk = items[s : s + batch_size]
            if from_inputs:
                preds = model.reconstruct([benchmark.image(it.item_id) for it in chunk])
            else:
                preds = model.reconstruct_items(benchmark, chunk)
            for item, pred in zip(chunk, preds, strict=False):
                grid = pred.occupancy
                if rep == "voxels" and grid is not None and grid.dtype != bool:
                    if abs(pred.threshold - grid_threshold) > 1e-9:
                        # this item's threshold differs (e.g. lowered so that the answer is
                        # not empty): write it thresholded, as a bool grid
                        pred = dataclasses.replace(pred, occupancy=grid >= pred.threshold)
                ext, data = encode_prediction(pred, rep)
                zf.writestr(f"{item.item_id}.{ext}", data)
            bar.update(len(chunk))
        bar.close()
    logger.info("wrote %d items of %s to %s", len(items), model.name, out)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m svr.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="method name (svr.models.REGISTRY)")
    parser.add_argument("--weights", required=True, help="folder written by svr.train")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", help="benchmark folder")
    source.add_argument("--inputs", help="test inputs zip downloaded from the leaderboard")
    parser.add_argument("--out", required=True, help="archive to write (.zip)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--max-items", type=int, default=None, help="only the first N items (debugging)"
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from svr.models import load_model

    torch.set_num_threads(args.threads)
    try:
        model = load_model(args.model, args.weights, device=args.device)
        bench = Benchmark(args.benchmark) if args.benchmark else TestInputs(args.inputs)
        manifest = write_submission(
            model, bench, args.out, args.split, args.batch_size, args.max_items, True
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({manifest['representation']}, frame {manifest['frame']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
