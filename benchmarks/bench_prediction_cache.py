"""Scoring seed entries with and without the prediction cache; prints the time ratio.

Retrieval-style methods answer many test items with the same shape (Clustering with one of its
100 cluster shapes, Oracle NN with one training shape for all 5 views of a test shape), and the
scorer's prediction cache (`svr.predictions.PredictionCache`) meshes, samples and voxelises
each distinct answer once. For each method this script predicts a subset of a benchmark's test
split with the shipped weights (`--per-class` shapes of each class, all their views, in test
order: the order in which the worker scores them), writes the archive as `svr.predict` does,
opens it with the real archive reader, and scores it with `leaderboard.scoring.
score_submission` on the CPU with the cache (64 entries, the worker's setting) and without it
(the reference, 0), alternating the two `--rounds` times so that both see the same load. It
checks that the stored per-item scores are identical, bit for bit, and prints per method the
items per second of each, the ratio (median over rounds) and the distinct answers.

    python benchmarks/bench_prediction_cache.py --benchmark DIR [--per-class 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leaderboard.archive import open_submission  # noqa: E402
from leaderboard.scoring import score_submission  # noqa: E402
from svr.classes import CLASS_NAMES  # noqa: E402
from svr.data.layout import Benchmark  # noqa: E402
from svr.models import load_model  # noqa: E402
from svr.predict import encode_prediction  # noqa: E402

METHODS = ("clustering", "retrieval", "mean_shape", "oracle_nn", "voxel")


def _subset(bench: Benchmark, per_class: int) -> list:
    """All views of the first `per_class` test shapes of each class, in test order."""
    items, seen = [], {c: [] for c in CLASS_NAMES}
    for it in bench.items("test"):
        shapes = seen[it.shape.class_name]
        if it.shape.shape_id not in shapes:
            if len(shapes) >= per_class:
                continue
            shapes.append(it.shape.shape_id)
        items.append(it)
    return items


def _archive(model, bench: Benchmark, items: list, out: Path) -> int:
    """Write the items' predictions as svr.predict does; returns the distinct answers."""
    preds = []
    for s in range(0, len(items), 32):
        preds += model.reconstruct_items(bench, items[s : s + 32])
    manifest = {"method": model.name, "representation": model.representation,
                "frame": bench.meta.frame, "threshold": 0.5}  # fmt: skip
    distinct = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("submission.json", json.dumps(manifest))
        for item, pred in zip(items, preds, strict=True):
            ext, data = encode_prediction(pred, model.representation)
            distinct.add(data)
            zf.writestr(f"{item.item_id}.{ext}", data)
    return len(distinct)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=ROOT / "assets" / "models")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--per-class", type=int, default=4, help="test shapes per class")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bench = Benchmark(args.benchmark)
    items = _subset(bench, args.per_class)
    wanted = {it.item_id for it in items}
    print(f"{len(items)} test items ({args.per_class} shapes per class, all views); "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| method | items | distinct answers | items/s without | items/s with | ratio "
          "| identical |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.methods:
            model = load_model(name, args.models / name, device="cpu")
            archive = Path(tmp) / f"{name}.zip"
            distinct = _archive(model, bench, items, archive)
            del model
            parsed = open_submission(archive, bench, scratch=tmp)
            rates = {0: [], 64: []}
            results = {}
            for r in range(args.rounds):
                for size in (0, 64) if r % 2 == 0 else (64, 0):
                    t0 = time.perf_counter()
                    scores = score_submission(parsed, bench, device="cpu", prediction_cache=size)
                    rates[size].append(len(items) / (time.perf_counter() - t0))
                    kept = {i: m for i, m in scores.items.items() if i in wanted}
                    results.setdefault(size, kept)
                    if kept != results[size]:
                        raise AssertionError(f"{name}: scores changed between rounds")
            same = results[0] == results[64]
            without, with_ = statistics.median(rates[0]), statistics.median(rates[64])
            print(f"| {name} | {len(items)} | {distinct} | {without:.1f} | {with_:.1f} "
                  f"| {with_ / without:.2f} | {'yes' if same else 'NO'} |",
                  flush=True)  # fmt: skip
            if not same:
                return 1
    print(f"\nratio: items/s with the cache / without (the reference, same run, median of "
          f"{args.rounds}); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
