"""Time one image end to end per method: preprocess, network, mesh extraction, export.

    python benchmarks/bench_inference.py [--models assets/models] [--image PATH] [--repeats 10]

Loads every method that has weights (SVR_MODELS or --models), warms it up once, then runs
`svr.inference.Reconstructor.run` `--repeats` times on one image and prints the median time
of each stage and in total, and the peak resident memory of this process. Goal: a median
of at most 1 s per method on the CPU. Default image: a photo-like example (no alpha, so the
GrabCut path is included).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svr.inference import ModelStore, ModelUnavailable, Reconstructor, SessionFiles  # noqa: E402
from svr.settings import Settings  # noqa: E402


def _default_image(tmp: Path) -> Path:
    from svr.examples import make_photo_examples

    return make_photo_examples(tmp, classes=("chair",))[0].path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=Path, default=None, help="weights folder (default: SVR_MODELS)"
    )
    parser.add_argument(
        "--image", type=Path, default=None, help="input image (default: a photo-like example)"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--methods", nargs="*", default=None, help="only these methods")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    store = ModelStore(args.models or settings.models_dir)
    with tempfile.TemporaryDirectory(prefix="svr-bench-") as tmp:
        image = args.image or _default_image(Path(tmp))
        rec = Reconstructor(store, SessionFiles(Path(tmp) / "sessions"))
        print(f"image: {image}; models: {store.models_dir}; repeats: {args.repeats}")
        header = f"{'method':<16}{'load s':>8}{'preproc':>9}{'network':>9}{'mesh':>9}{'export':>9}{'total':>9}  faces"
        print(header)
        print("-" * len(header))
        worst = 0.0
        for info in store.methods():
            if args.methods and info.name not in args.methods:
                continue
            t0 = time.perf_counter()
            try:
                store.get(info.name)
            except ModelUnavailable as exc:
                print(f"{info.name:<16} skipped: {exc}")
                continue
            load = time.perf_counter() - t0
            rec.run(image, info.name)  # warm-up
            runs = [rec.run(image, info.name) for _ in range(args.repeats)]
            med = {k: statistics.median(r.timings[k] for r in runs) for k in runs[0].timings}
            total = statistics.median(r.total_seconds for r in runs)
            worst = max(worst, total)
            cells = "".join(
                f"{1000 * med[k]:>7.0f}ms"
                for k in ("preprocess", "network", "mesh extraction", "export")
            )
            print(f"{info.name:<16}{load:>8.2f}{cells}{1000 * total:>7.0f}ms  {runs[-1].n_faces}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS of this process: {peak_mb:.0f} MB; slowest median: {1000 * worst:.0f} ms (goal <= 1000 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
