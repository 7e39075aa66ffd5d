"""Photo -> masked, centred RGBA input for the reconstruction methods.

Chain: `load_image` (validate and decode any user file into RGBA uint8) ->
`foreground_mask` (the alpha channel if it carries a mask, otherwise GrabCut seeded
from the image border against a smooth background model) -> `crop_and_center`
(the object's bounding box scaled so its longest side is `foreground_ratio` of the
output side, centred on a transparent square). Everything runs offline on the CPU.

Bad input raises `ImageInputError` (a ValueError) with a message a user can act on. Sizes are
checked from the file's header before anything is decoded (`image_size`), whatever the image
came as (a file, bytes, or a `data:` URL: `image_from_data_url`); `preprocess` works on a copy
at most `WORK_SIDE` pixels on a side, so memory stays bounded for any accepted image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "MAX_PIXELS",
    "WORK_SIDE",
    "image_size",
    "image_from_data_url",
    "DEFAULT_FOREGROUND_RATIO",
    "ImageInputError",
    "PreprocessResult",
    "load_image",
    "alpha_mask",
    "foreground_mask",
    "crop_and_center",
    "checkerboard",
    "preprocess",
]

logger = logging.getLogger(__name__)

MAX_PIXELS = 20_000_000  # 20 megapixels
WORK_SIDE = 2048  # `preprocess` downscales larger images to this longest side first
_GRABCUT_SIDE = 256  # GrabCut runs on a copy whose longest side is this many pixels
# The benchmark's renderings frame objects so that their longest side spans 0.50-0.81 of the
# image (10th-90th percentile, median 0.67, measured over the views of a built benchmark):
# photos are re-centred to the median so that they look like what the methods were trained on.
DEFAULT_FOREGROUND_RATIO = 0.67
_MIN_FOREGROUND = 0.002  # a mask covering less than this share of the image is "no object"


class ImageInputError(ValueError):
    """The input cannot be turned into a reconstruction input; the message says why."""


@dataclass
class PreprocessResult:
    """Output of `preprocess`.

    original: RGBA uint8 (H, W, 4) as decoded; mask: bool (H, W) foreground;
    image: RGBA uint8 (S, S, 4), the centred input the methods receive;
    mask_source: "alpha" or "grabcut"; notes: what was done to the file (one line each);
    seconds: wall time the preprocessing took.
    """

    original: np.ndarray
    mask: np.ndarray
    image: np.ndarray
    mask_source: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time spent preprocessing


def _to_rgba(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Any Pillow mode -> RGBA uint8 (H, W, 4); 16-bit and float images are rescaled."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(
            f"{mode} image ({'16-bit' if top == 65535 else 'high bit depth'}) scaled to 8 bits"
        )
        img = Image.fromarray(grey, mode="L")
        mode = "L"
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB")
    elif mode in ("L", "1"):
        notes.append("greyscale image converted to RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
    return np.ascontiguousarray(rgba)


def _too_many_pixels(name: str, width: int, height: int) -> ImageInputError:
    return ImageInputError(
        f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
        f"{MAX_PIXELS / 1e6:.0f} megapixels: downscale it first"
    )


def image_size(source: str | os.PathLike | bytes, name: str = "the image") -> tuple[int, int]:
    """(width, height) in pixels from an image file's header, without decoding its pixels.

    ImageInputError for data Pillow cannot identify or images over `MAX_PIXELS`.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                width, height = img.size
    except UnidentifiedImageError:
        raise ImageInputError(
            f"{name} is not an image Pillow can read: upload a PNG, JPEG, WebP, GIF or BMP file"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(
            f"{name} is far too large (over {MAX_PIXELS / 1e6:.0f} megapixels): downscale it first"
        ) from None
    except OSError as exc:
        raise ImageInputError(f"{name} could not be opened as an image ({exc})") from None
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(name, width, height)
    return width, height


_DATA_URL = re.compile(r"\Adata:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),")


def image_from_data_url(url: str, folder: str | os.PathLike, max_bytes: int) -> Path:
    """Write the image of a base64 `data:` URL to `<folder>/<sha256>/image.<ext>` and return
    the file, after checking its size (at most `max_bytes` decoded) and its header (pixel
    limit) and before decoding any pixel. ImageInputError otherwise."""
    match = _DATA_URL.match(url[:256])
    if match is None or ";base64" not in (match.group("params") or ""):
        raise ImageInputError("the image data URL is not base64 'data:image/...;base64,...'")
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageInputError(
            f"the inline image is about {len(payload) * 3 / 4e6:.1f} MB; at most "
            f"{max_bytes / 1e6:.0f} MB: upload the file instead"
        )
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise ImageInputError("the image data URL holds invalid base64") from None
    image_size(data, "the inline image")
    with Image.open(io.BytesIO(data)) as img:
        ext = (img.format or "png").lower()
    out = Path(folder) / hashlib.sha256(data).hexdigest() / f"image.{ext}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def load_image(source: str | os.PathLike | bytes | Image.Image | np.ndarray) -> np.ndarray:
    """Read and validate an image; returns RGBA uint8 (H, W, 4).

    Accepts a path, the bytes of a file, a PIL image or an array (H, W), (H, W, 3) or
    (H, W, 4) uint8. Applies the EXIF orientation, takes the first frame of an animation,
    converts greyscale/CMYK/palette/16-bit to 8-bit RGBA. Raises ImageInputError for
    files that are not images, truncated files and images over 20 megapixels.
    """
    notes: list[str] = []
    return _load(source, notes)


def _load(
    source: str | os.PathLike | bytes | Image.Image | np.ndarray,
    notes: list[str],
    max_side: int | None = None,
) -> np.ndarray:
    if isinstance(source, np.ndarray):
        rgba = _array_to_rgba(source)
        if max_side is not None and max(rgba.shape[:2]) > max_side:
            h, w = rgba.shape[:2]
            rgba = _shrink_array(rgba, max_side)
            notes.append(
                f"downscaled from {w}x{h} to {rgba.shape[1]}x{rgba.shape[0]} for processing"
            )
        return rgba
    if isinstance(source, Image.Image):
        img = source
        name = "image"
    else:
        if isinstance(source, bytes):
            stream: io.BytesIO | Path = io.BytesIO(source)
            name = "uploaded data"
        else:
            stream = Path(source)
            name = stream.name
            if not stream.is_file():
                raise ImageInputError(f"{name}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(stream)
        except UnidentifiedImageError:
            raise ImageInputError(
                f"{name} is not an image Pillow can read: upload a PNG, JPEG, WebP, GIF or BMP file"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageInputError(
                f"{name} is far too large (over {MAX_PIXELS / 1e6:.0f} megapixels): downscale it first"
            ) from None
        except OSError as exc:
            raise ImageInputError(f"{name} could not be opened as an image ({exc})") from None
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(name, width, height)
    if width < 8 or height < 8:
        raise ImageInputError(
            f"{name} is only {width}x{height} pixels: use an image of at least 8x8"
        )
    if getattr(img, "is_animated", False):
        img.seek(0)
        notes.append(f"animated image: used the first of {getattr(img, 'n_frames', '?')} frames")
    try:
        if max_side is not None and img.format == "JPEG" and max(width, height) > 2 * max_side:
            f = max_side / max(width, height)  # decode at 1/2, 1/4 or 1/8 scale, still larger
            img.draft(img.mode, (max(1, round(width * f)), max(1, round(height * f))))
        img.load()
        orientation = _orientation(img)
        transposed = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(
            f"{name} is truncated or corrupt and cannot be decoded ({exc})"
        ) from None
    if orientation not in (0, 1):
        notes.append(f"rotated according to its EXIF orientation ({orientation})")
    img = transposed if transposed is not None else img
    rgba = _to_rgba(img, notes)
    if max_side is not None and max(rgba.shape[:2]) > max_side:
        rgba = _shrink_array(rgba, max_side)
    if rgba.shape[0] * rgba.shape[1] < width * height:  # also when decoded at a JPEG scale
        notes.append(
            f"downscaled from {width}x{height} to {rgba.shape[1]}x{rgba.shape[0]} for processing"
        )
    return rgba


def _shrink_array(rgba: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale RGBA (H, W, 4) so its longest side is `max_side` (box filter over
    alpha-premultiplied colour, so transparent pixels do not bleed into the edges)."""
    h, w = rgba.shape[:2]
    factor = max_side / max(h, w)
    nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
    small = Image.fromarray(rgba).convert("RGBa").resize((nw, nh), Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(small.convert("RGBA"), dtype=np.uint8))


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block only means "no orientation"
        return 1


def _array_to_rgba(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = np.clip(np.nan_to_num(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif arr.dtype == np.uint16:
            arr = (arr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
        else:
            arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageInputError(
            f"expected an image array (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}"
        )
    h, w = arr.shape[:2]
    if h * w > MAX_PIXELS:
        raise ImageInputError(f"image is {w}x{h}: over the {MAX_PIXELS / 1e6:.0f} megapixel limit")
    if h < 8 or w < 8:
        raise ImageInputError(f"image is only {w}x{h} pixels: use an image of at least 8x8")
    if arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full((h, w, 1), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(arr)


def alpha_mask(rgba: np.ndarray) -> np.ndarray | None:
    """The alpha channel as a bool mask (H, W) if it carries one, else None.

    An alpha channel "carries a mask" when at least 0.1% of the pixels are (nearly)
    transparent (alpha < 128); a fully opaque channel says nothing.
    """
    alpha = rgba[..., 3]
    transparent = alpha < 128
    if transparent.mean() < 0.001:
        return None
    return ~transparent


def _border_band(h: int, w: int, width: int) -> np.ndarray:
    band = np.zeros((h, w), bool)
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    return band


def _background_distance(rgb: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """Colour distance of each pixel to a background interpolated from the image border.

    Two predictions: each row interpolated between its left and right border colours, each
    column between its top and bottom ones (border colours: medians over the band of
    `width` pixels, smoothed along the border). A pixel's distance is the smaller of the two,
    so horizontal structure (a wall meeting a floor) and vertical or diagonal gradients are
    both background. Returns (distance float64 (H, W), noise): noise is a robust spread of
    the distance on a ring just inside the band (texture raises the threshold).
    """
    img = rgb.astype(np.float64)
    h, w = img.shape[:2]

    def smooth(a: np.ndarray) -> np.ndarray:  # running median of k border colours (L, 3)
        k = max(3, (len(a) // 20) | 1)
        pad = np.pad(a, ((k // 2, k // 2), (0, 0)), mode="edge")
        return np.median(sliding_window_view(pad, k, axis=0), axis=-1)

    left, right = (
        smooth(np.median(img[:, :width], axis=1)),
        smooth(np.median(img[:, -width:], axis=1)),
    )
    top, bottom = smooth(np.median(img[:width], axis=0)), smooth(np.median(img[-width:], axis=0))
    tx = np.linspace(0.0, 1.0, w)[None, :, None]
    ty = np.linspace(0.0, 1.0, h)[:, None, None]
    by_row = left[:, None, :] * (1 - tx) + right[:, None, :] * tx
    by_col = top[None, :, :] * (1 - ty) + bottom[None, :, :] * ty
    distance = np.minimum(
        np.linalg.norm(img - by_row, axis=2), np.linalg.norm(img - by_col, axis=2)
    )
    ring = _border_band(h, w, 2 * width) & ~_border_band(h, w, width)
    noise = float(np.percentile(distance[ring], 75)) if ring.any() else 0.0
    return distance, noise


def _largest_components(mask: np.ndarray, keep_share: float = 0.1) -> np.ndarray:
    """Keep the largest connected component and those at least `keep_share` of its size."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= keep_share * areas.max()) + 1
    return np.isin(labels, keep)


def foreground_mask(rgb: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Separate an object from its background without an alpha channel; bool (H, W).

    The border band (3% of the side) is taken as definite background; pixels far from the
    background interpolated from the border (`_background_distance`) become probable
    foreground, very far ones definite foreground; OpenCV's
    GrabCut refines the split on a copy at most 256 px on a side. Raises ImageInputError
    when the image is a single colour or no object can be separated.
    """
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    if float(rgb.reshape(-1, 3).astype(np.float32).std(axis=0).max()) < 2.0:
        raise ImageInputError("the image is a single colour: there is no object to reconstruct")
    scale = min(1.0, _GRABCUT_SIDE / max(h, w))
    small = cv2.resize(
        rgb, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    sh, sw = small.shape[:2]
    band = _border_band(sh, sw, max(2, round(0.03 * max(sh, sw))))
    distance, noise = _background_distance(small, max(2, round(0.03 * max(sh, sw))))
    threshold = max(18.0, 3.0 * noise)
    likely = (distance > threshold) & ~band
    if likely.mean() < _MIN_FOREGROUND:
        raise ImageInputError(
            "no object stands out from the background (the image looks like plain background); "
            "crop the photo around the object or upload a PNG with a transparent background"
        )
    gc_mask = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    gc_mask[likely] = cv2.GC_PR_FGD
    gc_mask[(distance > 2.5 * threshold) & ~band] = cv2.GC_FGD
    gc_mask[band] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    try:
        cv2.grabCut(bgr, gc_mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
        fg = (gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)
    except cv2.error as exc:  # GrabCut refuses degenerate colour models
        logger.warning("GrabCut failed (%s); using the background-distance mask", exc)
        fg = likely
    fg = _largest_components(fg)
    if fg.mean() < _MIN_FOREGROUND:
        raise ImageInputError(
            "could not separate an object from the background; upload a PNG with a transparent background"
        )
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(
        bool
    )
    if scale < 1.0:
        up = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        fg = up >= 0.5
    return fg


def crop_and_center(
    rgba: np.ndarray,
    mask: np.ndarray,
    foreground_ratio: float = DEFAULT_FOREGROUND_RATIO,
    size: int = 137,
) -> np.ndarray:
    """Crop the object and centre it on a transparent square; RGBA uint8 (size, size, 4).

    The mask's bounding box is scaled so that its longest side spans `foreground_ratio`
    of `size` pixels; alpha is the mask (255 inside, 0 outside, resampled smoothly).
    """
    if not 0.1 <= foreground_ratio <= 1.0:
        raise ValueError(f"foreground_ratio={foreground_ratio}: expected a value in [0.1, 1.0]")
    if size < 8:
        raise ValueError(f"size={size}: expected at least 8 pixels")
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ImageInputError("the foreground mask is empty: there is no object to reconstruct")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = rgba[y0:y1, x0:x1].copy()
    crop[..., 3] = np.where(mask[y0:y1, x0:x1], crop[..., 3], 0)
    ch, cw = crop.shape[:2]
    target = max(1.0, foreground_ratio * size)
    factor = target / max(ch, cw)
    nw, nh = max(1, round(cw * factor)), max(1, round(ch * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    # resample premultiplied colour so that transparent pixels do not bleed into the edge
    alpha = crop[..., 3:4].astype(np.float32) / 255.0
    premult = np.concatenate([crop[..., :3].astype(np.float32) * alpha, alpha * 255.0], axis=2)
    resized = cv2.resize(premult, (nw, nh), interpolation=interp)
    a = np.clip(resized[..., 3:4] / 255.0, 0, 1)
    colour = np.where(a > 1e-6, resized[..., :3] / np.maximum(a, 1e-6), 0)
    out = np.zeros((size, size, 4), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw, :3] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
    out[top : top + nh, left : left + nw, 3] = np.clip(a[..., 0] * 255 + 0.5, 0, 255).astype(
        np.uint8
    )
    return out


def checkerboard(rgba: np.ndarray, cell: int = 8) -> np.ndarray:
    """Composite RGBA (H, W, 4) over a grey checkerboard for display; RGB uint8 (H, W, 3).

    Computed in bands of rows: temporaries stay a few MB for any image size."""
    h, w = rgba.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    columns = (np.arange(w) // cell) % 2
    band = max(1, (1 << 20) // max(w, 1))
    for top in range(0, h, band):
        rows = (np.arange(top, min(top + band, h)) // cell) % 2
        board = np.where((rows[:, None] + columns[None, :]) % 2 == 0, 235.0, 190.0)
        part = rgba[top : top + band].astype(np.float32)
        alpha = part[..., 3:4] / 255.0
        mixed = part[..., :3] * alpha + board[..., None].astype(np.float32) * (1 - alpha) + 0.5
        out[top : top + band] = mixed.astype(np.uint8)
    return out


def preprocess(
    source: str | os.PathLike | bytes | Image.Image | np.ndarray,
    foreground_ratio: float = DEFAULT_FOREGROUND_RATIO,
    size: int = 137,
    recenter: bool = True,
) -> PreprocessResult:
    """Load, mask and centre an image. Returns a PreprocessResult (image: RGBA (size, size, 4)).

    With `recenter=False` an image that already has an alpha mask is only resized to
    `size` (benchmark views are fed as rendered).
    """
    start = time.perf_counter()
    notes: list[str] = []
    rgba = _load(source, notes, max_side=WORK_SIDE)
    mask = alpha_mask(rgba)
    if mask is not None:
        if not mask.any():
            raise ImageInputError(
                "the image is fully transparent: there is no object to reconstruct"
            )
        source_name = "alpha"
        notes.append("used the image's alpha channel as the object mask")
    else:
        mask = foreground_mask(rgba[..., :3])
        source_name = "grabcut"
        notes.append("removed the background with GrabCut seeded from the image border")
    if mask.mean() < _MIN_FOREGROUND:
        raise ImageInputError(
            f"the object covers only {100 * mask.mean():.2f}% of the image: crop closer to the object"
        )
    if recenter or source_name != "alpha":
        image = crop_and_center(rgba, mask, foreground_ratio, size)
    else:
        masked = rgba.copy()
        masked[..., 3] = np.where(mask, masked[..., 3], 0)
        image = (
            masked
            if masked.shape[:2] == (size, size)
            else cv2.resize(masked, (size, size), interpolation=cv2.INTER_AREA)
        )
    return PreprocessResult(
        original=rgba,
        mask=mask,
        image=image,
        mask_source=source_name,
        notes=notes,
        seconds=time.perf_counter() - start,
    )
