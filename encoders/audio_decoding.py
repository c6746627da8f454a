"""Decoding of one encoded audio clip into a mono float32 waveform, and resampling."""

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile
from scipy.signal import resample_poly

from encoders.errors import EncoderError, InputRejected

# Maximum sample rate accepted. 384 kHz is the highest rate in common studio use,
# since DXD recording runs at 352.8 kHz. A higher rate is far more likely a corrupt
# or hostile header, and the decoded size grows with the rate at a fixed duration.
MAX_SAMPLE_RATE_HZ = 384_000

# Samples read per block (frames times channels): 1 MiB of float32.
_BLOCK_SAMPLES = 1 << 18


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

    The duration and sample rate are checked from the header before any frames are
    read, and frames are read in blocks, so memory follows the frames the bytes
    really contain. Channels are averaged into one. Raises InputRejected with
    reason "audio_undecodable", "audio_empty", "audio_too_long" or "audio_not_finite".
    """
    if max_seconds <= 0:
        raise EncoderError(f"max_seconds must be positive, got {max_seconds}")

    try:
        with soundfile.SoundFile(_ClampedReader(data)) as sound:
            sample_rate = sound.samplerate
            _check_header(sound.frames, sample_rate, sound.channels, max_seconds)
            mono = _read_mono(sound)
    except soundfile.LibsndfileError as exc:
        raise InputRejected(
            "audio_undecodable",
            f"{len(data)} bytes are not readable audio ({exc.error_string})",
        ) from exc

    if mono.shape[0] == 0:
        raise InputRejected("audio_empty", f"no frames could be read from {len(data)} bytes")
    if not np.isfinite(mono).all():
        raise InputRejected(
            "audio_not_finite",
            f"{int((~np.isfinite(mono)).sum())} of {mono.shape[0]} samples are NaN or infinite",
        )
    return Waveform(mono, sample_rate)


class _ClampedReader(io.BytesIO):
    """An in-memory file whose seeks before its start stop at the start instead of raising.

    soundfile seeks from inside a cffi callback, where Python prints a raised
    ValueError to stderr as a traceback and cffi returns position 0 to libsndfile.
    Stopping at 0 hands libsndfile the same position without the traceback, which
    truncated AIFC headers would otherwise write once per record.
    """

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.tell()
        elif whence == io.SEEK_END:
            offset += len(self.getbuffer())
        return super().seek(max(0, offset))


def _check_header(frames: int, sample_rate: int, channels: int, max_seconds: float) -> None:
    if sample_rate <= 0 or sample_rate > MAX_SAMPLE_RATE_HZ:
        raise InputRejected(
            "audio_undecodable",
            f"header declares sample rate {sample_rate} Hz, outside 1 to {MAX_SAMPLE_RATE_HZ} Hz",
        )
    if channels <= 0:
        raise InputRejected("audio_undecodable", f"header declares {channels} channels")
    if frames <= 0:
        raise InputRejected("audio_empty", f"header declares {frames} frames at {sample_rate} Hz")

    duration = frames / sample_rate
    if duration > max_seconds:
        raise InputRejected(
            "audio_too_long",
            f"clip lasts {duration:.3f} s ({frames} frames at {sample_rate} Hz), limit is {max_seconds} s",
        )


def _read_mono(sound: soundfile.SoundFile) -> np.ndarray:
    """Read up to the header's frame count block by block, averaging the channels of each block.

    soundfile's read(frames) allocates frames x channels samples before reading, and
    a header can declare more frames than its bytes hold: a 17 kB FLAC whose
    STREAMINFO claims 48 million frames made it allocate 384 MB.
    """
    block_frames = max(1, _BLOCK_SAMPLES // sound.channels)
    blocks: list[np.ndarray] = []
    remaining = sound.frames
    while remaining > 0:
        block = sound.read(min(block_frames, remaining), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        blocks.append(block.mean(axis=1, dtype=np.float32))
        remaining -= block.shape[0]
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


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
