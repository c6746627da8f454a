"""The sentence encoder on the real all-MiniLM-L6-v2 weights."""

from pathlib import Path

import numpy as np
import pytest

from encoders.base import Encoder
from encoders.errors import EncoderError
from encoders.modality import Modality

PARAPHRASE = ("A man is playing a guitar.", "Someone plays the guitar.")
UNRELATED = "The central bank raised interest rates again this quarter."

# Sentences of very different token counts, the last one beyond the 256-token window.
MIXED_LENGTHS = [
    "Hi.",
    "A man is playing a guitar on a small stage in front of a quiet audience.",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 12),
    " ".join(["Streaming embeddings need batches that do not change the vectors."] * 40),
]


def test_sentence_encoder_describes_minilm(minilm_encoder: Encoder) -> None:
    assert minilm_encoder.family == "sentence"
    assert minilm_encoder.dim == 384
    assert minilm_encoder.modalities == frozenset({Modality.TEXT})


def test_sentence_encoder_ranks_paraphrase_above_unrelated(minilm_encoder: Encoder) -> None:
    vectors = minilm_encoder.encode(Modality.TEXT, [*PARAPHRASE, UNRELATED])

    paraphrase_cosine = float(vectors[0] @ vectors[1])
    unrelated_cosine = float(vectors[0] @ vectors[2])
    assert paraphrase_cosine > 0.7
    assert unrelated_cosine < 0.3
    assert paraphrase_cosine - unrelated_cosine > 0.5


def test_sentence_encoder_returns_unit_float32(minilm_encoder: Encoder) -> None:
    vectors = minilm_encoder.encode(Modality.TEXT, MIXED_LENGTHS)

    assert vectors.dtype == np.float32
    assert vectors.shape == (len(MIXED_LENGTHS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_sentence_encoder_batch_matches_single(minilm_encoder: Encoder) -> None:
    batched = minilm_encoder.encode(Modality.TEXT, MIXED_LENGTHS)
    singles = np.stack([minilm_encoder.encode(Modality.TEXT, [text])[0] for text in MIXED_LENGTHS])

    assert np.abs(batched - singles).max() < 1e-5


def test_sentence_encoder_truncates_to_window(minilm_encoder: Encoder) -> None:
    prepared = minilm_encoder.preprocess(Modality.TEXT, MIXED_LENGTHS)

    # sentence_bert_config.json of all-MiniLM-L6-v2 sets max_seq_length 256.
    assert prepared.count == len(MIXED_LENGTHS)
    assert prepared.tensors["input_ids"].shape == (len(MIXED_LENGTHS), 256)


def test_sentence_encoder_matches_sentence_transformers(minilm_encoder: Encoder, minilm_path: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference_model = sentence_transformers.SentenceTransformer(str(minilm_path), device="cpu")

    expected = reference_model.encode(MIXED_LENGTHS, convert_to_numpy=True, normalize_embeddings=True)
    actual = minilm_encoder.encode(Modality.TEXT, MIXED_LENGTHS)

    assert np.abs(actual - expected).max() < 1e-5


def test_sentence_encoder_rejects_image_modality(minilm_encoder: Encoder) -> None:
    with pytest.raises(EncoderError, match="does not embed image"):
        minilm_encoder.preprocess(Modality.IMAGE, ["not an image"])
