"""Reconstruct one image from the command line.

    python -m svr.reconstruct --model NAME [--weights DIR] IMAGE --out FILE.{glb,obj,ply}

IMAGE is an RGBA PNG with a transparent background (as the benchmark's views); an image
without alpha is used as it is (background removal lives in `svr.preprocess`). The default
weights folder is `<models dir>/<name>/` (`svr.settings`: SVR_MODELS, default
`assets/models`). The mesh is written atomically; the format follows the extension.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from svr.io import atomic_path

__all__ = ["read_image", "reconstruct_file", "main"]

logger = logging.getLogger(__name__)

MESH_FORMATS = (".glb", ".obj", ".ply")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 (H, W, 4) RGBA if it has transparency, else (H, W, 3) RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            has_alpha = "A" in img.getbands() or "transparency" in img.info
            return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read {path} as an image: {exc}") from None


def reconstruct_file(
    model_name: str,
    image: str | os.PathLike,
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
):
    """Reconstruct `image` with the saved method and write the mesh to `out` (.glb/.obj/.ply).

    Returns the Prediction."""
    out = Path(out)
    fmt = out.suffix.lower()
    if fmt not in MESH_FORMATS:
        raise ValueError(f"output must end in one of {', '.join(MESH_FORMATS)}, got {out.name!r}")
    from svr.models import load_model, model_class

    cls = model_class(model_name)
    if cls.needs_ground_truth:
        raise ValueError(
            f"{model_name} reads the ground truth of benchmark items; it cannot reconstruct a file"
        )
    if weights is None:
        from svr.settings import Settings

        weights = Settings.from_env().models_dir / model_name
    model = load_model(model_name, weights, device=device)
    pred = model.reconstruct([read_image(image)])[0]
    mesh = pred.to_mesh()
    if mesh is None or len(mesh.faces) == 0:
        raise ValueError(f"{model_name} produced an empty shape for {image}; nothing written")
    with atomic_path(out) as tmp:
        data = mesh.export(file_type=fmt[1:])
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return pred


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m svr.reconstruct", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("image", help="RGBA PNG (or any image Pillow reads)")
    parser.add_argument("--model", required=True, help="method name (svr.models.REGISTRY)")
    parser.add_argument(
        "--weights", default=None, help="model folder (default <models dir>/<name>)"
    )
    parser.add_argument("--out", required=True, help="mesh to write: .glb, .obj or .ply")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        pred = reconstruct_file(args.model, args.image, args.out, args.weights, args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mesh = pred.to_mesh()
    print(
        f"wrote {args.out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces ({args.model})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
