import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import ExifTags, Image

from encoders.decoding import decode_image
from encoders.errors import EncoderError, InputRejected

RED = (255, 0, 0)
WHITE = (255, 255, 255)
MAX_PIXELS = 1_000_000


def encode_image(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def noise_image(width: int = 64, height: int = 48) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def one_bit_png(width: int, height: int, *, with_pixels: bool = True) -> bytes:
    """Build a black 1-bit greyscale PNG, compressing rows in chunks so memory stays small."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunks = [b"\x89PNG\r\n\x1a\n", png_chunk(b"IHDR", header)]
    if with_pixels:
        row = bytes(1 + (width + 7) // 8)  # filter byte "none", then packed zero bits
        compressor = zlib.compressobj(9)
        rows_per_chunk = 1000
        compressed = bytearray()
        for start in range(0, height, rows_per_chunk):
            compressed += compressor.compress(row * min(rows_per_chunk, height - start))
        compressed += compressor.flush()
        chunks.append(png_chunk(b"IDAT", bytes(compressed)))
    chunks.append(png_chunk(b"IEND", b""))
    return b"".join(chunks)


def rejection(data: bytes, max_pixels: int = MAX_PIXELS) -> InputRejected:
    with pytest.raises(InputRejected) as caught:
        decode_image(data, max_pixels)
    return caught.value


def assert_uniform(image: Image.Image, expected: tuple[int, int, int], tolerance: int = 1) -> None:
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    difference = np.abs(pixels - np.array(expected)).max()
    assert difference <= tolerance, f"pixels differ from {expected} by up to {difference}"


def test_decode_image_returns_loaded_rgb() -> None:
    original = noise_image()

    decoded = decode_image(encode_image(original, "PNG"), MAX_PIXELS)

    assert decoded.mode == "RGB"
    assert decoded.size == (64, 48)
    assert np.array_equal(np.asarray(decoded), np.asarray(original))


@pytest.mark.parametrize("data", [b"", b"this is not an image" * 20, b"\x89PNG\r\n\x1a\n" + b"\x00" * 50])
def test_decode_image_rejects_non_image(data: bytes) -> None:
    assert rejection(data).reason == "image_undecodable"


def test_decode_image_rejects_unlisted_format() -> None:
    # PPM is a real image format that Pillow reads, but not one accepted from events.
    data = encode_image(noise_image(), "PPM")

    error = rejection(data)

    assert error.reason == "image_undecodable"


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_decode_image_rejects_truncated(image_format: str) -> None:
    data = encode_image(noise_image(), image_format)

    error = rejection(data[: len(data) // 2])

    assert error.reason == "image_truncated"
    assert str(len(data) // 2) in error.detail


def test_decode_image_rejects_decompression_bomb() -> None:
    data = one_bit_png(20_000, 20_000)
    assert len(data) < 200_000, "the bomb must compress small to be a meaningful test"

    error = rejection(data)

    assert error.reason == "image_too_large"


def test_decode_image_rejects_over_max_pixels() -> None:
    data = one_bit_png(3000, 3000)

    error = rejection(data, max_pixels=MAX_PIXELS)

    assert error.reason == "image_too_large"
    assert "3000x3000" in error.detail
    assert str(MAX_PIXELS) in error.detail


def test_decode_image_checks_size_before_pixels() -> None:
    # The file has a header but no pixel data, so a decoder that read pixels
    # first would report it as truncated instead of too large.
    data = one_bit_png(3000, 3000, with_pixels=False)

    assert rejection(data, max_pixels=MAX_PIXELS).reason == "image_too_large"
    assert rejection(data, max_pixels=10_000_000).reason != "image_too_large"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decode_image_rejects_above_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warned_size = encode_image(noise_image(40, 40), "PNG")  # 1600 pixels: Pillow only warns
    raised_size = encode_image(noise_image(50, 50), "PNG")  # 2500 pixels: Pillow raises

    warned = rejection(warned_size, max_pixels=MAX_PIXELS)
    raised = rejection(raised_size, max_pixels=MAX_PIXELS)

    assert warned.reason == "image_too_large"
    assert "decompression-bomb limit of 1000" in warned.detail
    assert raised.reason == "image_too_large"


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_decode_image_rejects_bomb_warning_as_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    error = rejection(encode_image(noise_image(40, 40), "PNG"))

    assert error.reason == "image_too_large"


def test_decode_image_rejects_nonpositive_limit() -> None:
    with pytest.raises(EncoderError):
        decode_image(encode_image(noise_image(), "PNG"), 0)


def transparent_gif() -> bytes:
    image = Image.new("P", (8, 6), 0)
    image.putpalette([*RED, 0, 0, 255] + [0] * (254 * 3))
    return encode_image(image, "GIF", transparency=0)


MODE_CASES: list[tuple[str, Callable[[], bytes], tuple[int, int, int]]] = [
    ("L", lambda: encode_image(Image.new("L", (8, 6), 100), "PNG"), (100, 100, 100)),
    ("1", lambda: encode_image(Image.new("1", (8, 6), 1), "PNG"), WHITE),
    ("P", lambda: encode_image(Image.new("RGB", (8, 6), RED).convert("P"), "PNG"), RED),
    ("P_transparent", transparent_gif, WHITE),
    ("RGBA_transparent", lambda: encode_image(Image.new("RGBA", (8, 6), (*RED, 0)), "PNG"), WHITE),
    ("RGBA_half", lambda: encode_image(Image.new("RGBA", (8, 6), (0, 0, 255, 128)), "PNG"), (127, 127, 255)),
    ("LA", lambda: encode_image(Image.new("LA", (8, 6), (0, 0)), "PNG"), WHITE),
    ("CMYK", lambda: encode_image(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "TIFF"), RED),
    (
        "I;16",
        lambda: encode_image(Image.fromarray(np.full((6, 8), 100 * 257, dtype=np.uint16)), "PNG"),
        (100, 100, 100),
    ),
    (
        "I",
        lambda: encode_image(Image.fromarray(np.full((6, 8), 200, dtype=np.int32)), "TIFF"),
        (200, 200, 200),
    ),
    (
        "F",
        lambda: encode_image(Image.fromarray(np.full((6, 8), 0.5, dtype=np.float32)), "TIFF"),
        (128, 128, 128),
    ),
]


@pytest.mark.parametrize(("mode", "make", "expected"), MODE_CASES, ids=[case[0] for case in MODE_CASES])
def test_decode_image_converts_mode_to_rgb(
    mode: str, make: Callable[[], bytes], expected: tuple[int, int, int]
) -> None:
    decoded = decode_image(make(), MAX_PIXELS)

    assert decoded.mode == "RGB"
    assert decoded.size == (8, 6)
    assert_uniform(decoded, expected)


def test_decode_image_opens_sixteen_bit_png_as_i16() -> None:
    # Guards the "I;16" case above: it only tests the scaling if Pillow keeps the mode.
    data = encode_image(Image.fromarray(np.full((6, 8), 1000, dtype=np.uint16)), "PNG")

    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")


def test_decode_image_stretches_wide_integer_range() -> None:
    values = np.array([[-100_000, 100_000]], dtype=np.int32)

    decoded = decode_image(encode_image(Image.fromarray(values), "TIFF"), MAX_PIXELS)

    assert decoded.getpixel((0, 0)) == (0, 0, 0)
    assert decoded.getpixel((1, 0)) == WHITE


def test_decode_image_applies_exif_rotation() -> None:
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste(RED, (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90 degrees clockwise
    data = encode_image(stored, "JPEG", exif=exif, quality=95)

    decoded = decode_image(data, MAX_PIXELS)

    assert decoded.size == (20, 40)
    top = decoded.getpixel((10, 5))
    bottom = decoded.getpixel((10, 35))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[0] > 200, f"top should be red after rotation, got {top}"
    assert top[2] < 60, f"top should be red after rotation, got {top}"
    assert bottom[2] > 200, f"bottom should be blue after rotation, got {bottom}"
    assert bottom[0] < 60, f"bottom should be blue after rotation, got {bottom}"
