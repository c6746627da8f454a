"""Texts longer than a model's token window: token counts, truncation counted per space, rejection per space."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from transformers import AutoTokenizer

from encoders.base import Encoder
from encoders.loading import load_encoder
from encoders.modality import Modality
from encoders.tokenizing import TokenCount, count_tokens, tokenize
from streams.admission import Admission
from streams.deadletter import Rejection, RejectionLog
from streams.events import EventLimits, SourcePosition
from streams.metrics import WorkerMetrics
from streams.pending import PendingEvent
from streams.retry import Retrier
from streams.settings import TextOverWindow

POSITION = SourcePosition("embed.text", 0, 3)
# The tiny CLIP stand-in reads at most 64 tokens; 100 words are well past that.
LONG_TEXT = " ".join(["word"] * 100)
SHORT_TEXT = "a short caption"
# Longer than INLINE_COUNT_MAX_CHARS, so admission counts its tokens on the decode threads.
VERY_LONG_TEXT = " ".join(["word"] * 400)


@dataclass
class RecordedOutputs:
    """Outputs that keep the dead-letter records sent to them."""

    deadletters: list[tuple[Rejection, bytes | None, bytes | None]] = field(default_factory=list)

    async def send_matches(self, records: object) -> None:
        raise AssertionError("admission never sends match events")

    async def send_deadletter(self, rejection: Rejection, key: bytes | None, value: bytes | None) -> None:
        self.deadletters.append((rejection, key, value))


@dataclass
class StubSpace:
    name: str
    encoder: Encoder


@dataclass
class RecordingLane:
    """A lane that keeps what it is given instead of embedding it."""

    space: StubSpace
    received: list[PendingEvent] = field(default_factory=list)

    async def put(self, pending: PendingEvent) -> None:
        self.received.append(pending)


@pytest.fixture(scope="module")
def hash_encoder() -> Iterator[Encoder]:
    encoder = load_encoder("hash:16")
    yield encoder
    encoder.close()


def admit(
    lanes: list[RecordingLane], policy: TextOverWindow, text: str
) -> tuple[RecordedOutputs, WorkerMetrics, list[str]]:
    """Admit one text record and return the outputs, the metrics and the on_done calls."""
    outputs = RecordedOutputs()
    metrics = WorkerMetrics()
    finished: list[str] = []
    with ThreadPoolExecutor(1) as executor:
        admission = Admission(
            {Modality.TEXT: lanes},  # type: ignore[dict-item]
            outputs, RejectionLog(0.0), EventLimits(text_over_window=policy), 1_000_000, 600.0,
            executor, Retrier(1.0, metrics), metrics, store_previews=False,
        )
        value = orjson.dumps({"id": "long-1", "text": text})
        asyncio.run(admission.admit(Modality.TEXT, b"long-1", value, POSITION, None, lambda: finished.append("done")))
    return outputs, metrics, finished


def truncated_count(metrics: WorkerMetrics, space: str) -> float:
    return metrics.texts_truncated.labels(space)._value.get()


def test_count_tokens_matches_tokenize(minilm_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    long_text = " ".join(["word"] * 600)

    short, long = count_tokens(tokenizer, SHORT_TEXT, 256), count_tokens(tokenizer, long_text, 256)

    assert not short.over_window
    assert long.over_window
    # "word" is one WordPiece token, and [CLS] and [SEP] are added.
    assert long.tokens == 602
    ids = tokenize(tokenizer, [SHORT_TEXT, long_text], 256, ("input_ids",))["input_ids"]
    assert ids.shape == (2, 256)
    assert int(ids[0].count_nonzero()) == short.tokens


def test_count_text_tokens_uses_model_window(minilm_encoder: Encoder) -> None:
    count = minilm_encoder.count_text_tokens(LONG_TEXT)

    assert count == TokenCount(102, 256)


def test_count_tokens_of_each_tokenizing_family(tiny_clip_encoder: Encoder, tiny_clap_encoder: Encoder) -> None:
    for encoder in (tiny_clip_encoder, tiny_clap_encoder):
        count = encoder.count_text_tokens(LONG_TEXT)

        assert count is not None, encoder.family
        assert count.over_window, encoder.family
        assert count.window < count.tokens


def test_count_tokens_none_without_window(hash_encoder: Encoder) -> None:
    assert hash_encoder.count_text_tokens(LONG_TEXT) is None
    assert hash_encoder.token_counter() is None


def test_token_counter_matches_locked_count(
    minilm_encoder: Encoder, tiny_clip_encoder: Encoder, tiny_clap_encoder: Encoder
) -> None:
    for encoder in (minilm_encoder, tiny_clip_encoder, tiny_clap_encoder):
        counter = encoder.token_counter()

        assert counter is not None, encoder.family
        for text in (SHORT_TEXT, LONG_TEXT, VERY_LONG_TEXT):
            assert counter.count(text) == encoder.count_text_tokens(text), (encoder.family, text[:20])


def test_truncate_counts_per_space_and_logs_id(
    tiny_clip_encoder: Encoder, hash_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    clip, hashed = RecordingLane(StubSpace("clip", tiny_clip_encoder)), RecordingLane(StubSpace("hash", hash_encoder))

    with caplog.at_level(logging.DEBUG, logger="streams.admission"):
        outputs, metrics, finished = admit([clip, hashed], "truncate", LONG_TEXT)

    assert len(clip.received) == 1
    assert len(hashed.received) == 1
    assert outputs.deadletters == []
    assert truncated_count(metrics, "clip") == 1
    assert truncated_count(metrics, "hash") == 0
    assert "id=long-1 space=clip" in caplog.text
    assert finished == []


def test_truncate_leaves_short_text_uncounted(tiny_clip_encoder: Encoder) -> None:
    clip = RecordingLane(StubSpace("clip", tiny_clip_encoder))

    _, metrics, _ = admit([clip], "truncate", SHORT_TEXT)

    assert len(clip.received) == 1
    assert truncated_count(metrics, "clip") == 0


def test_reject_deadletters_for_space_only(tiny_clip_encoder: Encoder, hash_encoder: Encoder) -> None:
    clip, hashed = RecordingLane(StubSpace("clip", tiny_clip_encoder)), RecordingLane(StubSpace("hash", hash_encoder))

    outputs, metrics, finished = admit([clip, hashed], "reject", LONG_TEXT)

    assert clip.received == []
    assert len(hashed.received) == 1
    assert hashed.received[0].remaining == 1
    assert len(outputs.deadletters) == 1
    rejection, key, _ = outputs.deadletters[0]
    assert rejection.reason == "text_over_window"
    assert rejection.space == "clip"
    assert rejection.event_id == "long-1"
    assert "102 tokens" in rejection.detail
    assert "window of 64 tokens" in rejection.detail
    assert key == b"long-1"
    assert metrics.events_deadlettered.labels("text_over_window")._value.get() == 1
    assert finished == []


def test_reject_very_long_text_counted_off_loop(tiny_clip_encoder: Encoder) -> None:
    clip = RecordingLane(StubSpace("clip", tiny_clip_encoder))

    outputs, _, finished = admit([clip], "reject", VERY_LONG_TEXT)

    assert clip.received == []
    assert len(outputs.deadletters) == 1
    assert "402 tokens" in outputs.deadletters[0][0].detail
    assert finished == ["done"]


def test_reject_in_every_space_finishes_record(tiny_clip_encoder: Encoder) -> None:
    clip = RecordingLane(StubSpace("clip", tiny_clip_encoder))

    outputs, _, finished = admit([clip], "reject", LONG_TEXT)

    assert clip.received == []
    assert len(outputs.deadletters) == 1
    assert finished == ["done"]


def test_token_count_over_window_only_when_longer() -> None:
    assert not TokenCount(64, 64).over_window
    assert TokenCount(65, 64).over_window
