"""Training of the reconstruction methods, and its command line.

    python -m svr.train METHOD --data DIR --out DIR [--epochs N] [--batch-size N] [--seed N]
                               [--max-minutes M] [--max-items N] [--val-items N]
                               [--pool POOL ...] [--init DIR] [--init-encoder DIR]
                               [--device cpu|cuda]
                               [--build PRESET] [--pool-views V] [--workers N]

With `--build PRESET` a missing `--data` benchmark is built first, and with `--pool` a
missing pool is rendered first (`--pool` may be given more than once: e.g. pools of other
seeds add more photo-style views of the same shapes) (`--pool-views` per shape), both with `--workers` processes:
on a machine with many cores and a CUDA GPU one command generates the training data and
trains, e.g. `python -m svr.train voxel --data bench --build default --pool pool
--workers 16 --device cuda --out model`.

One run: fixed seeds, `torch.set_num_threads(2)`; the train split is read into memory once
(`svr.data.dataset.load_training_data`), with the photo-style views of a pool
(`svr.data.pool`, `--pool`) appended to the benchmark's own; `model.prepare` fits the non-gradient part; the
networks are trained with Adam and a cosine learning-rate decay, with a tqdm bar, until the
epochs are done or the time budget (counted from the start of the run) is spent — at least one
batch always runs; then the model is validated on a seeded subset of the val split (F@1% and
IoU at 32^3 with `svr.evaluation`) and saved with `save_pretrained` (config.json, model.pt,
arrays.npz, MODEL_CARD.md with the data identifier, hyperparameters, time and validation
scores).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svr.data.dataset import load_training_data
from svr.data.layout import Benchmark
from svr.io import atomic_path
from svr.models import REGISTRY, model_class
from svr.models.base import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ReconstructionModel,
    default_device,
    resolve_pretrained_path,
)

__all__ = ["TrainResult", "seed_everything", "train", "validate", "main", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced: the trained model, where it was saved and its training record."""

    model: ReconstructionModel
    out_dir: Path
    info: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds third-party code that uses the legacy global state
    torch.manual_seed(seed)


def validate(
    model: ReconstructionModel, benchmark: Benchmark, n_items: int = 100, seed: int = 0
) -> dict[str, float]:
    """Mean F@1% and IoU at 32^3 over a seeded subset of at most `n_items` val items.

    Returns {"val_fscore@0.01", "val_iou", "val_items"}; an empty val split gives NaN scores."""
    from svr.evaluation import Protocol, Scorer

    items = benchmark.items("val")
    if len(items) > n_items:
        rng = np.random.default_rng(seed)
        items = [items[i] for i in np.sort(rng.choice(len(items), n_items, replace=False))]
    if not items or n_items <= 0:
        return {"val_fscore@0.01": float("nan"), "val_iou": float("nan"), "val_items": 0}
    scorer = Scorer(Protocol(iou_resolutions=(32,)))
    preds = model.reconstruct_items(benchmark, items)
    f, iou = [], []
    for item, pred in zip(items, preds, strict=False):
        score = scorer.score(pred, benchmark.ground_truth(item))
        f.append(score.fscore[0.01])
        if score.iou is not None:
            iou.append(score.iou)
    return {
        "val_fscore@0.01": round(float(np.mean(f)), 4),
        "val_iou": round(float(np.nanmean(iou)), 4) if iou else float("nan"),
        "val_items": len(items),
    }


def _config_for(
    cls: type[ReconstructionModel],
    epochs: int | None,
    batch_size: int | None,
    seed: int,
    overrides: dict[str, Any] | None,
    base: Any = None,
) -> Any:
    config = cls.config_class() if base is None else base
    changes: dict[str, Any] = dict(overrides or {})
    if epochs is not None:
        changes["epochs"] = epochs
    if batch_size is not None:
        changes["batch_size"] = batch_size
    changes["seed"] = seed
    names = {f.name for f in dataclasses.fields(config)}
    unknown = set(changes) - names
    if unknown:
        raise ValueError(
            f"{cls.name} has no config fields {sorted(unknown)}; known: {sorted(names)}"
        )
    if changes.get("epochs", 0) < 0 or changes.get("batch_size", 1) < 1:
        raise ValueError("epochs must be >= 0 and batch size >= 1")
    return dataclasses.replace(config, **changes)


def train(
    method: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    max_minutes: float | None = None,
    max_items: int | None = None,
    val_items: int = 100,
    config_overrides: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    threads: int = 2,
    init_encoder: str | os.PathLike | None = None,
    pool: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    resume: bool = False,
    checkpoint_minutes: float = 10.0,
    init: str | os.PathLike | None = None,
) -> TrainResult:
    """Train `method` on the train split of the benchmark at `data`, save it to `out`.

    Args:
        method: a registry name (`svr.models.REGISTRY`).
        data / out: benchmark folder / output model folder.
        epochs, batch_size: override the method's defaults (its config dataclass).
        seed: seed of everything (data subsets, k-means, initialisation, batches).
        max_minutes: wall-clock budget of the whole run; the gradient loop stops after the
            batch that exceeds it (at least one batch runs).
        max_items: train on a seeded subset of at most this many (shape, view) items.
        val_items: val items scored after training (0 to skip validation).
        config_overrides: further config fields, e.g. {"n_clusters": 50}.
        device: default cuda if available, else cpu.
        progress: tqdm bars.
        threads: torch CPU threads.
        init_encoder: a saved model folder whose image encoder initialises this model's
            (the analogue of the ImageNet-pretrained encoders of Occupancy Networks and
            AtlasNet); the architectures must match.
        pool: a photo pool of this benchmark's train split (`svr.data.pool`), or several,
            whose images are trained on beside the benchmark's views.
        resume: continue from `out`/checkpoint.pt (written every `checkpoint_minutes` of
            training) when it is a checkpoint of the same run (method, config, data); the
            time budget then counts the earlier runs' time too. The checkpoint is removed once
            the model is saved.
        init: a saved model folder of the same method to fine-tune: its config is this run's
            starting config (`epochs`, `batch_size` and `config_overrides` change it) and its
            weights initialise every tensor of the same name; modules it lacks (e.g. the class
            and camera heads, `view_heads=true`, of older weights) start fresh.
    """
    start = time.perf_counter()
    torch.set_num_threads(threads)
    seed_everything(seed)
    cls = model_class(method)
    base = None if init is None else _saved_config(cls, init)
    config = _config_for(cls, epochs, batch_size, seed, config_overrides, base)
    bench = Benchmark(data)
    dev = torch.device(device) if device is not None else default_device()
    fields = cls.target_fields
    train_data = load_training_data(
        bench,
        "train",
        fields=fields,
        image_size=config.image_size if hasattr(config, "image_size") else 64,
        max_items=max_items,
        seed=seed,
        progress=progress,
    )
    clean_images = train_data.num_images
    photo_pools = _pools(pool)
    if photo_pools:
        from svr.data.pool import load_pool

        _check_distinct(photo_pools)
        for photo_pool in photo_pools:
            load_pool(photo_pool, train_data)
    load_seconds = time.perf_counter() - start
    model = cls(config).to(dev)
    if init is not None:
        copy_weights(model, init)
    if init_encoder is not None:
        copy_encoder(model, init_encoder)
    model.prepare(train_data, progress=progress)
    prepare_seconds = time.perf_counter() - start - load_seconds
    budget = math.inf if max_minutes is None else 60.0 * max_minutes

    steps, epochs_done, last_loss = 0, 0.0, float("nan")
    resumed_from, elapsed_before = 0, 0.0
    ckpt_path = Path(out) / CHECKPOINT_FILE

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    if model.trainable and model.config.epochs > 0:
        mask = model.training_image_mask(train_data)
        chosen = (
            torch.arange(train_data.num_images) if mask is None else torch.nonzero(mask).flatten()
        )
        bs = min(model.config.batch_size, len(chosen))
        per_epoch = max(1, len(chosen) // bs)
        total_steps = per_epoch * model.config.epochs
        opt = torch.optim.Adam(
            model.parameters(), lr=model.config.lr, weight_decay=model.config.weight_decay
        )

        def set_lr() -> None:
            # cosine decay over the planned steps, or over the time budget if that ends sooner
            done = steps / total_steps
            if math.isfinite(budget):
                done = max(done, elapsed() / budget)
            for group in opt.param_groups:
                group["lr"] = model.config.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

        gen = torch.Generator().manual_seed(seed)
        occ_per_step = getattr(model.config, "occ_per_step", 1024)
        pts_per_step = getattr(model.config, "points_per_step", 2500)
        fingerprint = _run_fingerprint(model, train_data, bs)
        first_epoch, first_batch, order = 0, 0, None
        if resume and ckpt_path.is_file():
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if state.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"{ckpt_path} is a checkpoint of another run (method, config or data "
                    "differ); remove it or choose another --out"
                )
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            steps, first_epoch, first_batch = state["steps"], state["epoch"], state["batch"]
            order, elapsed_before = state["order"], state["elapsed"]
            resumed_from = steps
            logger.info("resumed from %s at step %d (epoch %d)", ckpt_path, steps, first_epoch + 1)
        from tqdm.auto import tqdm

        def save_checkpoint(epoch: int, b: int, epoch_order: torch.Tensor) -> None:
            Path(out).mkdir(parents=True, exist_ok=True)
            payload = {
                "fingerprint": fingerprint, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "generator": gen.get_state(), "steps": steps,
                "epoch": epoch, "batch": b, "order": epoch_order, "elapsed": elapsed(),
            }  # fmt: skip
            with atomic_path(ckpt_path) as tmp:
                torch.save(payload, tmp)

        model.train()
        bar = tqdm(total=total_steps, initial=steps, desc=f"train {method}", disable=not progress)
        stop = False
        running = None
        last_save = time.perf_counter()
        for epoch in range(first_epoch, model.config.epochs):
            if order is None or epoch != first_epoch:
                order = chosen[torch.randperm(len(chosen), generator=gen)]
            for b in range(first_batch if epoch == first_epoch else 0, per_epoch):
                set_lr()
                batch = train_data.batch(
                    order[b * bs : (b + 1) * bs], dev, occ_per_step, pts_per_step, gen
                )
                loss = model.training_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                last_loss = float(loss.detach())
                running = last_loss if running is None else 0.95 * running + 0.05 * last_loss
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}", epoch=epoch + 1)
                if time.perf_counter() - last_save > 60.0 * checkpoint_minutes:
                    save_checkpoint(epoch, b + 1, order)
                    last_save = time.perf_counter()
                if elapsed() > budget:
                    stop = True
                    epochs_done = epoch + (b + 1) / per_epoch
                    break
            if stop:
                logger.warning("time budget of %.2f min reached after %d steps", max_minutes, steps)
                break
            epochs_done = epoch + 1
        bar.close()
    model.eval()
    train_seconds = time.perf_counter() - start
    scores = validate(model, bench, val_items, seed) if val_items > 0 else {}
    info: dict[str, Any] = {
        "data": bench.meta.identifier,
        "data_frame": bench.meta.frame,
        "data_preset": bench.meta.preset,
        "train_items": train_data.num_images,
        "train_items_benchmark_views": clean_images,
        "train_items_photo_pool": train_data.num_images - clean_images,
        "train_targets": train_data.num_targets,
        "epochs_completed": round(epochs_done, 3),
        "steps": steps,
        "final_batch_loss": round(last_loss, 5) if math.isfinite(last_loss) else None,
        "load_seconds": round(load_seconds, 1),
        "prepare_seconds": round(prepare_seconds, 1),
        "training_seconds": round(train_seconds, 1),
        "stopped_by_time_budget": bool(steps and epochs_done < model.config.epochs),
        "resumed_at_step": resumed_from or None,
        "training_seconds_all_runs": round(elapsed(), 1),
        "seed": seed,
        "device": str(dev),
        "torch": torch.__version__,
        "cpu_threads": threads,
        "machine": platform.machine(),
    }
    if max_items is not None:
        info["max_items"] = max_items
    if init is not None:
        info["initialised_from"] = _describe_model(init)
    if init_encoder is not None:
        info["encoder_initialised_from"] = _describe_model(init_encoder)
    if photo_pools:
        info["photo_pool"] = "; ".join(_describe_pool(p) for p in photo_pools)
    info.update(scores)
    model.training_info = {**model.training_info, **info}
    out_dir = model.save_pretrained(out)
    ckpt_path.unlink(missing_ok=True)
    logger.info("saved %s to %s (%s)", method, out_dir, scores)
    return TrainResult(model, out_dir, model.training_info)


def _run_fingerprint(model: ReconstructionModel, data: Any, batch_size: int) -> str:
    """What must match for a checkpoint to continue this run: method, config, data."""
    import hashlib
    import json

    text = json.dumps(
        [model.name, dataclasses.asdict(model.config), data.benchmark_id, data.num_images,
         data.num_targets, batch_size],
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _saved_config(cls: type[ReconstructionModel], source: str | os.PathLike) -> Any:
    """The config of the saved `cls` model folder `source` (`--init`); ValueError for another
    method's folder or an unsupported format."""
    try:
        return cls.read_saved_config(resolve_pretrained_path(source))[0]
    except ValueError as exc:
        raise ValueError(f"--init: {exc} (--init-encoder takes only an image encoder)") from None


def copy_weights(model: ReconstructionModel, source: str | os.PathLike) -> int:
    """Load every tensor of the saved model folder `source` into the same-named tensor of
    `model`; only the class and camera heads (`view.`) may be missing on either side.
    Returns the number of tensors copied.

    Raises ValueError when a tensor's shape differs or other tensors are missing."""
    folder = resolve_pretrained_path(source)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in set(own) ^ set(state) if not k.startswith("view.")]
    if wrong or missing:
        names = sorted(wrong or missing)
        raise ValueError(
            f"the weights at {folder} do not fit this {model.name} model "
            f"({'other shapes' if wrong else 'missing tensors'}: {', '.join(names[:3])}); "
            "keep the saved config's architecture fields"
        )
    shared = {k: v for k, v in state.items() if k in own}
    model.load_state_dict(shared, strict=False)
    return len(shared)


def copy_encoder(model: ReconstructionModel, source: str | os.PathLike) -> None:
    """Load the image encoder weights of the saved model folder `source` into `model.encoder`
    (and its class and camera heads into `model.view`, when both models have them).

    Raises ValueError when either model has no encoder or the architectures differ."""
    folder = resolve_pretrained_path(source)
    if not hasattr(model, "encoder"):
        raise ValueError(f"{model.name} has no image encoder to initialise")
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    if not enc:
        raise ValueError(f"the model at {folder} has no image encoder")
    try:
        model.encoder.load_state_dict(enc)
    except RuntimeError as exc:
        raise ValueError(
            f"the encoder at {folder} does not match {model.name}'s (same channels and "
            f"code_dim are needed): {str(exc).splitlines()[0]}"
        ) from None
    heads = {k[len("view.") :]: v for k, v in state.items() if k.startswith("view.")}
    if heads and getattr(model, "view", None) is not None:
        model.view.load_state_dict(heads)


def _describe_model(source: str | os.PathLike) -> str:
    """ "method (data identifier)" of a saved model folder."""
    import json

    meta = json.loads((resolve_pretrained_path(source) / CONFIG_FILE).read_text())
    return f"{meta.get('method')} ({meta.get('training', {}).get('data', 'unknown data')})"


def prepare_data(
    data: str | os.PathLike,
    build: str | None = None,
    pool: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    pool_views: int = 8,
    workers: int = 1,
    image_size: int = 128,
) -> None:
    """Build what a run needs and lacks: the benchmark at `data` (preset `build`) and the
    photo pool(s) at `pool` (`pool_views` per training shape, `image_size` px; the k-th
    missing pool of a list is rendered with seed k, so that each adds other views)."""
    if build is not None and not (Path(data) / "benchmark.json").is_file():
        from svr.data.build import build_benchmark

        logger.info("building the %r benchmark into %s", build, data)
        build_benchmark(data, preset=build, workers=workers)
    for k, folder in enumerate(_pools(pool)):
        if (Path(folder) / "pool.json").is_file():
            continue
        from svr.data.pool import PoolSpec, build_pool

        logger.info("rendering the photo pool into %s", folder)
        spec = PoolSpec(views=pool_views, image_size=image_size, seed=k)
        build_pool(data, folder, spec, workers)


def _pools(pool: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """`pool` as a list of folders (none, one, or several); the same folder twice is an
    error (its views would count twice)."""
    if pool is None:
        return []
    folders = [Path(pool)] if isinstance(pool, (str, os.PathLike)) else [Path(p) for p in pool]
    resolved = [f.resolve() for f in folders]
    if len(set(resolved)) != len(resolved):
        raise ValueError("the same photo pool is given twice; give each pool once")
    return folders


def _check_distinct(pools: list[Path]) -> None:
    """ValueError when two finished pools hold the same views (same split, family, seed and
    image size: `svr.data.pool` seeds each view from these alone)."""
    import json

    seen: dict[tuple, Path] = {}
    for folder in pools:
        if not (folder / "pool.json").is_file():
            continue  # unfinished: load_pool says so
        info = json.loads((folder / "pool.json").read_text())
        key = tuple(info.get(k) for k in ("benchmark", "split", "family", "seed", "image_size"))
        if key in seen:
            raise ValueError(
                f"the photo pools {seen[key]} and {folder} were rendered with the same seed "
                f"({info.get('seed')}) and family: their views are the same; render one with "
                "another --seed"
            )
        seen[key] = folder


def _describe_pool(pool: str | os.PathLike) -> str:
    """ "family F, V views per shape, S px, seed N" of a photo pool folder."""
    import json

    info = json.loads((Path(pool) / "pool.json").read_text())
    return (
        f"family {info.get('family')}, {info.get('views')} views per shape, "
        f"{info.get('image_size')} px, seed {info.get('seed')}"
    )


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects FIELD=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    import json

    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, list):
        value = tuple(value)
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m svr.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("method", choices=sorted(REGISTRY))
    parser.add_argument("--data", required=True, help="benchmark folder")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="wall-clock budget of the run"
    )
    parser.add_argument("--max-items", type=int, default=None, help="train on at most N items")
    parser.add_argument("--val-items", type=int, default=100, help="val items to score (0: none)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--init", default=None, metavar="DIR",
        help="saved model folder of the same method to fine-tune (its config and weights)",
    )  # fmt: skip
    parser.add_argument(
        "--init-encoder",
        default=None,
        metavar="DIR",
        help="saved model folder whose image encoder initialises this one's",
    )
    parser.add_argument(
        "--pool", action="append", default=None, metavar="POOL",
        help="photo-style views of the train split (python -m svr.data pool) to train on too; "
        "repeat for several pools",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from --out/checkpoint.pt (saved every --checkpoint-minutes)",
    )  # fmt: skip
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument(
        "--build", default=None, metavar="PRESET",
        help="build the --data benchmark with this preset first if it is missing",
    )  # fmt: skip
    parser.add_argument(
        "--pool-views", type=int, default=8, help="views per shape when rendering a missing --pool"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes for --build and rendering the pool"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_parse_override,
        default=[],
        metavar="FIELD=VALUE",
        help="config field override (JSON value), e.g. --set n_clusters=50",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cls = model_class(args.method)
        defaults = cls.config_class() if args.init is None else _saved_config(cls, args.init)
        size = dict(args.overrides).get("image_size", getattr(defaults, "image_size", 128))
        prepare_data(args.data, args.build, args.pool, args.pool_views, args.workers, size)
        result = train(
            args.method,
            args.data,
            args.out,
            args.epochs,
            args.batch_size,
            args.seed,
            args.max_minutes,
            args.max_items,
            args.val_items,
            dict(args.overrides),
            args.device,
            progress=True,
            threads=args.threads,
            init_encoder=args.init_encoder,
            pool=args.pool,
            resume=args.resume,
            checkpoint_minutes=args.checkpoint_minutes,
            init=args.init,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = result.info
    print(
        f"{args.method}: {info.get('steps')} steps, {info.get('epochs_completed')} epochs in "
        f"{info.get('training_seconds')} s; val F@1% {info.get('val_fscore@0.01')}, "
        f"IoU {info.get('val_iou')} -> {result.out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
