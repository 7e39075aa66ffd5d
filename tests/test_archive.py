"""Submission archives: every hostile case refused with its own error, every valid container
and item format parsed. Archives are real files written to tmp_path."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from leaderboard.archive import (
    ArchiveLimits,
    SubmissionError,
    decode_item,
    open_submission,
    sniff,
    write_submission_zip,
)
from leaderboard.validation import ItemError, ItemLimits, Manifest, parse_manifest
from svr.data.layout import Benchmark, BenchmarkMeta, write_meta
from svr.io import binvox_bytes

SHAPES = {"chair": ["c0", "c1"], "table": ["t0"]}
VIEWS = 2
IDS = [f"{c}/{s}/{v}" for c, ss in SHAPES.items() for s in ss for v in range(VIEWS)]


def make_layout(root: Path, frame: str = "object") -> Benchmark:
    """A benchmark folder with test items only (no ground truth): enough for parsing."""
    for cls, shapes in SHAPES.items():
        for shape in shapes:
            views = root / "test" / cls / shape / "views"
            views.mkdir(parents=True)
            for v in range(VIEWS):
                (views / f"{v}.png").write_bytes(b"")
    write_meta(root, BenchmarkMeta("tiny", "1", 0, frame, "procedural", test_checksum="0" * 64))
    return Benchmark(root)


@pytest.fixture
def bench(tmp_path: Path) -> Benchmark:
    return make_layout(tmp_path / "bench")


def manifest_bytes(**overrides: object) -> bytes:
    data = {"method": "test", "representation": "voxels", "frame": "object"}
    data.update(overrides)
    return json.dumps(data).encode()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def sphere_grid(r: int = 32, radius: float = 0.3) -> np.ndarray:
    c = -0.5 + (np.arange(r) + 0.5) / r
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return x**2 + y**2 + z**2 < radius**2


GRID = npy_bytes(sphere_grid())


def zip_with(path: Path, files: dict[str, bytes], manifest: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr("submission.json", manifest)
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def tar_with(path: Path, files: dict[str, bytes], manifest: bytes | None = None, mode: str = "w"):
    entries = dict(files)
    if manifest is not None:
        entries = {"submission.json": manifest, **entries}
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def all_grids() -> dict[str, bytes]:
    return {f"{i}.npy": GRID for i in IDS}


def rejected(path: Path, bench: Benchmark, **kwargs: object) -> SubmissionError:
    with pytest.raises(SubmissionError) as info:
        open_submission(path, bench, **kwargs)  # type: ignore[arg-type]
    return info.value


# ----------------------------------------------------------------------------- valid input


@pytest.mark.parametrize("container", ["zip", "tar", "tar.gz", "tgz"])
def test_valid_containers_parse(tmp_path: Path, bench: Benchmark, container: str) -> None:
    path = tmp_path / f"sub.{container}"
    if container == "zip":
        zip_with(path, all_grids(), manifest_bytes())
    else:
        tar_with(path, all_grids(), manifest_bytes(), "w" if container == "tar" else "w:gz")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with open_submission(path, bench, scratch=scratch) as parsed:
        assert parsed.manifest.method == "test"
        assert parsed.present == IDS and parsed.missing == [] and parsed.empty == []
        pred = parsed.load(IDS[0])
        assert pred.occupancy is not None and pred.occupancy.shape == (32, 32, 32)
        assert np.array_equal(pred.occupancy, sphere_grid())
        assert len(parsed.sha256) == 64
    # the .tar.gz scratch folder is gone once the submission is closed
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("fmt", ["zip", "tar", "gztar"])
def test_archives_made_by_standard_tools(tmp_path: Path, bench: Benchmark, fmt: str) -> None:
    """shutil.make_archive stores directory entries, './' prefixes (tar) and file modes."""
    folder = tmp_path / "mysubmission"
    for item_id in IDS:
        (folder / item_id).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{item_id}.npy").write_bytes(GRID)
    (folder / "submission.json").write_bytes(manifest_bytes())
    archive = Path(shutil.make_archive(str(tmp_path / "sub"), fmt, root_dir=folder))
    with open_submission(archive, bench) as parsed:
        assert parsed.present == IDS


def test_valid_npz_container_with_manifest_key(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.npz"
    arrays = {i: sphere_grid() for i in IDS[:3]}
    np.savez_compressed(path, **arrays, **{"submission.json": np.array(manifest_bytes().decode())})
    with open_submission(path, bench) as parsed:
        assert parsed.present == IDS[:3]
        assert parsed.missing == IDS[3:]
        assert np.array_equal(parsed.load(IDS[1]).occupancy, sphere_grid())


def test_npz_container_with_raw_manifest_member(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.npz"
    np.savez(path, **{IDS[0]: sphere_grid()})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("submission.json", manifest_bytes())
    with open_submission(path, bench) as parsed:
        assert parsed.present == [IDS[0]]


def _mesh() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(0.6, 0.4, 0.5))


def _points(n: int = 500) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.4, 0.4, size=(n, 3))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


ITEM_CASES = {
    "npy-grid": ("npy", lambda: GRID, "voxels"),
    "npy-float-grid": ("npy", lambda: npy_bytes(sphere_grid(64).astype(np.float32)), "voxels"),
    "npy-points": ("npy", lambda: npy_bytes(_points().astype(np.float32)), "points"),
    "npz-grid": ("npz", lambda: _npz_bytes(voxels=sphere_grid()), "voxels"),
    "npz-mesh": (
        "npz",
        lambda: _npz_bytes(vertices=_mesh().vertices, faces=_mesh().faces),
        "mesh",
    ),
    "binvox": ("binvox", lambda: binvox_bytes(sphere_grid()), "voxels"),
    "ply-points": ("ply", lambda: trimesh.PointCloud(_points()).export(file_type="ply"), "points"),
    "xyz": (
        "xyz",
        lambda: "\n".join(" ".join(f"{v:.6f}" for v in p) for p in _points()).encode(),
        "points",
    ),
    "obj": ("obj", lambda: _mesh().export(file_type="obj").encode(), "mesh"),
    "off": ("off", lambda: _mesh().export(file_type="off").encode(), "mesh"),
    "glb": ("glb", lambda: _mesh().export(file_type="glb"), "mesh"),
    "ply-mesh": ("ply", lambda: _mesh().export(file_type="ply"), "mesh"),
}


@pytest.mark.parametrize("case", list(ITEM_CASES))
def test_every_item_format_parses(tmp_path: Path, bench: Benchmark, case: str) -> None:
    ext, make, representation = ITEM_CASES[case]
    data = make()
    path = zip_with(
        tmp_path / "sub.zip",
        {f"{IDS[0]}.{ext}": data},
        manifest_bytes(representation=representation),
    )
    with open_submission(path, bench) as parsed:
        assert parsed.present == [IDS[0]] and parsed.empty == []
        pred = parsed.load(IDS[0])
    if representation == "voxels":
        assert pred.occupancy is not None and pred.occupancy.ndim == 3
        assert np.array_equal(
            pred.to_grid(pred.occupancy.shape[0]), sphere_grid(pred.occupancy.shape[0])
        )
    elif representation == "points":
        assert pred.points is not None
        np.testing.assert_allclose(pred.points, _points(), atol=1e-6)
    else:
        assert pred.mesh is not None and len(pred.mesh.faces) == 12
        np.testing.assert_allclose(pred.mesh.bounds, _mesh().bounds, atol=1e-6)


def test_macos_junk_ignored_and_single_top_folder_stripped(
    tmp_path: Path, bench: Benchmark
) -> None:
    files = {f"mysub/{i}.npy": GRID for i in IDS[:2]}
    files["mysub/submission.json"] = manifest_bytes()
    files["__MACOSX/mysub/._x.npy"] = b"junk"
    files["mysub/.DS_Store"] = b"junk"
    path = zip_with(tmp_path / "sub.zip", files)
    with open_submission(path, bench) as parsed:
        assert parsed.present == IDS[:2]


def test_missing_and_empty_items_are_coverage_not_errors(tmp_path: Path, bench: Benchmark) -> None:
    files = {f"{IDS[0]}.npy": GRID, f"{IDS[1]}.npy": npy_bytes(np.zeros((32, 32, 32), bool))}
    path = zip_with(tmp_path / "sub.zip", files, manifest_bytes())
    with open_submission(path, bench) as parsed:
        assert parsed.present == IDS[:2]
        assert parsed.empty == [IDS[1]]
        assert parsed.missing == IDS[2:]


def test_explicit_manifest_replaces_missing_one(tmp_path: Path, bench: Benchmark) -> None:
    path = zip_with(tmp_path / "sub.zip", {f"{IDS[0]}.npy": GRID})
    with open_submission(path, bench, manifest=Manifest("form", "voxels", "object")) as parsed:
        assert parsed.manifest.method == "form"


def test_write_submission_zip_roundtrip(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "out" / "sub.zip"
    write_submission_zip(path, Manifest("m", "voxels", "object"), [(i, "npy", GRID) for i in IDS])
    with open_submission(path, bench) as parsed:
        assert parsed.present == IDS


def test_sniff_magic_bytes() -> None:
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(b"\x1f\x8b\x08") == "gzip"
    assert sniff(GRID) == "npy"
    assert sniff(b"#binvox 1\n") == "binvox"
    assert sniff(b"ply\nformat ascii 1.0\n") == "ply"
    assert sniff(b"glTF\x02\x00") == "glb"
    assert sniff(b"OFF\n8 12 0\n") == "off"
    assert sniff(b"v 0 0 0\n") is None
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        info = tarfile.TarInfo("a")
        tf.addfile(info, io.BytesIO(b""))
    assert sniff(tar.getvalue()) == "tar"


# ----------------------------------------------------------------------------- archive-level attacks


def test_zip_bomb_refused_by_ratio(tmp_path: Path, bench: Benchmark) -> None:
    path = zip_with(tmp_path / "sub.zip", {f"{IDS[0]}.npy": b"\0" * (8 << 20)}, manifest_bytes())
    err = rejected(path, bench)
    assert "zip bomb" in err.reason
    assert "ratio above 1000:1" in err.details[0]


def test_bzip2_zip_bomb_refused(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("submission.json", manifest_bytes())
        zf.writestr(f"{IDS[0]}.npy", b"\0" * (4 << 20))
    assert "zip bomb" in rejected(path, bench).reason


def test_zip_bomb_ratio_checked_on_actual_bytes_not_headers(
    tmp_path: Path, bench: Benchmark
) -> None:
    # The central directory claims the entry is small (below the ratio threshold); the data
    # inflate to 4 MiB. zipfile stops at the declared size and the CRC check fails: the item
    # is refused, and no more than the declared bytes are ever produced.
    path = zip_with(tmp_path / "sub.zip", {f"{IDS[0]}.npy": b"\0" * (4 << 20)}, manifest_bytes())
    raw = bytearray(path.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")  # the last central directory record is our bomb
    raw[cd + 24 : cd + 28] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    err = rejected(path, bench)
    assert err.n_errors == 1 and "corrupt entry" in err.details[0]


def test_tar_gz_ratio_checked_while_streaming(tmp_path: Path, bench: Benchmark) -> None:
    path = tar_with(
        tmp_path / "sub.tar.gz", {f"{IDS[0]}.npy": b"\0" * (4 << 20)}, manifest_bytes(), "w:gz"
    )
    err = rejected(path, bench, limits=ArchiveLimits(max_ratio=50))
    assert "zip bomb" in err.reason


def test_npz_member_that_is_a_zip_bomb_is_refused(tmp_path: Path, bench: Benchmark) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("voxels.npy", npy_bytes(np.zeros((256, 256, 256), bool)))
    path = zip_with(tmp_path / "sub.zip", {f"{IDS[0]}.npz": inner.getvalue()}, manifest_bytes())
    err = rejected(path, bench)
    assert "zip bomb" in err.details[0] and IDS[0] in err.details[0]


@pytest.mark.parametrize("container", ["zip", "tar"])
def test_too_many_entries(tmp_path: Path, bench: Benchmark, container: str) -> None:
    files = {f"extra/{k}.npy": b"x" for k in range(11)}
    path = tmp_path / f"sub.{container}"
    (zip_with if container == "zip" else tar_with)(path, files, manifest_bytes())
    err = rejected(path, bench, limits=ArchiveLimits(max_entries=10))
    assert err.reason == "archive has too many entries"


def test_too_many_entries_when_the_end_record_lies(tmp_path: Path, bench: Benchmark) -> None:
    # The end-of-central-directory record claims 1 entry; the central directory holds 12.
    path = zip_with(
        tmp_path / "sub.zip", {f"extra/{k}.npy": b"x" for k in range(11)}, manifest_bytes()
    )
    raw = bytearray(path.read_bytes())
    eocd = raw.rfind(b"PK\x05\x06")
    raw[eocd + 8 : eocd + 12] = (1).to_bytes(2, "little") * 2
    path.write_bytes(bytes(raw))
    err = rejected(path, bench, limits=ArchiveLimits(max_entries=10))
    assert err.reason == "archive has too many entries"


def test_too_large_uncompressed_total_by_headers(tmp_path: Path, bench: Benchmark) -> None:
    path = zip_with(tmp_path / "sub.zip", all_grids(), manifest_bytes())
    err = rejected(path, bench, limits=ArchiveLimits(max_total_bytes=100_000))
    assert err.reason == "archive is too large when uncompressed"
    assert "declare" in err.details[0]


def test_too_large_uncompressed_total_by_bytes_read(tmp_path: Path, bench: Benchmark) -> None:
    path = tar_with(tmp_path / "sub.tgz", all_grids(), manifest_bytes(), "w:gz")
    err = rejected(path, bench, limits=ArchiveLimits(max_total_bytes=100_000, max_entries=10))
    assert err.reason == "archive is too large when uncompressed"
    assert "gzip stream" in err.details[0]


def test_entry_too_large(tmp_path: Path, bench: Benchmark) -> None:
    path = zip_with(tmp_path / "sub.zip", all_grids(), manifest_bytes())
    err = rejected(path, bench, limits=ArchiveLimits(max_entry_bytes=10_000))
    assert err.reason == "archive entry is too large"


@pytest.mark.parametrize("container", ["zip", "tar"])
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/chair/c0/0.npy", "unsafe path in archive: absolute path"),
        ("chair/../../../evil.npy", "unsafe path in archive: '..' component"),
        ("chair\\c0\\0.npy", "unsafe path in archive: backslash"),
    ],
)
def test_unsafe_paths(
    tmp_path: Path, bench: Benchmark, container: str, name: str, reason: str
) -> None:
    path = tmp_path / f"sub.{container}"
    (zip_with if container == "zip" else tar_with)(path, {name: GRID}, manifest_bytes())
    err = rejected(path, bench)
    assert err.reason == reason
    assert not (tmp_path / "evil.npy").exists()


def test_zip_symlink_refused(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("submission.json", manifest_bytes())
        info = zipfile.ZipInfo(f"{IDS[0]}.npy")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    assert rejected(path, bench).reason == "archive contains a symbolic link"


def _tar_special(path: Path, kind: bytes, linkname: str = "") -> Path:
    with tarfile.open(path, "w") as tf:
        data = manifest_bytes()
        info = tarfile.TarInfo("submission.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        special = tarfile.TarInfo(f"{IDS[0]}.npy")
        special.type = kind
        special.linkname = linkname
        tf.addfile(special)
    return path


def test_zip_fifo_refused(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("submission.json", manifest_bytes())
        info = zipfile.ZipInfo(f"{IDS[0]}.npy")
        info.create_system = 3
        info.external_attr = 0o010644 << 16
        zf.writestr(info, GRID)
    assert rejected(path, bench).reason == "archive contains a device file or FIFO"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (tarfile.SYMTYPE, "archive contains a symbolic link"),
        (tarfile.LNKTYPE, "archive contains a hard link"),
        (tarfile.CHRTYPE, "archive contains a device file or FIFO"),
        (tarfile.BLKTYPE, "archive contains a device file or FIFO"),
        (tarfile.FIFOTYPE, "archive contains a device file or FIFO"),
    ],
)
def test_tar_links_devices_fifos_refused(
    tmp_path: Path, bench: Benchmark, kind: bytes, reason: str
) -> None:
    path = _tar_special(
        tmp_path / "sub.tar",
        kind,
        "submission.json" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "",
    )
    assert rejected(path, bench).reason == reason


def test_nothing_written_outside_scratch(tmp_path: Path, bench: Benchmark) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = set(os.listdir(tmp_path))
    path = tar_with(tmp_path / "sub.tar.gz", {"../../escape.npy": GRID}, manifest_bytes(), "w:gz")
    rejected(path, bench, scratch=scratch)
    assert set(os.listdir(tmp_path)) == before | {"sub.tar.gz"}
    assert list(scratch.iterdir()) == []


def test_archive_name_content_mismatch(tmp_path: Path, bench: Benchmark) -> None:
    path = tar_with(tmp_path / "sub.zip", all_grids(), manifest_bytes())
    err = rejected(path, bench)
    assert err.reason == "archive name does not match its content"
    assert "tar archive" in err.details[0]


def test_unsupported_container(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.rar"
    path.write_bytes(b"Rar!\x1a\x07\x00" + b"\0" * 100)
    assert rejected(path, bench).reason == "unsupported archive format"


def test_corrupt_zip(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.zip"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 50)
    assert "not a readable zip archive" in rejected(path, bench).reason


# ----------------------------------------------------------------------------- manifest


def test_missing_manifest(tmp_path: Path, bench: Benchmark) -> None:
    err = rejected(zip_with(tmp_path / "sub.zip", all_grids()), bench)
    assert err.reason == "the submission has no submission.json manifest"
    assert any("example" in d for d in err.details)


def test_invalid_manifest_json(tmp_path: Path, bench: Benchmark) -> None:
    err = rejected(
        zip_with(tmp_path / "sub.zip", all_grids(), b'{"method": "x",\n "frame": }'), bench
    )
    assert err.reason == "submission.json is not valid JSON"
    assert err.details[0].startswith("line 2 column")


def test_invalid_manifest_fields_all_listed() -> None:
    with pytest.raises(SubmissionError) as info:
        parse_manifest(
            json.dumps({"method": "", "represention": "voxels", "frame": "world", "threshold": 2})
        )
    details = "\n".join(info.value.details)
    assert "unknown field 'represention' (did you mean 'representation'?)" in details
    assert "missing required field 'representation'" in details
    assert "'frame' must be one of object, viewer; got 'world'" in details
    assert "'threshold' must lie strictly between 0 and 1" in details
    assert "'method' must not be empty" in details


def test_manifest_authors_list_and_urls() -> None:
    m = parse_manifest(
        manifest_bytes(authors=["A", "B"], paper_url="https://x.org/p", threshold=0.3)
    )
    assert m.authors == "A, B" and m.threshold == 0.3
    with pytest.raises(SubmissionError, match="http"):
        parse_manifest(manifest_bytes(code_url="ftp://x"))


def test_frame_mismatch(tmp_path: Path, bench: Benchmark) -> None:
    err = rejected(
        zip_with(tmp_path / "sub.zip", all_grids(), manifest_bytes(frame="viewer")), bench
    )
    assert err.reason == "coordinate frame mismatch"
    assert "'object' frame" in err.details[0]


# ----------------------------------------------------------------------------- item errors


def item_error(tmp_path: Path, bench: Benchmark, name: str, data: bytes, **manifest: object) -> str:
    path = zip_with(tmp_path / "sub.zip", {name: data}, manifest_bytes(**manifest))
    err = rejected(path, bench)
    assert err.reason.startswith("submission rejected: 1 item error(s)")
    assert len(err.details) == 1 and err.details[0].startswith(name)
    return err.details[0]


def test_pickled_object_array_refused(tmp_path: Path, bench: Benchmark) -> None:
    data = npy_bytes(np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    assert "pickle" in item_error(tmp_path, bench, f"{IDS[0]}.npy", data)


def test_item_name_content_mismatch(tmp_path: Path, bench: Benchmark) -> None:
    msg = item_error(tmp_path, bench, f"{IDS[0]}.ply", GRID)
    assert "named .ply but the content is a NumPy .npy array" in msg
    msg = item_error(tmp_path, bench, f"{IDS[0]}.obj", GRID, representation="mesh")
    assert "named .obj but the content is a NumPy .npy array" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_points(tmp_path: Path, bench: Benchmark, bad: float) -> None:
    pts = _points()
    pts[3, 1] = bad
    msg = item_error(tmp_path, bench, f"{IDS[0]}.npy", npy_bytes(pts), representation="points")
    assert ("NaN" if np.isnan(bad) else "infinite") in msg


def test_nan_grid(tmp_path: Path, bench: Benchmark) -> None:
    grid = sphere_grid().astype(np.float32)
    grid[0, 0, 0] = np.nan
    assert "1 NaN value(s)" in item_error(tmp_path, bench, f"{IDS[0]}.npy", npy_bytes(grid))


def test_out_of_cube_coordinates_state_the_amount(tmp_path: Path, bench: Benchmark) -> None:
    pts = _points()
    pts[7] = (0.1, -3.2, 0.0)
    msg = item_error(tmp_path, bench, f"{IDS[0]}.npy", npy_bytes(pts), representation="points")
    assert "max |coord| 3.2 > 1 allowed" in msg
    mesh = _mesh()
    mesh.vertices *= 5
    msg = item_error(
        tmp_path,
        bench,
        f"{IDS[0]}.obj",
        mesh.export(file_type="obj").encode(),
        representation="mesh",
    )
    assert "max |coord| 1.5 > 1 allowed" in msg


def test_too_many_points(tmp_path: Path, bench: Benchmark) -> None:
    pts = np.zeros((100_001, 3), np.float32)
    msg = item_error(tmp_path, bench, f"{IDS[0]}.npy", npy_bytes(pts), representation="points")
    assert "100,001 points; at most 100,000" in msg


def test_too_many_points_xyz_checked_before_parsing(tmp_path: Path, bench: Benchmark) -> None:
    text = b"0 0 0\n" * 100_001
    msg = item_error(tmp_path, bench, f"{IDS[0]}.xyz", text, representation="points")
    assert "100,001 points" in msg


def test_too_many_faces_from_ply_header(tmp_path: Path, bench: Benchmark) -> None:
    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 600000\nproperty list uchar int vertex_indices\nend_header\n"
    msg = item_error(tmp_path, bench, f"{IDS[0]}.ply", header, representation="mesh")
    assert "600,000 faces; at most 500,000" in msg


def test_too_many_faces_after_loading() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.4)  # 320 faces
    limits = ArchiveLimits(items=ItemLimits(max_faces=100))
    with pytest.raises(ItemError, match="320 faces; at most 100"):
        decode_item(_npz_bytes(vertices=mesh.vertices, faces=mesh.faces), "npz", limits)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((32, 32, 16), bool), "not cubic: shape (32, 32, 16)"),
        (np.zeros((8, 8, 8), bool), "resolution 8 is outside the allowed range 16..256"),
        (np.zeros((100, 4), np.float32), "must have shape (N, 3), got (100, 4)"),
        (np.zeros((2, 2, 2, 2), bool), "neither a voxel grid"),
    ],
)
def test_wrong_dimensions(
    tmp_path: Path, bench: Benchmark, array: np.ndarray, expected: str
) -> None:
    assert expected in item_error(tmp_path, bench, f"{IDS[0]}.npy", npy_bytes(array))


def test_binvox_resolution_checked_before_decoding(tmp_path: Path, bench: Benchmark) -> None:
    # 1024^3 voxels from a 8 MiB body would be a 1 GiB array: refused from the header.
    data = b"#binvox 1\ndim 1024 1024 1024\ntranslate 0 0 0\nscale 1\ndata\n" + b"\x00\xff" * 16
    assert "resolution 1024 is outside" in item_error(tmp_path, bench, f"{IDS[0]}.binvox", data)


def test_truncated_npy_header_lies(tmp_path: Path, bench: Benchmark) -> None:
    data = npy_bytes(np.zeros((64, 64, 64), np.float64))[:2000]
    assert "truncated .npy file" in item_error(tmp_path, bench, f"{IDS[0]}.npy", data)


def test_unreadable_file(tmp_path: Path, bench: Benchmark) -> None:
    msg = item_error(
        tmp_path, bench, f"{IDS[0]}.glb", b"glTF" + b"\xff" * 40, representation="mesh"
    )
    assert "unreadable .glb file" in msg


def test_representation_mismatch(tmp_path: Path, bench: Benchmark) -> None:
    msg = item_error(
        tmp_path, bench, f"{IDS[0]}.npy", npy_bytes(_points()), representation="voxels"
    )
    assert "holds a point cloud, but submission.json declares representation 'voxels'" in msg


def test_unknown_id_suggests_the_format(tmp_path: Path, bench: Benchmark) -> None:
    msg = item_error(tmp_path, bench, "chair/zz9/0.npy", GRID)
    assert "unknown item id 'chair/zz9/0'" in msg
    assert "no test shape 'zz9' in class 'chair'" in msg and "'<class>/<shape id>/<view>'" in msg
    msg = item_error(tmp_path, bench, "chair/c00/0.npy", GRID)
    assert "did you mean 'c0'?" in msg
    msg = item_error(tmp_path, bench, "03001627/c0/1.npy", GRID)
    assert "use class names, not synset ids: 'chair/c0/1'" in msg
    msg = item_error(tmp_path, bench, "chair/c0/7.npy", GRID)
    assert "shape chair/c0 has test views 0, 1, not '7'" in msg
    msg = item_error(tmp_path, bench, "sofa/c0/0.npy", GRID)
    assert "unknown class 'sofa' (test classes: chair, table)" in msg
    msg = item_error(tmp_path, bench, "c0/0.npy", GRID)
    assert "an id has three parts" in msg


def test_duplicate_id(tmp_path: Path, bench: Benchmark) -> None:
    ply = trimesh.PointCloud(_points()).export(file_type="ply")
    path = zip_with(
        tmp_path / "sub.zip",
        {f"{IDS[0]}.npy": npy_bytes(_points()), f"{IDS[0]}.ply": ply},
        manifest_bytes(representation="points"),
    )
    err = rejected(path, bench)
    assert err.n_errors == 1
    assert (
        "duplicate item" in err.details[0] and ".npy" in err.details[0] and ".ply" in err.details[0]
    )


def test_unsupported_item_extension(tmp_path: Path, bench: Benchmark) -> None:
    assert "unsupported file type '.png'" in item_error(
        tmp_path, bench, f"{IDS[0]}.png", b"\x89PNG"
    )


def test_all_item_errors_collected_and_capped(tmp_path: Path, bench: Benchmark) -> None:
    files = {f"chair/x{k}/0.npy": GRID for k in range(60)}
    files[f"{IDS[0]}.npy"] = npy_bytes(np.zeros((8, 8, 8), bool))
    path = zip_with(tmp_path / "sub.zip", files, manifest_bytes())
    err = rejected(path, bench)
    assert err.n_errors == 61
    assert len(err.details) == 51 and err.details[-1] == "... and 11 more error(s)"
    assert "61 item error(s)" in err.reason
    assert "unknown item id" in str(err)


def test_gzip_payload_must_be_a_tar(tmp_path: Path, bench: Benchmark) -> None:
    path = tmp_path / "sub.tar.gz"
    path.write_bytes(gzip.compress(b"just text" * 100))
    err = rejected(path, bench)
    assert "not a tar archive" in err.details[0]


def test_corrupt_binvox_header_is_an_item_error_not_a_crash(
    tmp_path: Path, bench: Benchmark
) -> None:
    data = b"#binvox 1\ndim 32 32 32\nscale\ndata\n\x00\x10"
    assert "unreadable .binvox file" in item_error(tmp_path, bench, f"{IDS[0]}.binvox", data)


def test_submission_without_items_is_rejected(tmp_path: Path, bench: Benchmark) -> None:
    err = rejected(zip_with(tmp_path / "sub.zip", {}, manifest_bytes()), bench)
    assert err.reason == "the submission holds no test items"


# ----------------------------------------------------------------------------- bounded resources


def _content_hash(path: Path, bench: Benchmark, scratch: Path) -> str:
    with open_submission(path, bench, scratch=scratch) as parsed:
        return parsed.content_sha256


def test_content_sha256_is_the_same_for_the_same_predictions_in_any_container(
    tmp_path: Path, bench: Benchmark
) -> None:
    scratch = tmp_path / "scratch"
    grids = {i: sphere_grid(32, 0.2 + 0.02 * k) for k, i in enumerate(IDS)}
    as_npy = {f"{i}.npy": npy_bytes(g) for i, g in grids.items()}
    hashes = {
        "zip": zip_with(tmp_path / "a.zip", as_npy, manifest_bytes()),
        "reversed zip, stored": tmp_path / "b.zip",
        "tar": tar_with(tmp_path / "c.tar", as_npy, manifest_bytes()),
        "tar.gz in a folder": tmp_path / "d.tar.gz",
        "binvox": zip_with(
            tmp_path / "e.zip",
            {f"{i}.binvox": binvox_bytes(g) for i, g in grids.items()},
            manifest_bytes(),
        ),  # fmt: skip
        "float grid": zip_with(
            tmp_path / "f.zip",
            {f"{i}.npy": npy_bytes(g * 0.9 + 0.05) for i, g in grids.items()},
            manifest_bytes(),
        ),  # fmt: skip
        "npz": tmp_path / "g.npz",
    }
    with zipfile.ZipFile(hashes["reversed zip, stored"], "w", zipfile.ZIP_STORED) as zf:
        for name in reversed(list(as_npy)):
            zf.writestr(name, as_npy[name])
        zf.writestr("submission.json", manifest_bytes())
    tar_with(hashes["tar.gz in a folder"], {**{f"sub/{k}": v for k, v in as_npy.items()},
                                            "sub/submission.json": manifest_bytes()}, None,
             "w:gz")  # fmt: skip
    np.savez_compressed(hashes["npz"], **{i: g for i, g in grids.items()},
                        **{"submission.json": np.array(manifest_bytes().decode())})  # fmt: skip
    values = {name: _content_hash(path, bench, scratch) for name, path in hashes.items()}
    assert len(set(values.values())) == 1, values
    grids[IDS[1]] = grids[IDS[1]].copy()
    grids[IDS[1]][0, 0, 0] = True  # one voxel differs
    other = zip_with(tmp_path / "h.zip", {f"{i}.npy": npy_bytes(g) for i, g in grids.items()},
                     manifest_bytes())  # fmt: skip
    assert _content_hash(other, bench, scratch) != values["zip"]


def test_content_sha256_of_a_mesh_is_the_same_in_every_mesh_format(
    tmp_path: Path, bench: Benchmark
) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    vertices = sphere.vertices.astype(np.float32)  # what a network outputs
    mesh = trimesh.Trimesh(vertices.astype(np.float64), sphere.faces, process=False)
    buf = io.BytesIO()
    np.savez(buf, vertices=vertices, faces=sphere.faces)
    encodings = {  # text formats with the digits that carry float32 values exactly
        "obj": trimesh.exchange.obj.export_obj(mesh, digits=12).encode(),
        "ply": trimesh.exchange.ply.export_ply(mesh, encoding="binary"),
        "off": trimesh.exchange.off.export_off(mesh, digits=12).encode(),
        "glb": mesh.export(file_type="glb"),
        "npz": buf.getvalue(),
    }
    hashes = set()
    for ext, data in encodings.items():
        path = zip_with(tmp_path / f"{ext}.zip", {f"{IDS[0]}.{ext}": data},
                        manifest_bytes(representation="mesh"))  # fmt: skip
        hashes.add(_content_hash(path, bench, tmp_path / "scratch"))
    assert len(hashes) == 1


def test_tar_gz_over_the_scratch_budget_is_refused_and_leaves_nothing(
    tmp_path: Path, bench: Benchmark
) -> None:
    rng = np.random.default_rng(0)
    noisy = {f"{i}.npy": npy_bytes(rng.random((32, 32, 32)) > 0.5) for i in IDS}  # 32 KB each
    path = tar_with(tmp_path / "sub.tar.gz", noisy, manifest_bytes(), "w:gz")
    scratch = tmp_path / "scratch"
    err = rejected(path, bench, scratch=scratch, scratch_budget=100_000)
    assert err.reason == "a .tar.gz this large cannot be unpacked for validation"
    assert "submit the same files as a .zip" in err.details[0]
    assert str(tmp_path) not in str(err)
    assert list(scratch.iterdir()) == []
    with open_submission(path, bench, scratch=scratch, scratch_budget=1 << 20) as parsed:
        assert parsed.present == IDS


def test_scratch_left_by_a_dead_process_is_removed_when_the_next_one_opens(
    tmp_path: Path, bench: Benchmark
) -> None:
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    scratch = tmp_path / "scratch"
    left = scratch / f"submission-{dead.pid}.999-xyz"
    left.mkdir(parents=True)
    (left / "archive.tar").write_bytes(b"\0" * 4096)
    path = tar_with(tmp_path / "sub.tgz", all_grids(), manifest_bytes(), "w:gz")
    with open_submission(path, bench, scratch=scratch) as parsed:
        assert not left.exists()
        assert len(list(scratch.iterdir())) == 1  # this submission's own folder
        assert parsed.present == IDS
    assert list(scratch.iterdir()) == []
