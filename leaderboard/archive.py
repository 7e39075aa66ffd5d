"""Safe reading and parsing of submission archives.

A submission is one file: a `.zip`, `.tar`, `.tar.gz`/`.tgz` holding one file per test item
named by its item id (`<class>/<shape id>/<view>.<ext>`) plus a `submission.json` manifest, or
a single `.npz` whose keys are item ids (the manifest as a `submission.json` member, or a key
`submission.json` holding the JSON text as a string array).

Item formats (see `ITEM_FORMATS`): `.npy` / `.npz` voxel grid (R, R, R) or points (N, 3) (an
item `.npz` holds one array, or `vertices` + `faces` for a mesh), `.binvox` grid, `.ply`
points or mesh, `.xyz` points, `.obj` / `.off` / `.glb` meshes. Formats are recognised by
content as well as by name; a mismatch is an item error.

Safety: members are read into memory, never extracted by name, so nothing is written outside
the scratch folder. A `.tar.gz` is decompressed (with the size caps below, and at most
`max_scratch_bytes` of it) into one temporary file in a fresh folder under `scratch` named
after this process (`leaderboard.scratch`), deleted when the submission is closed; folders of
processes that died are removed when the next submission is opened. Refused with a
`SubmissionError`: absolute paths, `..` components, backslashes, symbolic and hard links,
device files, FIFOs, encrypted entries, more than `max_entries` entries, more than
`max_total_bytes` uncompressed (counted on the bytes actually read, not the headers), an entry
over `max_entry_bytes`, and an entry (or gzip stream, or `.npz` member) over `ratio_min_bytes`
whose decompressed/compressed ratio exceeds `max_ratio` (zip bombs). `.npy` data are loaded
with `allow_pickle=False`, after checking the header's dtype and shape against the bytes
present (so a lying header cannot make us allocate memory).

Validation policy: every item is decoded and checked before anything is scored; a submission
with any item error is rejected as a whole with the list (the first `max_reported_errors`
messages plus a count), because a partly valid submission would be ranked on a subset of
items chosen by accident. Missing items are not errors: they are reported as coverage and
score as the worst values.

Modules: `leaderboard.containers` (caps, capped reads, zip/tar/gzip), `leaderboard.items`
(sniffing and decoding one item); this one opens a submission against a benchmark, validates
it as a whole, and writes archives (`write_submission_zip`, `write_template`).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import io
import logging
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from leaderboard.containers import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    _Container,
    _gunzip,
    _is_junk,
    _Member,
    _TarContainer,
    _ZipContainer,
)
from leaderboard.items import _DESCRIBE, ITEM_FORMATS, _load_npy, decode_item, sniff
from leaderboard.scratch import clean_scratch, make_scratch_dir
from leaderboard.validation import (
    ItemData,
    ItemError,
    Manifest,
    SubmissionError,
    check_representation,
    is_empty,
    parse_manifest,
)
from svr.classes import SYNSET_TO_NAME
from svr.data.inputs import TestInputs
from svr.data.layout import Benchmark
from svr.io import atomic_path
from svr.limits import release_memory
from svr.types import Prediction

__all__ = [
    "ArchiveLimits",
    "DEFAULT_LIMITS",
    "ITEM_FORMATS",
    "MANIFEST_NAME",
    "ParsedSubmission",
    "SubmissionError",
    "open_submission",
    "sniff",
    "decode_item",
    "write_submission_zip",
    "write_template",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "submission.json"
_CHUNK = 1 << 20
# ----------------------------------------------------------------------------- submission


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


_CONTAINER_NAMES = (
    (".tar.gz", "tgz"),
    (".tgz", "tgz"),
    (".tar", "tar"),
    (".zip", "zip"),
    (".npz", "npz"),
)
_CONTENT_TO_CONTAINER = {"zip": ("zip", "npz"), "gzip": ("tgz",), "tar": ("tar",)}


def _container_kind(path: Path) -> str:
    name = path.name.lower()
    named = next((kind for suffix, kind in _CONTAINER_NAMES if name.endswith(suffix)), None)
    with open(path, "rb") as fh:
        head = fh.read(512)
    found = sniff(head)
    allowed = _CONTENT_TO_CONTAINER.get(found or "", ())
    if named is not None:
        if named not in allowed:
            what = _DESCRIBE[found] if found else "not a recognised archive"
            raise SubmissionError(
                "archive name does not match its content",
                [f"{path.name}: named like a .{named} file but the content is {what}"],
            )
        return named
    if not allowed:
        raise SubmissionError(
            "unsupported archive format",
            [f"{path.name}: submit a .zip, .tar, .tar.gz/.tgz or .npz file"],
        )
    return allowed[0]


class _IdIndex:
    """Test item ids by class and shape, to explain why an id is unknown."""

    def __init__(self, test_ids: list[str]):
        self.ids = set(test_ids)
        self.example = test_ids[0]
        self.shapes: dict[str, dict[str, list[str]]] = {}
        for item_id in test_ids:
            cls, shape, view = item_id.split("/")
            self.shapes.setdefault(cls, {}).setdefault(shape, []).append(view)

    def hint(self, item_id: str) -> str:
        """A short, actionable reason; close matches are searched within one class only."""
        form = f" (ids look like {self.example!r}: '<class>/<shape id>/<view>')"
        parts = item_id.split("/")
        if len(parts) != 3:
            return f"; an id has three parts{form}"
        cls, shape, view = parts
        if cls in SYNSET_TO_NAME and "/".join([SYNSET_TO_NAME[cls], shape, view]) in self.ids:
            return f"; use class names, not synset ids: {SYNSET_TO_NAME[cls] + '/' + shape + '/' + view!r}"
        if cls not in self.shapes:
            return f"; unknown class {cls!r} (test classes: {', '.join(sorted(self.shapes))}){form}"
        shapes = self.shapes[cls]
        if shape in shapes:
            return f"; shape {cls}/{shape} has test views {', '.join(shapes[shape])}, not {view!r}"
        close = difflib.get_close_matches(shape, list(shapes), n=1, cutoff=0.8)
        if close:
            return f"; no test shape {shape!r} in class {cls!r}: did you mean {close[0]!r}?"
        return f"; no test shape {shape!r} in class {cls!r}{form}"


class ParsedSubmission:
    """A validated submission: manifest, which test items are present, missing or empty, and
    lazy loading of predictions (one item in memory at a time).

    `sha256` hashes the archive's bytes. `content_sha256` (hex) hashes what the items decode
    to, so the same predictions give the same value whatever the container (.zip, .tar,
    .tar.gz, .npz), compression, member order or folder prefix, and whatever the item file
    format where the decoded arrays are the same (a bool .npy grid and its .binvox; a float
    grid and the bool grid of its occupancy at the manifest threshold; .npy and .xyz
    points; meshes as .obj, .ply, .off, .glb or .npz): SHA-256 over the sorted present item
    ids, each followed by the digest of its canonical content (`item_digest`). Computed
    during validation, one item in memory at a time. Manifest fields (method name, authors)
    are not part of it.

    Use as a context manager (or call `close()`) to release the archive and its scratch files.
    """

    def __init__(
        self,
        manifest: Manifest,
        sha256: str,
        test_ids: list[str],
        members: dict[str, _Member],
        empty: list[str],
        container: _Container,
        limits: ArchiveLimits,
        scratch_dir: Path | None,
        benchmark_id: str = "",
        content_sha256: str = "",
    ):
        self.manifest = manifest
        self.benchmark_id = benchmark_id
        self.sha256 = sha256
        self.content_sha256 = content_sha256
        self.test_ids = test_ids
        self._members = members
        self.present = [i for i in test_ids if i in members]
        self.missing = [i for i in test_ids if i not in members]
        self.empty = empty
        self._container = container
        self._limits = limits
        self._finalizer = weakref.finalize(self, _cleanup, container, scratch_dir)

    @property
    def representation(self) -> str:
        return self.manifest.representation

    def extension(self, item_id: str) -> str:
        return self._members[item_id].name.rsplit(".", 1)[-1].lower()

    def load_item(self, item_id: str) -> ItemData:
        """Decode and check one present item (ItemData: grid, points or mesh arrays)."""
        member = self._members[item_id]
        self._container.budget.used = 0  # re-reading after validation: budget per read pass
        data = self._container.read(member)
        return decode_item(data, self.extension(item_id), self._limits)

    def load(self, item_id: str) -> Prediction:
        """The prediction of one present item (KeyError if the item is missing)."""
        return to_prediction(self.load_item(item_id), self.manifest)

    def iter_predictions(
        self, item_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[str, Prediction]]:
        """Yield (item id, Prediction) for present items, in test-split order."""
        for item_id in self.present if item_ids is None else item_ids:
            yield item_id, self.load(item_id)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> ParsedSubmission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cleanup(container: _Container, scratch_dir: Path | None) -> None:
    try:
        container.close()
    finally:
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def item_digest(item: ItemData, threshold: float) -> bytes:
    """SHA-256 (32 bytes) of an item's canonical content: its kind and shape, then a voxel
    grid's occupancy (value >= `threshold`) as packed bits in C order (x, y, z), points as
    float32 (N, 3), or a mesh's vertices as float32 (V, 3) and faces as int64 (F, 3)."""
    digest = hashlib.sha256()
    if item.kind == "voxels" and item.grid is not None:
        occupied = np.asarray(item.grid) >= threshold
        digest.update(b"voxels" + np.asarray(occupied.shape, "<i8").tobytes())
        digest.update(np.packbits(occupied, axis=None).tobytes())
    elif item.kind == "points" and item.points is not None:
        points = np.ascontiguousarray(item.points, dtype="<f4")
        digest.update(b"points" + np.asarray(points.shape, "<i8").tobytes() + points.tobytes())
    elif item.vertices is not None and item.faces is not None:
        vertices = np.ascontiguousarray(item.vertices, dtype="<f4")
        faces = np.ascontiguousarray(item.faces, dtype="<i8")
        digest.update(b"mesh" + np.asarray([len(vertices), len(faces)], "<i8").tobytes())
        digest.update(vertices.tobytes())
        digest.update(faces.tobytes())
    return digest.digest()


def content_digest(digests: dict[str, bytes]) -> str:
    """Hex SHA-256 over (item id, item digest) pairs in sorted id order."""
    total = hashlib.sha256()
    for item_id in sorted(digests):
        total.update(item_id.encode() + b"\0" + digests[item_id])
    return total.hexdigest()


def to_prediction(item: ItemData, manifest: Manifest) -> Prediction:
    """Wrap checked item data as an `svr.types.Prediction` named after the method."""
    if item.kind == "voxels":
        return Prediction(manifest.method, occupancy=item.grid, threshold=manifest.threshold)
    if item.kind == "points":
        return Prediction(manifest.method, points=item.points)
    import trimesh

    mesh = trimesh.Trimesh(item.vertices, item.faces, process=False)
    return Prediction(manifest.method, mesh=mesh)


def _strip_common_folder(names: list[str]) -> str:
    """If everything sits in one top folder holding the manifest, return that prefix."""
    if MANIFEST_NAME in names or not names:
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        prefix = tops.pop() + "/"
        if prefix + MANIFEST_NAME in names:
            return prefix
    return ""


def open_submission(
    path: str | Path,
    benchmark: Benchmark,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    scratch: str | Path | None = None,
    manifest: Manifest | None = None,
    scratch_budget: int | None = None,
) -> ParsedSubmission:
    """Open, check and validate a submission archive against a benchmark's test split.

    Args:
        path: the archive (.zip, .tar, .tar.gz/.tgz or .npz).
        benchmark: the benchmark whose test items the archive must name.
        limits: archive and item caps.
        scratch: parent folder for temporary files (only .tar.gz needs one); default: the
            system temp folder. Nothing is written anywhere else. When given, folders in it
            left by processes that no longer run are removed first.
        manifest: use this manifest instead of the archive's `submission.json` (e.g. filled
            in a web form); the archive then need not hold one.
        scratch_budget: bytes a .tar.gz may take once decompressed (default
            `limits.max_scratch_bytes`); more is refused with a reason.

    Returns:
        A ParsedSubmission (close it when done).

    Raises:
        SubmissionError: archive-level problems, an invalid manifest, a frame mismatch, or
            item errors (all collected; `.details` lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise SubmissionError("submission file not found", [str(path)])
    test_ids = [item.item_id for item in benchmark.items("test")]
    if not test_ids:
        raise ValueError(f"benchmark {benchmark.root} has no test items")
    if scratch_budget is not None:
        limits = dataclasses.replace(limits, max_scratch_bytes=scratch_budget)
    sha = _sha256(path)
    kind = _container_kind(path)
    scratch_dir: Path | None = None
    container: _Container
    if kind == "tgz":
        if scratch is not None:
            clean_scratch(scratch)
        scratch_dir = make_scratch_dir(scratch if scratch is not None else tempfile.gettempdir())
        try:
            tar_path = scratch_dir / "archive.tar"
            _gunzip(path, tar_path, limits)
            with open(tar_path, "rb") as fh:
                head = fh.read(512)
            if sniff(head) != "tar":
                raise SubmissionError(
                    "archive name does not match its content",
                    [f"{path.name}: a gzip file, but what it holds is not a tar archive"],
                )
            container = _TarContainer(tar_path, limits, path.name)
        except BaseException:
            shutil.rmtree(scratch_dir, ignore_errors=True)
            raise
    elif kind == "tar":
        container = _TarContainer(path, limits, path.name)
    else:
        container = _ZipContainer(path, limits, path.name)
    try:
        parsed = _validate(
            path, kind, container, benchmark, test_ids, limits, manifest, sha, scratch_dir
        )
    except BaseException:
        _cleanup(container, scratch_dir)
        raise
    finally:
        release_memory()  # hand the decoded items' freed memory back to the system
    return parsed


def _check_member(
    container: _Container, member: _Member, limits: ArchiveLimits, manifest: Manifest
) -> tuple[bytes, bool]:
    """Read, decode and check one item: (its `item_digest`, whether it is empty). The item's
    bytes and arrays live only in this frame, so they are freed as soon as it returns or
    raises (an error's traceback does not keep them once the error is reported)."""
    data = container.read(member)
    item = decode_item(data, member.name.rsplit(".", 1)[1], limits)
    check_representation(item, manifest)
    return item_digest(item, manifest.threshold), is_empty(item, manifest.threshold)


def _validate(
    path: Path,
    kind: str,
    container: _Container,
    benchmark: Benchmark,
    test_ids: list[str],
    limits: ArchiveLimits,
    manifest: Manifest | None,
    sha: str,
    scratch_dir: Path | None,
) -> ParsedSubmission:
    members = [m for m in container.members if not _is_junk(m.name)]
    prefix = _strip_common_folder([m.name for m in members])
    if prefix:
        for m in members:
            m.name = m.name[len(prefix) :]

    # The manifest.
    manifest_names = (MANIFEST_NAME, MANIFEST_NAME + ".npy") if kind == "npz" else (MANIFEST_NAME,)
    manifest_members = [m for m in members if m.name in manifest_names]
    manifest_ids = {id(m) for m in manifest_members}
    if manifest is None:
        if not manifest_members:
            raise SubmissionError(
                f"the submission has no {MANIFEST_NAME} manifest",
                [
                    f"add a file {MANIFEST_NAME} at the top level of the archive"
                    + (
                        " (or a key 'submission.json' holding the JSON text)"
                        if kind == "npz"
                        else ""
                    ),
                    "example: "
                    + Manifest("My network", "voxels", benchmark.meta.frame)
                    .to_json()
                    .replace("\n", ""),
                ],
            )
        if len(manifest_members) > 1:
            raise SubmissionError(f"the submission holds more than one {MANIFEST_NAME}")
        try:
            raw = bytes(container.read(manifest_members[0]))
        except ItemError as exc:
            raise SubmissionError(f"unreadable {MANIFEST_NAME}", [str(exc)]) from None
        if manifest_members[0].name.endswith(".npy"):
            try:
                text_array = _load_npy(raw, MANIFEST_NAME, allow_text=True)
            except ItemError as exc:
                raise SubmissionError(f"invalid {MANIFEST_NAME}", [str(exc)]) from None
            if text_array.dtype.kind not in "US" or text_array.size != 1:
                raise SubmissionError(
                    f"invalid {MANIFEST_NAME}",
                    ["the 'submission.json' key must hold the JSON text as a string array"],
                )
            raw = str(text_array.reshape(()).item()).encode()
        manifest = parse_manifest(raw)
    if manifest.frame != benchmark.meta.frame:
        raise SubmissionError(
            "coordinate frame mismatch",
            [
                f"{MANIFEST_NAME} declares frame {manifest.frame!r}, but benchmark "
                f"{benchmark.meta.identifier} is in the {benchmark.meta.frame!r} frame; predict "
                f'shapes in the {benchmark.meta.frame} frame and set "frame": '
                f'"{benchmark.meta.frame}"'
            ],
        )

    # Map members to item ids.
    known_set = set(test_ids)
    id_index = _IdIndex(test_ids)
    errors: list[str] = []
    n_errors = 0

    def report(message: str) -> None:
        nonlocal n_errors
        n_errors += 1
        if len(errors) < limits.max_reported_errors:
            errors.append(message)

    by_id: dict[str, list[_Member]] = {}
    for m in members:
        if id(m) in manifest_ids:
            continue
        base = m.name.rsplit("/", 1)[-1]
        if "." not in base:
            report(
                f"{m.name}: no file extension; name items '<class>/<shape id>/<view>.<ext>' with "
                "ext one of " + ", ".join(f".{e}" for e in ITEM_FORMATS)
            )
            continue
        item_id, ext = m.name.rsplit(".", 1)
        if kind == "npz" and ext != "npy":
            report(f"{m.name}: an .npz submission may only hold arrays (one per item id)")
            continue
        if ext.lower() not in ITEM_FORMATS:
            report(
                f"{m.name}: unsupported file type '.{ext}'; use one of "
                + ", ".join(f".{e}" for e in ITEM_FORMATS)
            )
            continue
        if item_id not in known_set:
            if len(errors) < limits.max_reported_errors:
                report(
                    f"{m.name}: unknown item id {item_id!r}, not in the test split of "
                    f"{benchmark.meta.identifier}" + id_index.hint(item_id)
                )
            else:
                report("")
            continue
        by_id.setdefault(item_id, []).append(m)

    chosen: dict[str, _Member] = {}
    empty: list[str] = []
    digests: dict[str, bytes] = {}
    for item_id in test_ids:
        candidates = by_id.get(item_id)
        if not candidates:
            continue
        if len(candidates) > 1:
            report(
                f"{item_id}: duplicate item, provided by "
                + " and ".join(repr(c.name) for c in candidates)
                + "; keep exactly one file per item"
            )
            continue
        m = candidates[0]
        try:
            digests[item_id], item_empty = _check_member(container, m, limits, manifest)
        except ItemError as exc:
            report(f"{m.name}: {exc}")
            continue
        chosen[item_id] = m
        if item_empty:
            empty.append(item_id)

    if n_errors:
        details = list(errors)
        if n_errors > len(errors):
            details.append(f"... and {n_errors - len(errors)} more error(s)")
        raise SubmissionError(
            f"submission rejected: {n_errors} item error(s); fix them and resubmit "
            "(a submission is scored only when every item in it is valid)",
            details,
            n_errors=n_errors,
        )
    if not chosen:
        raise SubmissionError(
            "the submission holds no test items",
            [
                "name one file per test item '<class>/<shape id>/<view>.<ext>', e.g. "
                f"'{test_ids[0]}.npy'; run `python -m leaderboard template` for a working example"
            ],
        )
    logger.info(
        "%s: %d of %d test items present (%d empty), %d missing",
        path.name,
        len(chosen),
        len(test_ids),
        len(empty),
        len(test_ids) - len(chosen),
    )
    return ParsedSubmission(
        manifest, sha, test_ids, chosen, empty, container, limits, scratch_dir,
        benchmark.meta.identifier, content_digest(digests),
    )  # fmt: skip


# ----------------------------------------------------------------------------- writing


def write_submission_zip(
    path: str | Path, manifest: Manifest, items: Iterable[tuple[str, str, bytes]]
) -> None:
    """Write a submission zip atomically: `submission.json` plus one (item id, ext, bytes)
    file per item, deflated."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_NAME, manifest.to_json())
        for item_id, ext, data in items:
            zf.writestr(f"{item_id}.{ext}", data)


def _template_item(representation: str, radius: float = 0.35) -> tuple[str, bytes]:
    """One example item: a sphere of `radius` at the origin, as (extension, bytes)."""
    import trimesh

    if representation == "voxels":
        r = 32
        c = -0.5 + (np.arange(r) + 0.5) / r
        x, y, z = np.meshgrid(c, c, c, indexing="ij")
        buf = io.BytesIO()
        np.save(buf, x**2 + y**2 + z**2 < radius**2, allow_pickle=False)
        return "npy", buf.getvalue()
    if representation == "mesh":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
        return "obj", mesh.export(file_type="obj").encode()
    if representation == "points":
        # A Fibonacci sphere: 2,048 evenly spread surface points, float32 (N, 3).
        n = 2048
        k = np.arange(n) + 0.5
        polar = np.arccos(1 - 2 * k / n)
        azimuth = np.pi * (1 + 5**0.5) * k
        pts = radius * np.stack(
            [np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)], 1
        )
        buf = io.BytesIO()
        np.save(buf, pts.astype(np.float32), allow_pickle=False)
        return "npy", buf.getvalue()
    raise ValueError(f"representation must be one of voxels, mesh, points; got {representation!r}")


def write_template(
    benchmark: Benchmark | TestInputs,
    out: str | Path,
    representation: str = "voxels",
    radius: float = 0.35,
) -> Manifest:
    """Write a valid example submission for every test item of `benchmark` (a benchmark
    folder or a test inputs zip) to `out` (.zip): the same centred sphere of `radius` for
    each item, in the given representation (voxels: 32^3 bool .npy; mesh: .obj; points:
    2,048 points (N, 3) float32 .npy), with a manifest in the benchmark's frame. Returns the
    manifest written."""
    if isinstance(benchmark, TestInputs):
        frame, ids = benchmark.frame, list(benchmark.item_ids)
    else:
        frame, ids = benchmark.meta.frame, [item.item_id for item in benchmark.items("test")]
    ext, data = _template_item(representation, radius)
    manifest = Manifest(
        method=f"example sphere ({representation})",
        representation=representation,
        frame=frame,
        authors="template",
        training_data="none",
        description="The same centred sphere for every test item: shows the format, not a method.",
    )
    write_submission_zip(out, manifest, ((item_id, ext, data) for item_id in ids))
    return manifest
