"""Statistics of a benchmark: counts, shape similarity within and across classes, Oracle NN.

All IoU figures use the object-frame 32^3 grids (`voxels_32.npy` or its packed form in each shape folder),
also for viewer-frame benchmarks, so that they describe the shapes and not the views.

- within-class IoU: mean IoU over all unordered pairs of distinct training shapes of the
  class (None with fewer than two);
- between-class IoU: mean IoU of the class's training shapes with every training shape of
  the other classes;
- Oracle NN: for each test shape, the highest IoU with any training shape (of any class),
  an upper bound for retrieval; summarised by min / median / mean / max per class.

IoU of two empty grids is defined as 1 (identical shapes); of an empty and a non-empty
grid, 0. Pairwise IoU is computed with float32 matrix products of the flattened grids
(intersection counts are exact integers below 2^24), in row blocks.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from svr.data.layout import Benchmark, load_voxels

__all__ = ["Distribution", "ClassStats", "StatsReport", "pairwise_iou", "stats"]

_BLOCK = 512


@dataclass(frozen=True)
class Distribution:
    """Summary of a set of values (count 0: all None)."""

    count: int
    min: float | None
    median: float | None
    mean: float | None
    max: float | None

    @classmethod
    def of(cls, values: np.ndarray) -> Distribution:
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            return cls(0, None, None, None, None)
        return cls(
            int(v.size), float(v.min()), float(np.median(v)), float(v.mean()), float(v.max())
        )


@dataclass(frozen=True)
class ClassStats:
    """Per-class figures (see the module docstring); counts: split -> shapes."""

    name: str
    counts: dict[str, int]
    within_iou: float | None
    between_iou: float | None
    oracle_nn: Distribution


@dataclass
class StatsReport:
    """Statistics of one benchmark folder."""

    root: str
    name: str
    frame: str
    classes: list[ClassStats] = field(default_factory=list)
    oracle_nn: Distribution = field(default_factory=lambda: Distribution.of(np.zeros(0)))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format_table(self) -> str:
        """A plain-text table, one row per class plus a total row."""

        def f(x: float | None) -> str:
            return "   -" if x is None else f"{x:.3f}"

        header = (
            f"{'class':<12} {'train':>6} {'val':>5} {'test':>5}  {'IoU in':>6} {'IoU out':>7}"
            f"  {'NN min':>6} {'NN med':>6} {'NN mean':>7} {'NN max':>6}"
        )
        lines = [f"{self.name} ({self.frame} frame) at {self.root}", header, "-" * len(header)]
        totals = {"train": 0, "val": 0, "test": 0}
        for c in self.classes:
            for split in totals:
                totals[split] += c.counts.get(split, 0)
            o = c.oracle_nn
            lines.append(
                f"{c.name:<12} {c.counts.get('train', 0):>6} {c.counts.get('val', 0):>5} "
                f"{c.counts.get('test', 0):>5}  {f(c.within_iou):>6} {f(c.between_iou):>7}  "
                f"{f(o.min):>6} {f(o.median):>6} {f(o.mean):>7} {f(o.max):>6}"
            )
        o = self.oracle_nn
        lines.append("-" * len(header))
        lines.append(
            f"{'all':<12} {totals['train']:>6} {totals['val']:>5} {totals['test']:>5}  "
            f"{'':>6} {'':>7}  {f(o.min):>6} {f(o.median):>6} {f(o.mean):>7} {f(o.max):>6}"
        )
        lines.append(
            "IoU in/out: mean 32^3 IoU of training shapes within the class / with other classes;"
        )
        lines.append("NN: each test shape's best IoU with any training shape (Oracle NN).")
        return "\n".join(lines)


def _validate_grids(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with one grid per row, got {a.shape}")
    return a.reshape(len(a), -1).astype(bool, copy=False)


def pairwise_iou(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """IoU of every grid in `a` with every grid in `b` (default: `a`).

    Args:
        a: bool (N, ...) grids (flattened per row), b: bool (M, ...) with the same size.

    Returns:
        float64 (N, M). Both empty: 1; one empty: 0.
    """
    a = _validate_grids(a, "a")
    symmetric = b is None
    b = a if b is None else _validate_grids(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"grids differ in size: {a.shape[1]} vs {b.shape[1]} voxels")
    out = np.ones((len(a), len(b)))
    if len(a) == 0 or len(b) == 0:
        return out
    used = a.any(axis=0) | b.any(axis=0)  # voxels empty everywhere do not change any count
    a, b = a[:, used], b[:, used]
    size_a = a.sum(axis=1).astype(np.float64)
    size_b = b.sum(axis=1).astype(np.float64)
    for i in range(0, len(a), _BLOCK):
        ai = a[i : i + _BLOCK].astype(np.float32)
        for j in range(i if symmetric else 0, len(b), _BLOCK):
            bj = ai if symmetric and j == i else b[j : j + _BLOCK].astype(np.float32)
            inter = (ai @ bj.T).astype(np.float64)
            union = size_a[i : i + _BLOCK, None] + size_b[None, j : j + _BLOCK] - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                out[i : i + _BLOCK, j : j + _BLOCK] = np.where(union > 0, inter / union, 1.0)
            if symmetric and j != i:
                out[j : j + _BLOCK, i : i + _BLOCK] = out[i : i + _BLOCK, j : j + _BLOCK].T
    return out


def stats(root: str | os.PathLike) -> StatsReport:
    """Compute the statistics of the benchmark at `root` (see the module docstring)."""
    bench = Benchmark(root)
    names = bench.class_names
    report = StatsReport(root=str(Path(root)), name=bench.meta.identifier, frame=bench.meta.frame)

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        refs = bench.shapes(split)
        labels = np.array([names.index(r.class_name) for r in refs], dtype=np.int64)
        grids = np.zeros((len(refs), 32**3), dtype=bool)
        for n, ref in enumerate(refs):
            path = ref.path(bench.root)
            grid = load_voxels(path, 32)
            if grid.shape != (32, 32, 32):
                raise ValueError(f"{path}: expected a (32, 32, 32) grid, got {grid.shape}")
            grids[n] = grid.reshape(-1)
        return grids, labels

    counts = {s: {c: len(bench.shapes(s, [c])) for c in names} for s in ("train", "val", "test")}
    train, train_labels = load("train")
    test, test_labels = load("test")
    train_iou = pairwise_iou(train)
    best = pairwise_iou(test, train).max(axis=1) if len(train) else np.zeros(0)
    if not len(train):
        test_labels = test_labels[:0]
    for k, name in enumerate(names):
        mine = train_labels == k
        n = int(mine.sum())
        within = None
        if n >= 2:
            block = train_iou[np.ix_(mine, mine)]
            within = float(block[np.triu_indices(n, 1)].mean())
        others = ~mine
        between = float(train_iou[np.ix_(mine, others)].mean()) if n and others.any() else None
        report.classes.append(
            ClassStats(
                name=name,
                counts={s: counts[s][name] for s in counts},
                within_iou=within,
                between_iou=between,
                oracle_nn=Distribution.of(best[test_labels == k]),
            )
        )
    report.oracle_nn = Distribution.of(best)
    return report
