"""Throughput of the photo-style renderer (svr.photo) per stage, on one core.

    python benchmarks/bench_photo.py [--samples 260] [--size 128] [--family train]

Runs single-threaded (OpenCV, BLAS and OpenMP pinned to one thread) so the figures are
per core. Reference, measured in the same run: the benchmark's own renderer
`svr.render.render` at the same size (2 x 2 supersampling as the builder uses, and 1 ray
per pixel). Prints samples per second of each stage (background, render, degradations,
masking) and of the whole chain, the masking cost with and without GrabCut, and each
figure's ratio to the plain render. Shapes: one procedural shape per class and seed
(`--shapes` per class), clutter shapes generated before timing (the renderer caches them).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import svr.preprocess  # noqa: E402
from svr.classes import CLASS_NAMES  # noqa: E402
from svr.data.procedural import generate_shape  # noqa: E402
from svr.photo import FAMILIES, STAGES, PhotoConfig, prepare_mesh, render_photo  # noqa: E402
from svr.photo.backgrounds import clutter_shape  # noqa: E402
from svr.render import Camera, part_colors, render  # noqa: E402


def _plain_render_rate(shapes, size: int, supersample: int, n: int) -> float:
    """Samples/s of svr.render.render over the same shapes (CPU time)."""
    rng = np.random.default_rng(0)
    jobs = []
    for k in range(n):
        shape = shapes[k % len(shapes)]
        colors = part_colors(rng, int(shape.face_parts.max()) + 1)[shape.face_parts]
        cam = Camera(rng.uniform(0, 360), rng.uniform(-5, 35), rng.uniform(1.9, 2.3))
        jobs.append((shape.mesh, colors, cam))
    render(*jobs[0], image_size=size, supersample=supersample)  # builds Embree's BVH
    start = time.process_time()
    for mesh, colors, cam in jobs:
        render(mesh, colors, cam, image_size=size, supersample=supersample)
    return n / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=260)
    parser.add_argument("--size", type=int, default=128, help="network input side (pixels)")
    parser.add_argument("--family", default="train", choices=sorted(FAMILIES))
    parser.add_argument("--shapes", type=int, default=2, help="shapes per class")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    # time spent in the app's background model (a Python loop of medians) inside masking
    bg_seconds = [0.0]
    original_bg = svr.preprocess._background_distance

    def timed_bg(*a, **k):
        t = time.perf_counter()
        try:
            return original_bg(*a, **k)
        finally:
            bg_seconds[0] += time.perf_counter() - t

    svr.preprocess._background_distance = timed_bg

    shapes = [generate_shape(c, s) for c in CLASS_NAMES for s in range(args.shapes)]
    prepared = [prepare_mesh(s.mesh) for s in shapes]
    fam = FAMILIES[args.family]
    t = time.perf_counter()
    first, count = fam.clutter_seeds
    for c in CLASS_NAMES:
        for seed in range(first, first + count):
            clutter_shape(c, seed)
    warm = time.perf_counter() - t
    config = PhotoConfig(image_size=args.size)
    for k in range(5):
        render_photo(prepared[k], 10_000 + k, fam.name, shapes[k].face_parts, config)

    plain2 = _plain_render_rate(shapes, args.size, 2, 100)
    plain1 = _plain_render_rate(shapes, args.size, 1, 100)

    stage = dict.fromkeys(STAGES, 0.0)
    masking_by_source: dict[str, list[float]] = {}
    pixels = 0
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    bg_seconds[0] = 0.0
    for k in range(args.samples):
        i = k % len(shapes)
        sample = render_photo(prepared[i], k, fam.name, shapes[i].face_parts, config)
        for name, seconds in sample.timings.items():
            stage[name] += seconds
        masking_by_source.setdefault(sample.mask_source, []).append(sample.timings["masking"])
        pixels += sample.style.camera.photo_size**2
    cpu = time.process_time() - start_cpu
    wall = time.perf_counter() - start_wall
    n = args.samples
    chain = n / cpu

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"photo renderer, family {fam.name!r}, {n} samples, input {args.size} px, one core")
    print(f"load average {load:.2f}; mean photo {np.sqrt(pixels / n):.0f} px on a side")
    print(f"clutter shapes generated before timing: {len(CLASS_NAMES) * count} in {warm:.1f} s")
    print()
    print(f"{'stage':<34}{'samples/s':>10}{'ms/sample':>11}{'x plain render':>16}")
    rows = [
        (f"svr.render.render {args.size} px, 2x2 rays", plain2),
        (f"svr.render.render {args.size} px, 1 ray", plain1),
    ]
    rows += [(f"photo: {name}", n / max(stage[name], 1e-9)) for name in STAGES]
    rows.append(("photo: whole chain (CPU time)", chain))
    rows.append(("photo: whole chain (wall time)", n / wall))
    for label, rate in rows:
        print(f"{label:<34}{rate:>10.1f}{1000 / rate:>11.1f}{rate / plain2:>16.2f}")
    print()
    total = sum(len(v) for v in masking_by_source.values())
    for source, times in sorted(masking_by_source.items()):
        print(
            f"masking via {source:<9} {len(times) / total:6.1%} of samples, "
            f"{1000 * np.mean(times):6.1f} ms each"
        )
    print(
        f"of the masking time, {bg_seconds[0] / max(stage['masking'], 1e-9):.0%} is "
        "svr.preprocess._background_distance (its per-row np.median loop)"
    )
    without_mask = n / max(sum(stage[s] for s in STAGES if s != "masking"), 1e-9)
    print(f"chain without masking: {without_mask:.1f} samples/s")


if __name__ == "__main__":
    main()
