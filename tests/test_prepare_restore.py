"""First start, restart and restore with real components: a serving build of `tiny`, a real
leaderboard service (SQLite file, archive store, in-process scoring worker), the real seeding
with the shipped weights, and a local folder standing in for the Hub dataset backup.

- First start: the serving build, then seeding (Atlas first; Oracle NN adds the training
  shapes it searches), scored by the worker.
- Restart with the same SVR_HOME: the preparation builds and seeds nothing.
- A Space without persistent storage: a new, empty SVR_HOME gets the database, the archives
  and the built test split back from the backup, and serves the same leaderboard.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select

from leaderboard import backup as backup_module
from leaderboard.backup import (
    BENCHMARK_POINTER,
    LocalFolderTarget,
    backup,
    restore_benchmark,
    restore_state,
)
from leaderboard.seed import seed_baselines
from leaderboard.service import LeaderboardService
from leaderboard.settings import LeaderboardSettings
from svr.data.build import training_split_ready
from svr.data.layout import Benchmark
from svr.prepare import Preparation, Step, benchmark_ready, benchmark_step
from svr.settings import REPO_ROOT, Settings

METHODS = ["atlas", "oracle_nn"]
MODELS = REPO_ROOT / "assets" / "models"


def _settings(home: Path) -> Settings:
    return Settings.from_env(
        {"SVR_HOME": str(home), "SVR_PRESET": "tiny", "SVR_BUILD_WORKERS": "1"}
    )


def _steps(settings: Settings, service: LeaderboardService, results: list) -> list[Step]:
    """The app's preparation (app.py): build what serving needs, then seed the baselines."""

    def seed(progress) -> None:
        results.extend(
            seed_baselines(service, settings.benchmark_dir, settings.models_dir, methods=METHODS)
        )

    return [benchmark_step(settings), Step("submit the baselines", seed)]


def _score_all(service: LeaderboardService) -> None:
    worker = service.make_worker()
    while worker.run_once() is not None:
        pass


def _tree_digest(root: Path, parts: tuple[str, ...] = ("benchmark.json", "test", "val")) -> str:
    digest = hashlib.sha256()
    for part in parts:
        base = root / part
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def first_start(tmp_path_factory: pytest.TempPathFactory):
    """A first start on an empty SVR_HOME, prepared and scored: (settings, status, results)."""
    home = tmp_path_factory.mktemp("first") / "home"
    settings = _settings(home)
    service = LeaderboardService(LeaderboardSettings(home=home), settings.benchmark_dir)
    results: list = []
    try:
        prep = Preparation(_steps(settings, service, results))
        prep.start()
        assert prep.join(timeout=600)
        _score_all(service)
        yield settings, prep.status(), results
    finally:
        service.close()


def test_a_first_start_builds_the_serving_split_and_seeds(first_start) -> None:
    settings, status, results = first_start
    assert status.state == "done", status.error
    assert [s.state for s in status.steps] == ["done", "done"]
    assert all(s.seconds is not None and s.seconds >= 0 for s in status.steps)
    meta = Benchmark(settings.benchmark_dir).meta
    assert meta.contents["test"] == "serving" and meta.contents["val"] == "serving"
    # Oracle NN asked for its training shapes: added as references, nothing more
    assert meta.contents["train"] == "reference" and training_split_ready(
        settings.benchmark_dir, "reference"
    )
    assert [(r.method, r.outcome) for r in results] == [(m, "submitted") for m in METHODS]
    service = LeaderboardService(LeaderboardSettings(home=settings.home), settings.benchmark_dir)
    try:
        table = service.table().set_index("Method")
        assert {"AtlasNet-style patches", "Oracle NN (uses ground truth)"} <= set(table.index)
        assert (table["Coverage ↑"] == 1.0).all()
    finally:
        service.close()


def test_a_restart_with_the_same_home_builds_and_seeds_nothing(first_start) -> None:
    settings, _, _ = first_start
    stamp = (settings.benchmark_dir / "benchmark.json").stat().st_mtime_ns
    service = LeaderboardService(LeaderboardSettings(home=settings.home), settings.benchmark_dir)
    archives = sorted(service.store.all())
    results: list = []
    try:
        assert benchmark_ready(settings.benchmark_dir, settings)
        prep = Preparation(_steps(settings, service, results))
        prep.start()
        assert prep.join(timeout=60)
        status = prep.status()
        assert status.state == "done", status.error
        assert [s.state for s in status.steps] == ["skipped", "done"]
        assert [r.outcome for r in results] == ["skipped", "skipped"]
        assert sorted(service.store.all()) == archives  # nothing predicted or stored
        assert service.make_worker().run_once() is None  # nothing queued
    finally:
        service.close()
    assert (settings.benchmark_dir / "benchmark.json").stat().st_mtime_ns == stamp


def test_a_restart_with_new_weights_replaces_that_baseline_only(
    first_start, tmp_path: Path
) -> None:
    import shutil

    import torch
    from sqlalchemy import update

    from leaderboard.db import Submission
    from leaderboard.seed import weights_digest

    settings, _, _ = first_start
    home = tmp_path / "home"  # a copy: the other tests keep the first start's home
    shutil.copytree(settings.home, home, symlinks=True)
    models = tmp_path / "models"
    shutil.copytree(MODELS / "atlas", models / "atlas")
    (models / "oracle_nn").symlink_to(MODELS / "oracle_nn")
    bench = home / "benchmark"
    service = LeaderboardService(LeaderboardSettings(home=home), bench)
    try:
        with service.factory() as session:  # a home seeded before weights were recorded
            session.execute(update(Submission).values(weights_sha256=None))
            session.commit()
        # Same weights, predicted again: the same predictions, so the entries are kept.
        again = seed_baselines(service, bench, models, methods=METHODS)
        assert [r.outcome for r in again] == ["skipped", "skipped"], again
        assert service.make_worker().run_once() is None
        with service.factory() as session:
            digests = dict(session.execute(select(Submission.method, Submission.weights_sha256)
                                           .where(Submission.deleted.is_(False))).all())  # fmt: skip
        assert digests["AtlasNet-style patches"] == weights_digest(models / "atlas")
        assert seed_baselines(service, bench, models, methods=METHODS)[0].message == (
            "already a baseline"
        )
        before = service.table().set_index("Method")

        # New atlas weights: atlas alone is predicted again and replaces its entry.
        state = torch.load(models / "atlas" / "model.pt", weights_only=True)
        bias = next(k for k in state if k.endswith("b3"))
        state[bias] = state[bias] + 0.01  # every point moves by about 0.005
        torch.save(state, models / "atlas" / "model.pt")
        results = seed_baselines(service, bench, models, methods=METHODS)
        assert [r.outcome for r in results] == ["submitted", "skipped"], results
        _score_all(service)
        after = service.table().set_index("Method")
        assert sorted(after.index) == sorted(before.index)  # one entry per method, still
        atlas = "AtlasNet-style patches"
        assert after.loc[atlas, "ID"] != before.loc[atlas, "ID"]
        assert after.loc[atlas, "F@1% ↑"] != before.loc[atlas, "F@1% ↑"]
        oracle = "Oracle NN (uses ground truth)"
        assert after.loc[oracle, "ID"] == before.loc[oracle, "ID"]
        with service.factory() as session:
            old, new = session.scalars(
                select(Submission)
                .where(Submission.method == atlas, Submission.deleted.is_(False))
                .order_by(Submission.id)
            ).all()
            assert (old.status, old.hidden, new.status, new.hidden) == ("done", True, "done", False)
            assert new.supersedes == old.id and new.weights_sha256 == weights_digest(
                models / "atlas"
            )
    finally:
        service.close()


def test_a_fresh_home_is_restored_from_the_backup(
    first_start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _, _ = first_start
    repo = LocalFolderTarget(tmp_path / "hub")  # stands in for the private Hub dataset
    lb = LeaderboardSettings(home=settings.home)
    done = backup(lb, repo, settings.benchmark_dir)
    assert done == {"database": 1, "archives": len(METHODS), "benchmark": 1}
    assert backup(lb, repo, settings.benchmark_dir)["benchmark"] == 0  # once per identifier
    names = repo.list_files()
    ident = Benchmark(settings.benchmark_dir).meta.identifier
    assert f"benchmark/{ident}.tar" in names and BENCHMARK_POINTER in names

    # A Space restarted without persistent storage: an empty SVR_HOME, SVR_BACKUP_REPO set.
    fresh = _settings(tmp_path / "fresh-home")
    monkeypatch.setattr(backup_module, "target_from_settings", lambda s: repo)
    service = LeaderboardService(LeaderboardSettings(home=fresh.home), fresh.benchmark_dir)
    try:
        assert benchmark_ready(fresh.benchmark_dir, fresh)  # nothing to build
        assert _tree_digest(fresh.benchmark_dir) == _tree_digest(settings.benchmark_dir)
        assert not (fresh.benchmark_dir / "train").exists()  # left out of the backup
        assert not training_split_ready(fresh.benchmark_dir, "reference")
        table = service.table().set_index("Method")
        assert {"AtlasNet-style patches", "Oracle NN (uses ground truth)"} <= set(table.index)
        assert service.submissions_of("baselines")["Status"].tolist() == ["done"] * len(METHODS)
        again = seed_baselines(service, fresh.benchmark_dir, MODELS, methods=METHODS)
        assert [r.outcome for r in again] == ["skipped", "skipped"]
    finally:
        service.close()


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("benchmark.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "symlink", "absolute", "elsewhere", "garbage"])
def test_a_hostile_benchmark_backup_is_not_restored(tmp_path: Path, kind: str) -> None:
    repo = tmp_path / "hub"
    (repo / "benchmark").mkdir(parents=True)
    member = {
        "garbage": tarfile.TarInfo("test/x"),
        "dotdot": tarfile.TarInfo("test/../../evil.txt"),
        "symlink": tarfile.TarInfo("test/link"),
        "absolute": tarfile.TarInfo("/tmp/evil.txt"),
        "elsewhere": tarfile.TarInfo("train/x.npy"),
    }[kind]
    if kind == "symlink":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    data = _tar_with(member, b"evil")
    (repo / "benchmark" / "x.tar").write_bytes(data[:700] if kind == "garbage" else data)
    (repo / BENCHMARK_POINTER).write_text("benchmark/x.tar\n")
    bench = tmp_path / "home" / "benchmark"
    with pytest.raises(ValueError):
        restore_benchmark(LocalFolderTarget(repo), bench)
    assert not bench.exists() and not (tmp_path / "evil.txt").exists()
    assert not [p for p in (tmp_path / "home").iterdir()]  # no staging left
    # at start such a failure is logged and the app builds instead
    lb = LeaderboardSettings(home=tmp_path / "home")
    assert restore_state(lb, LocalFolderTarget(repo), bench) is False
    assert not bench.exists()


def test_a_pointer_naming_another_path_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "hub"
    (repo / "benchmark").mkdir(parents=True)
    (repo / BENCHMARK_POINTER).write_text("svr.db\n")
    with pytest.raises(ValueError, match="not a benchmark tar"):
        restore_benchmark(LocalFolderTarget(repo), tmp_path / "bench")
    assert restore_benchmark(LocalFolderTarget(tmp_path / "empty"), tmp_path / "b") is False
    (tmp_path / "mine").mkdir()  # a folder of someone's files (no benchmark.json) is kept
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert restore_benchmark(LocalFolderTarget(repo), tmp_path / "mine") is False
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
