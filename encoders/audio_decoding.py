"""Decoding of one encoded audio clip into a mono float32 waveform, and resampling."""

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile
from scipy.signal import resample_poly

from encoders.errors import EncoderError, InputRejected


@dataclass(frozen=True)
class Waveform:
    """Mono audio: 1-D float32 samples in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 1 or self.samples.dtype != np.float32:
            raise EncoderError(
                f"Waveform samples must be a 1-D float32 array, got {self.samples.ndim}-D "
                f"{self.samples.dtype}: mix channels down and cast before constructing it"
            )
        if self.sample_rate <= 0:
            raise EncoderError(f"Waveform sample_rate must be positive, got {self.sample_rate}")

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def decode_audio(data: bytes, max_seconds: float) -> Waveform:
    """Decode WAV, FLAC, OGG or another libsndfile format into a mono Waveform.

    The duration is checked from the header before any frames are read.
    Channels are averaged into one. Raises InputRejected with reason
    "audio_undecodable", "audio_empty", "audio_too_long" or "audio_not_finite".
    """
    if max_seconds <= 0:
        raise EncoderError(f"max_seconds must be positive, got {max_seconds}")

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            frames = sound.frames
            sample_rate = sound.samplerate
            _check_header(frames, sample_rate, max_seconds)
            samples = sound.read(frames, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as exc:
        raise InputRejected(
            "audio_undecodable",
            f"{len(data)} bytes are not readable audio ({exc})",
        ) from exc

    if samples.shape[0] == 0:
        raise InputRejected("audio_empty", f"no frames could be read from {len(data)} bytes")

    mono = samples.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise InputRejected(
            "audio_not_finite",
            f"{int((~np.isfinite(mono)).sum())} of {mono.shape[0]} samples are NaN or infinite",
        )
    return Waveform(np.ascontiguousarray(mono), sample_rate)


def _check_header(frames: int, sample_rate: int, max_seconds: float) -> None:
    if sample_rate <= 0:
        raise InputRejected("audio_undecodable", f"header declares sample rate {sample_rate} Hz")
    if frames <= 0:
        raise InputRejected("audio_empty", f"header declares {frames} frames at {sample_rate} Hz")

    duration = frames / sample_rate
    if duration > max_seconds:
        raise InputRejected(
            "audio_too_long",
            f"clip lasts {duration:.3f} s ({frames} frames at {sample_rate} Hz), limit is {max_seconds} s",
        )


def resample(wave: Waveform, target_rate: int) -> np.ndarray:
    """Resample `wave` to `target_rate` Hz with a polyphase filter.

    Returns the samples unchanged (not copied) when the rates already match.
    """
    if target_rate <= 0:
        raise EncoderError(f"target_rate must be positive, got {target_rate}")
    if wave.sample_rate == target_rate:
        return wave.samples

    # The polyphase filter length follows max(up, down) once both are divided by
    # their gcd, so 48000 -> 16000 runs as up=1, down=3. scipy 1.17 divides again
    # internally, which is harmless.
    divisor = math.gcd(wave.sample_rate, target_rate)
    up = target_rate // divisor
    down = wave.sample_rate // divisor
    resampled = resample_poly(wave.samples, up, down)
    return np.asarray(resampled, dtype=np.float32)
