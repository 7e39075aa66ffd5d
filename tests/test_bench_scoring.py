"""benchmarks/bench_scoring.py --device: the GPU scoring benchmark's code path, run small on a CPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_model import model_for
from benchmarks.scoring_device import differences, run

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--items", "12", "--check-items", "5", "--pool-shapes", "2", "--points", "300"]


def test_device_command_runs_small_on_cpu_and_reports_exactness(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, "benchmarks/bench_scoring.py", "--device", "cpu", *SMALL]
    proc = subprocess.run(
        [*cmd, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["n_samples"] == 300 and report["exact"] is True
    check = report["exactness_end_to_end"]
    assert check["items"] == 5 and check["items_beyond"] == 0
    assert set(check["max_abs_diff"]) >= {"fscore", "chamfer_l1", "chamfer_l2", "iou", "iou_128"}
    assert all(d == 0.0 for d in check["max_abs_diff"].values())
    assert len(check["per_item_max_abs_diff"]) == 5
    stage = report["metric_stage"]
    assert stage["items_done"] == 12 and not stage["stopped_by_budget"]
    assert stage["items_beyond"] == 0 and all(d == 0.0 for d in stage["max_abs_diff"].values())
    assert stage["projected_s"] == pytest.approx(52_160 / stage["items_per_s"], rel=1e-9)
    assert report["cpu_reference"]["items"] == 2 * 5
    assert 0.0 <= stage["unsure_share"] < 1.0
    assert "per item: F-score 5 of 5 items equal" in proc.stdout
    assert "goal 60 s" in proc.stdout and "exact: every compared metric" in proc.stdout


def test_a_device_path_that_differs_fails_the_check(monkeypatch, tmp_path, capsys):
    import svr.metrics.nn_torch as nn

    original = nn._gemm_nearest

    def off_by_a_bit(a, b, both):
        ab_sq, ab_idx, ba_sq, ba_idx = original(a, b, both)
        return ab_sq + 1e-6, ab_idx, ba_sq, ba_idx

    monkeypatch.setattr(nn, "_gemm_nearest", off_by_a_bit)
    kwargs = {"items": 6, "check_items": 5, "pool_shapes": 1, "points": 200}
    assert run("cpu", json_path=tmp_path / "r.json", **kwargs) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exact"] is False
    assert report["exactness_end_to_end"]["items_beyond"] == 5
    assert report["metric_stage"]["items_beyond"] == 6
    assert report["exactness_end_to_end"]["max_abs_diff"]["chamfer_l1"] > 0
    assert "FAILED" in capsys.readouterr().out
    # The same difference is accepted under a tolerance larger than it.
    assert run("cpu", tolerance=1.0, **kwargs) == 0


def test_differences_treat_missing_values_strictly():
    a = {"fscore@0.01": 0.5, "fscore@0.02": 0.75, "iou": None, "chamfer_l1": math.nan}
    assert differences(a, dict(a)) == {"fscore": 0.0, "iou": 0.0, "chamfer_l1": 0.0}
    b = {"fscore@0.01": 0.5, "fscore@0.02": 0.5, "iou": 0.0, "chamfer_l1": 0.1}
    d = differences(a, b)
    assert d["fscore"] == 0.25 and math.isinf(d["iou"]) and math.isinf(d["chamfer_l1"])
    assert math.isinf(differences({"iou": None}, {"iou": math.nan})["iou"])


def test_unusable_devices_are_refused_with_a_reason():
    with pytest.raises(SystemExit, match="not a torch device"):
        run("tpu-ish", items=1, check_items=1)
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            run("cuda", items=1, check_items=1)
    with pytest.raises(SystemExit, match="--items must be at least 1"):
        run("cpu", items=0)


def test_model_matches_gpu_names():
    assert model_for("NVIDIA H200", 10_000, 0.02)[0] == "H200"
    assert model_for("NVIDIA A100-SXM4-40GB", 10_000, 0.02)[0] == "A100-40GB"
    assert model_for("NVIDIA A100-SXM4-80GB", 10_000, 0.02)[0] == "A100-80GB"
    assert model_for("Tesla T4", 10_000, 0.02)[0] == "T4"
    assert model_for("NVIDIA GeForce RTX 4090", 10_000, 0.02) is None
    _, best, typical = model_for("NVIDIA H200", 10_000, 0.02)
    assert 0 < best < typical < 0.01  # seconds per item
