#!/usr/bin/env bash
# GPU scoring measured, in one command that fits 10 minutes on one GPU (see
# benchmarks/scoring_device.py): exactness of the device path against the CPU path on 200 mesh
# items, then the metric stage on 52,160 mesh items (what3d's test set size) with its projected
# time against the 60 s goal. Figures go to stdout and to $OUT/gpu.json (else ./gpu.json); exit
# status 1 when the device path differs from the CPU path. Extra arguments are passed on.
# On a machine without trimesh / embreex / pykdtree, carry the wheels of benchmarks/gpu_wheels.sh
# (artifacts/gpu-wheels): they are installed into /tmp/svr-site first.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G "artifacts/gpu-wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/svr-site artifacts/gpu-wheels/*.whl
    export PYTHONPATH="/tmp/svr-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec python3 benchmarks/bench_scoring.py --device cuda --items 52160 --json "${OUT:-.}/gpu.json" "$@"
