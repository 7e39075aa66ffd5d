"""Survey: real ShapeNet-derived shapes (what3d's cluster mean shapes) vs the procedural families.

Real data: the paper's 500 cluster mean shapes (`cluster_mean_shapes.zip`, binvox_mean/<k>.binvox,
128^3) and `val_images_true_cluster.txt.gz` ("<class>/<model id>/<view>.png <k>"). Each cluster is
given its majority class over the validation images assigned to it; clusters whose majority
class is one of our 13 are kept (purity = that class's share of the cluster's images).

Frame. Read with `svr.io.read_binvox_bytes` (axes (x, y, z), binvox-rw fix_coords=True), every
kept mean shape is axis-aligned with +y up (table tops are horizontal, airplanes and cars lie
along z, their bounding boxes fill the grid on those axes), the chair and sofa backs, airplane
fins and car cabins sit towards +z: the front faces -z, ShapeNet's canonical frame, not a
per-view camera frame. We turn it into ours (front +z) by 180 degrees about y: grid[::-1, :, ::-1].
The descriptors (`svr.data.descriptors`) trust only the up axis anyway.

For each class the script compares the real shapes with `--per-class` procedural ones
(`generate_shape(class, seed)`, seeds 0..n-1) on the descriptors, finds each real shape's
nearest procedural shapes (weighted z-scores, fitted on the procedural pool) and reports the
share whose nearest neighbour has the right class. Because the real shapes are means (legs,
wings and masts that move from member to member vanish from them), it also applies the
paper's clustering to each family (`--per-cluster` shapes per K-means cluster, thresholded
means) and reports the same accuracy against those procedural means. It writes to `--out`:

    survey.json          class mapping, per-class descriptor medians, NN accuracy, each real
                         shape's nearest procedural shapes, generation time per shape
    figures/<class>.png  real shapes (top), each one's nearest procedural shape (class in
                         green if right, red if wrong), shapes of the class's family, and
                         cluster means of the family (bottom)
    descriptors.npz      every descriptor (real and procedural) with its class
    nn_tiles.npz         renders of each real shape's nearest procedural shape (for --before)

With `--before DIR` (the `--out` of a run on the previous generator) it also prints the
accuracy before and after and draws `--figure` (default assets/real_vs_procedural.png): per
class, its three most common real shapes, and the nearest procedural shape of each before and
after.

    python benchmarks/real_shapes_survey.py --out /tmp/survey-after --before /tmp/survey-before
    python benchmarks/real_shapes_survey.py --out /tmp/iou --preset-iou default  # ~3 min

About 3-5 minutes on 2 cores with the default 100 procedural shapes per class.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import logging
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw

try:  # PYTHONPATH may name another checkout (e.g. the previous generator)
    import svr  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svr.classes import CLASS_NAMES  # noqa: E402
from svr.data.descriptors import (  # noqa: E402
    FEATURE_NAMES,
    Standardizer,
    connected_components,
    describe_grid,
    nearest_neighbours,
    neighbour_class_accuracy,
)
from svr.data.importers.common import normalize_grid  # noqa: E402
from svr.data.importers.what3d import map_class  # noqa: E402
from svr.data.procedural import generate_shape  # noqa: E402
from svr.geometry import grid_to_mesh, voxelize_mesh  # noqa: E402
from svr.io import read_binvox_bytes  # noqa: E402
from svr.render import Camera, render  # noqa: E402

log = logging.getLogger("real_shapes_survey")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "what3d-cluster-means"
RESOLUTION = 64
TILE = 96
VIEW = Camera(azimuth=35.0, elevation=25.0, distance=2.0, fov=40.0)
COLOR = np.array([0.72, 0.72, 0.78])
# descriptors shown per class in the report (the rest are in survey.json)
REPORT_FEATURES = (
    "height",
    "width",
    "fill",
    "band_0",
    "footprint_low",
    "thickness_q50",
    "top_compactness",
)


@dataclass
class RealShape:
    """One kept cluster mean: grid bool (64, 64, 64) in our frame, normalised (longest side
    spans the grid); images = number of validation images assigned to the cluster."""

    cluster: int
    class_name: str
    purity: float
    images: int
    grid: np.ndarray


@dataclass
class ProceduralSample:
    """One procedural shape and its 64^3 grid (voxel centres of the unit cube)."""

    class_name: str
    seed: int
    variant: str
    mesh: trimesh.Trimesh
    grid: np.ndarray


def cluster_classes(labels_path: Path) -> dict[int, tuple[str, float, int]]:
    """Cluster -> (majority release class, its share, number of images) from the label file."""
    counts: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    with gzip.open(labels_path, "rt") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 2:
                continue
            counts[int(parts[1])][parts[0].split("/")[0]] += 1
    out = {}
    for k, c in counts.items():
        name, n = c.most_common(1)[0]
        total = sum(c.values())
        out[k] = (name, n / total, total)
    return out


def load_real(data_dir: Path) -> list[RealShape]:
    """The kept cluster means, in our frame, normalised at 64^3, sorted by cluster index."""
    labels = cluster_classes(data_dir / "val_images_true_cluster.txt.gz")
    shapes = []
    with zipfile.ZipFile(data_dir / "cluster_mean_shapes.zip") as z:
        for k in sorted(labels):
            name, purity, images = labels[k]
            ours = map_class(name)
            if ours is None:
                continue
            grid = read_binvox_bytes(z.read(f"binvox_mean/{k}.binvox"), f"{k}.binvox")
            grid = grid[::-1, :, ::-1]  # ShapeNet front -z -> ours +z (180 degrees about y)
            g64, _, _ = normalize_grid(grid, RESOLUTION)
            shapes.append(RealShape(k, ours, purity, images, g64))
    return shapes


def procedural_samples(per_class: int) -> tuple[list[ProceduralSample], dict[str, float]]:
    """`per_class` shapes of every family (seeds 0..n-1) and the mean generation time (s)."""
    out, times = [], {}
    for c in CLASS_NAMES:
        t_gen = 0.0
        for seed in range(per_class):
            t0 = time.perf_counter()
            shape = generate_shape(c, seed)
            t_gen += time.perf_counter() - t0
            m = shape.mesh
            grid = voxelize_mesh(m.vertices, m.faces, RESOLUTION)
            out.append(ProceduralSample(c, seed, shape.variant, m, grid))
        times[c] = t_gen / per_class
        log.info("%s: %d shapes, %.1f ms per shape", c, per_class, 1000 * times[c])
    return out, times


@dataclass
class ProceduralMean:
    """The thresholded mean (64^3, bool) of one K-means cluster of a family's shapes."""

    class_name: str
    members: int
    threshold: float
    grid: np.ndarray


def procedural_means(
    procedural: list[ProceduralSample], per_cluster: int, seed: int = 0
) -> list[ProceduralMean]:
    """The paper's clustering baseline applied to each family: K-means on the 32^3 grids of a
    class's shapes (K = n / per_cluster, at least 2), each cluster's mean at 64^3 thresholded
    where the mean IoU with the cluster's members is highest. Like the real cluster means,
    these lose the parts that move from member to member (legs, wings, masts)."""
    from scipy.cluster.vq import kmeans2

    out = []
    thresholds = np.arange(0.05, 0.96, 0.05)
    for c in CLASS_NAMES:
        grids = np.stack([p.grid for p in procedural if p.class_name == c])
        n = len(grids)
        coarse = grids.reshape(n, 32, 2, 32, 2, 32, 2).mean(axis=(2, 4, 6)).reshape(n, -1)
        k = max(2, round(n / per_cluster))
        _, labels = kmeans2(coarse.astype(np.float64), k, seed=seed, minit="++", iter=30)
        for j in range(k):
            members = grids[labels == j]
            if len(members) < 2:
                continue
            mean = members.mean(axis=0)
            flat = members.reshape(len(members), -1)
            best, best_t = -1.0, 0.5
            for t in thresholds:
                g = (mean >= t).ravel()
                inter = (flat & g).sum(axis=1)
                union = (flat | g).sum(axis=1)
                iou = float(np.mean(inter / np.maximum(union, 1)))
                if iou > best and g.any():
                    best, best_t = iou, float(t)
            out.append(ProceduralMean(c, len(members), best_t, mean >= best_t))
    return out


def real_mesh(grid: np.ndarray) -> trimesh.Trimesh:
    """Marching-cubes surface of a real grid, normalised (bbox centred, longest side 1)."""
    v, f = grid_to_mesh(grid.astype(np.float32), 0.5)
    m = trimesh.Trimesh(v, f, process=False)
    lo, hi = m.bounds
    m.vertices = (m.vertices - (lo + hi) / 2) / (hi - lo).max()
    return m


def tile(mesh: trimesh.Trimesh, label: str = "", label_color=(60, 60, 60)) -> np.ndarray:
    """A TILE x TILE RGB render of a mesh (one colour, white background) with a label."""
    rgba = render(mesh, np.tile(COLOR, (len(mesh.faces), 1)), VIEW, TILE, supersample=2)
    a = rgba[..., 3:] / 255.0
    rgb = (rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    img = Image.fromarray(rgb)
    if label:
        ImageDraw.Draw(img).text((3, TILE - 12), label, fill=label_color)
    return np.asarray(img)


def text_tile(lines: list[str], width: int, height: int = 16) -> np.ndarray:
    """A white strip (height * len(lines), width, 3) with lines of text."""
    img = Image.new("RGB", (width, height * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((4, 2 + height * i), line, fill=(0, 0, 0))
    return np.asarray(img)


def grid_image(rows: list[list[np.ndarray]], cols: int) -> np.ndarray:
    """Stack rows of tiles (each row padded to `cols` tiles) into one RGB image."""
    blank = np.full((TILE, TILE, 3), 255, np.uint8)
    out = []
    for row in rows:
        row = list(row) + [blank] * (cols - len(row))
        out.append(np.concatenate(row[:cols], axis=1))
    return np.concatenate(out, axis=0)


def ok_color(right: bool) -> tuple[int, int, int]:
    return (0, 130, 0) if right else (200, 0, 0)


def survey(args: argparse.Namespace) -> dict:
    """Run the survey; write survey.json, figures and tiles under args.out; return the summary."""
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    real = load_real(Path(args.data))
    counts = collections.Counter(r.class_name for r in real)
    print(f"{len(real)} clusters of our 13 classes (of 500); per class:")
    for c in CLASS_NAMES:
        purity = [r.purity for r in real if r.class_name == c]
        print(f"  {c:12s} {counts[c]:3d}  median purity {np.median(purity):.2f}")

    procedural, times = procedural_samples(args.per_class)
    t0 = time.perf_counter()
    real_d = np.array([describe_grid(r.grid) for r in real])
    proc_d = np.array([describe_grid(p.grid) for p in procedural])
    real_cc = np.array([connected_components(r.grid) for r in real])
    proc_cc = np.array([connected_components(p.grid) for p in procedural])
    log.info("descriptors: %.1f s", time.perf_counter() - t0)

    np.savez_compressed(
        out / "descriptors.npz",
        real=real_d,
        real_clusters=np.array([r.cluster for r in real]),
        real_classes=np.array([r.class_name for r in real]),
        procedural=proc_d,
        procedural_classes=np.array([p.class_name for p in procedural]),
        procedural_seeds=np.array([p.seed for p in procedural]),
        procedural_variants=np.array([p.variant for p in procedural]),
        features=np.array(FEATURE_NAMES),
    )
    std = Standardizer.fit(proc_d)
    k = 5
    nn_idx, nn_dist = nearest_neighbours(std(real_d), std(proc_d), k=k)
    real_labels = np.array([r.class_name for r in real])
    proc_labels = np.array([p.class_name for p in procedural])
    nn1 = proc_labels[nn_idx[:, 0]]
    acc, balanced, per_class = neighbour_class_accuracy(real_labels, nn1)
    vote = np.array([collections.Counter(proc_labels[row]).most_common(1)[0][0] for row in nn_idx])
    acc5, balanced5, _ = neighbour_class_accuracy(real_labels, vote)
    # like for like: real cluster means against the families' own cluster means
    means = procedural_means(procedural, args.per_cluster)
    means_d = np.array([describe_grid(m.grid) for m in means])
    means_labels = np.array([m.class_name for m in means])
    m_idx, _ = nearest_neighbours(std(real_d), std(means_d), k=1)
    m_acc, m_balanced, m_per_class = neighbour_class_accuracy(
        real_labels, means_labels[m_idx[:, 0]]
    )
    confusions = {
        c: dict(collections.Counter(nn1[real_labels == c].tolist()).most_common())
        for c in CLASS_NAMES
    }
    # how far real shapes are from their class's family, against the family's own spread
    proc_z = std(proc_d)
    spread = {}
    for c in CLASS_NAMES:
        own = proc_z[proc_labels == c]
        _, d_real = nearest_neighbours(std(real_d[real_labels == c]), own, k=1)
        _, d_self = nearest_neighbours(own, own, k=2)
        spread[c] = (float(np.median(d_real)), float(np.median(d_self[:, 1])))

    print(
        f"\nnearest procedural neighbour of the right class: {acc:.3f} of {len(real)} real "
        f"shapes, class-balanced {balanced:.3f} (5-NN vote: {acc5:.3f}, {balanced5:.3f})"
    )
    print(
        f"against the {len(means)} procedural cluster means ({args.per_cluster} shapes per "
        f"cluster): {m_acc:.3f}, class-balanced {m_balanced:.3f}"
    )
    print(
        f"{'class':12s} {'NN acc':>6s} {'means':>6s}  {'d real':>6s} {'d self':>6s}  "
        "most common NN classes"
    )
    for c in CLASS_NAMES:
        top = ", ".join(f"{n} {m}" for n, m in list(confusions[c].items())[:3])
        print(
            f"{c:12s} {per_class[c]:6.2f} {m_per_class[c]:6.2f}  {spread[c][0]:6.2f} "
            f"{spread[c][1]:6.2f}  {top}"
        )

    medians = {}
    print("\nmedian descriptors, real / procedural (components at 32^3: mean)")
    header = " ".join(f"{n[:13]:>13s}" for n in REPORT_FEATURES)
    print(f"{'class':12s} {header} {'components':>13s}")
    for c in CLASS_NAMES:
        rm = np.median(real_d[real_labels == c], axis=0)
        pm = np.median(proc_d[proc_labels == c], axis=0)
        medians[c] = {
            "real": dict(zip(FEATURE_NAMES, rm.round(4).tolist(), strict=True)),
            "procedural": dict(zip(FEATURE_NAMES, pm.round(4).tolist(), strict=True)),
            "components_real": float(real_cc[real_labels == c].mean()),
            "components_procedural": float(proc_cc[proc_labels == c].mean()),
        }
        cells = " ".join(
            f"{rm[FEATURE_NAMES.index(n)]:6.2f}/{pm[FEATURE_NAMES.index(n)]:<6.2f}"
            for n in REPORT_FEATURES
        )
        print(
            f"{c:12s} {cells} {medians[c]['components_real']:6.1f}/"
            f"{medians[c]['components_procedural']:<6.1f}"
        )

    # renders: every real shape's nearest procedural shape (for the before/after figure)
    nn_tiles = np.zeros((len(real), TILE, TILE, 3), np.uint8)
    real_tiles = {}
    for i, r in enumerate(real):
        p = procedural[nn_idx[i, 0]]
        nn_tiles[i] = tile(p.mesh, p.class_name, ok_color(p.class_name == r.class_name))
    np.savez_compressed(
        out / "nn_tiles.npz", tiles=nn_tiles, clusters=np.array([r.cluster for r in real])
    )
    for c in CLASS_NAMES:
        idx = [i for i, r in enumerate(real) if r.class_name == c]
        idx.sort(key=lambda i: -real[i].images)
        shown = idx[: args.figure_columns]
        for i in shown:
            real_tiles[i] = tile(real_mesh(real[i].grid), f"#{real[i].cluster}")
        fam = [p for p in procedural if p.class_name == c][: args.figure_columns]
        fam_means = [m for m in means if m.class_name == c][: args.figure_columns]
        rows = [
            [real_tiles[i] for i in shown],
            [nn_tiles[i] for i in shown],
            [tile(p.mesh, p.variant.split(":")[1].split(",")[0][:15]) for p in fam],
            [tile(real_mesh(m.grid), f"mean of {m.members}") for m in fam_means],
        ]
        width = args.figure_columns * TILE
        head = text_tile(
            [
                f"{c}: {counts[c]} real cluster means (top, most images first), nearest "
                f"procedural shape of each (middle): {per_class[c]:.0%} right",
                "third row: the procedural family (seeds 0..); bottom: cluster means of it",
            ],
            width,
        )
        Image.fromarray(np.concatenate([head, grid_image(rows, args.figure_columns)])).save(
            out / "figures" / f"{c}.png", optimize=True
        )

    summary = {
        "clusters_per_class": {c: counts[c] for c in CLASS_NAMES},
        "per_class_procedural": args.per_class,
        "nn_accuracy": acc,
        "nn_accuracy_balanced": balanced,
        "nn5_vote_accuracy": acc5,
        "nn5_vote_accuracy_balanced": balanced5,
        "nn_accuracy_per_class": per_class,
        "means_nn_accuracy": m_acc,
        "means_nn_accuracy_balanced": m_balanced,
        "means_nn_accuracy_per_class": m_per_class,
        "procedural_means": len(means),
        "nn_confusions": confusions,
        "distance_to_family_vs_family_spread": spread,
        "generation_seconds_per_shape": times,
        "descriptor_medians": medians,
        "real": [
            {
                "cluster": r.cluster,
                "class": r.class_name,
                "purity": round(r.purity, 3),
                "images": r.images,
                "components": int(real_cc[i]),
                "nearest": [
                    {
                        "class": procedural[j].class_name,
                        "seed": procedural[j].seed,
                        "variant": procedural[j].variant,
                        "distance": round(float(d), 4),
                    }
                    for j, d in zip(nn_idx[i], nn_dist[i], strict=True)
                ],
            }
            for i, r in enumerate(real)
        ],
    }
    (out / "survey.json").write_text(json.dumps(summary, indent=1))
    if args.before:
        compare(real, real_tiles, nn_tiles, summary, Path(args.before), Path(args.figure))
    return summary


def compare(
    real: list[RealShape],
    real_tiles: dict[int, np.ndarray],
    nn_after: np.ndarray,
    after: dict,
    before_dir: Path,
    figure: Path,
) -> None:
    """Print before/after accuracy and draw the comparison figure (3 real shapes per class)."""
    before = json.loads((before_dir / "survey.json").read_text())
    with np.load(before_dir / "nn_tiles.npz") as z:
        tiles_before = dict(zip(z["clusters"].tolist(), z["tiles"], strict=True))
    print("\nnearest-neighbour class accuracy, before -> after")
    keys = ("nn_accuracy", "nn_accuracy_balanced", "nn5_vote_accuracy")
    keys += ("means_nn_accuracy", "means_nn_accuracy_balanced")
    for key in keys:
        if key in before:
            print(f"  {key:28s} {before[key]:.3f} -> {after[key]:.3f}")
    print(f"  {'class':12s} shapes        means")
    for c in CLASS_NAMES:
        b, a = before["nn_accuracy_per_class"][c], after["nn_accuracy_per_class"][c]
        mb = before.get("means_nn_accuracy_per_class", {}).get(c, float("nan"))
        ma = after["means_nn_accuracy_per_class"][c]
        print(f"  {c:12s} {b:.2f} -> {a:.2f}  {mb:.2f} -> {ma:.2f}")
    per_row = 3
    width = 3 * per_row * TILE

    def real_tile(i: int) -> np.ndarray:
        if i not in real_tiles:
            real_tiles[i] = tile(real_mesh(real[i].grid), f"#{real[i].cluster}")
        return real_tiles[i]

    blocks = [
        text_tile(
            [
                "Real cluster mean shapes (left, the 3 most common per class) and their nearest "
                "procedural shape by descriptors,",
                f"before (middle) and after (right) the family extensions. Right class: "
                f"{before['nn_accuracy']:.0%} -> {after['nn_accuracy']:.0%} of "
                f"{len(real)} real shapes, class-balanced {before['nn_accuracy_balanced']:.0%}"
                f" -> {after['nn_accuracy_balanced']:.0%}",
            ],
            width,
        )
    ]
    for c in CLASS_NAMES:
        idx = sorted(
            (i for i, r in enumerate(real) if r.class_name == c), key=lambda i: -real[i].images
        )[:per_row]
        row = [real_tile(i) for i in idx]
        row += [tiles_before[real[i].cluster] for i in idx]
        row += [nn_after[i] for i in idx]
        b, a = before["nn_accuracy_per_class"][c], after["nn_accuracy_per_class"][c]
        blocks.append(text_tile([f"{c}   right class {b:.0%} -> {a:.0%}"], width))
        blocks.append(grid_image([row], 3 * per_row))
    # the real shapes whose nearest class the change fixed or broke, most common first, one
    # per class (fixed: up to 6 classes, broken: up to 3)
    cls_before = {r["cluster"]: r["nearest"][0]["class"] for r in before["real"]}
    cls_after = {r["cluster"]: r["nearest"][0]["class"] for r in after["real"]}
    order = sorted(range(len(real)), key=lambda i: -real[i].images)
    for label, changed, limit in (
        ("fixed", lambda r: cls_before[r.cluster] != r.class_name == cls_after[r.cluster], 6),
        ("broken", lambda r: cls_before[r.cluster] == r.class_name != cls_after[r.cluster], 3),
    ):
        hits = [i for i in order if changed(real[i])]
        picked, seen = [], set()
        for i in hits:
            if real[i].class_name not in seen:
                picked.append(i)
                seen.add(real[i].class_name)
        picked = picked[:limit]
        print(f"  {label}: {len(hits)} real shapes")
        if not picked:
            continue
        names = ", ".join(real[i].class_name for i in picked)
        blocks.append(
            text_tile([f"{label} by the change: {len(hits)} real shapes; shown ({names}):"], width)
        )
        for start in range(0, len(picked), per_row):
            idx = picked[start : start + per_row]
            row = [real_tile(i) for i in idx]
            row += [tiles_before[real[i].cluster] for i in idx]
            row += [nn_after[i] for i in idx]
            # keep the before / after columns aligned when a row is short
            blank = np.full((TILE, TILE, 3), 255, np.uint8)
            pad = per_row - len(idx)
            row = (
                row[: len(idx)]
                + [blank] * pad
                + row[len(idx) : 2 * len(idx)]
                + [blank] * pad
                + row[2 * len(idx) :]
            )
            blocks.append(grid_image([row], 3 * per_row))
    img = Image.fromarray(np.concatenate(blocks)).convert("P", palette=Image.ADAPTIVE, colors=64)
    figure.parent.mkdir(parents=True, exist_ok=True)
    img.save(figure, optimize=True)
    print(f"figure: {figure} ({figure.stat().st_size / 1024:.0f} KB)")


def preset_iou(preset: str, seed: int) -> dict[str, tuple[float, float]]:
    """Per class (IoU in, IoU out) of a preset's training split, as `python -m svr.data stats`
    computes them (32^3 grids of the object-frame meshes), without building the benchmark:
    the same plan of shape seeds (`svr.data.build.plan_shapes`), the same voxelisation."""
    from svr.data.build import plan_shapes
    from svr.data.stats import pairwise_iou

    tasks = [t for t in plan_shapes(preset, seed) if t.split == "train"]
    grids = np.zeros((len(tasks), 32**3), dtype=bool)
    labels = np.array([CLASS_NAMES.index(t.class_name) for t in tasks])
    for i, t in enumerate(tasks):
        m = generate_shape(t.class_name, t.seed).mesh
        grids[i] = voxelize_mesh(m.vertices, m.faces, 32).ravel()
    iou = pairwise_iou(grids)
    out = {}
    print(f"\n{preset} preset (seed {seed}), training split: mean pairwise 32^3 IoU")
    print(f"{'class':12s} {'shapes':>6s} {'IoU in':>7s} {'IoU out':>8s}")
    for k, c in enumerate(CLASS_NAMES):
        mine = labels == k
        block = iou[np.ix_(mine, mine)]
        within = float(block[np.triu_indices(int(mine.sum()), 1)].mean())
        between = float(iou[np.ix_(mine, ~mine)].mean())
        out[c] = (within, between)
        print(f"{c:12s} {int(mine.sum()):6d} {within:7.3f} {between:8.3f}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="what3d cluster means folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--per-class", type=int, default=100, help="procedural shapes per class")
    parser.add_argument(
        "--per-cluster", type=int, default=20, help="shapes per procedural cluster mean"
    )
    parser.add_argument("--figure-columns", type=int, default=8)
    parser.add_argument("--before", help="--out folder of a run on the previous generator")
    parser.add_argument("--figure", default="assets/real_vs_procedural.png")
    parser.add_argument(
        "--preset-iou",
        metavar="PRESET",
        help="instead: IoU in / out of PRESET's training split (seed --seed), without a build",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.preset_iou:
        result = preset_iou(args.preset_iou, args.seed)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"iou_{args.preset_iou}.json").write_text(json.dumps(result, indent=1))
        return 0
    survey(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
