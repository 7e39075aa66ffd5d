"""Real shapes: each method on photo-style views of the paper's real cluster mean shapes.

    python benchmarks/bench_real_shapes.py [--models assets/models] [--views 1]
        [--methods clustering retrieval ...] [--cache /tmp/real_views.npz] [--sheet PNG]

Data: the what3d release's 500 cluster mean shapes (`--data`, read in place;
`svr.data.realshapes`), each labelled with the majority class of its validation images (487
clusters have some). 344 are of our 13 classes, from 87 tables and 80 chairs to 3 rifles, so
by default the 8 per class with the most images are used (`--per-class 8`): 97 shapes
(`--per-class 0`: all 344). They are in ShapeNet's canonical frame (+y up, front -z), not
viewer-centred; each is turned into ours (front +z), meshed by marching cubes at 128^3 and
normalised (bounding box centred, longest side 1), then rendered `--views` times by
`svr.photo.render_photo` in the held-out family (random azimuth, elevation -15..45 degrees,
as the training photos; seeds `shape_seed(--seed, "real/<cluster>/<view>")`).

Per method it prints (Markdown): class accuracy (the cluster's majority class; n/a for a
method that reports no class) and F@1% of the prediction against the shape, both normalised
the same way, 10,000 surface samples each, the F-score of `svr.metrics` at 0.01: "aligned"
as predicted, and "best of grid" after the best of a fixed grid of rotations, the same for
every row (`--azimuths` x `--tilts`, default 24 x 5 = 120; see `svr.generalisation`).
Reference rows: a sphere (rotation-invariant up to its tessellation and sampling: what it
gains from the grid is the maximum over sampling noise alone) and the class mean shape of
the *true* class (mean_shape's shapes, with the class given), to judge what a shape that
knows nothing of the image scores, and how much the grid adds. Then the same per class.

`--cache FILE` keeps the renders and the shapes' samples (reused when the data, shapes,
views, seed and family match): the first run renders the 97 shapes (about 2-3 s each on a
shared core), a rerun on new weights starts scoring at once. About 10 minutes on 2 shared
cores without a cache, 6 with (scoring: about 0.4 s per view and row).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import trimesh  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from svr.classes import CLASS_NAMES  # noqa: E402
from svr.data.layout import shape_seed  # noqa: E402
from svr.data.realshapes import ClusterLabel, ClusterMeans  # noqa: E402
from svr.generalisation import (  # noqa: E402
    AlignTarget,
    RealRow,
    RealView,
    evaluate_real_views,
    format_confusions,
    format_per_class,
    format_real_table,
    rotation_grid,
)
from svr.models import load_model, model_class  # noqa: E402
from svr.photo import PhotoConfig, prepare_mesh, render_photo  # noqa: E402
from svr.types import Prediction  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "what3d-cluster-means"
METHODS = ("clustering", "retrieval", "voxel", "occupancy", "atlas", "mean_shape")
CACHE_FORMAT = 1


def prepare_shapes(
    means: ClusterMeans,
    labels: Sequence[ClusterLabel],
    views: int,
    seed: int,
    family: str,
    image_size: int,
) -> tuple[list[RealView], dict[int, np.ndarray]]:
    """Render `views` photo-style views of each shape and sample its surface: (views, cluster
    -> normalised surface samples float64 (10000, 3))."""
    out: list[RealView] = []
    targets: dict[int, np.ndarray] = {}
    config = PhotoConfig(image_size=image_size)
    t0 = time.perf_counter()
    for i, lab in enumerate(labels):
        mesh = means.mesh(lab.cluster)
        targets[lab.cluster] = AlignTarget.from_mesh(mesh).points
        prepared = prepare_mesh(mesh)
        for v in range(views):
            sample = render_photo(
                prepared, shape_seed(seed, f"real/{lab.cluster}/{v}"), family, None, config
            )
            cam = sample.camera
            out.append(
                RealView(lab.cluster, lab.class_name, v, sample.image, cam.azimuth, cam.elevation)
            )
        if (i + 1) % 10 == 0 or i + 1 == len(labels):
            print(f"  rendered {i + 1}/{len(labels)} shapes ({time.perf_counter() - t0:.0f} s)",
                  flush=True)  # fmt: skip
    return out, targets


def cache_key(data: Path, labels: Sequence[ClusterLabel], args: argparse.Namespace) -> str:
    return json.dumps(
        {
            "format": CACHE_FORMAT,
            "data": str(data.resolve()),
            "clusters": [lab.cluster for lab in labels],
            "views": args.views,
            "seed": args.seed,
            "family": args.family,
            "image_size": args.image_size,
        },
        sort_keys=True,
    )


def load_cache(path: Path, key: str, labels: Sequence[ClusterLabel]):
    """(views, targets) from a cache written with the same key, else None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != key:
            print(f"cache {path} is of other settings: rendering again")
            return None
        names = {lab.cluster: lab.class_name for lab in labels}
        views = [
            RealView(int(c), names[int(c)], int(v), img, float(az), float(el))
            for c, v, img, az, el in zip(
                z["cluster"], z["view"], z["images"], z["azimuth"], z["elevation"], strict=True
            )
        ]
        targets = {int(c): z[f"target_{int(c)}"] for c in z["target_clusters"]}
    return views, targets


def save_cache(path: Path, key: str, views: list[RealView], targets: dict[int, np.ndarray]):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp, key=np.array(key), images=np.stack([v.image for v in views]),
        cluster=np.array([v.cluster for v in views]), view=np.array([v.view for v in views]),
        azimuth=np.array([v.azimuth for v in views]),
        elevation=np.array([v.elevation for v in views]),
        target_clusters=np.array(sorted(targets)),
        **{f"target_{c}": p for c, p in targets.items()},
    )  # fmt: skip
    tmp.replace(path)


def write_sheet(
    path: Path, views: list[RealView], meshes: dict[int, trimesh.Trimesh], per_class: int = 2
) -> None:
    """A contact sheet to check the viewpoints: for up to `per_class` views per class, the
    network input beside a plain grey render of the shape (`svr.render`, same azimuth and
    elevation, no roll); four pairs per row, labelled with class, cluster and camera."""
    from svr.render import Camera, render

    size = views[0].image.shape[0]
    pairs = []
    for c in CLASS_NAMES:
        for v in [v for v in views if v.class_name == c][:per_class]:
            mesh = meshes[v.cluster]
            cam = Camera(v.azimuth % 360.0, float(np.clip(v.elevation, -89, 89)), 2.0, 40.0)
            rgba = render(
                mesh, np.tile([0.7, 0.7, 0.75], (len(mesh.faces), 1)), cam, size, supersample=1
            )
            a = rgba[..., 3:] / 255.0
            grey = (rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
            tiles = []
            for arr, text in ((v.image, f"{c[:10]} #{v.cluster}"),
                              (grey, f"az {v.azimuth:.0f} el {v.elevation:.0f}")):  # fmt: skip
                im = Image.fromarray(arr)
                ImageDraw.Draw(im).text((2, 2), text, fill=(200, 0, 0))
                tiles.append(np.asarray(im))
            pairs.append(np.concatenate(tiles, axis=1))
    blank = np.full_like(pairs[0], 255)
    pairs += [blank] * (-len(pairs) % 4)
    rows = [np.concatenate(pairs[i : i + 4], axis=1) for i in range(0, len(pairs), 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    print(f"sheet: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cluster means folder")
    parser.add_argument("--models", type=Path, default=Path("assets/models"))
    parser.add_argument("--views", type=int, default=1, help="photo-style views per shape")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument(
        "--per-class", type=int, default=8, help="at most N shapes per class (0: all 344)"
    )
    parser.add_argument("--family", default="heldout", choices=("heldout", "train"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--azimuths", type=int, default=24)
    parser.add_argument("--tilts", type=float, nargs="+", default=[-30.0, -15.0, 0.0, 15.0, 30.0])
    parser.add_argument("--cache", type=Path, default=None, help="renders + samples (.npz)")
    parser.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.views < 1:
        parser.error("--views must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    means = ClusterMeans(args.data)
    labels = means.kept()
    n_kept = len(labels)
    if args.per_class > 0:  # the clusters with the most images first
        labels = sorted(
            [lab for c in CLASS_NAMES for lab in sorted(
                (x for x in labels if x.class_name == c), key=lambda x: (-x.images, x.cluster)
            )[: args.per_class]],
            key=lambda x: x.cluster,
        )  # fmt: skip
    counts = Counter(lab.class_name for lab in labels)
    purity = np.median([lab.purity for lab in labels])
    print(
        f"{n_kept} of the {len(means.labels)} labelled cluster mean shapes are of our 13 classes; "
        f"{len(labels)} used ({args.per_class or 'all'} per class at most, most images first), "
        f"median purity {purity:.2f}: " + ", ".join(f"{c} {counts[c]}" for c in CLASS_NAMES)
    )

    key = cache_key(args.data, labels, args)
    cached = load_cache(args.cache, key, labels) if args.cache else None
    if cached is None:
        views, target_points = prepare_shapes(
            means, labels, args.views, args.seed, args.family, args.image_size
        )
        if args.cache:
            save_cache(args.cache, key, views, target_points)
    else:
        views, target_points = cached
        print(f"renders and samples from {args.cache}")
    targets = {c: AlignTarget(p) for c, p in target_points.items()}
    print(f"{len(views)} views ready ({time.perf_counter() - start:.0f} s)")
    if args.sheet:
        shown = {
            v.cluster for c in CLASS_NAMES for v in [v for v in views if v.class_name == c][:2]
        }
        write_sheet(args.sheet, views, {k: means.mesh(k) for k in sorted(shown)})

    rotations = rotation_grid(args.azimuths, args.tilts)
    rows: list[RealRow] = []
    mean_model = None
    for name in args.methods:
        if model_class(name).needs_ground_truth:
            print(f"skipping {name}: it reads a benchmark's ground truth")
            continue
        folder = args.models / name
        if not (folder / "config.json").is_file():
            print(f"skipping {name}: no weights in {folder}")
            continue
        model = load_model(name, folder, device="cpu")
        mean_model = model if name == "mean_shape" else mean_model

        def predict(chunk: Sequence[RealView], model=model) -> list[Prediction]:
            return model.reconstruct([v.image for v in chunk])

        rows.append(evaluate_real_views(name, views, targets, rotations, predict))
        print(f"  {name}: {rows[-1].seconds:.0f} s", flush=True)

    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    rows.append(
        evaluate_real_views(
            "sphere", views, targets, rotations,
            lambda chunk: [Prediction("sphere", mesh=sphere) for _ in chunk],
            note="reference",
        )
    )  # fmt: skip
    if mean_model is not None:
        class_meshes = {c: mean_model.class_mesh(i)[0] for i, c in enumerate(CLASS_NAMES)}
        rows.append(
            evaluate_real_views(
                "class mean", views, targets, rotations,
                lambda chunk: [Prediction("class mean", mesh=class_meshes[v.class_name])
                               for v in chunk],
                note="true class given",
            )
        )  # fmt: skip

    print()
    print(format_real_table(rows))
    print(
        f"\nF@1%: prediction and shape normalised (bbox centred, longest side 1), 10,000 samples "
        f"each, F-score as svr.metrics.fscore at 0.01. aligned: as predicted (the shapes are in "
        f"our object frame); best of grid: best of {len(rotations)} rotations ({args.azimuths} "
        f"azimuths x tilts {', '.join(f'{t:g}' for t in args.tilts)} degrees), the same grid "
        f"for every row; best = identity: share of views whose best rotation is none. Class: "
        f"majority class of the cluster's validation images."
    )
    print("\nF@1% aligned per class\n")
    print(format_per_class(rows, "aligned"))
    print("\nF@1% best of grid per class\n")
    print(format_per_class(rows, "best"))
    print("\nClasses named: right of the class's views, then the commonest wrong answer\n")
    print(format_confusions(rows))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
