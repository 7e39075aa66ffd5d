"""Small fakes for the leaderboard tests: a benchmark folder without ground truth, and an
archive opener / scorer pair injected into the service and the worker.

A fake archive is a zip holding `fake.json`: {"method", "representation", "scores": {item id:
value}, "error": optional reason, "sleep": optional seconds per item, "content_sha256":
optional digest of the predictions (the real opener computes it from the decoded items)}.
The fake scorer turns each value v into metrics (F-score = IoU = v, Chamfer-L1 = 1 - v) and aggregates them with
the REAL `leaderboard.scoring.aggregate`, so what the worker stores is what the real scorer
would produce for those per-item values.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from leaderboard.scoring import ScoringTimeout, SubmissionScores, aggregate
from leaderboard.validation import Manifest, SubmissionError
from svr.data.layout import BenchmarkMeta, write_meta

CLASSES = ("airplane", "chair", "table")
SHAPES_PER_CLASS = 4
VIEWS = 2
KEYS = ["iou", "fscore@0.01", "chamfer_l1"]


def make_fake_benchmark(root: Path) -> list[str]:
    """A benchmark folder with test views (PNG) but no ground truth; returns the item ids."""
    meta = BenchmarkMeta(name="fake", version="0", seed=0, frame="object", source="procedural",
                         test_checksum="f" * 64)  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    write_meta(root, meta)
    ids = []
    for cls in CLASSES:
        for s in range(SHAPES_PER_CLASS):
            views = root / "test" / cls / f"s{s}" / "views"
            views.mkdir(parents=True)
            for v in range(VIEWS):
                Image.fromarray(np.full((8, 8, 3), 40 * v, np.uint8)).save(views / f"{v}.png")
                ids.append(f"{cls}/s{s}/{v}")
    return ids


def write_fake_archive(path: Path, method: str, scores: dict[str, float], **extra: Any) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fake.json", json.dumps({"method": method, "scores": scores, **extra}))
    return path


class FakeParsed:
    def __init__(self, data: dict[str, Any], test_ids: list[str], manifest: Manifest, sha: str):
        self.data = data
        self.manifest = manifest
        self.test_ids = test_ids
        self.present = [i for i in test_ids if i in data["scores"]]
        self.missing = [i for i in test_ids if i not in data["scores"]]
        self.sha256 = sha
        self.content_sha256 = data.get("content_sha256")  # what the real opener hashes

    def __enter__(self) -> FakeParsed:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def fake_open(path: Path, benchmark: Any, scratch: Any = None, manifest: Manifest | None = None,
              **kwargs: Any) -> FakeParsed:  # fmt: skip
    from leaderboard.storage import sha256_file

    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("fake.json"))
    if data.get("error"):
        raise SubmissionError(data["error"], ["item chair/s0/0: bad grid"])
    if manifest is None:
        manifest = Manifest(data["method"], data.get("representation", "voxels"), "object")
    test_ids = [i.item_id for i in benchmark.items("test")]
    return FakeParsed(data, test_ids, manifest, sha256_file(path))


def fake_score(parsed: FakeParsed, benchmark: Any, protocol: Any = None, device: Any = None,
               progress: Any = None, time_limit_s: float | None = None) -> SubmissionScores:  # fmt: skip
    start = time.monotonic()
    items = {}
    for k, item_id in enumerate(parsed.test_ids):
        time.sleep(parsed.data.get("sleep", 0.0))
        v = float(parsed.data["scores"].get(item_id, 0.0))
        items[item_id] = {"iou": v, "fscore@0.01": v, "chamfer_l1": 1.0 - v}
        if progress is not None:
            progress(k + 1, len(parsed.test_ids))
        if time_limit_s is not None and time.monotonic() - start > time_limit_s:
            raise ScoringTimeout(f"stopped after {k + 1} items")
    per_class, overall = aggregate(items, KEYS)
    n = len(items)
    return SubmissionScores(
        protocol=protocol.identifier, benchmark=benchmark.meta.identifier,
        method=parsed.manifest.method, representation=parsed.manifest.representation,
        sha256=parsed.sha256, items=items,
        item_status={i: "ok" if i in parsed.present else "missing" for i in items},
        per_class=per_class, class_counts={}, overall=overall,
        coverage={"fraction": len(parsed.present) / n, "n_items": n,
                  "n_missing": len(parsed.missing), "n_empty": 0},
        headline="fscore@0.01",
    )  # fmt: skip


def make_service(tmp_path: Path, **changes: Any) -> tuple[Any, list[str]]:
    """A LeaderboardService on a fresh SQLite file with the fake benchmark, opener and scorer.

    Returns (service, test item ids). Fast worker timings; admin token "s3cret".
    """
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings

    bench = tmp_path / "bench"
    ids = make_fake_benchmark(bench)
    options: dict[str, Any] = {
        "poll_interval_s": 0.05, "heartbeat_interval_s": 0.05, "admin_token": "s3cret",
    }  # fmt: skip
    options.update(changes)
    settings = LeaderboardSettings(home=tmp_path / "home", **options)
    service = LeaderboardService(settings, bench, score_fn=fake_score, open_fn=fake_open)
    return service, ids


def scores_for(ids: list[str], value: float, rng: np.random.Generator | None = None,
               spread: float = 0.0) -> dict[str, float]:  # fmt: skip
    """Per-item values around `value` (clipped to [0, 1])."""
    if rng is None or spread == 0:
        return {i: value for i in ids}
    return {i: float(np.clip(value + spread * rng.standard_normal(), 0, 1)) for i in ids}
