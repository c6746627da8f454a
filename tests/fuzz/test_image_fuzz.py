"""Fuzzing of image decoding: decode_image raises only InputRejected and otherwise returns a loaded RGB image."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from encoders.decoding import decode_image
from encoders.errors import InputRejected
from tests.fuzz.strategies import FUZZ_SETTINGS, ImageSample, broken_images, images, random_media_bytes

# Pillow 13 warns about, then skips, TIFF and EXIF tags that point past the end of the data.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning"),
    pytest.mark.filterwarnings("ignore:Tag data larger than file:UserWarning"),
    pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning"),
]

MAX_PIXELS = 1_000_000

# Reasons decode_image documents.
IMAGE_REASONS = frozenset({"image_undecodable", "image_truncated", "image_too_large"})


def decode_or_reject(data: bytes) -> Image.Image | None:
    """Return the decoded image, or None when decode_image raises InputRejected with a documented reason."""
    try:
        image = decode_image(data, MAX_PIXELS)
    except InputRejected as exc:
        assert exc.reason in IMAGE_REASONS, f"undocumented reason {exc.reason!r}: {exc.detail}"
        return None
    assert image.mode == "RGB"
    image.getpixel((0, 0))
    return image


@FUZZ_SETTINGS
@given(data=random_media_bytes())
def test_decode_random_bytes_raises_only_input_rejected(data: bytes) -> None:
    decode_or_reject(data)


@FUZZ_SETTINGS
@given(data=broken_images())
def test_decode_broken_image_raises_only_input_rejected(data: bytes) -> None:
    decode_or_reject(data)


@FUZZ_SETTINGS
@given(sample=images())
def test_decode_every_mode_and_format_gives_rgb(sample: ImageSample) -> None:
    image = decode_or_reject(sample.data)

    assert image is not None, f"{sample.mode} {sample.image_format} {sample.size} was rejected"
    assert image.size == sample.decoded_size, f"{sample.mode} {sample.image_format} orientation {sample.orientation}"


@FUZZ_SETTINGS
@given(width=st.integers(1, 40), height=st.integers(1, 40), low=st.integers(0, 65535), high=st.integers(0, 65535))
def test_decode_sixteen_bit_png_scales_to_eight_bits(width: int, height: int, low: int, high: int) -> None:
    values = np.linspace(low, high, width * height).round().astype("<u2").reshape(height, width)
    buffer = io.BytesIO()
    Image.frombytes("I;16", (width, height), values.tobytes()).save(buffer, "PNG")

    image = decode_or_reject(buffer.getvalue())

    assert image is not None
    grey = np.asarray(image)[..., 0].astype(int)
    # 16-bit values are divided by 257; clipping them at 255 instead would turn most white.
    expected = np.rint(values / 257.0).astype(int)
    assert np.abs(grey - expected).max() <= 1


@pytest.mark.parametrize(("mode", "image_format"), [("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF")])
def test_decode_high_depth_image_bounded_memory(mode: str, image_format: str) -> None:
    # A blank 4-megapixel image compresses to a few kilobytes.
    buffer = io.BytesIO()
    Image.new(mode, (2_000, 2_000)).save(buffer, image_format, compression="tiff_deflate")

    tracemalloc.start()
    try:
        image = decode_image(buffer.getvalue(), 4_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert image.size == (2_000, 2_000)
    # One float32 copy is 4 bytes per pixel; the float64 pipeline this replaced took 32.
    assert peak < 12 * 4_000_000, f"decoding took {peak / 4_000_000:.1f} bytes per pixel"
