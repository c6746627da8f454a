"""Short previews of inputs (a text snippet, an image thumbnail) for the dashboard and search."""

from __future__ import annotations

import base64
import io

from PIL import Image

from encoders.decoding import Waveform

# Characters of a text kept as its preview.
SNIPPET_CHARS = 160
# Maximum side of an image thumbnail, pixels. A 64-pixel JPEG is 1-3 kB.
THUMBNAIL_PIXELS = 64
THUMBNAIL_QUALITY = 70


def text_preview(text: str) -> str:
    """Return the start of ``text`` on one line, marked with an ellipsis if cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def image_preview(image: Image.Image) -> str:
    """Return a small JPEG thumbnail of ``image`` as a data URL."""
    thumbnail = image.copy()
    thumbnail.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buffer = io.BytesIO()
    thumbnail.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def audio_preview(wave: Waveform) -> str:
    """Return the clip's length and sampling rate."""
    return f"{wave.duration_s:.1f} s audio at {wave.sample_rate} Hz"


def preview_of(content: object) -> str:
    """Return the preview of decoded content: text, a PIL image or a Waveform."""
    if isinstance(content, str):
        return text_preview(content)
    if isinstance(content, Image.Image):
        return image_preview(content)
    if isinstance(content, Waveform):
        return audio_preview(content)
    raise TypeError(f"no preview for {type(content).__name__}")
