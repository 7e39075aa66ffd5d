"""Text of the Reconstruct and About tabs: what a reconstruction reports, as Markdown, the
one browser-side snippet the viewers need, and the page CSS (no gradio, no logic: everything
shown is computed by `svr.inference`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image

from svr.classes import CLASS_NAMES
from svr.inference import MethodInfo, Reconstruction
from svr.preprocess import checkerboard

#: A CSS class (`CSS`): mounted but not shown (a gr.Model3D must be mounted before its first
#: value arrives, so the result panels are hidden this way rather than with `visible=False`).
HIDDEN = "svr-hidden"

#: Page CSS (`Blocks.launch(css=...)`): the examples grid as tall as its rows with captions
#: that wrap instead of being cut; the status panel's progress bars.
CSS = """
#examples .grid-wrap.fixed-height { height: auto; min-height: 0; max-height: none; }
#examples .caption-label { white-space: normal; overflow: visible; text-overflow: clip;
  max-width: calc(100% - 8px); line-height: 1.15; font-size: 12px; }
.svr-hidden { display: none !important; }
.svr-status ol { margin: 0.3em 0 0 1.2em; padding: 0; }
.svr-status progress { width: 10em; vertical-align: middle; margin: 0 0.5em; }
.svr-status .svr-problem { color: var(--error-text-color, #b91c1c); }
"""

NO_RESULT = (
    "**Results appear here** once you reconstruct an image: your image and the masked input "
    "the network sees, the 3D shape in a viewer you can rotate, downloads (GLB, OBJ, PLY, "
    "STL, occupancy grids), what the method recognised and, for a benchmark validation "
    "example, its score against the ground truth. Upload an image or click an example, "
    "then *Reconstruct*."
)

NO_GROUND_TRUTH = (
    "Shown when the input is one of the benchmark *validation* examples: the result is scored "
    "against that shape's ground truth (F@1%, IoU) with a precision/recall view. The test "
    "split's ground truth is never shown."
)

ABOUT_FIGURES = (
    "Contact sheet: benchmark shapes per class (8 per class, one view each)",
    "Per-item F@1% of the shipped methods on the default benchmark's test split: the share "
    "of test items (y, 0 to 1) scoring at most x; recognition baselines dashed",
)

_KINDS = {"val": "validation (scored)", "test": "test view", None: "photo"}


def example_caption(split: str | None, label: str) -> str:
    """A gallery caption that says what an example is: '<class> · validation (scored)' for a
    validation view (its result is scored against the ground truth), '<class> · test view'
    (image only), '<class> · photo' for a photo-like image; the class is the first class name
    in the example's `label` (`svr.examples.Example.label`)."""
    words = re.findall(r"[a-z]+", label.lower())
    name = next((w for w in words if w in CLASS_NAMES), "")
    kind = _KINDS.get(split, split or "photo")
    return f"{name} · {kind}" if name else kind


def examples_heading(splits: list[str | None]) -> str:
    """The line above the examples: how many of each kind and what each kind means."""
    n_val = sum(1 for s in splits if s == "val")
    n_test = sum(1 for s in splits if s == "test")
    n_photo = sum(1 for s in splits if s is None)
    parts = []
    if n_val:
        parts.append(f"{n_val} benchmark validation views (*validation (scored)*: the result "
                     "is scored against the shape's ground truth)")  # fmt: skip
    if n_test:
        parts.append(f"{n_test} test views (*test view*: image only, never scored here)")
    if n_photo:
        parts.append(f"{n_photo} photo-like images (*photo*: no alpha, the app removes the "
                     "background)")  # fmt: skip
    return "**Examples** (click one to use it): " + "; ".join(parts) + "."


def ground_truth_markdown(gt: Any) -> str:
    """The ground-truth comparison in one line (`svr.groundtruth` result: item id, split,
    F@1%, precision, recall, IoU@32 or None)."""
    iou = "n/a" if gt.iou is None else f"{gt.iou:.3f}"
    return (
        f"Benchmark item `{gt.item_id}` ({gt.split} split, public): **F@1% = {gt.fscore:.3f}** "
        f"(precision {gt.precision:.3f}, recall {gt.recall:.3f}), **IoU@32 = {iou}**. Below: "
        "the ground truth from the same viewpoint, then precision / recall at 1%, points "
        "coloured by their distance to the other surface."
    )


__all__ = [
    "ABOUT",
    "CSS",
    "HIDDEN",
    "ABOUT_FIGURES",
    "NO_GROUND_TRUTH",
    "NO_RESULT",
    "after_models_load",
    "camera_cell",
    "compare_failed_row",
    "compare_head",
    "compare_note",
    "compare_row",
    "example_caption",
    "examples_heading",
    "ground_truth_markdown",
    "methods_markdown",
    "recognition_markdown",
    "short_value",
    "stats_markdown",
    "thumbnail",
    "view_line",
]


def thumbnail(rgba: np.ndarray, side: int = 256) -> np.ndarray:
    """uint8 RGBA (H, W, 4) on a checkerboard (transparent parts), fit to `side` pixels:
    uint8 RGB (h, w, 3), the longest side `side` (smaller images grow by nearest pixels)."""
    board = checkerboard(rgba, cell=max(4, max(rgba.shape[:2]) // 24))
    img = Image.fromarray(board)
    img.thumbnail((side, side)) if max(img.size) > side else None
    if max(img.size) < side:
        factor = side / max(img.size)
        img = img.resize((round(img.size[0] * factor), round(img.size[1] * factor)), Image.NEAREST)
    return np.asarray(img)


def stats_markdown(rec: Reconstruction) -> str:
    """Geometry, timings, input notes, the viewer's viewpoint, colours, orientation."""
    stages = " | ".join(f"{k}: {1000 * v:.0f} ms" for k, v in rec.timings.items())
    geometry = (
        f"{rec.n_faces:,} faces, {rec.n_vertices:,} vertices"
        if rec.mesh is not None
        else f"{rec.n_vertices:,} points (point cloud)"
    )
    notes = "; ".join(rec.input.notes)
    return (
        f"**{rec.method}**: {geometry}; total {1000 * rec.total_seconds:.0f} ms ({stages}).  \n"
        f"Input: {notes}.  \n"
        f"{view_line(rec)}  \n"
        f"Colours: {rec.color_note}.  \n"
        "Orientation of the mesh and every download: +y up, the object's front towards +z, "
        "unit cube [-0.5, 0.5]^3 (only the viewer's camera follows the photo)."
    )


def view_line(rec: Reconstruction) -> str:
    """Where the viewer opened from, in words."""
    e = rec.estimate
    if not e.has_camera:
        return (
            f"Viewer: default front view; {rec.method} reports no camera estimate (its weights "
            "have no camera heads)."
        )
    return (
        f"Viewer: opened from the photo's estimated viewpoint, {e.camera_text()} (drag to rotate)."
    )


def recognition_markdown(rec: Reconstruction) -> str:
    """What the method recognised (class, camera) and everything else it reports."""
    e = rec.estimate
    head = f"**{rec.method}** sees **{e.class_text()}**, photographed from {e.camera_text()}."
    info = rec.prediction.info or {}
    if not info:
        return f"{head}\n\n{rec.method} reports nothing else about what it recognised."
    lines = [head, "", f"{rec.method} reports:"]
    lines += [f"- **{k}**: {short_value(v)}" for k, v in info.items()]
    return "\n".join(lines)


def short_value(value: object) -> str:
    """A reported value in a few characters (floats to 3 places, the top 5 of a dict)."""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        items = sorted(
            value.items(), key=lambda kv: -kv[1] if isinstance(kv[1], int | float) else 0
        )[:5]
        return ", ".join(f"{k}: {short_value(v)}" for k, v in items)
    if isinstance(value, list | tuple):
        return ", ".join(short_value(v) for v in list(value)[:5]) + (
            " ..." if len(value) > 5 else ""
        )
    return str(value)


def camera_cell(rec: Reconstruction) -> str:
    """The compare table's camera cell: '35°, 20°' or 'none'."""
    e = rec.estimate
    return f"{e.azimuth:.0f}°, {e.elevation:.0f}°" if e.has_camera else "none"


def compare_head(with_scores: bool) -> list[str]:
    """The compare table's header lines (Markdown), with F@1% / IoU@32 columns or not."""
    head = "| method | kind | class (p) | camera (az, el) | faces | vertices | time (ms) |"
    if with_scores:
        head += " F@1% | IoU@32 |"
    return [head, "|" + "---|" * (head.count("|") - 1)]


def compare_row(
    method: MethodInfo, rec: Reconstruction, scores: tuple[float, float | None] | None
) -> str:
    """One compare row; `scores`: (F@1%, IoU@32 or None) against the ground truth, or None."""
    tail = ""
    if scores is not None:
        f1, iou = scores
        tail = f" {f1:.3f} | {'n/a' if iou is None else f'{iou:.3f}'} |"
    return (
        f"| {method.name} | {method.kind} | {rec.estimate.class_text()} | {camera_cell(rec)} | "
        f"{rec.n_faces:,} | {rec.n_vertices:,} | {1000 * rec.total_seconds:.0f} |{tail}"
    )


def compare_failed_row(method: MethodInfo, why: str, with_scores: bool) -> str:
    """The compare row of a method that gave nothing (`why` in the time column)."""
    return f"| {method.name} | {method.kind} | - | - | - | - | {why} |" + (
        " - | - |" if with_scores else ""
    )


def compare_note(item_id: str | None) -> str:
    """The lines under the compare table."""
    note = (
        f"\n\nScored against the ground truth of `{item_id}` (validation split)." if item_id else ""
    )
    return note + (
        "\n\nEach view opens from its method's camera estimate (the default front view where "
        "a method has none)."
    )


def methods_markdown(methods: list[MethodInfo]) -> str:
    """One bullet per method: name, kind, description, weights status (no server path)."""
    if not methods:
        return "No reconstruction methods are registered."
    lines = []
    for m in methods:
        missing = "" if m.has_weights else f" **No weights for {m.name} yet.**"
        lines.append(f"- **{m.name}** ({m.kind}): {m.description}{missing}")
    return "\n".join(lines)


def after_models_load(selector: str, settle_ms: int = 2000) -> str:
    """Browser-side step (an event's `js`) that waits until every gr.Model3D under CSS
    `selector` has fetched its model, then `settle_ms` more, and passes its inputs on.

    gradio 6.31's Model3D applies `camera_position` when a model finishes loading, but its
    Babylon viewer then animates the camera to its own default view (about 1 s, started
    when the model is added to the scene), so the first camera is lost; the Reconstruct tab
    sends the camera again in the step that follows. Fetched URLs are collected by one
    PerformanceObserver per page (the resource-timing buffer fills up in a long session).
    Waits at most 20 s for the fetch."""
    return f"""(...args) => new Promise((done) => {{
  const fetched = (window.__svrFetched ||= (() => {{
    const urls = new Set(performance.getEntriesByType("resource").map((e) => e.name));
    new PerformanceObserver((list) => list.getEntries().forEach((e) => urls.add(e.name)))
      .observe({{ type: "resource", buffered: true }});
    return urls;
  }})());
  const start = performance.now();
  const poll = () => {{
    const links = [...document.querySelectorAll('{selector} a[data-testid="model3d-download-link"]')];
    const loaded = links.every((a) => !a.href || fetched.has(a.href));
    if (loaded || performance.now() - start > 20000) setTimeout(() => done(args), {settle_ms});
    else setTimeout(poll, 100);
  }};
  poll();
}})"""


ABOUT = r"""
## What this is

A demo, benchmark and leaderboard around **"What Do Single-view 3D Reconstruction Networks
Learn?"** (Tatarchenko, Richter, Ranftl, Li, Koltun, Brox, CVPR 2019). The paper asks whether
networks that turn one image into a 3D shape *reconstruct* it (use shading, texture,
perspective and silhouette) or *recognise* it (classify the object and emit a typical shape
of that kind), and finds that on ShapeNet they behave like recognition: simple recognition
baselines (clustering and retrieval) match the encoder-decoders, and an oracle nearest
neighbour from the training set beats them all.

## What the shipped methods show on the embedded benchmark

On the `default` benchmark's 3,250 test items (F@1%, mean of class means): oracle nearest
neighbour 0.491, occupancy network 0.341, retrieval 0.315, AtlasNet-style patches 0.300,
clustering 0.267, voxel decoder 0.233, mean shape 0.196. The voxel decoder falls below both
recognition baselines, the patch decoder is statistically indistinguishable from retrieval
(paired Wilcoxon p = 0.31), and the occupancy network, trained longest, passes retrieval by
0.026, about half the gap between the two baselines. The Leaderboard tab recomputes these
tests (Kolmogorov-Smirnov and paired Wilcoxon) for every entry.

## The benchmark

13 classes (the 3D-R2N2 subset: airplane, bench, cabinet, car, chair, display, lamp,
loudspeaker, rifle, sofa, table, telephone, watercraft). The embedded default is a
procedurally generated set built on first start: watertight part-based shapes, each rendered
from 5 random views (137x137 RGBA, part-coloured, Lambertian shading). Shapes are normalised
so that the bounding box is centred at the origin and its longest side is 1 (the unit cube
[-0.5, 0.5]^3, +y up, front towards +z). Splits: train / val / test; the test split's
ground truth stays on the server and is never shown in this app (validation examples are
used for ground-truth comparisons).

## Metrics (exact definitions)

- **Distance** between points p and q: Euclidean, sqrt((px-qx)^2 + (py-qy)^2 + (pz-qz)^2),
  in unit-cube units (the cube's side is 1).
- **F-score at d** (headline d = 0.01, 1% of the side): precision = share of points sampled
  on the output whose nearest ground-truth point is closer than d; recall = share of
  ground-truth points whose nearest output point is closer than d;
  F = 2PR / (P + R), and 0 when P + R = 0. Also reported at 1/200, 1/50, 1/20, 1/10, 1/5.
- **IoU** of voxel grids at 32^3 (and 128^3): |A and B| / |A or B|, a voxel is occupied where
  the value is >= the threshold (0.5).
- **Chamfer-L1**: 0.5 x (mean distance output -> GT + mean distance GT -> output).
- Grids are turned into surfaces by marching cubes before sampling; meshes are voxelised for
  IoU. An empty output scores 0 on F-score and IoU.

## Submission archive

One file: a .zip, .tar or .tar.gz/.tgz holding a `submission.json` manifest (method name,
representation, frame, ...) and one prediction per test item named after its item id,
`<class>/<shape id>/<view>.<ext>`; or a single .npz whose keys are the item ids. Item formats:
a voxel grid (.npy / .npz bool, integer or float (R, R, R), axes (x, y, z), occupied where
\>= 0.5; or .binvox), a point cloud (.npy (N, 3), .ply, .xyz) or a mesh (.obj, .off, .ply,
.glb), in the unit cube and in the benchmark's frame. Every item is checked before anything
is scored: one bad item rejects the submission with the list of problems; a missing item
scores the worst values. `python -m leaderboard template --benchmark DIR --out example.zip`
writes a valid example. The Leaderboard shows F@1% and IoU per class next to the recognition
baselines and the oracle.

## Orientation of downloads

The 3D viewer and every download (GLB, OBJ, PLY, STL) come from the same mesh with the same
transform: right-handed, **+y up**, the object's front towards **+z**, in the unit cube.
Occupancy grids (.npy, .binvox) are bool (R, R, R), indexed (x, y, z); voxel (i, j, k)
covers [-0.5 + i/R, -0.5 + (i+1)/R) along x, likewise y and z.
"""
