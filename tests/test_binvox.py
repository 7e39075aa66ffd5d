"""svr.io binvox reading and writing, on the paper's 500 real 128^3 cluster mean shapes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from svr.io import (
    binvox_bytes,
    read_binvox,
    read_binvox_bytes,
    read_binvox_with_header,
    write_binvox,
)

CLUSTER_ZIP = Path("/work/shared/data/what3d-cluster-means/cluster_mean_shapes.zip")
if not CLUSTER_ZIP.is_file():  # the shared folder sits beside the repository in CI
    CLUSTER_ZIP = (
        Path(__file__).resolve().parents[2]
        / "shared/data/what3d-cluster-means/cluster_mean_shapes.zip"
    )


def _naive_decode(data: bytes) -> tuple[tuple[int, int, int], np.ndarray]:
    """Obviously-correct reference: parse the header, expand runs one voxel at a time,
    place voxel number n at binvox index n = x*W*H + z*W + y (dims D W H = x z y)."""
    header, _, body = data.partition(b"data\n")
    dims = next(
        tuple(int(v) for v in line.split()[1:])
        for line in header.splitlines()
        if line.startswith(b"dim")
    )
    d, w, h = dims  # binvox "dim" line: x, z, y extents
    out = np.zeros((d, h, w), dtype=bool)  # (x, y, z)
    n = 0
    for value, count in zip(body[0::2], body[1::2], strict=True):
        for _ in range(count):
            x, rest = divmod(n, w * h)
            z, y = divmod(rest, h)
            out[x, y, z] = bool(value)
            n += 1
    return dims, out


@pytest.fixture(scope="module")
def cluster_files() -> dict[str, bytes]:
    if not CLUSTER_ZIP.is_file():
        pytest.skip(f"real data {CLUSTER_ZIP} not available")
    with zipfile.ZipFile(CLUSTER_ZIP) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n.endswith(".binvox")}


def test_reads_all_500_real_cluster_shapes(cluster_files: dict[str, bytes]) -> None:
    assert len(cluster_files) == 500
    assert {Path(n).stem for n in cluster_files} == {str(k) for k in range(500)}
    fractions = []
    for name, data in cluster_files.items():
        grid = read_binvox_bytes(data, name)
        assert grid.shape == (128, 128, 128), name
        assert grid.dtype == np.bool_, name
        fractions.append(grid.mean())
        # Round trip: the grid survives encode -> decode exactly.
        again = read_binvox_bytes(binvox_bytes(grid), name)
        assert np.array_equal(again, grid), name
    fractions = np.asarray(fractions)
    # Measured on this data: 0.30% (a thin shape) to 95% (a box filling the view), median 12%.
    assert fractions.min() > 0.001 and fractions.max() < 0.99
    assert 0.05 < np.median(fractions) < 0.25


def test_real_shape_file_round_trip_and_header(
    cluster_files: dict[str, bytes], tmp_path: Path
) -> None:
    name = "binvox_mean/0.binvox"
    src = tmp_path / "0.binvox"
    src.write_bytes(cluster_files[name])
    grid, header = read_binvox_with_header(src)
    assert header.dims == (128, 128, 128)
    assert header.translate == (0.0, 0.0, 0.0) and header.scale == 1.0
    write_binvox(tmp_path / "copy.binvox", grid)
    assert np.array_equal(read_binvox(tmp_path / "copy.binvox"), grid)


def test_real_shapes_match_naive_decoder(cluster_files: dict[str, bytes]) -> None:
    """Compare the vectorised reader with the voxel-by-voxel reference on a few real shapes."""
    data = cluster_files["binvox_mean/7.binvox"]
    dims, reference = _naive_decode(data)
    assert dims == (128, 128, 128)
    assert np.array_equal(read_binvox_bytes(data), reference)


def _handmade(dims: tuple[int, int, int], on: list[int]) -> bytes:
    """A binvox file written by hand: header + RLE with the given flat binvox indices set."""
    d, w, h = dims
    flat = np.zeros(d * w * h, dtype=np.uint8)
    flat[on] = 1
    body = bytearray()
    start = 0
    while start < flat.size:  # run-length encode one run at a time, runs of at most 255
        end = start
        while end < flat.size and flat[end] == flat[start] and end - start < 255:
            end += 1
        body += bytes([flat[start], end - start])
        start = end
    header = f"#binvox 1\ndim {d} {w} {h}\ntranslate 0 0 0\nscale 1\ndata\n".encode()
    return header + bytes(body)


def test_axis_convention_of_handwritten_file() -> None:
    # The "dim" line lists the x, z and y extents (D, W, H); voxel (x, y, z) is stored at
    # flat index x*W*H + z*H + y (y fastest), which for a cube is the spec's x*W*W + z*W + y.
    # Voxels set at (x, y, z) = (1, 0, 2) and (3, 1, 0) in a 4 (x) by 2 (y) by 3 (z) grid:
    d, w, h = 4, 3, 2
    idx_a = 1 * w * h + 2 * h + 0
    idx_b = 3 * w * h + 0 * h + 1
    grid = read_binvox_bytes(_handmade((d, w, h), [idx_a, idx_b]))
    assert grid.shape == (4, 2, 3)  # (x, y, z)
    assert {tuple(int(v) for v in p) for p in np.argwhere(grid)} == {(1, 0, 2), (3, 1, 0)}


def test_axis_convention_cube_matches_spec_formula() -> None:
    # For a cube of side W the binvox spec's index is x*W*W + z*W + y.
    w = 5
    x, y, z = 3, 1, 4
    grid = read_binvox_bytes(_handmade((w, w, w), [x * w * w + z * w + y]))
    assert grid.shape == (5, 5, 5)
    assert [tuple(int(v) for v in p) for p in np.argwhere(grid)] == [(x, y, z)]
    # and the writer puts it back at the same byte position
    assert binvox_bytes(grid, translate=(0, 0, 0)) == _handmade((w, w, w), [x * w * w + z * w + y])


def test_truncated_file_is_a_clear_value_error(cluster_files: dict[str, bytes]) -> None:
    data = cluster_files["binvox_mean/0.binvox"]
    with pytest.raises(ValueError, match="truncated"):
        read_binvox_bytes(data[:-2], "cut.binvox")
    with pytest.raises(ValueError, match="odd number of bytes"):
        read_binvox_bytes(data[:-1], "cut.binvox")
    with pytest.raises(ValueError, match="header ends"):
        read_binvox_bytes(b"#binvox 1\ndim 2 2 2\n", "short.binvox")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"P6\n2 2\n255\n", "not a binvox file"),
        (b"#binvox 1\ntranslate 0 0 0\ndata\n\x00\x08", "no valid 'dim"),
        (b"#binvox 1\ndim 2 2\ndata\n\x00\x08", "no valid 'dim"),
        (b"#binvox 1\ndim 2 0 2\ndata\n", "no valid 'dim"),
        (b"#binvox 1\ndim 2 2 2\ndata\n\x00\x09", "covers 9 voxels"),
    ],
)
def test_bad_header_is_a_clear_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_binvox_bytes(data, "bad.binvox")


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (7, 1, 4), (300, 2, 1)])
def test_round_trip_small_and_non_cubic(shape: tuple[int, int, int], tmp_path: Path) -> None:
    rng = np.random.default_rng(sum(shape))
    for grid in (rng.random(shape) < 0.4, np.ones(shape, dtype=bool), np.zeros(shape, dtype=bool)):
        path = tmp_path / "g.binvox"
        write_binvox(path, grid)
        back, header = read_binvox_with_header(path)
        assert back.shape == shape and back.dtype == np.bool_
        assert np.array_equal(back, grid)
        assert header.dims == shape
        assert np.array_equal(_naive_decode(path.read_bytes())[1], grid)
