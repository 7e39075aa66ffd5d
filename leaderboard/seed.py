"""Seed the leaderboard with the shipped methods as baseline entries.

For every registered method (`svr.models.REGISTRY`: the five methods, `oracle_nn` and
`mean_shape`), predict the benchmark's test split with `svr.predict.write_submission` (the
Python API of `python -m svr.predict`) into a submission archive, and submit it through the normal `LeaderboardService.submit` path
(validation, queue, worker) marked as a baseline. Each seeded entry records the digest of
its weights (`weights_digest`). A method already present as a baseline with the same
weights is skipped, so seeding twice is harmless; one whose shipped weights changed is
predicted again and submitted as its *replacement*: the old entry stays on the board until
the new one is scored, and is then hidden (kept, with an audit line), never deleted. If the
new weights predict exactly what the old entry holds (e.g. an entry seeded before weights
were recorded), the old entry is kept and the digest recorded on it.
The flag means "seeded, not a submission" (reserved names, the "Show baselines" filter);
the table's Kind column tells the recognition baselines (Clustering, Retrieval) from the
references (the other seeded methods, Oracle NN): `leaderboard.ranking.kind_of`.

Order (`SEED_ORDER`): the quickest to predict *and score* first, so the first score appears
minutes after the test split is built: the voxel decoder (its 32^3 grids score at about 58
items/s, no mesh to voxelise; Atlas's meshes score at about 11), then the recognition
baselines, which every entry's verdicts need; Oracle NN, which reads the training shapes, comes after the
recognition baselines, and its training shapes are built then, as references (mesh and
grids, `svr.data.build.add_training_split`), when the benchmark lacks them; the occupancy
network, whose meshes take longest, last.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from leaderboard.db import Status, Submission

__all__ = [
    "seed_baselines",
    "seed_order",
    "weights_digest",
    "SeedResult",
    "BASELINE_NAMES",
    "SEED_SUBMITTER",
    "SEED_ORDER",
]

logger = logging.getLogger(__name__)

SEED_SUBMITTER = "baselines"
BASELINE_NAMES = {
    "clustering": "Clustering",
    "retrieval": "Retrieval",
    "voxel": "Voxel decoder",
    "occupancy": "Occupancy network",
    "atlas": "AtlasNet-style patches",
    "oracle_nn": "Oracle NN (uses ground truth)",
    "mean_shape": "Mean shape",
}
# quickest to predict and score first (on `default`: voxel 32^3 grids about 2 min of scoring,
# mesh entries 7.5 min or more), the recognition baselines early, occupancy (19 min of
# prediction) last
SEED_ORDER = ("voxel", "retrieval", "clustering", "atlas", "mean_shape", "oracle_nn", "occupancy")


@dataclass(frozen=True)
class SeedResult:
    """What happened to one method: "submitted" (with its id), "skipped" or "failed"."""

    method: str
    outcome: str
    submission_id: int | None = None
    message: str = ""


def _predict(model: str, weights: Path, benchmark_dir: Path, out: Path) -> None:
    """Write `out` (a submission .zip) with the `svr.predict` Python API, or its command line
    when the API cannot be imported."""
    try:
        from svr.models import load_model
        from svr.predict import write_submission
    except ImportError:
        _predict_subprocess(model, weights, benchmark_dir, out)
        return
    from svr.data.layout import Benchmark

    if not Path(weights).is_dir():
        raise FileNotFoundError(f"no weights for {model} at {weights}")
    loaded = load_model(model, weights)
    try:
        write_submission(loaded, Benchmark(benchmark_dir), out)
    finally:
        del loaded


def _predict_subprocess(model: str, weights: Path, benchmark_dir: Path, out: Path) -> None:
    """Write `out` with `python -m svr.predict` in a child process."""
    cmd = [
        sys.executable, "-m", "svr.predict", "--model", model, "--weights", str(weights),
        "--benchmark", str(benchmark_dir), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(
            f"svr.predict {model} exited with {done.returncode}: " + " | ".join(tail)
        )


def seed_order(names: Iterable[str]) -> list[str]:
    """`names` (e.g. `svr.models.REGISTRY`) with those of SEED_ORDER first, in its order,
    then the others as given: the order to seed in, one method at a time or all at once."""
    names = list(names)
    rank = {n: i for i, n in enumerate(SEED_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


def _ensure_reference_shapes(benchmark_dir: Path, say: Callable[[str], None], display: str) -> None:
    """Build the training split as references (Oracle NN's database) when it is missing."""
    from svr.data.build import add_training_split, training_split_ready

    if training_split_ready(benchmark_dir, "reference"):
        return
    say(f"{display}: building the training shapes it searches")
    add_training_split(benchmark_dir, "reference", workers=max(1, (os.cpu_count() or 2) - 1))


def weights_digest(folder: Path) -> str | None:
    """SHA-256 (hex) of a weights folder: every file's relative path and bytes, in sorted
    order, the model card excepted (text about the weights, not the weights); None when the
    folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == "MODEL_CARD.md":
            continue
        digest.update(rel.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Live:
    """A live baseline of the current benchmark: id and recorded weights digest."""

    id: int
    weights: str | None


def _existing_baselines(service: Any) -> dict[str, list[_Live]]:
    """Method name -> its live baselines on the service's current benchmark (not deleted,
    not failed, not replaced by another live one), oldest first. A rebuilt test split, e.g.
    after rotating the secret, has none, so it is seeded again."""
    current = service.benchmark.meta.identifier
    with service.factory() as session:
        rows = session.execute(
            select(Submission.id, Submission.method, Submission.weights_sha256,
                   Submission.supersedes)
            .where(
                Submission.baseline.is_(True),
                Submission.deleted.is_(False),
                Submission.status != Status.FAILED,
                Submission.benchmark_id == current,
            )
            .order_by(Submission.id)
        ).all()  # fmt: skip
    replaced = {r.supersedes for r in rows if r.supersedes is not None}
    out: dict[str, list[_Live]] = {}
    for r in rows:
        if r.id not in replaced:
            out.setdefault(r.method, []).append(_Live(r.id, r.weights_sha256))
    return out


def seed_baselines(
    service: Any,
    benchmark_dir: Path,
    models_dir: Path,
    progress: Callable[[str], None] | None = None,
    methods: Iterable[str] | None = None,
    predict: Callable[[str, Path, Path, Path], None] = _predict,
) -> list[SeedResult]:
    """Predict and submit every shipped method as a baseline (see the module docstring).

    Args:
        service: a `LeaderboardService`.
        benchmark_dir: the benchmark to predict.
        models_dir: one folder of weights per method (`<models_dir>/<name>`).
        progress: called with a one-line message per method.
        methods: names to seed (default: every registered method).
        predict: (model, weights dir, benchmark dir, out zip) -> None (default: svr.predict).

    Returns:
        One SeedResult per method.
    """
    from leaderboard.service import ServiceError

    if methods is None:
        from svr.models import REGISTRY

        methods = seed_order(REGISTRY)
    service.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    results: list[SeedResult] = []
    say = progress or (lambda message: None)
    for name in methods:
        display = BASELINE_NAMES.get(name, name.replace("_", " ").title())
        weights = Path(models_dir) / name
        digest = weights_digest(weights)
        live = _existing_baselines(service).get(display, [])
        if live and (digest is None or any(e.weights == digest for e in live)):
            results.append(SeedResult(name, "skipped", message="already a baseline"))
            say(f"{display}: already on the leaderboard")
            continue
        replaces = live[-1].id if live else None
        why = ""  # predicted again: the entry's weights differ, or were never recorded
        if live:
            what = "other weights" if live[-1].weights else "no weights recorded"
            why = f" (entry #{replaces} has {what})"
        if name == "oracle_nn" and predict is _predict:
            try:
                _ensure_reference_shapes(Path(benchmark_dir), say, display)
            except (OSError, ValueError) as exc:
                logger.warning("seeding %s skipped: %s", name, exc)
                results.append(SeedResult(name, "failed", message=str(exc)))
                say(f"{display}: failed: {exc}")
                continue
        with tempfile.TemporaryDirectory(dir=service.settings.scratch_dir) as tmp:
            archive = Path(tmp) / f"{name}.zip"
            try:
                say(f"{display}: predicting the test split{why}")
                predict(name, weights, Path(benchmark_dir), archive)
                sid = service.submit(archive, {"method": display}, SEED_SUBMITTER, baseline=True,
                                     weights_sha256=digest, replaces=replaces)  # fmt: skip
            except ServiceError as exc:
                # a duplicate of an entry (or the same predictions as the one it replaces)
                outcome = "skipped" if exc.duplicate_of is not None else "failed"
                results.append(SeedResult(name, outcome, message=exc.reason))
                say(f"{display}: {outcome}: {exc.reason}")
                continue
            except FileNotFoundError as exc:
                logger.warning("seeding %s skipped: %s", name, exc)
                results.append(SeedResult(name, "failed", message=str(exc)))
                say(f"{display}: failed: {exc}")
                continue
            except Exception as exc:
                logger.exception("seeding %s failed", name)
                results.append(SeedResult(name, "failed", message=str(exc)))
                say(f"{display}: failed: {exc}")
                continue
        results.append(SeedResult(name, "submitted", sid,
                                  f"replaces entry #{replaces}" if replaces else ""))  # fmt: skip
        say(f"{display}: submitted as {sid}" + (f", replacing #{replaces}" if replaces else ""))
    return results
