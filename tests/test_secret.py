"""The secret test split: keyed derivation, public splits unchanged, no public rebuild."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from svr.data.__main__ import main
from svr.data.build import PRESETS, Preset, build_benchmark, plan_shapes
from svr.data.layout import Benchmark, shape_seed
from svr.data.secret import TestSecret, write_secret_file
from svr.prepare import benchmark_ready, benchmark_step
from svr.settings import Settings

# Three classes whose families differ a lot, two test shapes each: builds of a few seconds.
MICRO = Preset(
    "micro", train=1, val=1, test=2, views=1, image_size=16,
    classes=("chair", "table", "telephone"),
)  # fmt: skip
QUIET = {"progress": lambda done, total: None, "workers": 1}
SECRET = TestSecret.from_text("correct horse battery staple 0123456789")


def test_secret_is_never_shown_and_must_be_long_enough() -> None:
    text = "a-very-private-secret-value"
    secret = TestSecret.from_text(text)
    assert text not in repr(secret) and text not in str(secret)
    assert secret.fingerprint in repr(secret)
    settings = Settings.from_env({"SVR_HOME": "/tmp/x", "SVR_TEST_SECRET": text})
    assert settings.test_secret == secret and text not in repr(settings)
    with pytest.raises(ValueError, match="at least 16 characters"):
        TestSecret.from_text("short")
    with pytest.raises(ValueError, match="SVR_TEST_SECRET"):
        Settings.from_env({"SVR_HOME": "/tmp/x", "SVR_TEST_SECRET": "short"})
    assert Settings.from_env({"SVR_HOME": "/tmp/x", "SVR_TEST_SECRET": "  "}).test_secret is None


def test_derivations_are_keyed_stable_and_disjoint_from_public_seeds() -> None:
    other = TestSecret.from_text("another secret of enough length")
    assert (
        SECRET.fingerprint == TestSecret.from_text(" " + SECRET.value.decode() + "\n").fingerprint
    )
    assert len(SECRET.fingerprint) == 12 and SECRET.fingerprint != other.fingerprint
    seeds = {SECRET.shape_seed("chair", i) for i in range(200)}
    assert len(seeds) == 200 and min(seeds) >= 2**127 and max(seeds) < 2**128
    assert SECRET.shape_seed("chair", 0) != SECRET.shape_seed("table", 0)
    assert SECRET.shape_seed("chair", 0) != other.shape_seed("chair", 0)
    ids = [SECRET.shape_id("chair", i) for i in range(200)]
    assert len(set(ids)) == 200 and all(len(i) == 16 for i in ids)
    assert all(
        int(i, 16) != s and i not in f"{s:x}" for i, s in zip(ids, sorted(seeds), strict=True)
    )
    # every public seed, whatever the benchmark seed and key, is below 2^32
    rng = np.random.default_rng(0)
    for base in [0, 1, 2**31, 2**63, *rng.integers(0, 2**62, 50).tolist()]:
        assert 0 <= shape_seed(int(base), f"test/chair/{base % 97}") < 2**32


def test_plan_with_a_secret_keeps_train_and_val_and_hides_test() -> None:
    public = plan_shapes(MICRO, seed=0)
    secret = plan_shapes(MICRO, seed=0, test_secret=SECRET)
    for split in ("train", "val"):
        assert [t for t in public if t.split == split] == [t for t in secret if t.split == split]
    tests = [t for t in secret if t.split == "test"]
    assert len(tests) == 6 and all(t.seed >= 2**127 and len(t.shape_id) == 16 for t in tests)
    public_ids = {t.shape_id for t in public}
    assert not public_ids & {t.shape_id for t in tests}
    assert plan_shapes(MICRO, seed=5, test_secret=SECRET)[-6:] == secret[-6:]  # seed-free


@pytest.mark.slow
def test_no_public_build_reproduces_a_secret_test_shape(tmp_path: Path) -> None:
    meta = build_benchmark(tmp_path / "secret", MICRO, seed=0, test_secret=SECRET, **QUIET)
    assert (meta.test_split, meta.test_fingerprint) == ("secret", SECRET.fingerprint)
    public_meta = build_benchmark(tmp_path / "public0", MICRO, seed=0, **QUIET)
    assert public_meta.test_split == "public" and public_meta.test_fingerprint == ""
    assert meta.identifier != public_meta.identifier
    secret_bench = Benchmark(tmp_path / "secret")
    public_bench = Benchmark(tmp_path / "public0")
    for split in ("train", "val"):  # public splits are byte-identical
        for ref in secret_bench.shapes(split):
            a = (ref.path(secret_bench.root) / "voxels_128.npy").read_bytes()
            b = (ref.path(public_bench.root) / "voxels_128.npy").read_bytes()
            assert a == b
    secret_grids = {
        ref.key: np.load(ref.path(secret_bench.root) / "voxels_128.npy")
        for ref in secret_bench.shapes("test")
    }
    assert len(secret_grids) == 6
    for seed in (0, 1):  # public builds under several seeds: every split, every shape
        root = tmp_path / f"public{seed}"
        if not root.exists():
            build_benchmark(root, MICRO, seed=seed, **QUIET)
        bench = Benchmark(root)
        for split in ("train", "val", "test"):
            for ref in bench.shapes(split):
                grid = np.load(ref.path(root) / "voxels_128.npy")
                for key, secret_grid in secret_grids.items():
                    assert not np.array_equal(grid, secret_grid), (key, seed, split, ref.key)
    # another secret gives another test split and identifier
    other = build_benchmark(
        tmp_path / "other", MICRO, seed=0, test_secret=TestSecret.from_text("x" * 40), **QUIET
    )
    assert other.identifier != meta.identifier


def test_secret_file_command_writes_a_private_file_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys" / "test-secret"
    assert main(["secret", "--out", str(path)]) == 0
    text = path.read_text().strip()
    assert len(text) == 64 and int(text, 16) >= 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    out = capsys.readouterr().out
    assert TestSecret.from_text(text).fingerprint in out and text not in out
    assert main(["secret", "--out", str(path)]) == 1  # never overwritten
    assert "exists" in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        write_secret_file(path)
    assert path.read_text().strip() == text


def _settings(home: Path, secret: str | None) -> Settings:
    env = {"SVR_HOME": str(home), "SVR_PRESET": "micro", "SVR_BUILD_WORKERS": "1"}
    if secret:
        env["SVR_TEST_SECRET"] = secret
    return Settings.from_env(env)


@pytest.mark.slow
def test_first_start_builds_from_the_secret_and_rebuilds_after_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PRESETS, "micro", MICRO)
    first = _settings(tmp_path, "first secret, long enough")
    assert not benchmark_ready(first.benchmark_dir, first)
    step = benchmark_step(first)
    assert str(tmp_path) not in step.name  # no server path in what users see
    step.run(lambda *a: None)
    meta = Benchmark(first.benchmark_dir).meta
    assert meta.test_fingerprint == first.test_secret.fingerprint
    assert benchmark_ready(first.benchmark_dir, first) and step.skip_if()
    # without a secret the existing build is kept as it is
    assert benchmark_ready(first.benchmark_dir, _settings(tmp_path, None))
    rotated = _settings(tmp_path, "second secret after a leak")
    assert not benchmark_ready(rotated.benchmark_dir, rotated)
    benchmark_step(rotated).run(lambda *a: None)
    new = Benchmark(rotated.benchmark_dir).meta
    assert new.test_fingerprint == rotated.test_secret.fingerprint
    assert new.identifier != meta.identifier
    assert benchmark_ready(rotated.benchmark_dir, rotated)


def test_the_leaderboard_rereads_a_rebuilt_benchmark(tmp_path: Path) -> None:
    import time

    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from leaderboard.worker import Worker
    from svr.data.layout import BenchmarkMeta, write_meta

    bench = tmp_path / "bench"
    bench.mkdir()
    write_meta(bench, BenchmarkMeta("b", "1", 0, "object", "procedural", test_checksum="a" * 64))
    service = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), bench)
    worker = service.make_worker()
    try:
        assert service.benchmark.meta.identifier == "b-1-" + "a" * 12
        assert isinstance(worker, Worker) and worker.benchmark.meta.test_checksum[:1] == "a"
        time.sleep(0.01)
        rotated = BenchmarkMeta(
            "b", "1", 0, "object", "procedural", test_checksum="c" * 64, test_split="secret"
        )
        write_meta(bench, rotated)
        assert service.benchmark.meta.identifier == "b-1-" + "c" * 12
        assert worker.benchmark.meta.test_split == "secret"
    finally:
        service.close()


def test_the_tabs_say_whether_the_test_split_is_practice(tmp_path: Path) -> None:
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from leaderboard.ui import split_note
    from svr.data.layout import BenchmarkMeta, write_meta

    bench = tmp_path / "bench"
    service = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), bench)
    try:
        assert "being prepared" in split_note(service)
        bench.mkdir()
        write_meta(
            bench, BenchmarkMeta("b", "1", 0, "object", "procedural", test_checksum="a" * 64)
        )
        note = split_note(service)
        assert "Practice mode" in note and "(api/test-inputs.zip)" in note
        write_meta(bench, BenchmarkMeta(
            "b", "1", 0, "object", "procedural", test_checksum="b" * 64, test_split="secret",
            test_fingerprint="0123456789ab",
        ))  # fmt: skip
        note = split_note(service)
        assert "Secret test split" in note and "0123456789ab" in note and "Practice" not in note
    finally:
        service.close()
