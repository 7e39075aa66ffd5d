"""Text of the Reconstruct tab: what a reconstruction reports, as Markdown (no gradio, no
logic: everything shown is computed by `svr.inference`)."""

from __future__ import annotations

from svr.inference import MethodInfo, Reconstruction

__all__ = [
    "camera_cell",
    "methods_markdown",
    "recognition_markdown",
    "short_value",
    "stats_markdown",
    "view_line",
]


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


def methods_markdown(methods: list[MethodInfo]) -> str:
    """One bullet per method: name, kind, description, weights status."""
    if not methods:
        return "No reconstruction methods are registered."
    return "\n".join(f"- {m.line}" for m in methods)
