"""Comparison: two entries side by side, per-item distributions and the input views of items.

Built on `leaderboard.ranking` (visible entries, per-item scores).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leaderboard.errors import ServiceError
from leaderboard.ranking import DIGITS, RankingMixin

__all__ = ["ComparisonMixin", "Comparison"]


@dataclass(frozen=True)
class Comparison:
    """Two entries side by side on the headline metric.

    per_class: Class, A, B, A - B; items: the items where they disagree most (item id,
    A, B, A - B), largest |A - B| first: for maintainers only (empty otherwise, with
    `items_shown` False), as per-item scores of entries are not published.
    """

    name_a: str
    name_b: str
    per_class: pd.DataFrame
    items: pd.DataFrame
    items_shown: bool = True


class ComparisonMixin(RankingMixin):
    """Compare entries, per-item distributions, view images of test items."""

    def distributions(self, submission_ids: Iterable[int] | None = None) -> dict[str, np.ndarray]:
        """Entry name -> per-item headline scores (float64 (N,)), baselines included: sorted
        and rounded to `DIGITS` decimals, so they tell no item's score (for the ECDF)."""
        entries = self.entries()
        if submission_ids is not None:
            wanted = {int(i) for i in submission_ids}
            entries = [e for e in entries if e.id in wanted or e.baseline]
        scores = self.item_scores([e.id for e in entries])
        return {
            e.name: np.round(np.array(sorted(scores[e.id].values())), DIGITS)
            for e in entries
            if scores[e.id]
        }

    def compare(self, id_a: int, id_b: int, top_k: int = 8, actor: str | None = None) -> Comparison:
        """Per-class differences of two visible entries and, for a maintainer (`actor` from
        `authorize`), the items they disagree on most."""
        entries = {e.id: e for e in self.entries()}
        for i in (id_a, id_b):
            if int(i) not in entries:
                raise ServiceError(f"submission {i} is not a visible, scored entry")
        a, b = entries[int(id_a)], entries[int(id_b)]
        classes = sorted(set(a.per_class) | set(b.per_class))
        per_class = pd.DataFrame(
            {
                "Class": classes,
                a.name: [a.per_class.get(c) for c in classes],
                b.name: [b.per_class.get(c) for c in classes],
            }
        )
        per_class["Difference (A - B)"] = per_class[a.name] - per_class[b.name]
        if not actor:
            items = pd.DataFrame(columns=["Item", a.name, b.name, "Difference (A - B)"])
            return Comparison(a.name, b.name, per_class.round(DIGITS), items, items_shown=False)
        scores = self.item_scores([a.id, b.id])
        shared = sorted(set(scores[a.id]) & set(scores[b.id]))
        items = pd.DataFrame(
            {
                "Item": shared,
                a.name: [scores[a.id][i] for i in shared],
                b.name: [scores[b.id][i] for i in shared],
            }
        )
        items["Difference (A - B)"] = items[a.name] - items[b.name] if shared else []
        if shared:
            items = items.reindex(
                items["Difference (A - B)"].abs().sort_values(ascending=False).index
            )
        return Comparison(
            a.name, b.name, per_class.round(DIGITS),
            items.head(top_k).round(DIGITS).reset_index(drop=True),
        )  # fmt: skip

    def view_image(self, item_id: str) -> np.ndarray:
        """The public input view of a test item as an (H, W, C) uint8 array (never a path)."""
        from PIL import Image

        if "test_ids" not in self._cache:
            self._cache["test_ids"] = {i.item_id for i in self.benchmark.items("test")}
        if str(item_id) not in self._cache["test_ids"]:
            raise ServiceError(f"{item_id!r} is not a test item of this benchmark")
        item = self.benchmark.item(str(item_id))
        with Image.open(self.benchmark.image_path(item)) as image:
            return np.asarray(image.convert("RGBA"))
