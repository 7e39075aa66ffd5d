"""What a method recognised and from where: auxiliary heads on the image code.

`ViewHeads(code_dim)` holds three linear heads on the encoder's code (B, code_dim):

- class: logits over the 13 classes (`svr.classes.CLASS_NAMES`);
- azimuth: logits over `AZIMUTH_BINS` bins of 360 / AZIMUTH_BINS degrees, bin k centred at
  k * 15 degrees (the benchmark's convention: azimuth 0 looks at the object's front, positive
  towards its right-hand side, see `svr.render`);
- elevation: logits over `ELEVATION_BINS` bins of 5 degrees from ELEVATION_RANGE[0].

Training adds `ViewHeads.loss` (cross-entropy of each head; images whose camera is unknown,
NaN, count for the class only) to a method's own loss. At inference `describe` turns the
logits into the predicted class with its probability and an estimate of the camera:
azimuth = circular mean of the bin centres weighted by the probabilities of the most
likely bin and its two neighbours (so symmetric objects, whose front and back look alike,
give the mode rather than a meaningless average), elevation = expected value over bins.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from svr.classes import CLASS_NAMES

__all__ = [
    "AZIMUTH_BINS",
    "ELEVATION_BINS",
    "ELEVATION_RANGE",
    "ViewHeads",
    "azimuth_bins",
    "elevation_bins",
    "camera_only",
    "mirror_softmax",
]

AZIMUTH_BINS = 24
ELEVATION_RANGE = (-20.0, 50.0)  # degrees; training cameras lie within [-15, 45]
ELEVATION_BINS = 14
_EL_STEP = (ELEVATION_RANGE[1] - ELEVATION_RANGE[0]) / ELEVATION_BINS


def azimuth_bins(azimuth: torch.Tensor) -> torch.Tensor:
    """Bin index int64 (B,) of azimuths in degrees (any real value; taken modulo 360)."""
    step = 360.0 / AZIMUTH_BINS
    return torch.round(torch.remainder(azimuth, 360.0) / step).to(torch.int64) % AZIMUTH_BINS


def elevation_bins(elevation: torch.Tensor) -> torch.Tensor:
    """Bin index int64 (B,) of elevations in degrees (clamped to ELEVATION_RANGE)."""
    index = torch.floor((elevation - ELEVATION_RANGE[0]) / _EL_STEP).to(torch.int64)
    return index.clamp(0, ELEVATION_BINS - 1)


def mirror_softmax(
    head: nn.Module, code: torch.Tensor, mirrored: torch.Tensor | None
) -> torch.Tensor:
    """softmax(head(code)) over dim 1, averaged with that of the `mirrored` codes if given."""
    probs = torch.softmax(head(code), 1)
    if mirrored is not None:
        probs = (probs + torch.softmax(head(mirrored), 1)) / 2
    return probs


def camera_only(view: dict[str, Any]) -> dict[str, Any]:
    """The camera estimate of a `ViewHeads.describe` entry without its class (a recognition
    baseline reports the class of its own answer instead)."""
    return {k: v for k, v in view.items() if k in ("azimuth", "elevation", "azimuth_probability")}


class ViewHeads(nn.Module):
    """Class, azimuth and elevation heads: code (B, code_dim) -> three logit tensors."""

    def __init__(self, code_dim: int, n_classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.cls = nn.Linear(code_dim, n_classes)
        self.azimuth = nn.Linear(code_dim, AZIMUTH_BINS)
        self.elevation = nn.Linear(code_dim, ELEVATION_BINS)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.cls(code), self.azimuth(code), self.elevation(code)

    def loss(
        self,
        code: torch.Tensor,
        class_ids: torch.Tensor,
        azimuth: torch.Tensor | None = None,
        elevation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy of the class head plus, where the camera is known (finite
        azimuth / elevation in degrees, float (B,)), of the two camera heads."""
        cls, az, el = self(code)
        total = nn.functional.cross_entropy(cls, class_ids)
        if azimuth is not None and elevation is not None:
            known = torch.isfinite(azimuth) & torch.isfinite(elevation)
            if bool(known.any()):
                total = total + nn.functional.cross_entropy(az[known], azimuth_bins(azimuth[known]))
                total = total + nn.functional.cross_entropy(
                    el[known], elevation_bins(elevation[known])
                )
        return total

    @torch.no_grad()
    def describe(
        self, code: torch.Tensor, mirrored: torch.Tensor | None = None
    ) -> list[dict[str, Any]]:
        """Per image: predicted_class, class_probability, class_top3 [(name, p)], azimuth and
        elevation (degrees), azimuth_probability (mass of the chosen bin and neighbours).
        With the codes of the mirrored images, the class probabilities are the mean of both
        (the camera is the image's own: a mirror image's azimuth is mirrored)."""
        p_cls = mirror_softmax(self.cls, code, mirrored).float().cpu()
        az, el = (t.float().cpu() for t in (self.azimuth(code), self.elevation(code)))
        p_az = torch.softmax(az, 1)
        p_el = torch.softmax(el, 1)
        el_centres = ELEVATION_RANGE[0] + _EL_STEP * (torch.arange(ELEVATION_BINS) + 0.5)
        step = 2 * math.pi / AZIMUTH_BINS
        out = []
        for i in range(len(code)):
            top = torch.topk(p_cls[i], min(3, p_cls.shape[1]))
            k = int(p_az[i].argmax())
            near = [(k - 1) % AZIMUTH_BINS, k, (k + 1) % AZIMUTH_BINS]
            w = p_az[i, near]
            angles = torch.tensor(near, dtype=torch.float32) * step
            azimuth = (
                math.degrees(
                    math.atan2(float((w * angles.sin()).sum()), float((w * angles.cos()).sum()))
                )
                % 360.0
            )
            out.append(
                {
                    "predicted_class": CLASS_NAMES[int(top.indices[0])],
                    "class_probability": round(float(top.values[0]), 4),
                    "class_top3": [
                        (CLASS_NAMES[int(j)], round(float(v), 4))
                        for v, j in zip(top.values, top.indices, strict=True)
                    ],
                    "azimuth": round(azimuth, 1),
                    "azimuth_probability": round(float(w.sum()), 4),
                    "elevation": round(float((p_el[i] * el_centres).sum()), 1),
                }
            )
        return out
