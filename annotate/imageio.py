"""Safe decoding of untrusted web images into RGB arrays.

`decode_image(data, policy)` returns a `DecodedImage` or raises `SkipImage(reason, detail)`.
Library code raises; the caller (annotate/process.py) decides to count and skip, so one bad
file never ends a job. What is handled, and why:

- The format is sniffed from the bytes, never trusted from the file name: a PNG saved as
  `.jpg` is a good image and is kept (`DecodedImage.format` says what it really was).
- Pillow reads only the header in `Image.open`, so the pixel count is checked *before* any
  pixel is decoded (`max_pixels`, the decompression-bomb limit); Pillow's own
  `DecompressionBombWarning` is turned into a skip as well.
- Truncated files are rejected (`ImageFile.LOAD_TRUNCATED_IMAGES` stays False): a half-grey
  JPEG would teach the labeler and the generator garbage.
- EXIF orientation is applied first, so the stored image, the masks and the size filters all
  see the picture the way a person does.
- Every mode becomes 8-bit RGB: palette and alpha images are composited on `alpha_background`
  (transparent pixels otherwise carry arbitrary colors), 16-bit and 32-bit integer images are
  rescaled (Pillow's own `convert("RGB")` clips them to white), CMYK/YCbCr/LAB go through
  Pillow's converters, animations keep their first frame.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from formats.members import jpeg_bytes, png_bytes

RESIZE_MODES = ("none", "max_side", "min_side")

# Reasons a source item is skipped. Sources add their own (see annotate/sources.py).
SKIP_REASONS = ("empty", "not_an_image", "truncated", "corrupt", "decompression_bomb", "too_small", "too_large",
                "aspect_ratio")

ImageFile.LOAD_TRUNCATED_IMAGES = False  # explicit: truncated data is a skip, never grey padding


class SkipImage(Exception):
    """An input that is not used, with a machine-readable `reason` (one of SKIP_REASONS or a source reason)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodePolicy:
    """What images are accepted and how they are normalized.

    Attributes:
        min_side: shorter side below this (after EXIF transpose, before resizing) -> skip `too_small`.
        max_side: longer side above this -> skip `too_large` (0 = no limit; resizing happens after).
        max_pixels: width * height above this -> skip `decompression_bomb`, checked from the header.
        max_aspect: max(w, h) / min(w, h) above this -> skip `aspect_ratio` (0 = no limit).
        resize: "none", "max_side" (downscale so the longer side <= size) or "min_side"
            (downscale so the shorter side <= size). Never upscales.
        size: the target side for `resize`.
        alpha_background: RGB that transparent pixels are composited onto.
    """

    min_side: int = 32
    max_side: int = 0
    max_pixels: int = 64_000_000
    max_aspect: float = 6.0
    resize: str = "max_side"
    size: int = 1024
    alpha_background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {list(RESIZE_MODES)}, got {self.resize!r}")
        if self.min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {self.min_side}")
        if self.max_side < 0 or (self.max_side and self.max_side < self.min_side):
            raise ValueError(f"max_side must be 0 (no limit) or >= min_side={self.min_side}, got {self.max_side}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.max_aspect != 0 and self.max_aspect < 1:
            raise ValueError(f"max_aspect must be 0 (no limit) or >= 1, got {self.max_aspect}")
        if self.resize != "none" and self.size < 8:
            raise ValueError(f"size must be >= 8 when resize={self.resize!r}, got {self.size}")
        bg = tuple(self.alpha_background)
        if len(bg) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in bg):
            raise ValueError(f"alpha_background must be three ints in [0, 255], got {self.alpha_background!r}")
        object.__setattr__(self, "alpha_background", bg)


@dataclass
class DecodedImage:
    """An accepted image: `rgb` is what the labeler sees and the masks align to.

    `stored` is the `(extension, bytes)` to write as the sample's image: the source's own JPEG
    bytes when they decode to exactly `rgb` (JPEG, no rotation, no resize, RGB or grey), else
    a re-encoding (JPEG for JPEG sources that were only transposed/converted, PNG otherwise).
    """

    rgb: np.ndarray
    format: str
    orig_width: int
    orig_height: int
    mode: str
    n_frames: int
    exif_transposed: bool
    resized: bool
    stored: tuple[str, bytes]

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_image(data: bytes, policy: DecodePolicy = DecodePolicy(), jpeg_quality: int = 95) -> DecodedImage:
    """Decode untrusted bytes to an RGB uint8 array under `policy`; raise SkipImage otherwise."""
    if not data:
        raise SkipImage("empty", "0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, mode, n_frames = im.format or "unknown", im.mode, int(getattr(im, "n_frames", 1))
                w, h = im.size
                if w * h > policy.max_pixels:
                    raise SkipImage("decompression_bomb", f"{w}x{h} = {w * h} pixels > max_pixels={policy.max_pixels}")
                im.seek(0)  # animations: the first frame
                im.load()
                orientation = im.getexif().get(0x0112, 1)
                upright = ImageOps.exif_transpose(im)
                rgb = to_rgb(upright, policy.alpha_background)
    except SkipImage:
        raise
    except UnidentifiedImageError as err:
        # Known magic bytes that Pillow cannot open: a damaged image (often cut off inside its
        # header). No known magic: something else under an image name (an HTML error page...).
        magic = sniff_format(data)
        if magic is None:
            raise SkipImage("not_an_image", f"{len(data)} bytes starting {data[:16]!r}") from err
        reason = "truncated" if lacks_end_marker(data, magic) else "corrupt"
        raise SkipImage(reason, f"{magic} header Pillow cannot parse ({len(data)} bytes)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SkipImage("decompression_bomb", str(err)[:200]) from err
    # Pillow's parsers report malformed data through many exception types (struct.error for
    # short headers, SyntaxError for bad PNG chunks, ...): all of them mean "this file is bad".
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error) as err:
        text = str(err)
        cut = "truncated" in text or isinstance(err, EOFError) or lacks_end_marker(data, sniff_format(data))
        reason = "truncated" if cut else "corrupt"
        raise SkipImage(reason, f"{type(err).__name__}: {text[:200]}") from err
    h0, w0 = rgb.shape[:2]
    check_size(w0, h0, policy)
    resized_rgb = resize_rgb(rgb, policy)
    resized = resized_rgb.shape != rgb.shape
    transposed = orientation not in (1, None)
    stored = stored_bytes(data, fmt, mode, transposed, resized, resized_rgb, jpeg_quality)
    return DecodedImage(resized_rgb, fmt, w, h, mode, n_frames, transposed, resized, stored)


_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def sniff_format(data: bytes) -> str | None:
    """The image format the leading bytes announce (None if none we know)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def lacks_end_marker(data: bytes, fmt: str | None) -> bool:
    """True when a JPEG/PNG/GIF does not end with its format's end marker: the file was cut off.

    Only used to name the reason for a file that already failed to decode.
    """
    tail = data[-64:].rstrip(b"\x00\r\n ")  # some writers pad after the end marker
    if fmt == "JPEG":
        return not tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in tail
    if fmt == "GIF":
        return not tail.endswith(b";")
    return False


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8, compositing transparency onto `background`."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.int64)
        # 16-bit sources fill [0, 65535]; scale by the container's range, not the image's max,
        # so a dark 16-bit image stays dark.
        top = 65535 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
        grey = np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        grey = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info) or (
        mode in ("L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        return np.asarray(Image.alpha_composite(base, rgba).convert("RGB"))
    if mode == "RGB":
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))


def check_size(width: int, height: int, policy: DecodePolicy) -> None:
    """Raise SkipImage when the (EXIF-upright) size fails the policy's filters."""
    short, long_ = min(width, height), max(width, height)
    if short < policy.min_side:
        raise SkipImage("too_small", f"{width}x{height}: shorter side < min_side={policy.min_side}")
    if policy.max_side and long_ > policy.max_side:
        raise SkipImage("too_large", f"{width}x{height}: longer side > max_side={policy.max_side}")
    if policy.max_aspect and long_ / short > policy.max_aspect:
        raise SkipImage("aspect_ratio", f"{width}x{height}: aspect {long_ / short:.2f} > max_aspect={policy.max_aspect}")


def resize_rgb(rgb: np.ndarray, policy: DecodePolicy) -> np.ndarray:
    """Downscale per the policy (Lanczos on 8-bit RGB); never upscales."""
    if policy.resize == "none":
        return rgb
    h, w = rgb.shape[:2]
    side = max(w, h) if policy.resize == "max_side" else min(w, h)
    if side <= policy.size:
        return rgb
    scale = policy.size / side
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0))


def stored_bytes(data: bytes, fmt: str, mode: str, transposed: bool, resized: bool, rgb: np.ndarray,
                 jpeg_quality: int) -> tuple[str, bytes]:
    """Pick the sample's image member: original JPEG bytes when they already are `rgb`."""
    if fmt == "JPEG" and not resized:
        if not transposed and mode in ("RGB", "L"):
            return "rgb.jpg", data
        return "rgb.jpg", jpeg_bytes(rgb, quality=jpeg_quality, subsampling=0)
    return "rgb.png", png_bytes(rgb)
