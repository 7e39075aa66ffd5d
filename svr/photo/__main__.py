"""Command line of the photo renderer.

python -m svr.photo sheet --out assets/photo_styles.png [--classes chair,car,...]
                          [--seeds 0,1,2] [--cell 80] [--size 128]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from PIL import Image

from svr.classes import CLASS_NAMES
from svr.photo.pipeline import PhotoConfig
from svr.photo.sheet import contact_sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m svr.photo", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sheet = sub.add_parser("sheet", help="write a contact sheet PNG of train and heldout samples")
    sheet.add_argument("--out", required=True)
    sheet.add_argument("--classes", default="chair,airplane,car,table,lamp,sofa,watercraft,display")
    sheet.add_argument("--seeds", default="0,1,2", help="photo seeds per family (comma-separated)")
    sheet.add_argument("--cell", type=int, default=80, help="side of each image in the sheet (px)")
    sheet.add_argument("--size", type=int, default=128, help="network input side (px)")
    sheet.add_argument(
        "--colors", type=int, default=0, help="quantise to this many colours (0: off)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    unknown = sorted(set(classes) - set(CLASS_NAMES))
    if unknown:
        parser.error(f"unknown classes {unknown}: choose from {', '.join(CLASS_NAMES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    image = contact_sheet(classes, seeds, cell=args.cell, config=PhotoConfig(image_size=args.size))
    img = Image.fromarray(np.ascontiguousarray(image))
    if args.colors:
        img = img.quantize(
            colors=args.colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    img.save(args.out, optimize=True)
    logging.getLogger(__name__).info("wrote %s (%d x %d)", args.out, image.shape[1], image.shape[0])


if __name__ == "__main__":
    main()
