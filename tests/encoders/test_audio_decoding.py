import io

import numpy as np
import pytest
import soundfile

from encoders.decoding import Waveform, decode_audio, resample
from encoders.errors import EncoderError, InputRejected


def encode_audio(samples: np.ndarray, sample_rate: int, audio_format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format=audio_format, subtype=subtype)
    return buffer.getvalue()


def sine(frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    times = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * times)).astype(np.float32)


def rejection(data: bytes, max_seconds: float = 5.0) -> InputRejected:
    with pytest.raises(InputRejected) as caught:
        decode_audio(data, max_seconds)
    return caught.value


@pytest.mark.parametrize(("audio_format", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("WAV", "FLOAT")])
def test_decode_audio_reads_lossless(audio_format: str, subtype: str) -> None:
    samples = sine(440, 0.5, 16_000)

    wave = decode_audio(encode_audio(samples, 16_000, audio_format, subtype), max_seconds=5)

    assert wave.sample_rate == 16_000
    assert wave.samples.dtype == np.float32
    assert wave.samples.ndim == 1
    assert wave.duration_s == pytest.approx(0.5)
    # 16-bit PCM quantises to steps of 1 / 32768.
    assert np.abs(wave.samples - samples).max() < 1e-4


def test_decode_audio_reads_ogg_vorbis() -> None:
    data = encode_audio(sine(440, 1.0, 16_000), 16_000, "OGG", "VORBIS")

    wave = decode_audio(data, max_seconds=5)

    assert wave.duration_s == pytest.approx(1.0)


def test_decode_audio_mixes_stereo_to_mono() -> None:
    left = np.full(1600, 0.5, dtype=np.float32)
    right = np.full(1600, -0.1, dtype=np.float32)
    data = encode_audio(np.stack([left, right], axis=1), 16_000, "WAV", "FLOAT")

    wave = decode_audio(data, max_seconds=5)

    assert wave.samples.shape == (1600,)
    assert np.allclose(wave.samples, 0.2)


def test_decode_audio_rejects_empty() -> None:
    data = encode_audio(np.zeros(0, dtype=np.float32), 16_000, "WAV", "PCM_16")

    assert rejection(data).reason == "audio_empty"


def test_decode_audio_rejects_too_long() -> None:
    data = encode_audio(sine(440, 2.0, 8_000), 8_000, "FLAC", "PCM_16")

    error = rejection(data, max_seconds=1.5)

    assert error.reason == "audio_too_long"
    assert "2.000 s" in error.detail
    assert "1.5 s" in error.detail


@pytest.mark.parametrize("data", [b"", b"not audio at all" * 50, b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_decode_audio_rejects_garbage(data: bytes) -> None:
    assert rejection(data).reason == "audio_undecodable"


def test_decode_audio_rejects_nan_samples() -> None:
    samples = np.array([0.1, np.nan, 0.2, 0.3], dtype=np.float32)
    data = encode_audio(samples, 16_000, "WAV", "FLOAT")

    error = rejection(data)

    assert error.reason == "audio_not_finite"
    assert "1 of 4" in error.detail


def test_decode_audio_rejects_nonpositive_limit() -> None:
    with pytest.raises(EncoderError):
        decode_audio(encode_audio(sine(440, 0.1, 8_000), 8_000, "WAV", "PCM_16"), max_seconds=0)


def test_resample_keeps_duration_and_pitch() -> None:
    wave = Waveform(sine(440, 1.0, 48_000), 48_000)

    resampled = resample(wave, 16_000)

    assert resampled.dtype == np.float32
    assert resampled.shape == (16_000,)
    spectrum = np.abs(np.fft.rfft(resampled))
    peak_hz = np.argmax(spectrum) * 16_000 / resampled.shape[0]
    assert peak_hz == pytest.approx(440, abs=1)


def test_resample_same_rate_returns_input() -> None:
    wave = Waveform(sine(440, 0.1, 16_000), 16_000)

    assert resample(wave, 16_000) is wave.samples


def test_waveform_rejects_stereo_array() -> None:
    with pytest.raises(EncoderError):
        Waveform(np.zeros((10, 2), dtype=np.float32), 16_000)


def test_waveform_rejects_float64() -> None:
    with pytest.raises(EncoderError):
        Waveform(np.zeros(10, dtype=np.float64), 16_000)
