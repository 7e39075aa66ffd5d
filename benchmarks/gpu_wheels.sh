#!/usr/bin/env bash
# Wheels that the GPU machine lacks for benchmarks/gpu_scoring.sh (its image holds torch, numpy
# and scipy, but not trimesh, embreex or pykdtree, and reaches no registry): downloads them, at
# the versions requirements.txt pins, for its Python (3.12, x86-64 Linux) into
# artifacts/gpu-wheels/ (git-ignored), about 16 MB. Run it here, then carry that folder:
#   benchmarks/gpu_wheels.sh && (device run, carry artifacts/gpu-wheels) benchmarks/gpu_scoring.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=artifacts/gpu-wheels
python_version="${GPU_PYTHON_VERSION:-3.12}"
mkdir -p "$dest"
pins=()
for name in trimesh embreex pykdtree; do
    pin=$(grep -E "^${name}==" requirements.txt | sed 's/[[:space:]]*#.*//')
    [ -n "$pin" ] || { echo "requirements.txt pins no version of $name" >&2; exit 2; }
    pins+=("$pin")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dest" "${pins[@]}"
ls -l "$dest"
