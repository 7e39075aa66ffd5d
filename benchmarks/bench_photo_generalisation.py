"""Photo-style generalisation: each method on the held-out photo family vs the clean test views.

    python -m svr.data pool --benchmark DIR --split test --family heldout --views 1 --out PHOTO_TEST
    python benchmarks/bench_photo_generalisation.py --benchmark DIR --photo-test PHOTO_TEST \
        [--models assets/models] [--per-class 20] [--methods clustering retrieval ...]

The photo test set is the benchmark's test shapes rendered by `svr.photo.render_photo` in the
held-out family (textures, lenses, lights and backgrounds never used in training) and
preprocessed as the app preprocesses a user's photo. Per method it prints (a Markdown table):
class accuracy of `predicted_class` on the photos and on a clean test view of the same shapes
(n/a for a method that reports no class), mean F@1% on both under the leaderboard's protocol
(`svr.evaluation.Scorer`, 10,000 samples, seed 0; IoU not computed) and their ratio with a
95 % paired bootstrap interval over items. `--per-class N` takes a seeded subset of N test
shapes per class (photo k of a shape is paired with its clean view k mod the views).

With 20 shapes per class (260 items) of the default benchmark, expect about 10 minutes on 2
shared cores for the six methods, most of it the occupancy network's 64^3 meshes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from svr.generalisation import (  # noqa: E402
    evaluate_photo_test,
    format_photo_table,
    load_photo_test,
)
from svr.models import load_model, model_class  # noqa: E402

METHODS = ("clustering", "retrieval", "voxel", "occupancy", "atlas", "mean_shape")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True, type=Path, help="benchmark folder")
    parser.add_argument("--photo-test", required=True, type=Path, help="test-split photo pool")
    parser.add_argument("--models", default=Path("assets/models"), type=Path)
    parser.add_argument("--per-class", type=int, default=None, help="test shapes per class")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the --per-class subset")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    test = load_photo_test(args.benchmark, args.photo_test, args.per_class, args.seed)
    models = {}
    for name in args.methods:
        if model_class(name).needs_ground_truth:
            print(f"skipping {name}: it reads the ground truth, photos would change nothing")
            continue
        folder = args.models / name
        if not (folder / "config.json").is_file():
            print(f"skipping {name}: no weights in {folder}")
            continue
        models[name] = load_model(name, folder, device="cpu")
    if not models:
        print("no method to evaluate", file=sys.stderr)
        return 2
    meta = test.benchmark.meta
    shapes = len({it.shape.key for it in test.items})
    print(
        f"benchmark {meta.identifier} ({meta.preset or meta.source}, {meta.test_split} test "
        f"split); photo test set {test.pool} (family {test.family}): {len(test.items)} items "
        f"of {shapes} shapes"
        + (f" ({args.per_class} per class at most, seed {args.seed})" if args.per_class else "")
    )
    trained = {m.training_info.get("data", "?") for m in models.values()}
    sizes = {m.image_size for m in models.values()}
    print(f"weights: {args.models} (trained on {', '.join(sorted(map(str, trained)))}; "
          f"input {', '.join(map(str, sorted(sizes)))} px)")  # fmt: skip

    rows = evaluate_photo_test(
        models,
        test,
        batch_size=args.batch_size,
        progress=lambda msg: print(f"  {msg} ({time.perf_counter() - start:.0f} s)", flush=True),
    )
    print()
    print(format_photo_table(rows))
    print(
        "\nF@1%: leaderboard protocol (10,000 samples, seed 0) against the object-frame ground "
        "truth; ratio: mean photo F / mean clean F, 95 % paired bootstrap interval over items; "
        "s: seconds of prediction and scoring per method."
    )
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
