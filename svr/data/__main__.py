"""Command line of the benchmark data: build, import, stats, sheet.

```
python -m svr.data build --preset small|default|tiny --out DIR [--seed N] [--frame object|viewer]
                         [--workers N] [--overwrite] [--test-secret-file FILE] [--serving]
python -m svr.data add-train --benchmark DIR [--reference] [--workers N]
python -m svr.data secret --out FILE          # a new maintainer's test secret (mode 0600)
python -m svr.data pool --benchmark DIR --out POOL [--views N] [--family train|heldout]
                        [--image-size S] [--seed N] [--workers N] [--split train]
python -m svr.data import {shapenet,r2n2,what3d} SRC --out DIR [--splits FILE] [--views N]
                         [--frame object|viewer] [--seed N] [--workers N] [--limit-per-class N]
                         [--overwrite]
python -m svr.data stats DIR [--json]
python -m svr.data sheet DIR --out sheet.png [--per-class N] [--cell PIXELS] [--white]
```
Exit status 0 on success, 1 on a failure (the message goes to stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("svr.data")


def _cmd_build(args: argparse.Namespace) -> int:
    from svr.data.build import build_benchmark
    from svr.data.secret import TestSecret

    secret = None if args.test_secret_file is None else TestSecret.from_file(args.test_secret_file)
    meta = build_benchmark(
        args.out,
        preset=args.preset,
        seed=args.seed,
        frame=args.frame,
        workers=args.workers,
        overwrite=args.overwrite,
        test_secret=secret,
        content="serving" if args.serving else "full",
    )
    total = sum(n for per_class in meta.counts.values() for n in per_class.values())
    print(
        f"built {meta.identifier} ({meta.preset}, {meta.frame} frame, {total} shapes, "
        f"{meta.views_per_shape} views each, {meta.test_split} test split) in "
        f"{meta.extra.get('build_seconds')} s -> {args.out}"
    )
    return 0


def _cmd_add_train(args: argparse.Namespace) -> int:
    from svr.data.build import add_training_split

    contents = "reference" if args.reference else "full"
    meta = add_training_split(args.benchmark, contents, workers=args.workers)
    shapes = sum(meta.counts.get("train", {}).values())
    print(f"{meta.identifier}: training split ({contents}, {shapes} shapes) in {args.benchmark}")
    return 0


def _cmd_secret(args: argparse.Namespace) -> int:
    from svr.data.secret import write_secret_file

    secret = write_secret_file(args.out)
    print(
        f"wrote a new test secret to {args.out} (fingerprint {secret.fingerprint}); keep it out "
        "of the repository, set it as the Space secret SVR_TEST_SECRET or pass "
        "--test-secret-file to `build`"
    )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from svr.data.importers import run_import

    options = {
        "splits": args.splits,
        "views": args.views,
        "frame": args.frame,
        "seed": args.seed,
        "workers": args.workers,
        "limit_per_class": args.limit_per_class,
    }
    summary = run_import(
        args.kind,
        args.src,
        args.out,
        overwrite=args.overwrite,
        progress=tqdm,
        **{k: v for k, v in options.items() if v is not None},
    )
    print(summary)
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from svr.data.stats import stats

    report = stats(args.dir)
    print(report.to_json() if args.json else report.format_table())
    return 0


def _cmd_sheet(args: argparse.Namespace) -> int:
    from svr.data.sheet import write_sheet

    path = write_sheet(
        args.dir, args.out, per_class=args.per_class, cell=args.cell, checker=not args.white
    )
    print(f"wrote {path}")
    return 0


def _cmd_pool(args: argparse.Namespace) -> int:
    from svr.data.pool import PoolSpec, build_pool

    spec = PoolSpec(args.split, args.views, args.family, args.image_size, args.seed)
    info = build_pool(args.benchmark, args.out, spec, workers=args.workers)
    print(
        f"pool of {info['benchmark']}: {info['images']} images ({info['shapes']} shapes x "
        f"{spec.views}, family {spec.family}, {spec.image_size} px) in {info['seconds']} s "
        f"-> {args.out}"
    )
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def make_parser() -> argparse.ArgumentParser:
    from svr.data.build import PRESETS  # light: numpy and the layout only

    parser = argparse.ArgumentParser(prog="python -m svr.data", description="Benchmark data tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build a procedural benchmark")
    b.add_argument("--preset", choices=sorted(PRESETS), default="small")
    b.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    b.add_argument("--seed", type=_non_negative, default=0)
    b.add_argument("--frame", choices=("object", "viewer"), default="object")
    b.add_argument("--workers", type=_positive, default=2)
    b.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    b.add_argument(
        "--test-secret-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="generate the test split from this maintainer's secret (see `secret`)",
    )
    b.add_argument(
        "--serving",
        action="store_true",
        help="only what the app serves: test and validation splits, compact (no training split)",
    )
    b.set_defaults(handler=_cmd_build)

    t = sub.add_parser("add-train", help="add the training split to a serving build")
    t.add_argument("--benchmark", type=Path, required=True)
    t.add_argument(
        "--reference", action="store_true", help="Oracle NN's database only (mesh and 32^3 grid)"
    )
    t.add_argument("--workers", type=_positive, default=2)
    t.set_defaults(handler=_cmd_add_train)

    k = sub.add_parser("secret", help="write a new maintainer's test secret")
    k.add_argument("--out", type=Path, required=True, help="file to create (never overwritten)")
    k.set_defaults(handler=_cmd_secret)

    p = sub.add_parser("pool", help="render photo-style views of a split's shapes")
    p.add_argument("--benchmark", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="pool folder (resumed if present)")
    p.add_argument("--split", choices=("train", "val", "test"), default="train")
    p.add_argument("--views", type=_positive, default=8, help="samples per shape")
    p.add_argument("--family", choices=("train", "heldout"), default="train")
    p.add_argument("--image-size", type=_positive, default=128)
    p.add_argument("--seed", type=_non_negative, default=0)
    p.add_argument("--workers", type=_positive, default=2)
    p.set_defaults(handler=_cmd_pool)

    i = sub.add_parser("import", help="import ShapeNet, 3D-R2N2 or what3d data")
    i.add_argument("kind", choices=("shapenet", "r2n2", "what3d"))
    i.add_argument("src", type=Path, help="folder of the source dataset")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--splits", type=Path, default=None, help="split file (CSV or JSON)")
    i.add_argument("--views", type=_positive, default=None)
    i.add_argument("--frame", choices=("object", "viewer"), default=None)
    i.add_argument("--seed", type=_non_negative, default=None)
    i.add_argument("--workers", type=_positive, default=None)
    i.add_argument("--limit-per-class", type=_positive, default=None)
    i.add_argument("--overwrite", action="store_true")
    i.set_defaults(handler=_cmd_import)

    s = sub.add_parser("stats", help="counts, IoU within/between classes, Oracle NN")
    s.add_argument("dir", type=Path)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(handler=_cmd_stats)

    h = sub.add_parser("sheet", help="write a contact sheet of renderings")
    h.add_argument("dir", type=Path)
    h.add_argument("--out", type=Path, required=True)
    h.add_argument("--per-class", type=_positive, default=8)
    h.add_argument("--cell", type=_positive, default=None, help="pixels per image")
    h.add_argument("--white", action="store_true", help="white instead of checker background")
    h.set_defaults(handler=_cmd_sheet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except (ValueError, OSError) as exc:  # bad input, missing or existing files, disk full
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
