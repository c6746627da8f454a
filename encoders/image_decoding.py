"""Decoding of one encoded image into a fully loaded RGB picture."""

import io

import numpy as np
from PIL import Image, ImageOps

from encoders.errors import EncoderError, InputRejected

# Formats accepted from untrusted bytes. Leaving out the rest of Pillow's
# plugins matters for safety: EPS, for example, runs Ghostscript on load.
# AVIF is used only where the installed Pillow has that plugin (Pillow 13 has).
_ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

# Pillow has no exception type for a file that ends early. Pillow 13 raises
# OSError("image file is truncated ...") from ImageFile.load and
# OSError("Truncated File Read") from ImageFile._safe_read, so the message is matched.
_TRUNCATED_MARKER = "truncated"

# Transparent pixels are laid over white, as a browser shows them on a default page,
# because CLIP-style encoders were trained on opaque RGB pictures.
_BACKGROUND_RGBA = (255, 255, 255, 255)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# 65535 / 255: maps the 16-bit range onto the 8-bit range exactly.
_SIXTEEN_TO_EIGHT_BIT = 257.0


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode `data` into a loaded RGB image with its EXIF orientation applied.

    The pixel count is checked from the header before any pixel data is decoded.
    Raises InputRejected with reason "image_undecodable", "image_truncated" or
    "image_too_large".
    """
    if max_pixels <= 0:
        raise EncoderError(f"max_pixels must be positive, got {max_pixels}")

    image = _open_header(data)
    _check_pixel_count(image, max_pixels)
    _load_pixels(image, len(data))
    oriented = _apply_exif_orientation(image)
    return _to_rgb(oriented)


def _open_header(data: bytes) -> Image.Image:
    Image.init()
    formats = [name for name in _ACCEPTED_FORMATS if name in Image.OPEN]
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception only when warnings are turned into errors.
        raise InputRejected("image_too_large", str(exc)) from exc
    except Exception as exc:
        # Pillow's parsers raise several types on malformed bytes (OSError, SyntaxError,
        # ValueError, EOFError in Pillow 13), and one bad event must not fail a batch.
        raise _decoding_failure(exc, len(data)) from exc


def _check_pixel_count(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    pixels = width * height
    if pixels > max_pixels:
        raise InputRejected(
            "image_too_large",
            f"{width}x{height} image has {pixels} pixels, limit is {max_pixels}",
        )

    # Above Image.MAX_IMAGE_PIXELS Pillow only warns (it raises above twice that).
    # The size is compared here instead of catching DecompressionBombWarning
    # because warnings.catch_warnings changes process-wide state and is not
    # thread-safe, while decoding runs in worker threads.
    bomb_limit = Image.MAX_IMAGE_PIXELS
    if bomb_limit is not None and pixels > bomb_limit:
        raise InputRejected(
            "image_too_large",
            f"{width}x{height} image has {pixels} pixels, above Pillow's decompression-bomb limit of {bomb_limit}",
        )


def _load_pixels(image: Image.Image, size_bytes: int) -> None:
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputRejected("image_too_large", str(exc)) from exc
    except Exception as exc:
        # Broad for the same reason as in _open_header.
        raise _decoding_failure(exc, size_bytes) from exc


def _decoding_failure(exc: Exception, size_bytes: int) -> InputRejected:
    if _TRUNCATED_MARKER in str(exc).lower():
        return InputRejected(
            "image_truncated",
            f"image data ends early after {size_bytes} bytes ({exc})",
        )
    return InputRejected(
        "image_undecodable",
        f"{size_bytes} bytes are not a readable image ({type(exc).__name__}: {exc})",
    )


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception as exc:
        # Broad because the EXIF block is parsed from untrusted bytes too.
        raise InputRejected(
            "image_undecodable",
            f"EXIF orientation of the {image.size[0]}x{image.size[1]} image is unreadable "
            f"({type(exc).__name__}: {exc})",
        ) from exc
    return oriented


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_rgb(image)

    try:
        if mode in _ALPHA_MODES or "transparency" in image.info:
            # Convert to RGBA first so that palette and colour-key transparency
            # ("transparency" in info) turn into a real alpha channel.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, _BACKGROUND_RGBA)
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as exc:
        raise InputRejected(
            "image_undecodable",
            f"image mode {mode!r} cannot be converted to RGB ({exc})",
        ) from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float greyscale image to 8-bit RGB.

    Pillow's own convert() clips these values at 255 instead of scaling them,
    which turns most 16-bit photos white. The rules:
    "I;16*" is divided by 257. "I" is kept when it fits 0..255, divided by 257
    when it fits 0..65535, and otherwise stretched from its min..max. "F" is
    multiplied by 255 when it fits 0..1 and otherwise stretched from min..max.
    NaN and infinities become 0.

    The arithmetic runs in place on one float32 copy. A float64 pipeline with
    temporary arrays peaked at 1.28 GB (measured with tracemalloc) for a 78 kB PNG
    of 40 million 16-bit pixels, which max_image_pixels allows by default.
    """
    # float32 keeps 24 bits of mantissa, more than the 8 bits each output value keeps.
    values = np.asarray(image, dtype=np.float32)
    if not values.flags.writeable:
        values = values.copy()
    np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0

    if image.mode.startswith("I;16"):
        values /= _SIXTEEN_TO_EIGHT_BIT
    elif image.mode == "I" and low >= 0 and high <= 255:
        pass
    elif image.mode == "I" and low >= 0 and high <= 65535:
        values /= _SIXTEEN_TO_EIGHT_BIT
    elif image.mode == "F" and low >= 0 and high <= 1:
        values *= 255.0
    elif high > low:
        # Scaling before the shift keeps float32 from overflowing on a range near its maximum.
        scale = 255.0 / (high - low)
        values *= scale
        values -= low * scale
    else:
        values.fill(0.0)

    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return Image.fromarray(values.astype(np.uint8)).convert("RGB")
