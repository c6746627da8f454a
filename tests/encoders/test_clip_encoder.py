"""The CLIP encoder on the tiny saved stand-in."""

import numpy as np
import pytest
from PIL import Image

from encoders.base import Encoder
from encoders.decoding import Waveform
from encoders.errors import EncoderError
from encoders.modality import Modality

TEXTS = [
    "a cat",
    "a photo of a dog running on a beach at sunset with waves behind it",
    " ".join(["a very long caption that goes beyond the window"] * 20),
]


def sample_images() -> list[Image.Image]:
    generator = np.random.default_rng(1)
    sizes = [(32, 32), (80, 40), (17, 63)]
    return [Image.fromarray(generator.integers(0, 256, (height, width, 3), dtype=np.uint8)) for width, height in sizes]


def test_clip_encoder_describes_model(tiny_clip_encoder: Encoder) -> None:
    assert tiny_clip_encoder.family == "clip"
    assert tiny_clip_encoder.dim == 32
    assert tiny_clip_encoder.modalities == frozenset({Modality.TEXT, Modality.IMAGE})


def test_clip_text_batch_matches_single(tiny_clip_encoder: Encoder) -> None:
    batched = tiny_clip_encoder.encode(Modality.TEXT, TEXTS)
    singles = np.stack([tiny_clip_encoder.encode(Modality.TEXT, [text])[0] for text in TEXTS])

    assert np.abs(batched - singles).max() < 1e-5


def test_clip_image_batch_matches_single(tiny_clip_encoder: Encoder) -> None:
    images = sample_images()

    batched = tiny_clip_encoder.encode(Modality.IMAGE, images)
    singles = np.stack([tiny_clip_encoder.encode(Modality.IMAGE, [image])[0] for image in images])

    assert np.abs(batched - singles).max() < 1e-5


@pytest.mark.parametrize("modality", [Modality.TEXT, Modality.IMAGE])
def test_clip_encoder_returns_unit_float32(tiny_clip_encoder: Encoder, modality: Modality) -> None:
    inputs: list[object] = list(TEXTS) if modality is Modality.TEXT else list(sample_images())

    vectors = tiny_clip_encoder.encode(modality, inputs)

    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_clip_encoder_resizes_images_to_model_input(tiny_clip_encoder: Encoder) -> None:
    prepared = tiny_clip_encoder.preprocess(Modality.IMAGE, sample_images())

    assert prepared.tensors["pixel_values"].shape == (3, 3, 32, 32)


def test_clip_encoder_truncates_text_to_window(tiny_clip_encoder: Encoder) -> None:
    prepared = tiny_clip_encoder.preprocess(Modality.TEXT, TEXTS)

    assert prepared.tensors["input_ids"].shape == (3, 64)


def test_clip_encoder_accepts_modality_string(tiny_clip_encoder: Encoder) -> None:
    prepared = tiny_clip_encoder.preprocess("text", ["a cat"])  # type: ignore[arg-type]  # a plain str on purpose

    assert prepared.modality is Modality.TEXT


def test_clip_encoder_rejects_audio(tiny_clip_encoder: Encoder) -> None:
    wave = Waveform(np.zeros(16_000, dtype=np.float32), 16_000)

    with pytest.raises(EncoderError, match="does not embed audio"):
        tiny_clip_encoder.encode(Modality.AUDIO, [wave])


def test_clip_encoder_rejects_wrong_input_type(tiny_clip_encoder: Encoder) -> None:
    with pytest.raises(EncoderError, match="index 1 is a bytes, expected Image"):
        tiny_clip_encoder.preprocess(Modality.IMAGE, [sample_images()[0], b"\x89PNG"])
