"""The per-method report of a reconstruction: what it recognised, from where, and its files.

`MethodReport.to_dict()` is what `python -m svr.reconstruct --json FILE` writes (one entry
per method under "results") and the second output of the `/reconstruct` API:

    {"method": "voxel", "kind": "encoder-decoder",
     "predicted_class": "chair", "class_probability": 0.83,
     "azimuth": 35.0, "elevation": 20.0,
     "colored": true, "colored_share": 0.41,
     "files": {"glb": "voxel.glb", "obj": "voxel.obj", ...},
     "error": null}

predicted_class is one of `svr.classes.CLASS_NAMES` or null; class_probability in [0, 1] or
null; azimuth in [0, 360) and elevation in degrees, in the benchmark's camera convention
(`svr.render`: azimuth 0 looks at the front from +z, positive towards the object's right,
+x; positive elevation from above), both null when the method has no camera estimate;
colored: whether the mesh files carry vertex colours from the photo, colored_share: the
share of vertices coloured from it (null when not coloured); files: format -> path (the
CLI) or file name (the API, whose first output is the GLB itself); error: why a method
gave nothing (then the other fields are null and files is empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svr.viewpoint import ViewEstimate

if TYPE_CHECKING:
    from svr.inference import Reconstruction

__all__ = ["MethodReport"]


@dataclass(frozen=True)
class MethodReport:
    """One method's report (see the module docstring for the JSON form)."""

    method: str
    kind: str | None = None
    estimate: ViewEstimate = field(default_factory=ViewEstimate)
    files: dict[str, str] = field(default_factory=dict)
    colored: bool = False
    colored_share: float | None = None
    error: str | None = None

    @classmethod
    def from_reconstruction(
        cls, rec: Reconstruction, kind: str | None = None, names_only: bool = False
    ) -> MethodReport:
        """The report of a `svr.inference.Reconstruction`; `names_only` lists file names
        instead of paths (for API callers, who cannot read the server's disk)."""
        files = {
            fmt: (path.name if names_only else str(path))
            for fmt, path in rec.files.by_format().items()
        }
        share = rec.colors.sampled_share if rec.colored and rec.colors is not None else None
        return cls(
            method=rec.method,
            kind=kind,
            estimate=rec.estimate,
            files=files,
            colored=rec.colored,
            colored_share=None if share is None else round(share, 4),
        )

    @classmethod
    def failed(cls, method: str, kind: str | None, error: str) -> MethodReport:
        """The report of a method that produced nothing (no weights, empty shape, ...)."""
        return cls(method=method, kind=kind, error=error)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain str / float / bool / None values)."""
        e = self.estimate
        return {
            "method": self.method,
            "kind": self.kind,
            "predicted_class": e.predicted_class,
            "class_probability": e.class_probability,
            "azimuth": e.azimuth,
            "elevation": e.elevation,
            "colored": self.colored,
            "colored_share": self.colored_share,
            "files": dict(self.files),
            "error": self.error,
        }

    def with_files(self, files: dict[str, str | Path]) -> MethodReport:
        """A copy whose files are `files` (format -> path)."""
        return MethodReport(
            self.method, self.kind, self.estimate, {k: str(v) for k, v in files.items()},
            self.colored, self.colored_share, self.error,
        )  # fmt: skip
