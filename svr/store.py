"""Which methods the demo offers and where their weights come from.

`ModelStore(models_dir)` loads methods lazily from `<models dir>/<name>/` (thread-safe) and
lists the registry's demo methods with whether their weights exist; a missing folder is
reported as "no weights for <name> yet" (`ModelUnavailable`) instead of failing the app.

`DEFAULT_METHOD` is the one place that names the demo's default method (the Reconstruct
tab's preselected method, what `/reconstruct` runs when no method is given, and
`python -m svr.reconstruct`'s default). It is the method that does best on *photos*: with the
weights trained on photo-style views, clustering and retrieval are level on the photo-style
test set (F@1% 0.216 and 0.224, class accuracy 67.7 % and 70.4 %), and clustering recognises
real shapes better (49.5 % against 38.1 %; README, "Off our renders"). When its weights are
missing, the first demo method with weights is used (`ModelStore.default_method`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_METHOD", "MethodInfo", "ModelStore", "ModelUnavailable"]

logger = logging.getLogger(__name__)

#: The demo's default method: the one that does best on photos (a registry name, svr.models).
DEFAULT_METHOD = "clustering"


class ModelUnavailable(RuntimeError):
    """A method cannot run: unknown name or no weights on disk yet."""


@dataclass(frozen=True)
class MethodInfo:
    """One selectable method: registry name, kind ("recognition baseline" or
    "encoder-decoder"), a one-line description, and whether its weights folder exists."""

    name: str
    kind: str
    description: str
    weights_dir: Path
    has_weights: bool

    @property
    def label(self) -> str:
        """The line shown in the model selector."""
        missing = "" if self.has_weights else " [no weights yet]"
        return f"{self.name} ({self.kind}){missing}"

    @property
    def line(self) -> str:
        """One line: name, kind, description, weights status."""
        missing = (
            ""
            if self.has_weights
            else f" **No weights for {self.name} yet** (expected in `{self.weights_dir}`)."
        )
        return f"**{self.name}** ({self.kind}): {self.description}{missing}"


def _registry() -> dict[str, Any]:
    from svr import models

    return dict(models.REGISTRY)


class ModelStore:
    """Loads methods from `models_dir/<name>/` on first use and keeps them (thread-safe)."""

    def __init__(self, models_dir: str | os.PathLike):
        self.models_dir = Path(models_dir)
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}

    def methods(self) -> list[MethodInfo]:
        """Every registry method that needs no ground truth, in registry order."""
        try:
            from svr import models

            names = list(models.available_models(demo_only=True))
            registry = _registry()
        except (ImportError, AttributeError) as exc:  # the registry is not installed
            logger.error("no reconstruction methods available: %s", exc)
            return []
        out = []
        for name in names:
            entry = registry[name]
            if getattr(entry, "needs_ground_truth", False):
                continue
            folder = self.models_dir / name
            description = str(getattr(entry, "description", "") or "").strip()
            out.append(
                MethodInfo(
                    name=name,
                    kind=str(getattr(entry, "kind", "encoder-decoder")),
                    description=description.splitlines()[0] if description else "",
                    weights_dir=folder,
                    has_weights=folder.is_dir() and any(folder.iterdir()),
                )
            )
        return out

    def default_method(self, methods: list[MethodInfo] | None = None) -> str | None:
        """`DEFAULT_METHOD` if its weights exist, else the first method with weights, else
        the first method (None when no method is registered)."""
        methods = self.methods() if methods is None else methods
        with_weights = [m.name for m in methods if m.has_weights]
        if DEFAULT_METHOD in with_weights:
            return DEFAULT_METHOD
        if with_weights:
            return with_weights[0]
        return methods[0].name if methods else None

    def get(self, name: str) -> Any:
        """The loaded model `name`; ModelUnavailable if unknown or its weights are missing."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:
            if name in self._models:
                return self._models[name]
            from svr import models

            known = {m.name: m for m in self.methods()}
            if name not in known:
                raise ModelUnavailable(
                    f"unknown method {name!r}: choose one of {', '.join(sorted(known)) or 'none'}"
                )
            folder = self.models_dir / name
            if not known[name].has_weights:
                raise ModelUnavailable(
                    f"no weights for {name} yet: expected a folder {folder} "
                    f"(train it with `python -m svr.train` or copy the shipped weights there)"
                )
            start = time.perf_counter()
            model = models.load_model(name, folder)
            logger.info("loaded %s from %s in %.2f s", name, folder, time.perf_counter() - start)
            with self._lock:
                self._models[name] = model
            return model
