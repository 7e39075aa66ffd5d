"""A leaderboard of every kind of entry for the Leaderboard tab's tests (test_leaderboard_ui,
test_browser): the seven seeded methods under their seeded names (recognition baselines and
references, all flagged baseline as `leaderboard.seed` flags them) and one submission, with
per-item scores from the fake scorer (`leaderboard_fakes`) that differ by class and method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from leaderboard_fakes import write_fake_archive

from leaderboard.seed import BASELINE_NAMES, SEED_SUBMITTER

MEANS = {
    "clustering": 0.42, "retrieval": 0.45, "voxel": 0.40, "occupancy": 0.47, "atlas": 0.38,
    "oracle_nn": 0.62, "mean_shape": 0.20,
}  # fmt: skip
SUBMISSION = "My network"


def populate(service: Any, ids: list[str], folder: Path, seed: int = 0) -> dict[str, int]:
    """Submit and score (in this thread) the seeded methods and one submission; returns
    method name -> internal id."""
    rng = np.random.default_rng(seed)
    classes = sorted({i.split("/")[0] for i in ids})
    bias = {c: float(rng.uniform(-0.15, 0.15)) for c in classes}

    def scores(mean: float) -> dict[str, float]:
        return {
            i: float(np.clip(mean + bias[i.split("/")[0]] + 0.05 * rng.standard_normal(), 0, 1))
            for i in ids
        }

    out = {}
    for key, mean in MEANS.items():
        name = BASELINE_NAMES[key]
        archive = write_fake_archive(folder / f"{key}.zip", name, scores(mean))
        out[name] = service.submit(archive, {"method": name}, SEED_SUBMITTER, baseline=True)
    archive = write_fake_archive(folder / "mine.zip", SUBMISSION, scores(0.5))
    meta = {"method": SUBMISSION, "paper_url": "https://example.org/paper",
            "code_url": "https://example.org/code"}  # fmt: skip
    out[SUBMISSION] = service.submit(archive, meta, "alice")
    worker = service.make_worker()
    while worker.run_once() is not None:
        pass
    return out
