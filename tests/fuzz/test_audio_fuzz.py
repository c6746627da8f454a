"""Fuzzing of audio decoding: decode_audio raises only InputRejected and otherwise returns finite mono audio."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import soundfile
from hypothesis import given

from encoders.decoding import Waveform, decode_audio
from encoders.errors import InputRejected
from tests.fuzz.strategies import FUZZ_SETTINGS, AudioSample, audio_clips, broken_audio, random_media_bytes

MAX_SECONDS = 600.0

# Reasons decode_audio documents.
AUDIO_REASONS = frozenset({"audio_undecodable", "audio_empty", "audio_too_long", "audio_not_finite"})

# Formats and subtypes that keep every sample they are given, so a clip of them must decode.
LOSSLESS = frozenset(
    {("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24"),
     ("AIFF", "PCM_16"), ("W64", "FLOAT"), ("RF64", "PCM_32"), ("CAF", "DOUBLE")}
)


def decode_or_reject(data: bytes) -> Waveform | InputRejected:
    """Return the decoded clip, or the InputRejected that decode_audio raised with a documented reason."""
    try:
        wave = decode_audio(data, MAX_SECONDS)
    except InputRejected as exc:
        assert exc.reason in AUDIO_REASONS, f"undocumented reason {exc.reason!r}: {exc.detail}"
        return exc
    assert wave.samples.ndim == 1
    assert wave.samples.dtype == np.float32
    assert wave.samples.shape[0] > 0
    assert np.isfinite(wave.samples).all()
    assert 0 < wave.duration_s <= MAX_SECONDS
    return wave


@FUZZ_SETTINGS
@given(data=random_media_bytes())
def test_decode_random_bytes_raises_only_input_rejected(data: bytes) -> None:
    decode_or_reject(data)


@FUZZ_SETTINGS
@given(data=broken_audio())
def test_decode_broken_audio_raises_only_input_rejected(data: bytes) -> None:
    decode_or_reject(data)


@FUZZ_SETTINGS
@given(clip=audio_clips())
def test_decode_every_format_gives_mono_or_reason(clip: AudioSample) -> None:
    result = decode_or_reject(clip.data)

    kind = (clip.audio_format, clip.subtype)
    if clip.has_nan:
        assert isinstance(result, InputRejected), f"{kind}: NaN samples were accepted"
        if kind in LOSSLESS:
            assert result.reason == "audio_not_finite"
    # Other codecs pad or drop frames (VOC reads one frame from an empty file), so only
    # the lossless ones are held to the exact frame count.
    elif kind in LOSSLESS and clip.frames == 0:
        assert isinstance(result, InputRejected), f"{kind}: an empty clip was accepted"
    elif kind in LOSSLESS and clip.frames / clip.sample_rate > MAX_SECONDS:
        assert isinstance(result, InputRejected), f"{kind}: {clip.frames} frames at {clip.sample_rate} Hz accepted"
        assert result.reason == "audio_too_long"
    elif kind in LOSSLESS:
        assert isinstance(result, Waveform), f"{kind} {clip.channels} ch at {clip.sample_rate} Hz: {result}"
        assert result.samples.shape == (clip.frames,)
        assert result.sample_rate == clip.sample_rate


def flac_declaring_frames(frames: int, channels: int = 2, sample_rate: int = 96_000) -> bytes:
    """Return a short FLAC whose STREAMINFO block declares ``frames`` frames."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, (5_000, channels)).astype(np.float32)
    soundfile.write(buffer, noise, sample_rate, format="FLAC")
    data = bytearray(buffer.getvalue())
    # STREAMINFO follows "fLaC" and its 4-byte block header. Its bytes 10 to 17 pack the
    # sample rate (20 bits), channels - 1 (3), bits per sample - 1 (5) and the total
    # samples (36), as the FLAC format's METADATA_BLOCK_STREAMINFO defines them.
    start = 8 + 10
    packed = int.from_bytes(data[start : start + 8], "big")
    packed = (packed >> 36 << 36) | frames
    data[start : start + 8] = packed.to_bytes(8, "big")
    return bytes(data)


def test_decode_lying_frame_count_bounded_memory() -> None:
    data = flac_declaring_frames(48_000_000)

    tracemalloc.start()
    try:
        with pytest.raises(InputRejected) as caught:
            decode_audio(data, MAX_SECONDS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert caught.value.reason == "audio_undecodable"
    # Reading the declared 48 million stereo frames at once would allocate 384 MB.
    assert peak < 16 * 1024 * 1024, f"decoding a {len(data)}-byte file allocated {peak} bytes"


def test_decode_clip_over_many_blocks_keeps_every_frame() -> None:
    # 300,000 stereo frames are 600,000 samples, so decode_audio reads them in several blocks.
    samples = np.random.default_rng(1).uniform(-1.0, 1.0, (300_000, 2)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 48_000, format="WAV", subtype="FLOAT")

    wave = decode_audio(buffer.getvalue(), MAX_SECONDS)

    assert wave.samples.shape == (300_000,)
    np.testing.assert_array_equal(wave.samples, samples.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize("sample_rate", [384_001, 655_350])
def test_decode_rejects_sample_rate_over_max(sample_rate: int) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(100, dtype=np.float32), sample_rate, format="WAV")

    with pytest.raises(InputRejected) as caught:
        decode_audio(buffer.getvalue(), MAX_SECONDS)

    assert caught.value.reason == "audio_undecodable"
    assert str(sample_rate) in caught.value.detail


# An AIFC file cut short in its sound data chunk; libsndfile 1.2.2 seeks to offset -1 on it.
SEEKS_BEFORE_START = (
    b'FORM\x00\x00\x00xAIFCFVER\x00\x00\x00\x04\xa2\x80Q@COMM\x00\x00\x00\x18\x00\x01\x00\x00\x00\x04\x00@?\xff\x80'
    b"\x00\x00\x00\x00\x00\x00\x00FL64\x00\x00PEAK\x00\x00\x00\x10\x00\x00\x00\x01k\x13'\x0c\x00\x00\x00\x00\x00\x00\x00\x00SSND\x00\x00"
)


def test_decode_seek_before_start_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputRejected) as caught:
        decode_audio(SEEKS_BEFORE_START, MAX_SECONDS)

    assert caught.value.reason == "audio_undecodable"
    assert capfd.readouterr().err == ""


def test_decode_rejection_detail_names_no_object_address() -> None:
    with pytest.raises(InputRejected) as caught:
        decode_audio(b"not audio at all", MAX_SECONDS)

    assert "object at 0x" not in caught.value.detail
