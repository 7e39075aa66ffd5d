"""Score a parsed submission against a benchmark's test split, and aggregate the scores.

Every test item gets a score: present items are scored by `svr.evaluation.Scorer` (which
reuses each ground truth's k-d tree across the views of a shape), missing items get
`svr.evaluation.missing_item_score` (F-score, precision, recall and IoU 0, Chamfer at the
protocol's worst values), and empty predictions score the same worst values through the
scorer. So missing or empty predictions never drop silently out of a mean.

Aggregates, for every metric key of `svr.evaluation.metric_keys`:
- per class: mean and median over the class's test items;
- overall: the mean of the class means ("mean_of_class_means", each class weighs the same)
  and the mean over all items ("mean_over_items").
A value of None means "not applicable" (IoU and normal consistency of point clouds) and is
left out of a mean; a metric with no applicable value aggregates to None (never 0). A NaN from
the metrics (IoU when both grids are empty) is stored as None as well.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from leaderboard.archive import ParsedSubmission
from leaderboard.validation import ItemData
from svr.data.layout import Benchmark, GroundTruth
from svr.evaluation import (
    DEFAULT_PROTOCOL,
    PredictionData,
    Protocol,
    Scorer,
    metric_keys,
    missing_item_score,
)

__all__ = [
    "ScoringTimeout",
    "SubmissionScores",
    "score_submission",
    "aggregate",
    "summarise",
    "item_prediction_data",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Metrics = dict[str, float | None]


class ScoringTimeout(TimeoutError):
    """Scoring took longer than the time limit; nothing partial is returned."""


@dataclass
class SubmissionScores:
    """All scores of one submission.

    items: item id -> metric key -> value (None = not applicable); item_status: item id ->
    "ok", "empty" or "missing"; per_class: class -> metric -> {"mean", "median"};
    class_counts: class -> {"n", "missing", "empty"}; overall: {"mean_of_class_means": {...},
    "mean_over_items": {...}}; coverage: {"fraction" (present and non-empty / test items),
    "n_items", "n_present", "n_missing", "n_empty"}; protocol / benchmark: identifiers of the
    scoring protocol and the benchmark (its test checksum prefix included).
    """

    protocol: str
    benchmark: str
    method: str
    representation: str
    sha256: str
    items: dict[str, Metrics]
    item_status: dict[str, str]
    per_class: dict[str, dict[str, dict[str, float | None]]]
    class_counts: dict[str, dict[str, int]]
    overall: dict[str, Metrics]
    coverage: dict[str, float | int]
    headline: str
    elapsed_s: float = 0.0
    protocol_config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """Strict JSON (no NaN); keys sorted within each item."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> SubmissionScores:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _clean(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def item_prediction_data(item: ItemData, threshold: float) -> PredictionData:
    """The metrics module's PredictionData of a checked submission item."""
    if item.kind == "voxels":
        return PredictionData(grid=item.grid, threshold=threshold)
    if item.kind == "points":
        return PredictionData(points=item.points)
    return PredictionData(vertices=item.vertices, faces=item.faces)


def _summary(values: list[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "median": None}
    return {"mean": math.fsum(present) / len(present), "median": float(statistics.median(present))}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def aggregate(
    items: dict[str, Metrics], keys: list[str]
) -> tuple[dict[str, dict[str, dict[str, float | None]]], dict[str, Metrics]]:
    """Per-class mean/median and the two overall means of per-item scores.

    items: item id (`<class>/<shape id>/<view>`) -> metric -> value or None.
    Returns (per_class, overall) as described in the module docstring.
    """
    by_class: dict[str, list[Metrics]] = {}
    for item_id, metrics in items.items():
        by_class.setdefault(item_id.split("/", 1)[0], []).append(metrics)
    per_class = {
        cls: {k: _summary([m.get(k) for m in rows]) for k in keys} for cls, rows in by_class.items()
    }
    overall = {
        "mean_of_class_means": {
            k: _mean([per_class[c][k]["mean"] for c in per_class]) for k in keys
        },
        "mean_over_items": {k: _mean([m.get(k) for m in items.values()]) for k in keys},
    }
    return per_class, overall


# Flush a batch early once its predictions hold this many bytes (bounded memory).
_BATCH_BYTES = 256 << 20


def _nbytes(data: PredictionData) -> int:
    arrays = (data.grid, data.points, data.vertices, data.faces)
    return sum(a.nbytes for a in arrays if a is not None)


class _GroundTruthCache:
    """The ground truth of the last folder loaded: views of one shape share it (object frame)."""

    def __init__(self, benchmark: Benchmark):
        self.benchmark = benchmark
        self.key: str | None = None
        self.value: GroundTruth | None = None
        self.loads = 0

    def get(self, item_id: str) -> tuple[str, GroundTruth]:
        item = self.benchmark.item(item_id)
        key = str(self.benchmark.gt_dir(item))
        if key != self.key or self.value is None:
            self.value = self.benchmark.ground_truth(item, with_mesh=False)
            self.key = key
            self.loads += 1
        return key, self.value


def score_submission(
    parsed: ParsedSubmission,
    benchmark: Benchmark,
    protocol: Protocol = DEFAULT_PROTOCOL,
    device: str | None = None,
    progress: Progress | None = None,
    time_limit_s: float | None = None,
    batch_size: int = 8,
    prediction_cache: int = 64,
) -> SubmissionScores:
    """Score every test item of a parsed submission and aggregate.

    Args:
        parsed: a validated submission of this benchmark (`leaderboard.archive.open_submission`).
        benchmark: the benchmark; ground truth is read once per shape folder.
        protocol: the scoring protocol.
        device: None (CUDA when available, else the exact CPU k-d tree), "cpu" or "cuda".
        progress: called with (items done, items total) after each batch.
        time_limit_s: raise ScoringTimeout when scoring runs longer (checked between batches).
        batch_size: items scored concurrently on the CPU (one prediction in memory each).
        prediction_cache: distinct predictions whose surface samples and grids are kept
            (`svr.predictions.PredictionCache`, at most 0.5 MB each; 0: none): retrieval-style
            entries answer many items with one shape. The scores are the same either way.

    Returns:
        SubmissionScores with per-item, per-class and overall scores and the coverage.
    """
    start = time.monotonic()
    opened_for = getattr(parsed, "benchmark_id", "")
    if opened_for and opened_for != benchmark.meta.identifier:
        raise ValueError(
            f"the submission was validated against benchmark {opened_for}, not "
            f"{benchmark.meta.identifier}; open it again with this benchmark"
        )
    keys = metric_keys(protocol)
    test_ids = list(parsed.test_ids)
    present = set(parsed.present)
    kind = parsed.manifest.representation
    if device is not None and str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but torch sees no CUDA device; use 'cpu'"
            )
    scorer = Scorer(
        protocol, None if device in (None, "cpu") else device, cache_size=8,
        prediction_cache=prediction_cache,
    )  # fmt: skip
    if device == "cpu":
        scorer.device = None  # the exact CPU k-d tree even when a GPU exists
    gt_cache = _GroundTruthCache(benchmark)
    items: dict[str, Metrics] = {}
    status: dict[str, str] = {}
    total = len(test_ids)
    done = 0

    def finish(item_id: str, metrics: dict[str, float | None], state: str) -> None:
        items[item_id] = {k: _clean(metrics.get(k)) for k in keys}
        status[item_id] = state

    batch: list[tuple[str, PredictionData, GroundTruth, str]] = []

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        triples = [(data, gt, key) for _, data, gt, key in batch]
        scores = scorer.score_many(triples)
        for (item_id, *_), score in zip(batch, scores, strict=True):
            finish(item_id, score.to_dict(), "empty" if score.empty else "ok")
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress(done, total)
        elapsed = time.monotonic() - start
        if time_limit_s is not None and elapsed > time_limit_s:
            raise ScoringTimeout(
                f"scoring stopped after {elapsed:.0f} s (limit {time_limit_s:.0f} s) with "
                f"{done} of {total} items scored"
            )

    missing_metrics = missing_item_score(protocol, kind).to_dict()
    for item_id in test_ids:
        if item_id not in present:
            finish(item_id, missing_metrics, "missing")
            done += 1
            continue
        data = item_prediction_data(parsed.load_item(item_id), parsed.manifest.threshold)
        key, gt = gt_cache.get(item_id)
        batch.append((item_id, data, gt, key))
        if len(batch) >= batch_size or sum(_nbytes(b[1]) for b in batch) > _BATCH_BYTES:
            flush()
    flush()
    if progress is not None:
        progress(total, total)

    elapsed = time.monotonic() - start
    logger.info("scored %d items in %.1f s; %d ground-truth loads", total, elapsed, gt_cache.loads)
    return summarise(
        items, status, test_ids, keys, protocol=protocol.identifier,
        benchmark=benchmark.meta.identifier, method=parsed.manifest.method,
        representation=kind, sha256=parsed.sha256, headline=protocol.headline_key,
        protocol_config=protocol.to_dict(), elapsed_s=elapsed,
    )  # fmt: skip


def summarise(
    items: dict[str, Metrics],
    status: dict[str, str],
    test_ids: list[str],
    keys: list[str],
    **meta: Any,
) -> SubmissionScores:
    """SubmissionScores from per-item scores: per-class and overall aggregates, class counts
    and coverage. One function for one worker's run and for shards scored by many
    (`leaderboard.shards.combine`), so both give the same numbers bit for bit.

    items / status: every test id -> metric key -> value, and -> "ok" | "empty" | "missing";
    test_ids: the benchmark's order (the aggregates are summed in it); keys: the metric keys
    in order; meta: the other SubmissionScores fields (protocol, benchmark, method,
    representation, sha256, headline, protocol_config, elapsed_s).
    """
    items = {i: items[i] for i in test_ids}
    total = len(test_ids)
    per_class, overall = aggregate(items, keys)
    class_counts: dict[str, dict[str, int]] = {}
    for item_id in test_ids:
        counts = class_counts.setdefault(
            item_id.split("/", 1)[0], {"n": 0, "missing": 0, "empty": 0}
        )
        counts["n"] += 1
        if status[item_id] in ("missing", "empty"):
            counts[status[item_id]] += 1
    n_missing = sum(1 for i in test_ids if status[i] == "missing")
    n_empty = sum(1 for i in test_ids if status[i] == "empty")
    coverage = {
        "fraction": (total - n_missing - n_empty) / total,
        "n_items": total,
        "n_present": total - n_missing,
        "n_missing": n_missing,
        "n_empty": n_empty,
    }
    return SubmissionScores(
        items=items,
        item_status={i: status[i] for i in test_ids},
        per_class=per_class,
        class_counts=class_counts,
        overall=overall,
        coverage=coverage,
        **meta,
    )
