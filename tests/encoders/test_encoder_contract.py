"""Behaviour every encoder shares, shown on the hash encoder, which needs no model."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.base import Prepared
from encoders.decoding import Waveform
from encoders.errors import EncoderError
from encoders.hashing import HashEncoder
from encoders.modality import Modality

# Seconds a test waits on a thread event before failing instead of hanging.
EVENT_TIMEOUT_S = 10


class BlockingHashEncoder(HashEncoder):
    """Hash encoder whose forward pass waits until the test releases it."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        self.entered.set()
        if not self.release.wait(EVENT_TIMEOUT_S):
            raise TimeoutError("test never released the forward pass")
        return super()._embed(modality, tensors)


def test_hash_encoder_describes_itself() -> None:
    encoder = HashEncoder(24)

    assert encoder.model_name == "hash:24"
    assert encoder.family == "hash"
    assert encoder.modalities == frozenset(Modality)
    assert encoder.device == torch.device("cpu")


def test_hash_encoder_repeats_vectors_across_instances() -> None:
    texts = ["a", "b", "a"]

    first = HashEncoder(8).encode(Modality.TEXT, texts)
    second = HashEncoder(8).encode(Modality.TEXT, texts)

    assert np.array_equal(first, second)
    assert np.array_equal(first[0], first[2])
    assert not np.allclose(first[0], first[1])


def test_hash_encoder_embeds_every_modality() -> None:
    encoder = HashEncoder(16)
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    wave = Waveform(np.linspace(-1, 1, 100, dtype=np.float32), 8_000)

    for modality, item in [(Modality.TEXT, "x"), (Modality.IMAGE, image), (Modality.AUDIO, wave)]:
        vectors = encoder.encode(modality, [item])
        assert vectors.dtype == np.float32, modality
        assert vectors.shape == (1, 16), modality
        assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-6), modality


def test_hash_encoder_separates_images_by_pixels() -> None:
    encoder = HashEncoder(8)
    images = [Image.new("RGB", (4, 4), (0, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 1))]

    vectors = encoder.encode(Modality.IMAGE, images)

    assert not np.allclose(vectors[0], vectors[1])


def test_preprocess_returns_prepared_batch() -> None:
    prepared = HashEncoder(8).preprocess(Modality.TEXT, ["a", "b", "c"])

    assert isinstance(prepared, Prepared)
    assert prepared.modality is Modality.TEXT
    assert prepared.count == 3
    assert set(prepared.tensors) == {"digests"}


def test_preprocess_rejects_empty_batch() -> None:
    with pytest.raises(EncoderError, match="empty text batch"):
        HashEncoder(8).preprocess(Modality.TEXT, [])


def test_preprocess_rejects_unknown_modality() -> None:
    with pytest.raises(EncoderError, match="unknown modality 'video'"):
        HashEncoder(8).preprocess("video", ["x"])  # type: ignore[arg-type]  # an invalid str on purpose


def test_encode_after_close_raises() -> None:
    encoder = HashEncoder(8)
    prepared = encoder.preprocess(Modality.TEXT, ["x"])

    encoder.close()
    encoder.close()  # a second close does nothing

    with pytest.raises(EncoderError, match="closed"):
        encoder.forward(prepared)
    with pytest.raises(EncoderError, match="closed"):
        encoder.preprocess(Modality.TEXT, ["x"])


def test_forward_rejects_concurrent_call() -> None:
    encoder = BlockingHashEncoder(8)
    prepared = encoder.preprocess(Modality.TEXT, ["x"])

    with ThreadPoolExecutor(max_workers=1) as executor:
        running = executor.submit(encoder.forward, prepared)
        assert encoder.entered.wait(EVENT_TIMEOUT_S), "the first forward never started"
        try:
            with pytest.raises(EncoderError, match="concurrent forward"):
                encoder.forward(prepared)
        finally:
            encoder.release.set()
        first = running.result(timeout=EVENT_TIMEOUT_S)

    assert first.shape == (1, 8)
    # The lock is free again once the first forward has finished.
    assert encoder.forward(prepared).shape == (1, 8)


def test_preprocess_and_forward_run_on_worker_threads() -> None:
    encoder = HashEncoder(8)
    expected = encoder.encode(Modality.TEXT, ["a", "b"])

    with ThreadPoolExecutor(max_workers=1) as preprocess_thread, ThreadPoolExecutor(max_workers=1) as forward_thread:
        prepared = preprocess_thread.submit(encoder.preprocess, Modality.TEXT, ["a", "b"]).result()
        vectors = forward_thread.submit(encoder.forward, prepared).result()

    assert np.array_equal(vectors, expected)
