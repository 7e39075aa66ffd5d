"""What a method recognised and where the photo was taken from, and the 3D viewer's camera.

`ViewEstimate.from_info(prediction.info)` reads what every method reports
(`svr.models.heads`): the predicted class (one of `svr.classes.CLASS_NAMES`) with its
probability, and the camera estimate, azimuth and elevation in degrees, in the benchmark's
convention (`svr.render`): azimuth 0 looks at the object's front from +z, positive azimuth
moves the camera towards the object's right-hand side (+x), positive elevation moves it up.
Weights trained before the camera heads report no camera: azimuth and elevation are None.

`viewer_camera(estimate)` is the `camera_position` (alpha, beta, radius) of Gradio's
`gr.Model3D` that looks at the object from that camera. gradio 6.31's Model3D shows GLBs
with Babylon.js in a right-handed scene (glTF's own axes: the object frame, untouched) and an
ArcRotateCamera at `target + r (cos(alpha) sin(beta), cos(beta), sin(alpha) sin(beta))`
(alpha, beta in degrees in the Gradio API). The benchmark's camera sits at
`d (cos(el) sin(az), sin(el), cos(el) cos(az))`, so the two agree for

    beta = 90 - elevation,    alpha = 90 - azimuth  (mod 360).

radius = `NOMINAL_DISTANCE` (2.1, the middle of the benchmark's camera distances; the viewer
targets the model's bounding-box centre, the origin for a normalised shape), so the viewer's
camera sits where the estimated camera was and the perspective matches. The viewer's own
default view, alpha 90 and beta 75 with its own framing (`DEFAULT_VIEWER_CAMERA`), is
azimuth 0, elevation 15: from the front, a little above; it is used when a method reports no
camera.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from svr.classes import CLASS_NAMES
from svr.render import Camera

__all__ = [
    "DEFAULT_VIEWER_CAMERA",
    "NOMINAL_DISTANCE",
    "NOMINAL_FOV",
    "ViewEstimate",
    "viewer_camera",
]

# The benchmark's cameras (svr.render.CameraRanges): distance 1.9-2.3, 40 degree field of view.
NOMINAL_DISTANCE = 2.1
NOMINAL_FOV = 40.0
# gr.Model3D's default view (Babylon viewer: alpha pi/2, beta pi/2.4), radius chosen by it.
DEFAULT_VIEWER_CAMERA: tuple[float, float, None] = (90.0, 75.0, None)
_ELEVATION_LIMIT = 89.0  # svr.render.Camera's range; the heads give [-20, 50]


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ViewEstimate:
    """A method's answer to "what is it, and from where": predicted_class (a class name or
    None), class_probability in [0, 1] (or None), azimuth in [0, 360) and elevation in
    [-89, 89] degrees (both None when the method reports no camera)."""

    predicted_class: str | None = None
    class_probability: float | None = None
    azimuth: float | None = None
    elevation: float | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, object] | None) -> ViewEstimate:
        """Read `Prediction.info`; values that are missing or malformed become None (a camera
        needs both angles)."""
        info = info or {}
        name = info.get("predicted_class")
        predicted = name if isinstance(name, str) and name in CLASS_NAMES else None
        probability = _finite(info.get("class_probability")) if predicted else None
        if probability is not None:
            probability = min(1.0, max(0.0, probability))
        azimuth, elevation = _finite(info.get("azimuth")), _finite(info.get("elevation"))
        if azimuth is None or elevation is None:
            azimuth = elevation = None
        else:
            azimuth = azimuth % 360.0
            elevation = min(_ELEVATION_LIMIT, max(-_ELEVATION_LIMIT, elevation))
        return cls(predicted, probability, azimuth, elevation)

    @property
    def has_camera(self) -> bool:
        return self.azimuth is not None and self.elevation is not None

    def camera(self, distance: float = NOMINAL_DISTANCE, fov: float = NOMINAL_FOV) -> Camera | None:
        """The estimated camera (`svr.render.Camera`) at `distance` with `fov`, or None."""
        if not self.has_camera:
            return None
        return Camera(float(self.azimuth), float(self.elevation), distance, fov)

    def camera_text(self) -> str:
        """One line for people: 'azimuth 35°, elevation 20°' or why there is none."""
        if not self.has_camera:
            return "no camera estimate (weights trained before the camera heads)"
        return f"azimuth {self.azimuth:.0f}°, elevation {self.elevation:.0f}°"

    def class_text(self) -> str:
        """One line for people: 'chair (p = 0.83)' or 'no class reported'."""
        if self.predicted_class is None:
            return "no class reported"
        if self.class_probability is None:
            return self.predicted_class
        return f"{self.predicted_class} (p = {self.class_probability:.2f})"


def viewer_camera(estimate: ViewEstimate | None) -> tuple[float, float, float | None]:
    """gr.Model3D `camera_position` (alpha, beta in degrees, radius in unit-cube units) that
    looks at the object from the estimated camera at `NOMINAL_DISTANCE`;
    `DEFAULT_VIEWER_CAMERA` (radius None: the viewer frames the model) without an estimate."""
    if estimate is None or not estimate.has_camera:
        return DEFAULT_VIEWER_CAMERA
    alpha = (90.0 - float(estimate.azimuth)) % 360.0
    beta = 90.0 - float(estimate.elevation)
    return (round(alpha, 3), round(beta, 3), NOMINAL_DISTANCE)
