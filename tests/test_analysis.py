"""KS / Wilcoxon verdicts and bootstrap rank tiers on synthetic, hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leaderboard.analysis import bootstrap_tiers, compare_to_baseline, format_p, short_verdict


def _items(values: np.ndarray, prefix: str = "c/s") -> dict[str, float]:
    return {f"{prefix}{k}/0": float(v) for k, v in enumerate(values)}


def test_identical_scores_are_indistinguishable() -> None:
    rng = np.random.default_rng(0)
    x = rng.beta(2, 5, 200)
    c = compare_to_baseline(_items(x), _items(x), "Retrieval")
    assert c.outcome == "indistinguishable from"
    assert c.verdict.startswith("indistinguishable from Retrieval, p = 1.00")
    assert c.ks_stat == 0 and c.ks_p == pytest.approx(1.0) and c.wilcoxon_p == 1.0
    assert c.n_paired == 200 and c.mean_diff == 0


def test_same_distribution_with_noise_is_indistinguishable() -> None:
    rng = np.random.default_rng(1)
    base = rng.beta(2, 5, 300)
    entry = np.clip(base + rng.normal(0, 0.05, 300), 0, 1)  # same items, no systematic shift
    c = compare_to_baseline(_items(entry), _items(base), "Clustering")
    assert c.outcome == "indistinguishable from", c
    assert c.wilcoxon_p > 0.05 and c.ks_p > 0.05
    assert short_verdict(c) == "n.s., " + c.verdict.split(", ", 1)[1].removesuffix(" (paired)")


@pytest.mark.parametrize("shift, outcome", [(0.1, "better than"), (-0.1, "worse than")])
def test_shifted_scores_are_better_or_worse(shift: float, outcome: str) -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0.2, 0.6, 150)
    entry = base + shift + rng.normal(0, 0.02, 150)
    c = compare_to_baseline(_items(entry), _items(base), "Retrieval")
    assert c.outcome == outcome
    assert c.verdict == f"{outcome} Retrieval, p < 0.001 (paired)"
    assert short_verdict(c) == f"{outcome.split()[0]}, p < 0.001"  # the table's cell
    assert c.ks_p < 0.001 and c.mean_diff == pytest.approx(shift, abs=0.01)
    # KS alone sees the same thing (the paired test is not the only evidence).
    assert c.ks_stat >= 0.2


def test_without_shared_items_the_verdict_uses_ks() -> None:
    rng = np.random.default_rng(3)
    a = _items(rng.uniform(0.5, 1.0, 100), "a/s")
    b = _items(rng.uniform(0.0, 0.5, 100), "b/s")
    c = compare_to_baseline(a, b, "Retrieval")
    assert c.n_paired == 0 and math.isnan(c.wilcoxon_p) and math.isnan(c.mean_diff)
    assert c.verdict == "better than Retrieval, p < 0.001 (KS)"
    assert short_verdict(c) == "better, p < 0.001 (KS)"


def test_none_values_are_left_out_and_empty_input_is_refused() -> None:
    a = {"x/s/0": None, "x/s/1": 0.5}
    with pytest.raises(ValueError, match="at least one"):
        compare_to_baseline({"x/s/0": None}, a, "R")
    c = compare_to_baseline(a, {"x/s/1": 0.5}, "R")
    assert c.n_paired == 1


def test_format_p() -> None:
    assert format_p(0.0004) == "p < 0.001"
    assert format_p(0.0042) == "p = 0.004"
    assert format_p(0.4123) == "p = 0.41"
    assert format_p(float("nan")) == "p = n/a"


def test_tiers_hand_made_cases() -> None:
    rng = np.random.default_rng(4)
    n = 120
    a = np.clip(0.80 + rng.normal(0, 0.1, n), 0, 1)
    b = a - 0.01  # overlaps A
    c = np.clip(0.40 + rng.normal(0, 0.1, n), 0, 1)  # far below
    d = c - 0.01  # overlaps C, not A
    rows = bootstrap_tiers(np.stack([c, a, d, b]), ["C", "A", "D", "B"], n_boot=500)
    assert [r.name for r in rows] == ["A", "B", "C", "D"]
    assert {r.name: r.tier for r in rows} == {"A": 1, "B": 1, "C": 2, "D": 2}
    for r in rows:
        assert r.low <= r.mean <= r.high


def test_constant_scores_give_zero_width_intervals() -> None:
    scores = np.array([[0.9] * 10, [0.9] * 10, [0.5] * 10])
    rows = bootstrap_tiers(scores, ["x", "y", "z"], n_boot=50)
    assert [(r.name, r.tier) for r in rows] == [("x", 1), ("y", 1), ("z", 2)]
    for r, value in zip(rows, (0.9, 0.9, 0.5), strict=True):
        assert r.low == pytest.approx(value) and r.high == pytest.approx(value)


def test_lower_is_better_for_errors() -> None:
    scores = np.array([[0.1] * 5, [0.3] * 5])
    rows = bootstrap_tiers(scores, ["small error", "large error"], higher_is_better=False)
    assert [(r.name, r.tier) for r in rows] == [("small error", 1), ("large error", 2)]


def test_bootstrap_matches_a_naive_loop_over_shapes() -> None:
    rng = np.random.default_rng(5)
    n_shapes, views = 15, 3
    scores = rng.uniform(0, 1, (2, n_shapes * views))
    groups = [f"s{k // views:02d}" for k in range(n_shapes * views)]  # sorted like shape index
    rows = {r.name: r for r in bootstrap_tiers(scores, ["a", "b"], groups, n_boot=200, seed=7)}
    # Naive: draw shapes with replacement (same generator calls), average all their views.
    draws = np.random.default_rng(7).integers(0, n_shapes, size=(200, n_shapes))
    for e, name in enumerate(["a", "b"]):
        means = [
            np.mean([scores[e, s * views + v] for s in draw for v in range(views)])
            for draw in draws
        ]
        assert rows[name].low == pytest.approx(np.quantile(means, 0.025))
        assert rows[name].high == pytest.approx(np.quantile(means, 0.975))


def test_views_of_one_shape_are_resampled_together() -> None:
    rng = np.random.default_rng(6)
    per_shape = rng.uniform(0, 1, (2, 20))
    # Every shape seen in 4 identical views: resampling shapes must give exactly the intervals
    # of the one-view data, not the 4x narrower ones of treating views as independent.
    repeated = np.repeat(per_shape, 4, axis=1)
    groups = [f"s{k // 4:02d}" for k in range(80)]
    single = bootstrap_tiers(
        per_shape, ["a", "b"], [f"s{k:02d}" for k in range(20)], n_boot=300, seed=1
    )
    grouped = bootstrap_tiers(repeated, ["a", "b"], groups, n_boot=300, seed=1)
    for s, g in zip(
        sorted(single, key=lambda r: r.name), sorted(grouped, key=lambda r: r.name), strict=True
    ):
        assert g.low == pytest.approx(s.low) and g.high == pytest.approx(s.high)
    naive = bootstrap_tiers(repeated, ["a", "b"], None, n_boot=300, seed=1)
    assert (naive[0].high - naive[0].low) < 0.7 * (grouped[0].high - grouped[0].low)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        bootstrap_tiers(np.array([[np.nan, 1.0]]), ["a"])
    with pytest.raises(ValueError, match=r"\(E, N\)"):
        bootstrap_tiers(np.ones((2, 3)), ["a"])
    with pytest.raises(ValueError, match="groups"):
        bootstrap_tiers(np.ones((1, 3)), ["a"], groups=["s0"])
