"""Statistics of the leaderboard: recognition-or-reconstruction tests and rank tiers.

- `compare_to_baseline`: is an entry's per-item F-score distribution distinguishable from a
  baseline's (Clustering, Retrieval)? Two-sample Kolmogorov-Smirnov (distribution shape) and
  the Wilcoxon signed-rank test on the same items (paired; more powerful). The verdict uses
  the paired test when at least `MIN_PAIRED` items are shared, else KS.
- `bootstrap_tiers`: mean scores with percentile bootstrap confidence intervals, resampling
  SHAPES (views of a shape are not independent), and tiers: the entries whose interval
  overlaps the leader's share tier 1; the rest are tiered the same way recursively.

Inputs are plain numpy arrays; no database, no formatting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Comparison",
    "TierRow",
    "compare_to_baseline",
    "bootstrap_tiers",
    "format_p",
    "short_verdict",
    "MIN_PAIRED",
]

MIN_PAIRED = 6  # fewer shared items: the signed-rank test cannot reach p < 0.05


def format_p(p: float) -> str:
    """'p < 0.001', 'p = 0.012', 'p = 0.41'."""
    if not math.isfinite(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


@dataclass(frozen=True)
class Comparison:
    """An entry against one baseline on per-item scores (higher is better).

    ks_stat / ks_p: two-sample Kolmogorov-Smirnov; wilcoxon_p: signed-rank on shared items
    (nan when fewer than MIN_PAIRED or all differences are zero); n_paired: shared items;
    mean_diff: mean of entry - baseline over shared items (nan if none); verdict: one of
    "indistinguishable from", "better than", "worse than" + name + p-value.
    """

    baseline: str
    ks_stat: float
    ks_p: float
    wilcoxon_p: float
    n_paired: int
    mean_diff: float
    outcome: str
    verdict: str


def compare_to_baseline(
    entry: dict[str, float],
    baseline: dict[str, float],
    baseline_name: str,
    alpha: float = 0.05,
) -> Comparison:
    """Compare per-item scores {item id: value} of an entry and a baseline.

    Items with a None/NaN value are left out. Raises ValueError if either side has no items.
    """
    from scipy import stats

    a = {k: float(v) for k, v in entry.items() if v is not None and math.isfinite(v)}
    b = {k: float(v) for k, v in baseline.items() if v is not None and math.isfinite(v)}
    if not a or not b:
        raise ValueError("both the entry and the baseline need at least one scored item")
    xa = np.fromiter(a.values(), float)
    xb = np.fromiter(b.values(), float)
    ks = stats.ks_2samp(xa, xb)
    shared = sorted(set(a) & set(b))
    diffs = np.array([a[k] - b[k] for k in shared], dtype=float)
    wilcoxon_p = math.nan
    if len(shared) >= MIN_PAIRED and np.any(diffs != 0):
        wilcoxon_p = float(stats.wilcoxon(diffs, zero_method="wilcox").pvalue)
    elif len(shared) >= MIN_PAIRED:
        wilcoxon_p = 1.0  # identical on every shared item
    mean_diff = float(diffs.mean()) if len(shared) else math.nan
    if math.isfinite(wilcoxon_p):
        p, direction, test = wilcoxon_p, mean_diff, "paired"
    else:
        p, direction, test = float(ks.pvalue), float(xa.mean() - xb.mean()), "KS"
    if p >= alpha or direction == 0:
        outcome = "indistinguishable from"
    else:
        outcome = "better than" if direction > 0 else "worse than"
    verdict = f"{outcome} {baseline_name}, {format_p(p)} ({test})"
    return Comparison(
        baseline=baseline_name,
        ks_stat=float(ks.statistic),
        ks_p=float(ks.pvalue),
        wilcoxon_p=wilcoxon_p,
        n_paired=len(shared),
        mean_diff=mean_diff,
        outcome=outcome,
        verdict=verdict,
    )


_SHORT = {"indistinguishable from": "n.s.", "better than": "better", "worse than": "worse"}


def short_verdict(comparison: Comparison) -> str:
    """The verdict for a table cell whose header names the baseline: "better, p < 0.001",
    "worse, p = 0.02", "n.s., p = 0.41" (not significant: indistinguishable), with " (KS)"
    where the KS test decided; display only, the same outcome and p as `verdict`."""
    word = _SHORT.get(comparison.outcome, comparison.outcome)
    p_text, _, test = comparison.verdict.rsplit(", ", 1)[-1].partition(" (")
    # The paired test is the rule (the table's header says so); KS is named where it
    # stood in for it (too few shared items).
    return f"{word}, {p_text}" + (" (KS)" if test.startswith("KS") else "")


@dataclass(frozen=True)
class TierRow:
    """One entry's mean, its bootstrap interval [low, high] and its tier (1 = best)."""

    name: str
    mean: float
    low: float
    high: float
    tier: int


def bootstrap_tiers(
    scores: np.ndarray,
    names: Sequence[str],
    groups: Sequence[str] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    higher_is_better: bool = True,
) -> list[TierRow]:
    """Tiers of entries from per-item scores.

    Args:
        scores: (E, N) float, entry e's score on item n (all entries on the same items).
        names: E entry names.
        groups: N group labels (the shape of each item); resampling draws whole groups with
            replacement. None: each item is its own group.
        n_boot: bootstrap resamples. confidence: interval mass (percentile interval).
        seed: of the resampling generator.
        higher_is_better: False for errors such as Chamfer distance.

    Returns:
        TierRows sorted best first. Tier 1 holds the leader and every entry whose interval
        overlaps the leader's; the remaining entries are tiered the same way.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] != len(names):
        raise ValueError(f"scores must be (E, N) with E = {len(names)} names, got {scores.shape}")
    if scores.shape[1] == 0:
        raise ValueError("scores need at least one item")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite (score missing items with the worst value)")
    labels = list(range(scores.shape[1])) if groups is None else list(groups)
    if len(labels) != scores.shape[1]:
        raise ValueError(f"groups has {len(labels)} labels for {scores.shape[1]} items")
    _, group_index = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    n_groups = int(group_index.max()) + 1
    # Per-group sums and counts: a resample's mean is sum of drawn group sums / drawn counts.
    sums = np.zeros((scores.shape[0], n_groups))
    np.add.at(sums.T, group_index, scores.T)
    counts = np.bincount(group_index, minlength=n_groups).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    weights = np.zeros((n_boot, n_groups))
    np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1.0)
    boot = (weights @ sums.T) / (weights @ counts)[:, None]  # (n_boot, E)
    tail = (1.0 - confidence) / 2.0
    low = np.quantile(boot, tail, axis=0)
    high = np.quantile(boot, 1.0 - tail, axis=0)
    means = scores.mean(axis=1)
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(names)), key=lambda e: (-sign * means[e], names[e]))
    tiers: dict[int, int] = {}
    tier = 0
    remaining = list(order)
    while remaining:
        tier += 1
        leader = remaining[0]
        members = [e for e in remaining if low[e] <= high[leader] and high[e] >= low[leader]]
        for e in members:
            tiers[e] = tier
        remaining = [e for e in remaining if e not in tiers]
    return [
        TierRow(names[e], float(means[e]), float(low[e]), float(high[e]), tiers[e]) for e in order
    ]
