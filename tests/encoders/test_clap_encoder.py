"""The CLAP encoder on the tiny saved stand-in (16 kHz, one-second window)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders.base import Encoder
from encoders.decoding import Waveform
from encoders.errors import EncoderError, InputRejected
from encoders.loading import load_encoder
from encoders.modality import Modality
from encoders.standins import build_tiny_clap

TEXTS = ["rain", "a dog barking twice in a large empty hall", " ".join(["birds singing at dawn"] * 30)]


def noise(seconds: float, sample_rate: int, seed: int) -> Waveform:
    samples = np.random.default_rng(seed).standard_normal(int(seconds * sample_rate)).astype(np.float32)
    return Waveform(0.1 * samples, sample_rate)


def sample_waves() -> list[Waveform]:
    # Different lengths and rates: shorter than the window (padded by repetition),
    # exactly one window, longer than the window (cut), and 48 kHz (resampled).
    return [noise(0.3, 16_000, 0), noise(1.0, 16_000, 1), noise(2.5, 16_000, 2), noise(0.7, 48_000, 3)]


def test_clap_encoder_describes_model(tiny_clap_encoder: Encoder) -> None:
    assert tiny_clap_encoder.family == "clap"
    assert tiny_clap_encoder.dim == 32
    assert tiny_clap_encoder.modalities == frozenset({Modality.TEXT, Modality.AUDIO})


def test_clap_text_batch_matches_single(tiny_clap_encoder: Encoder) -> None:
    batched = tiny_clap_encoder.encode(Modality.TEXT, TEXTS)
    singles = np.stack([tiny_clap_encoder.encode(Modality.TEXT, [text])[0] for text in TEXTS])

    assert np.abs(batched - singles).max() < 1e-5


def test_clap_audio_batch_matches_single(tiny_clap_encoder: Encoder) -> None:
    waves = sample_waves()

    batched = tiny_clap_encoder.encode(Modality.AUDIO, waves)
    singles = np.stack([tiny_clap_encoder.encode(Modality.AUDIO, [wave])[0] for wave in waves])

    assert np.abs(batched - singles).max() < 1e-5


@pytest.mark.parametrize("modality", [Modality.TEXT, Modality.AUDIO])
def test_clap_encoder_returns_unit_float32(tiny_clap_encoder: Encoder, modality: Modality) -> None:
    inputs: list[object] = list(TEXTS) if modality is Modality.TEXT else list(sample_waves())

    vectors = tiny_clap_encoder.encode(modality, inputs)

    assert vectors.dtype == np.float32
    assert vectors.shape == (len(inputs), 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_clap_encoder_repeats_vectors_for_same_clip(tiny_clap_encoder: Encoder) -> None:
    # The feature extractor alone would crop long clips at random, but the encoder must not.
    long_clip = noise(2.5, 16_000, 2)

    first = tiny_clap_encoder.encode(Modality.AUDIO, [long_clip])
    second = tiny_clap_encoder.encode(Modality.AUDIO, [long_clip])

    assert np.array_equal(first, second)


def test_clap_encoder_keeps_first_window_of_long_clip(tiny_clap_encoder: Encoder) -> None:
    long_clip = noise(2.5, 16_000, 2)
    first_second = Waveform(long_clip.samples[:16_000].copy(), 16_000)

    vectors = tiny_clap_encoder.encode(Modality.AUDIO, [long_clip, first_second])

    assert np.abs(vectors[0] - vectors[1]).max() < 1e-6


def test_clap_encoder_resamples_to_model_rate(tiny_clap_encoder: Encoder) -> None:
    # A 440 Hz tone at 48 kHz and at 16 kHz are the same sound for a 16 kHz model.
    times_48k = np.arange(48_000) / 48_000
    times_16k = np.arange(16_000) / 16_000
    tone_48k = Waveform((0.5 * np.sin(2 * np.pi * 440 * times_48k)).astype(np.float32), 48_000)
    tone_16k = Waveform((0.5 * np.sin(2 * np.pi * 440 * times_16k)).astype(np.float32), 16_000)
    other = noise(1.0, 16_000, 5)

    vectors = tiny_clap_encoder.encode(Modality.AUDIO, [tone_48k, tone_16k, other])

    assert float(vectors[0] @ vectors[1]) > 0.99
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])


def test_clap_encoder_rejects_empty_waveform(tiny_clap_encoder: Encoder) -> None:
    empty = Waveform(np.zeros(0, dtype=np.float32), 16_000)

    with pytest.raises(InputRejected) as caught:
        tiny_clap_encoder.preprocess(Modality.AUDIO, [noise(0.5, 16_000, 0), empty])

    assert caught.value.reason == "audio_empty"
    assert "index 1" in caught.value.detail


def test_clap_encoder_rejects_image(tiny_clap_encoder: Encoder) -> None:
    with pytest.raises(EncoderError, match="does not embed image"):
        tiny_clap_encoder.preprocess(Modality.IMAGE, [Image.new("RGB", (8, 8))])


def test_fused_clap_audio_batch_matches_single(tmp_path: Path) -> None:
    # With truncation="fusion" the feature extractor flags one random clip per
    # batch as longer, which a fused model would embed differently.
    encoder = load_encoder(str(build_tiny_clap(tmp_path / "fused-clap", fused=True)))
    try:
        waves = sample_waves()
        batched = encoder.encode(Modality.AUDIO, waves)
        singles = np.stack([encoder.encode(Modality.AUDIO, [wave])[0] for wave in waves])
    finally:
        encoder.close()

    assert np.abs(batched - singles).max() < 1e-5
