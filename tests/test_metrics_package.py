"""svr.metrics as a package: public names, and internals forwarded to the modules that own them."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

import svr.metrics as metrics
from svr.metrics import definitions, index, nn_cpu, nn_torch, validation

PUBLIC = {
    "DEFAULT_THRESHOLDS": definitions,
    "PointIndex": index,
    "GroundTruthIndex": index,
    "PointMetrics": definitions,
    "voxel_iou": definitions,
    "nearest_distances": definitions,
    "fscore": definitions,
    "chamfer_l1": definitions,
    "chamfer_l2": definitions,
    "normal_consistency": definitions,
    "point_metrics": definitions,
    "point_metrics_batch": definitions,
    "fscore_batch": definitions,
}


def test_public_names_are_those_of_the_owning_modules():
    assert sorted(metrics.__all__) == sorted(PUBLIC)
    for name, owner in PUBLIC.items():
        assert getattr(metrics, name) is getattr(owner, name), name
    # The names the rest of the repository imports, spelled as it imports them.
    from svr.metrics import (  # noqa: F401
        DEFAULT_THRESHOLDS,
        GroundTruthIndex,
        PointIndex,
        fscore,
        nearest_distances,
        point_metrics,
        voxel_iou,
    )

    assert DEFAULT_THRESHOLDS == (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def test_every_private_function_of_the_backends_is_forwarded():
    table = metrics._INTERNALS
    for module in (nn_cpu, nn_torch, validation):
        own = [
            name
            for name, obj in vars(module).items()
            if name.startswith("_")
            and not name.startswith("__")
            and inspect.isfunction(obj)
            and obj.__module__ == module.__name__
        ]
        assert own, module.__name__
        for name in own:
            assert module in table.get(name, ()), f"{module.__name__}.{name} is not forwarded"
    for name, owners in table.items():
        for module in owners:
            assert hasattr(module, name), f"{module.__name__} has no {name}"


def test_reads_follow_the_owner_and_writes_reach_it(monkeypatch):
    metrics._backend()  # binds nn_cpu._openmp to the runtimes found (rebinding a global)
    assert metrics._openmp is nn_cpu._openmp
    monkeypatch.setattr(metrics, "_backend_name", "scipy")
    assert nn_cpu._backend() == "scipy"
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 997)
    assert nn_cpu._CHUNK_ELEMENTS == nn_torch._CHUNK_ELEMENTS == 997
    monkeypatch.setattr(metrics, "_TORCH_METHOD", "exact64")
    assert nn_torch._TORCH_METHOD == "exact64"
    monkeypatch.undo()
    assert nn_cpu._CHUNK_ELEMENTS == nn_torch._CHUNK_ELEMENTS == 1 << 23
    assert nn_torch._TORCH_METHOD == "gemm"
    assert nn_cpu._backend_name in ("pykdtree", "scipy")
    with pytest.raises(AttributeError, match="no attribute"):
        metrics._no_such_internal  # noqa: B018


def test_a_spy_set_on_the_package_sees_the_backend_calls(monkeypatch):
    calls = []
    original = nn_torch._gemm_nearest

    def spy(*args, **kwargs):
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics, "_gemm_nearest", spy)
    rng = np.random.default_rng(5)
    pred, gt = rng.random((50, 3)), rng.random((60, 3))
    on_device = metrics.point_metrics(pred, gt, device="cpu")
    assert calls == [50]
    on_cpu = metrics.point_metrics(pred, gt)
    np.testing.assert_array_equal(on_device.fscore, on_cpu.fscore)
    assert on_device.chamfer_l1 == on_cpu.chamfer_l1


def test_importing_the_package_does_not_import_torch_or_scipy():
    code = "import sys, svr.metrics; print('torch' in sys.modules, 'scipy.spatial' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["False", "False"]
