"""The test inputs of a benchmark: everything a researcher needs to predict, no ground truth.

With a secret test split nobody can rebuild the test set, so the leaderboard serves its
inputs as one zip (`GET /api/test-inputs.zip`, the Submit tab's download):

```
inputs.json                          format, benchmark identifier, name, version, frame,
                                     image size, classes, test split kind, item ids (sorted
                                     by class, shape id, then view number)
cameras.json                         item id -> camera of that view: azimuth, elevation,
                                     distance, fov (degrees, world units), K, R, t (OpenCV:
                                     x_cam = R x_world + t), image_size
views/<class>/<shape id>/<view>.png  the RGBA input view, byte-identical to the benchmark's
README.txt                           what is inside and the three commands to a submission
```

Never included: meshes, grids, points, occupancy, the viewer-frame transforms (they encode
the normalised ground truth's extent) and benchmark.json (its build statistics cover the
test shapes). The zip is deterministic (sorted members, fixed timestamps), written
atomically, and cached per benchmark identifier (`cached_test_inputs`).

`TestInputs(path)` reads such a zip back (sizes checked before anything is read) for
`python -m svr.predict --inputs` and `python -m leaderboard template --inputs`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from svr.data.layout import Benchmark, Item
from svr.io import atomic_path

__all__ = [
    "INPUTS_FORMAT",
    "CAMERA_FIELDS",
    "TestInputs",
    "write_test_inputs",
    "cached_test_inputs",
]

logger = logging.getLogger(__name__)

INPUTS_FORMAT = 1
CAMERA_FIELDS = ("azimuth", "elevation", "distance", "fov", "K", "R", "t", "image_size")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
_MAX_JSON_BYTES = 64 << 20  # inputs.json / cameras.json (3,250 items: about 1 MB)
_MAX_VIEW_BYTES = 16 << 20
_MAX_MEMBERS = 2_000_000
_ID_RE = re.compile(r"\A[a-z]+/[0-9A-Za-z_.-]+/\d+\Z")
_README = """Test inputs of the benchmark {identifier} ({n} items, {frame} frame).

inputs.json   the item ids to predict, the frame and the image size
cameras.json  the camera of every view (OpenCV convention: x_cam = R x_world + t)
views/        one RGBA PNG per item: <class>/<shape id>/<view>.png

No ground truth is included: the test split is {kind}. Predict every item (a submission
missing any item is refused), then submit:

  python -m svr.predict --model retrieval --weights assets/models/retrieval \\
      --inputs test-inputs.zip --out predictions.zip
  python -m leaderboard template --inputs test-inputs.zip --out example.zip   # the format
"""


def _zip_info(name: str, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _camera(entry: dict) -> dict:
    return {k: entry[k] for k in CAMERA_FIELDS if k in entry}


def write_test_inputs(
    benchmark: Benchmark | str | os.PathLike,
    out: str | os.PathLike,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the test inputs zip of `benchmark` to `out` (atomically); returns `out`."""
    bench = benchmark if isinstance(benchmark, Benchmark) else Benchmark(benchmark)
    items = sorted(bench.items("test"), key=lambda it: (it.shape.key, it.view))
    if not items:
        raise ValueError("the benchmark has no test items")
    meta = bench.meta
    cameras: dict[str, dict] = {}
    per_shape: dict[str, list[dict]] = {}
    for item in items:
        if item.shape.key not in per_shape:
            per_shape[item.shape.key] = bench.cameras(item.shape)
        entries = per_shape[item.shape.key]
        if item.view < len(entries):
            cameras[item.item_id] = _camera(entries[item.view])
    header = {
        "format": INPUTS_FORMAT,
        "benchmark": meta.identifier,
        "name": meta.name,
        "version": meta.version,
        "frame": meta.frame,
        "image_size": meta.image_size,
        "classes": meta.classes,
        "test_split": meta.test_split,
        "items": [it.item_id for it in items],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kind = (
        "secret (generated from a maintainer's secret)"
        if meta.test_split == "secret"
        else ("public (practice: anyone can rebuild it from the code)")
    )
    readme = _README.format(identifier=meta.identifier, n=len(items), frame=meta.frame, kind=kind)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(_zip_info("README.txt", True), readme)
        zf.writestr(_zip_info("inputs.json", True), json.dumps(header, indent=1))
        zf.writestr(_zip_info("cameras.json", True), json.dumps(cameras, sort_keys=True))
        for n, item in enumerate(items, start=1):
            data = bench.image_path(item).read_bytes()
            zf.writestr(_zip_info(f"views/{item.item_id}.png", False), data)
            if progress is not None:
                progress(n, len(items))
    logger.info("wrote the test inputs of %s (%d items) to %s", meta.identifier, len(items), out)
    return out


_cache_lock = threading.Lock()


def cached_test_inputs(benchmark_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """The test inputs zip of the benchmark at `benchmark_dir`, built once per benchmark
    identifier into `cache_dir` (older identifiers' zips are removed). Thread-safe."""
    bench = Benchmark(benchmark_dir)
    cache = Path(cache_dir)
    path = cache / f"test-inputs-{bench.meta.identifier}.zip"
    with _cache_lock:
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            write_test_inputs(bench, path)
            for old in cache.glob("test-inputs-*.zip"):
                if old != path:
                    old.unlink(missing_ok=True)
    return path


class TestInputs:
    """A test inputs zip opened for reading (see the module docstring).

    item_ids: sorted ids; frame, image_size, identifier from inputs.json; `image(item_id)`
    gives the view as RGBA uint8 (H, W, 4); `camera(item_id)` its camera dict.
    Raises ValueError naming what is wrong when the file is not a test inputs zip.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no test inputs file at {self.path}")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile:
            raise ValueError(
                f"{self.path.name} is not a zip file (expected test-inputs.zip)"
            ) from None
        infos = self._zip.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise ValueError(f"{self.path.name} has too many entries for a test inputs zip")
        self._infos = {i.filename: i for i in infos}
        header = self._json("inputs.json")
        if not isinstance(header, dict) or header.get("format") != INPUTS_FORMAT:
            raise ValueError(
                f"{self.path.name}: inputs.json is missing or of another format; download the "
                "test inputs again"
            )
        items = header.get("items")
        if not isinstance(items, list) or not all(
            isinstance(i, str) and _ID_RE.match(i) for i in items
        ):
            raise ValueError(f"{self.path.name}: inputs.json has no valid item list")
        self.item_ids: list[str] = items
        self.identifier = str(header.get("benchmark", ""))
        self.frame = str(header.get("frame", "object"))
        self.image_size = int(header.get("image_size", 137))
        self.test_split = str(header.get("test_split", "public"))
        self.classes = [c["name"] for c in header.get("classes", []) if isinstance(c, dict)]
        cameras = self._json("cameras.json")
        self._cameras: dict[str, dict] = cameras if isinstance(cameras, dict) else {}

    def _read(self, name: str, limit: int) -> bytes:
        info = self._infos.get(name)
        if info is None:
            raise ValueError(f"{self.path.name} has no {name}: download the test inputs again")
        if info.file_size > limit:
            raise ValueError(f"{self.path.name}: {name} is larger than {limit >> 20} MB")
        with self._zip.open(info) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{self.path.name}: {name} is larger than {limit >> 20} MB")
        return data

    def _json(self, name: str) -> object:
        try:
            return json.loads(self._read(name, _MAX_JSON_BYTES))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path.name}: {name} is not valid JSON ({exc})") from None

    def view_bytes(self, item_id: str) -> bytes:
        """The PNG bytes of an item's view."""
        return self._read(f"views/{item_id}.png", _MAX_VIEW_BYTES)

    def image(self, item_id: str) -> np.ndarray:
        """The view of `item_id` as RGBA uint8 (H, W, 4)."""
        from PIL import Image

        with Image.open(io.BytesIO(self.view_bytes(item_id))) as img:
            if img.width * img.height > 4096 * 4096:
                raise ValueError(f"{self.path.name}: the view of {item_id} is too large")
            return np.asarray(img.convert("RGBA"))

    def camera(self, item_id: str) -> dict:
        """The camera of an item's view ({} when the zip has none)."""
        return dict(self._cameras.get(item_id, {}))

    def items(self) -> list[Item]:
        """The test items as `svr.data.layout.Item`s."""
        from svr.data.layout import ShapeRef

        out = []
        for item_id in self.item_ids:
            cls, shape, view = Item.parse_id(item_id)
            out.append(Item(ShapeRef("test", cls, shape), view))
        return out

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> TestInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
