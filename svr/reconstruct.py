"""Reconstruct one image from the command line.

    python -m svr.reconstruct [--model NAME|all] [--weights DIR] IMAGE --out FILE.{glb,obj,ply}
                              [--json REPORT.json] [--color] [--as-is]

IMAGE is prepared as the app prepares an upload (`svr.preprocess.preprocess`): the object is
masked (by the alpha channel, else by GrabCut seeded from the border, so a photo on its own
background works), centred and scaled to the app's foreground ratio; `--as-is` feeds the
image unchanged instead (composited on white), as `reconstruct_items` feeds a benchmark's
own views. `--model`
defaults to the demo's default method (`svr.store.DEFAULT_METHOD`); `--model all` runs every
demo method and writes `FILE_<method>.<ext>` for each (methods without weights are reported
and skipped). The default weights folder is `<models dir>/<name>/` (`--models DIR`, else
`svr.settings`: SVR_MODELS, default `assets/models`). Meshes are written atomically in the
object frame (+y up, front towards +z, unit cube); the format follows the extension.

`--json FILE` (`-` for stdout) writes, per method, the predicted class and its probability,
the camera estimate (azimuth, elevation in degrees; null when the method has none) and the
files written: `{"image": ..., "results": [svr.report.MethodReport.to_dict(), ...]}`.
`--color` colours the mesh from the image where the estimated camera sees it
(`svr.colorize`; with `--as-is` it needs a transparent background to find the object).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from svr.io import atomic_path
from svr.report import MethodReport
from svr.types import Prediction
from svr.viewpoint import ViewEstimate

__all__ = ["ALL", "read_image", "prepare_image", "reconstruct_file", "reconstruct_methods", "main"]

logger = logging.getLogger(__name__)

MESH_FORMATS = (".glb", ".obj", ".ply")
ALL = "all"  # --model all: every demo method


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


def prepare_image(path: str | os.PathLike, as_is: bool = False) -> np.ndarray:
    """The network input of an image file: uint8 RGBA (137, 137, 4) masked and centred as the
    app prepares an upload, or with `as_is` the file's pixels unchanged (`read_image`).

    Raises ValueError (`svr.preprocess.ImageInputError`) for an image without an object."""
    if as_is:
        return read_image(path)
    from svr.preprocess import preprocess

    return np.asarray(preprocess(Path(path)).image)


def _check_out(out: Path) -> str:
    fmt = out.suffix.lower()
    if fmt not in MESH_FORMATS:
        raise ValueError(f"output must end in one of {', '.join(MESH_FORMATS)}, got {out.name!r}")
    return fmt


def _models_dir(models_dir: str | os.PathLike | None) -> Path:
    if models_dir is not None:
        return Path(models_dir)
    from svr.settings import Settings

    return Settings.from_env().models_dir


def _load(model_name: str, weights: str | os.PathLike, device: str | None) -> Any:
    from svr.models import load_model, model_class

    if model_class(model_name).needs_ground_truth:
        raise ValueError(
            f"{model_name} reads the ground truth of benchmark items; it cannot reconstruct a file"
        )
    return load_model(model_name, weights, device=device)


def _colors(pred: Prediction, mesh: trimesh.Trimesh, image: np.ndarray) -> tuple[Any, str]:
    """(VertexColors or None, note) for `--color`."""
    from svr.colorize import colorize
    from svr.preprocess import alpha_mask

    camera = ViewEstimate.from_info(pred.info).camera()
    if camera is None:
        return None, "not coloured: the method reports no camera estimate"
    if image.shape[2] != 4 or alpha_mask(image) is None:
        return None, "not coloured: the image has no transparent background to find the object"
    return colorize(mesh, image, camera), "coloured"


def _write_mesh(mesh: trimesh.Trimesh, out: Path, colors: np.ndarray | None) -> None:
    mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    if colors is not None:
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colors)
    with atomic_path(out) as tmp:
        data = mesh.export(file_type=out.suffix.lower()[1:])
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def _reconstruct_one(
    model: Any, image: np.ndarray, out: Path, label: str, color: bool
) -> tuple[Prediction, MethodReport]:
    pred = model.reconstruct([image])[0]
    mesh = pred.to_mesh()
    if mesh is None or len(mesh.faces) == 0:
        raise ValueError(f"{pred.method} produced an empty shape for {label}; nothing written")
    colors = None
    if color:
        colors, note = _colors(pred, mesh, image)
        if colors is None:
            logger.warning("%s: %s", pred.method, note)
    _write_mesh(mesh, out, None if colors is None else colors.colors)
    report = MethodReport(
        method=pred.method,
        kind=str(getattr(model, "kind", "")) or None,
        estimate=ViewEstimate.from_info(pred.info),
        files={out.suffix.lower()[1:]: str(out)},
        colored=colors is not None,
        colored_share=None if colors is None else round(colors.sampled_share, 4),
    )
    return pred, report


def reconstruct_file(
    model_name: str,
    image: str | os.PathLike,
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    color: bool = False,
    as_is: bool = False,
) -> Prediction:
    """Reconstruct `image` (prepared by `prepare_image`) with the saved method and write the
    mesh to `out` (.glb/.obj/.ply), coloured from the image when `color`. Returns the
    Prediction."""
    out = Path(out)
    _check_out(out)
    weights = weights if weights is not None else _models_dir(None) / model_name
    model = _load(model_name, weights, device)
    return _reconstruct_one(model, prepare_image(image, as_is), out, str(image), color)[0]


def _out_for(out: Path, name: str, several: bool) -> Path:
    return out.with_name(f"{out.stem}_{name}{out.suffix}") if several else out


def reconstruct_methods(
    names: list[str],
    image: str | os.PathLike,
    out: str | os.PathLike,
    models_dir: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    color: bool = False,
    as_is: bool = False,
) -> list[MethodReport]:
    """Reconstruct `image` with each method in `names` and write `out` (one method) or
    `<out stem>_<method><ext>` (several). A method without weights, or one that gives an
    empty shape, gets a report with its error; a bad image or output name raises ValueError.
    `weights` (one method only) overrides `<models_dir>/<name>`; `as_is`: see
    `prepare_image`."""
    out = Path(out)
    _check_out(out)
    if weights is not None and len(names) != 1:
        raise ValueError("--weights names one method's folder: use --models DIR with --model all")
    array = prepare_image(image, as_is)
    root = _models_dir(models_dir)
    several = len(names) > 1
    reports = []
    for name in names:
        folder = Path(weights) if weights is not None else root / name
        try:
            model = _load(name, folder, device)
        except FileNotFoundError as exc:
            if several:
                reports.append(MethodReport.failed(name, None, f"no weights for {name}: {exc}"))
                continue
            raise
        target = _out_for(out, name, several)
        try:
            reports.append(_reconstruct_one(model, array, target, str(image), color)[1])
        except ValueError as exc:
            if not several:
                raise
            reports.append(MethodReport.failed(name, str(getattr(model, "kind", "")), str(exc)))
    return reports


def _demo_methods() -> list[str]:
    from svr.models import available_models

    return list(available_models(demo_only=True))


def main(argv: list[str] | None = None) -> int:
    from svr.store import DEFAULT_METHOD

    parser = argparse.ArgumentParser(
        prog="python -m svr.reconstruct", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("image", help="a photo or an RGBA PNG (any image Pillow reads)")
    parser.add_argument(
        "--model",
        default=DEFAULT_METHOD,
        help=f"method name (svr.models.REGISTRY) or '{ALL}' for every demo method "
        f"(default {DEFAULT_METHOD})",
    )
    parser.add_argument(
        "--weights", default=None, help="model folder (default <models dir>/<name>)"
    )
    parser.add_argument("--models", default=None, help="models dir (default SVR_MODELS)")
    parser.add_argument("--out", required=True, help="mesh to write: .glb, .obj or .ply")
    parser.add_argument("--json", default=None, help="write the report here ('-': stdout)")
    parser.add_argument(
        "--color", action="store_true", help="colour the mesh from the image where it is seen"
    )
    parser.add_argument(
        "--as-is", action="store_true",
        help="feed the image unchanged (no masking or centring), as benchmark views are fed",
    )  # fmt: skip
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    names = _demo_methods() if args.model == ALL else [args.model]
    try:
        reports = reconstruct_methods(
            names,
            args.image,
            args.out,
            args.models,
            args.weights,
            args.device,
            args.color,
            args.as_is,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    human = sys.stderr if args.json == "-" else sys.stdout
    for report in reports:
        print(_line(report), file=human)
    if args.json is not None:
        text = json.dumps(
            {"image": str(args.image), "results": [r.to_dict() for r in reports]}, indent=2
        )
        if args.json == "-":
            print(text)
        else:
            with atomic_path(Path(args.json)) as tmp:
                tmp.write_text(text + "\n")
    return 0 if any(r.error is None for r in reports) else 2


def _line(report: MethodReport) -> str:
    if report.error is not None:
        return f"{report.method}: {report.error}"
    files = ", ".join(report.files.values())
    return (
        f"wrote {files} ({report.method}): {report.estimate.class_text()}; "
        f"{report.estimate.camera_text()}"
    )


if __name__ == "__main__":
    sys.exit(main())
