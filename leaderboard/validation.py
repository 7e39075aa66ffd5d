"""Strict checks of a submission: the `submission.json` manifest and every predicted item.

Each check raises `ItemError` with a message a researcher can act on (what is wrong, by how
much, and what to do about it). The archive reader collects these per item and rejects the
submission as a whole with the full list (see `leaderboard.archive`).

Units: the benchmark's unit cube [-0.5, 0.5]^3. Voxel grids are (R, R, R) arrays indexed
(x, y, z); point clouds are (N, 3) float arrays; meshes are vertices (V, 3) float with
triangle faces (F, 3) int.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = [
    "REPRESENTATIONS",
    "FRAMES",
    "SubmissionError",
    "ItemError",
    "ItemLimits",
    "DEFAULT_ITEM_LIMITS",
    "ItemData",
    "Manifest",
    "parse_manifest",
    "check_item",
    "check_grid",
    "check_points",
    "check_mesh",
    "check_representation",
    "is_empty",
    "MANIFEST_EXAMPLE",
]

logger = logging.getLogger(__name__)

REPRESENTATIONS: tuple[str, ...] = ("voxels", "mesh", "points")
FRAMES: tuple[str, ...] = ("object", "viewer")
_KIND_WORDS = {"voxels": "a voxel grid", "mesh": "a mesh", "points": "a point cloud"}


class SubmissionError(ValueError):
    """A submission that cannot be scored.

    `reason` is a short sentence for a status line; `details` lists item-level messages
    (possibly capped, with a final "... and N more" line); `n_errors` counts all of them.
    """

    def __init__(self, reason: str, details: list[str] | None = None, n_errors: int | None = None):
        self.reason = reason
        self.details = list(details or [])
        self.n_errors = len(self.details) if n_errors is None else n_errors
        text = reason if not self.details else reason + "\n  - " + "\n  - ".join(self.details)
        super().__init__(text)


class ItemError(ValueError):
    """One item of a submission is invalid; the message says why and how to fix it."""


@dataclass(frozen=True)
class ItemLimits:
    """Bounds on a single predicted item.

    max_abs_coord: largest allowed |coordinate| (the unit cube is [-0.5, 0.5]^3, so 1.0 leaves
    a generous margin); resolutions are the allowed edge lengths R of voxel grids;
    max_vertices bounds a mesh's vertex count before it is parsed; max_faces counts
    triangles (a polygon of n corners counts n-2); max_text_bytes bounds a text item
    (.obj, .off, .xyz) in bytes.
    """

    max_points: int = 100_000
    max_faces: int = 500_000
    max_vertices: int = 1_000_000
    max_text_bytes: int = 64 << 20
    max_abs_coord: float = 1.0
    min_resolution: int = 16
    max_resolution: int = 256


DEFAULT_ITEM_LIMITS = ItemLimits()


@dataclass
class ItemData:
    """One decoded item, before it becomes an `svr.types.Prediction`.

    kind: "voxels" (grid (R, R, R) bool/int/float), "points" (points (N, 3) float64) or
    "mesh" (vertices (V, 3) float64, faces (F, 3) int64).
    """

    kind: str
    grid: np.ndarray | None = None
    points: np.ndarray | None = None
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None


# ----------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    """The contents of `submission.json`.

    method: display name; representation: "voxels", "mesh" or "points" (every item must be
    of that kind); frame: "object" or "viewer" (must match the benchmark); threshold: the
    occupancy level in (0, 1) above which a voxel of a probability grid is inside.
    """

    method: str
    representation: str
    frame: str
    threshold: float = 0.5
    authors: str = ""
    paper_url: str = ""
    code_url: str = ""
    training_data: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_REQUIRED = ("method", "representation", "frame")
_TEXT_LIMITS = {
    "method": 100,
    "authors": 1000,
    "paper_url": 500,
    "code_url": 500,
    "training_data": 500,
    "description": 2000,
}

MANIFEST_EXAMPLE = (
    '{"method": "My network", "representation": "voxels", "frame": "object", '
    '"threshold": 0.5, "authors": "A. Author, B. Author", "paper_url": "https://...", '
    '"code_url": "https://...", "training_data": "benchmark train split"}'
)


def parse_manifest(text: str | bytes, source: str = "submission.json") -> Manifest:
    """Parse and check a manifest; SubmissionError listing every problem found."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SubmissionError(
                f"{source} is not UTF-8 text", [f"byte {exc.start}: {exc.reason}"]
            ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(
            f"{source} is not valid JSON",
            [f"line {exc.lineno} column {exc.colno}: {exc.msg}", f"example: {MANIFEST_EXAMPLE}"],
        ) from None
    if not isinstance(data, dict):
        raise SubmissionError(
            f"{source} must hold a JSON object, got {type(data).__name__}",
            [f"example: {MANIFEST_EXAMPLE}"],
        )
    problems: list[str] = []
    known = [f.name for f in fields(Manifest)]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (known fields: {', '.join(known)})"
            )
            problems.append(f"unknown field {key!r}{hint}")
    for key in _REQUIRED:
        if key not in data:
            problems.append(f"missing required field {key!r}")
    values: dict[str, object] = {}
    for key, limit in _TEXT_LIMITS.items():
        if key not in data:
            continue
        value = data[key]
        if key == "authors" and isinstance(value, list):
            if not all(isinstance(a, str) for a in value):
                problems.append("'authors' must be a string or a list of strings")
                continue
            value = ", ".join(a.strip() for a in value)
        if not isinstance(value, str):
            problems.append(f"{key!r} must be a string, got {type(value).__name__}")
            continue
        value = value.strip()
        if len(value) > limit:
            problems.append(f"{key!r} is {len(value)} characters long; at most {limit} allowed")
            continue
        if key.endswith("_url") and value and not value.startswith(("https://", "http://")):
            problems.append(f"{key!r} must be an http(s) URL, got {value[:60]!r}")
            continue
        values[key] = value
    if "method" in values and not values["method"]:
        problems.append("'method' must not be empty")
    for key, allowed in (("representation", REPRESENTATIONS), ("frame", FRAMES)):
        if key not in data:
            continue
        value = data[key]
        if value not in allowed:
            problems.append(f"{key!r} must be one of {', '.join(allowed)}; got {value!r}")
        else:
            values[key] = value
    if "threshold" in data:
        value = data["threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"'threshold' must be a number in (0, 1), got {value!r}")
        elif not (math.isfinite(value) and 0.0 < value < 1.0):
            problems.append(f"'threshold' must lie strictly between 0 and 1, got {value!r}")
        else:
            values["threshold"] = float(value)
    if problems:
        raise SubmissionError(f"{source} is invalid ({len(problems)} problem(s))", problems)
    return Manifest(**values)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- items


def _max_abs(values: np.ndarray) -> float:
    return float(np.abs(values).max()) if values.size else 0.0


def _check_finite(values: np.ndarray, what: str) -> None:
    if values.dtype.kind == "f" or values.dtype.kind == "c":
        bad_nan = int(np.isnan(values).sum())
        bad_inf = int(np.isinf(values).sum())
        if bad_nan:
            raise ItemError(f"{what} contains {bad_nan} NaN value(s); all values must be finite")
        if bad_inf:
            raise ItemError(
                f"{what} contains {bad_inf} infinite value(s); all values must be finite"
            )


def _check_numeric(values: np.ndarray, what: str) -> None:
    if values.dtype.kind not in "biuf":
        raise ItemError(
            f"{what} has dtype {values.dtype}; use bool, integer or floating point numbers"
        )


def _check_coords(values: np.ndarray, what: str, limits: ItemLimits) -> None:
    _check_finite(values, what)
    largest = _max_abs(values)
    if largest > limits.max_abs_coord:
        raise ItemError(
            f"{what} lies far outside the unit cube: max |coord| {largest:.4g} > "
            f"{limits.max_abs_coord:g} allowed (shapes are normalised to [-0.5, 0.5]^3: centre the "
            "bounding box at the origin and scale its longest side to 1)"
        )


def check_grid(grid: np.ndarray, limits: ItemLimits = DEFAULT_ITEM_LIMITS) -> np.ndarray:
    """Check a voxel grid: cubic (R, R, R), R in the allowed range, numeric, finite.

    Returns the grid unchanged (bool, int or float, axes (x, y, z)).
    """
    grid = np.asarray(grid)
    _check_numeric(grid, "voxel grid")
    if grid.ndim != 3:
        raise ItemError(f"a voxel grid must be 3-dimensional (R, R, R), got shape {grid.shape}")
    if len(set(grid.shape)) != 1:
        raise ItemError(
            f"voxel grid is not cubic: shape {grid.shape}; expected (R, R, R) over the unit cube"
        )
    r = grid.shape[0]
    if not limits.min_resolution <= r <= limits.max_resolution:
        raise ItemError(
            f"voxel grid resolution {r} is outside the allowed range "
            f"{limits.min_resolution}..{limits.max_resolution}"
        )
    _check_finite(grid, "voxel grid")
    return grid


def check_points(points: np.ndarray, limits: ItemLimits = DEFAULT_ITEM_LIMITS) -> np.ndarray:
    """Check a point cloud: (N, 3), N <= max_points, finite, inside the allowed box.

    Returns float64 (N, 3).
    """
    points = np.asarray(points)
    _check_numeric(points, "point cloud")
    if points.ndim != 2 or points.shape[1] != 3:
        extra = (
            " (drop normal or colour columns)" if points.ndim == 2 and points.shape[1] > 3 else ""
        )
        raise ItemError(f"a point cloud must have shape (N, 3), got {points.shape}{extra}")
    if len(points) > limits.max_points:
        raise ItemError(
            f"point cloud has {len(points):,} points; at most {limits.max_points:,} allowed "
            "(subsample it, e.g. uniformly at random)"
        )
    _check_coords(points, "point cloud", limits)
    return points.astype(np.float64)


def check_mesh(
    vertices: np.ndarray, faces: np.ndarray, limits: ItemLimits = DEFAULT_ITEM_LIMITS
) -> tuple[np.ndarray, np.ndarray]:
    """Check a triangle mesh: vertices (V, 3) finite and inside the allowed box, faces (F, 3)
    indexing existing vertices, F <= max_faces. Returns (float64 (V, 3), int64 (F, 3))."""
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.size == 0:
        vertices = vertices.reshape(0, 3)
    if faces.size == 0:
        faces = faces.reshape(0, 3)
    _check_numeric(vertices, "mesh vertices")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ItemError(f"mesh vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ItemError(f"mesh faces must be triangles (F, 3), got shape {faces.shape}")
    if len(faces) > limits.max_faces:
        raise ItemError(
            f"mesh has {len(faces):,} faces; at most {limits.max_faces:,} allowed (decimate it)"
        )
    if faces.dtype.kind not in "iu":
        raise ItemError(f"mesh faces must be integers, got dtype {faces.dtype}")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ItemError(
            f"mesh faces index vertices {int(faces.min())}..{int(faces.max())}, but there are "
            f"only {len(vertices)} vertices"
        )
    _check_coords(vertices, "mesh", limits)
    return vertices.astype(np.float64), faces.astype(np.int64)


def check_item(item: ItemData, limits: ItemLimits = DEFAULT_ITEM_LIMITS) -> ItemData:
    """Run the checks of the item's kind; returns a cleaned copy (ItemError if invalid)."""
    if item.kind == "voxels" and item.grid is not None:
        return ItemData("voxels", grid=check_grid(item.grid, limits))
    if item.kind == "points" and item.points is not None:
        return ItemData("points", points=check_points(item.points, limits))
    if item.kind == "mesh" and item.vertices is not None and item.faces is not None:
        v, f = check_mesh(item.vertices, item.faces, limits)
        return ItemData("mesh", vertices=v, faces=f)
    raise ItemError(f"internal: item of kind {item.kind!r} has no data")


def check_representation(item: ItemData, manifest: Manifest) -> None:
    """The item's kind must be the manifest's declared representation."""
    if item.kind != manifest.representation:
        raise ItemError(
            f"file holds {_KIND_WORDS[item.kind]}, but submission.json declares representation "
            f"{manifest.representation!r}; every item must be {_KIND_WORDS[manifest.representation]}"
        )


def is_empty(item: ItemData, threshold: float) -> bool:
    """True if the item predicts no shape: no points, no faces, or no voxel at/above threshold."""
    if item.kind == "points":
        return item.points is None or len(item.points) == 0
    if item.kind == "mesh":
        return item.faces is None or len(item.faces) == 0
    return item.grid is None or not bool((np.asarray(item.grid) >= threshold).any())
